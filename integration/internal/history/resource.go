package history

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Write is what a holder sends to a Resource: "I hold lease Lease of Lock
// with fencing token Token".
type Write struct {
	Process string `json:"process"`
	Lock    string `json:"lock"`
	Lease   string `json:"lease"`
	Token   uint64 `json:"token"`
}

// writeReply is the Resource's answer.
type writeReply struct {
	Accepted bool   `json:"accepted"`
	Highest  uint64 `json:"highest"` // the highest token accepted for the lock, after this write
}

// Resource is the storage a lock protects, reduced to its fencing check:
// an HTTP server on 127.0.0.1 that accepts a write iff its token is at
// least the highest it has accepted for that lock, and records every
// accepted and rejected write as an Event stamped with its own clock.
//
//	POST /write  {"process":…,"lock":…,"lease":…,"token":…}
//	→ 200 {"accepted":true,"highest":…} or 409 {"accepted":false,"highest":…}
type Resource struct {
	srv  *http.Server
	addr string
	done chan struct{} // Serve returned

	mu      sync.Mutex
	highest map[string]uint64
	events  []Event
}

// StartResource listens on a free 127.0.0.1 port and serves until Close.
func StartResource() (*Resource, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("history: resource: %w", err)
	}
	r := &Resource{addr: ln.Addr().String(), done: make(chan struct{}), highest: map[string]uint64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /write", r.serveWrite)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(ln) // ErrServerClosed after Close
	}()
	return r, nil
}

// URL is the base URL holders post to (WriteTo appends /write).
func (r *Resource) URL() string { return "http://" + r.addr }

// Close stops the server and waits until it has stopped serving.
func (r *Resource) Close() error {
	err := r.srv.Close()
	<-r.done
	return err
}

// Events returns a copy of the write-accepted and write-rejected events so
// far, in the order the resource decided them.
func (r *Resource) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func (r *Resource) serveWrite(w http.ResponseWriter, req *http.Request) {
	var in Write
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<16)).Decode(&in); err != nil || in.Lock == "" || in.Lease == "" {
		http.Error(w, "history: bad write", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	e := Event{Process: in.Process, Lock: in.Lock, Lease: in.Lease, Token: in.Token, Kind: WriteRejected}
	if in.Token >= r.highest[in.Lock] {
		r.highest[in.Lock] = in.Token
		e.Kind = WriteAccepted
	}
	e.Time = time.Now().UnixNano() // decided under the lock: event order is decision order
	r.events = append(r.events, e)
	reply := writeReply{Accepted: e.Kind == WriteAccepted, Highest: r.highest[in.Lock]}
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !reply.Accepted {
		w.WriteHeader(http.StatusConflict)
	}
	_ = json.NewEncoder(w).Encode(reply)
}

// WriteTo posts wr to the resource at baseURL and reports whether it was
// accepted. A rejected write is not an error.
func WriteTo(ctx context.Context, c *http.Client, baseURL string, wr Write) (bool, error) {
	body, err := json.Marshal(wr)
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/write", bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return false, fmt.Errorf("history: write: %w", err)
	}
	defer resp.Body.Close()
	var reply writeReply
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
		return false, fmt.Errorf("history: write: %s: %w", resp.Status, err)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusConflict:
		return reply.Accepted, nil
	}
	return false, errors.New("history: write: " + resp.Status)
}
