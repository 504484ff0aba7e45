// Command clusternode runs one Baton cluster node (runtime/cluster) as its
// own OS process, so that the integration tests can run several nodes and
// kill one with SIGKILL. The tests build and drive it
// (integration/cluster_*_test.go); it is not meant to be run by hand,
// although it can be:
//
//	go run ./integration/cmd/clusternode -redis redis://127.0.0.1:6379/0 -node-id a
//
// It prints lines on stdout:
//
//	ready <address>                  the node joined the cluster
//	etcd <endpoints>                 with -embedded: where its etcd serves
//	members <n> <address,…>          the member list changed
//	registration <lost|restored>     its own registration was lost/restored
//
// and reads commands on stdin, one per line, answering each with lines that
// carry the command's id:
//
//	acquire <id> <lock> <ttl> [autorenew]  → acquired <id> <token> | error <id> <text>
//	release <id>                           → released <id> | error <id> <text>
//	write <id> <resource-url>              → written <id> <accepted|rejected> | error <id> <text>
//	contend <id> <lock> <contenders> <rounds> <ttl> <redis-url> <key>
//	    → grant <id> <node> <contender> <round> <token> <sent-ns> <granted-ns> (one per grant)
//	    → done <id> <errors> <overlaps> <token-regressions>
//	lockloop <id> <lock> <duration> <ttl> <resource-url> [autorenew]
//	    → hist <id> <event JSON> (one per history.Event, see integration/history)
//	    → done <id> <grants> <acquire-errors> <accepted> <rejected> <skipped> <write-errors> <release-errors>
//	getorload <id> <cache> <key> <callers> <loader-time> <redis-url> <counter-key>
//	    → done <id> <errors> <value>
//	unknown <id> <address> <actor>         → status <id> <code> <text>
//	unknownsend <id> <address> <actor>     → sent <id> (no answer expected)
//	probe <id> <address>                   → probe <id> <actor> <type> <answer type> <code> <text> (many)
//	                                         → done <id>
//	ping <id>                              → pong <id>
//	stop                                   → stopped (then exit 0)
//
// End of input, SIGTERM and SIGINT stop the node too.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/baton-go/baton/actors"
	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/backends/etcd"
	"github.com/baton-go/baton/backends/redis"
	"github.com/baton-go/baton/integration/internal/history"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
	"github.com/baton-go/baton/runtime"
	"github.com/baton-go/baton/runtime/cluster"
	"github.com/baton-go/baton/runtime/embedded"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "clusternode: %v\n", err)
		os.Exit(1)
	}
}

// out serialises stdout lines.
type out struct{ mu sync.Mutex }

func (o *out) printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Printf(format+"\n", args...)
}

func run() error {
	var (
		name      = flag.String("name", "baton-test", "cluster name")
		bind      = flag.String("bind", "127.0.0.1:0", "remoting address")
		nodeID    = flag.String("node-id", "", "node id")
		env       = flag.String("env", "test", "environment")
		redisURL  = flag.String("redis", "", "Redis URL (member on Redis)")
		etcdEPs   = flag.String("etcd", "", "comma-separated etcd endpoints (member on etcd)")
		useEmbed  = flag.Bool("embedded", false, "member on an embedded etcd of its own")
		seeds     = flag.String("seeds", "", "comma-separated member addresses (client-only node)")
		memberTTL = flag.Duration("member-ttl", 2*time.Second, "registration TTL")
		lockTTL   = flag.Duration("lock-ttl", 0, "default lock TTL")
		suspect   = flag.Duration("suspect-after", 0, "cluster.Spec.SuspectAfter (0: default)")
		verbose   = flag.Bool("v", false, "log to stderr")
	)
	flag.Parse()

	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := cluster.Spec{Name: *name, Bind: *bind, MemberTTL: *memberTTL, Env: *env, NodeID: *nodeID, SuspectAfter: *suspect}
	var opts []cluster.Option
	opts = append(opts, cluster.WithLogger(logger))
	o := &out{}
	switch {
	case *seeds != "":
		cfg.Seeds = strings.Split(*seeds, ",")
	default:
		sc := runtime.Spec{NodeID: *nodeID, Env: *env}
		sc.Components.LockTTL = *lockTTL
		switch {
		case *redisURL != "":
			sc.Redis = &redis.Config{URL: *redisURL}
		case *etcdEPs != "":
			sc.Etcd = &etcd.Config{Endpoints: strings.Split(*etcdEPs, ",")}
		case *useEmbed:
			opts = append(opts, cluster.WithRuntimeOptions(embedded.Option()))
		default:
			return errors.New("one of -redis, -etcd, -embedded or -seeds is required")
		}
		cfg.Node = &sc
		opts = append(opts, cluster.WithRegistrationHook(func(ev backends.RegistrationEvent) {
			state := "restored"
			if ev.State == backends.RegistrationLost {
				state = "lost"
			}
			o.printf("registration %s", state)
		}))
	}
	n, err := cluster.New(cfg, opts...)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = n.Start(startCtx)
	cancel()
	if err != nil {
		return err
	}
	if *useEmbed {
		o.printf("etcd %s", strings.Join(n.Runtime().Spec().Etcd.Endpoints, ","))
	}
	o.printf("ready %s", n.Address())

	life, stopLife := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { reportMembers(life, n, o) })

	cmds := make(chan string)
	go func() { // ends with stdin; not waited for (stdin may never close)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
		close(cmds)
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	d := &driver{n: n, o: o, held: map[string]backends.Lease{}}
loop:
	for {
		select {
		case line, ok := <-cmds:
			if !ok || line == "stop" {
				break loop
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			wg.Go(func() { d.exec(life, f) })
		case <-sigs:
			break loop
		}
	}
	stopLife()
	wg.Wait()
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Stop(stopCtx); err != nil {
		return err
	}
	// A deferred Stop after an explicit one must be harmless.
	if err := n.Stop(stopCtx); err != nil {
		return fmt.Errorf("second stop: %w", err)
	}
	o.printf("stopped")
	return nil
}

func reportMembers(ctx context.Context, n *cluster.Node, o *out) {
	last := ""
	for {
		ch := n.MembersChanged()
		var addrs []string
		for _, m := range n.Members() {
			addrs = append(addrs, m.Address)
		}
		slices.Sort(addrs)
		line := fmt.Sprintf("members %d %s", len(addrs), strings.Join(addrs, ","))
		if line != last {
			o.printf("%s", line)
			last = line
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// driver runs the commands.
type driver struct {
	n    *cluster.Node
	o    *out
	mu   sync.Mutex
	held map[string]backends.Lease
}

func (d *driver) exec(ctx context.Context, f []string) {
	id := ""
	if len(f) > 1 {
		id = f[1]
	}
	var err error
	switch f[0] {
	case "ping":
		d.o.printf("pong %s", id)
	case "acquire":
		err = d.acquire(ctx, f)
	case "release":
		err = d.release(ctx, id)
	case "write":
		err = d.write(ctx, f)
	case "contend":
		err = d.contend(ctx, f)
	case "lockloop":
		err = d.lockLoop(ctx, f)
	case "getorload":
		err = d.getOrLoad(ctx, f)
	case "unknown":
		err = d.unknown(ctx, f)
	case "unknownsend":
		err = d.unknownSend(f)
	case "probe":
		err = d.probe(ctx, f)
	default:
		err = fmt.Errorf("unknown command %q", f[0])
	}
	if err != nil {
		d.o.printf("error %s %s", id, strings.ReplaceAll(err.Error(), "\n", " "))
	}
}

func args(f []string, n int) error {
	if len(f) < n {
		return fmt.Errorf("%s: want %d arguments", f[0], n-1)
	}
	return nil
}

func (d *driver) acquire(ctx context.Context, f []string) error {
	if err := args(f, 4); err != nil {
		return err
	}
	ttl, err := time.ParseDuration(f[3])
	if err != nil {
		return err
	}
	lease, err := d.n.Locks().Acquire(ctx, f[2], backends.LockOptions{TTL: ttl, AutoRenew: len(f) > 4 && f[4] == "autorenew"})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.held[f[1]] = lease
	d.mu.Unlock()
	d.o.printf("acquired %s %d", f[1], lease.Token())
	return nil
}

func (d *driver) release(ctx context.Context, id string) error {
	d.mu.Lock()
	lease := d.held[id]
	delete(d.held, id)
	d.mu.Unlock()
	if lease == nil {
		return fmt.Errorf("no lease %q", id)
	}
	if err := lease.Release(ctx); err != nil {
		return err
	}
	d.o.printf("released %s", id)
	return nil
}

// write posts the token of lease id (taken with acquire) to a fenced
// resource (integration/internal/history) without looking at the lease's
// deadline or Done: what a holder does that was paused between checking
// its lease and writing. The resource, not the holder, must fence it off.
func (d *driver) write(ctx context.Context, f []string) error {
	if err := args(f, 3); err != nil {
		return err
	}
	d.mu.Lock()
	lease := d.held[f[1]]
	d.mu.Unlock()
	if lease == nil {
		return fmt.Errorf("no lease %q", f[1])
	}
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ok, err := history.WriteTo(wctx, &http.Client{Transport: tr}, f[2],
		history.Write{Process: d.label(), Lock: lease.Name(), Lease: f[1], Token: lease.Token()})
	if err != nil {
		return err
	}
	verdict := "rejected"
	if ok {
		verdict = "accepted"
	}
	d.o.printf("written %s %s", f[1], verdict)
	return nil
}

func redisClient(url string) (*goredis.Client, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	return goredis.NewClient(opt), nil
}

// contend runs contenders that each take the lock rounds times and, inside
// it, update shared state in Redis non-atomically (read, then write): an
// overlap of two holders loses an increment or sees a token go backwards.
func (d *driver) contend(ctx context.Context, f []string) error {
	if err := args(f, 8); err != nil {
		return err
	}
	id, lock := f[1], f[2]
	contenders, err1 := strconv.Atoi(f[3])
	rounds, err2 := strconv.Atoi(f[4])
	ttl, err3 := time.ParseDuration(f[5])
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	rc, err := redisClient(f[6])
	if err != nil {
		return err
	}
	defer rc.Close()
	key := f[7]
	label := d.label()
	var errs, overlaps, regressions atomic.Int64
	var wg sync.WaitGroup
	for c := range contenders {
		wg.Go(func() {
			for r := range rounds {
				sent := time.Now()
				lease, err := d.n.Locks().Acquire(ctx, lock, backends.LockOptions{TTL: ttl})
				granted := time.Now()
				if err != nil {
					errs.Add(1)
					d.o.printf("error %s acquire: %v", id, err)
					return
				}
				if n, _ := rc.Incr(ctx, key+":inside").Result(); n != 1 {
					overlaps.Add(1)
				}
				last, _ := rc.Get(ctx, key+":token").Uint64()
				if lease.Token() <= last {
					regressions.Add(1)
				}
				v, _ := rc.Get(ctx, key).Int64()
				rc.Set(ctx, key+":token", lease.Token(), 0)
				rc.Set(ctx, key, v+1, 0)
				rc.Decr(ctx, key+":inside")
				d.o.printf("grant %s %s %d %d %d %d %d", id, label, c, r, lease.Token(), sent.UnixNano(), granted.UnixNano())
				if err := lease.Release(ctx); err != nil {
					errs.Add(1)
					d.o.printf("error %s release: %v", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	d.o.printf("done %s %d %d %d", id, errs.Load(), overlaps.Load(), regressions.Load())
	return nil
}

// label names this node in results: its node id ("client" for a
// client-only node).
func (d *driver) label() string {
	if node := d.n.Runtime(); node != nil {
		return node.Spec().NodeID
	}
	return "client"
}

// lockLoop takes one lock again and again until duration has passed, as a
// careful holder would, and prints every step as a history event: Acquire
// (invoked, then granted or failed), a fenced write to the resource, a
// critical section of 150–500 ms, a second write only while the lease is
// still usable (Done not closed and, without auto-renewal, before
// acquire-invoked + TTL), then Release (invoked, returned). A goroutine per
// lease prints the moment its Done closes.
func (d *driver) lockLoop(ctx context.Context, f []string) error {
	if err := args(f, 6); err != nil {
		return err
	}
	id, lock, resource := f[1], f[2], f[5]
	duration, err1 := time.ParseDuration(f[3])
	ttl, err2 := time.ParseDuration(f[4])
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	renew := len(f) > 6 && f[6] == "autorenew"
	proc := d.label()
	end := time.Now().Add(duration)
	loopCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}

	emit := func(e history.Event) {
		e.Process, e.Lock = proc, lock
		if e.Time == 0 {
			e.Time = time.Now().UnixNano()
		}
		d.o.printf("hist %s %s", id, e)
	}
	var grants, acquireErrs, accepted, rejected, skipped, writeErrs, releaseErrs atomic.Int64
	watchers := make(chan struct{}) // closed at the end: Done watchers stop
	var wg sync.WaitGroup
	for n := 1; ctx.Err() == nil && time.Now().Before(end); n++ {
		leaseID := fmt.Sprintf("%s/%d", proc, n)
		invoked := time.Now()
		emit(history.Event{Lease: leaseID, Kind: history.AcquireInvoked, Time: invoked.UnixNano(), TTL: ttl, Renew: renew})
		lease, err := d.n.Locks().Acquire(loopCtx, lock, backends.LockOptions{TTL: ttl, AutoRenew: renew})
		if err != nil {
			emit(history.Event{Lease: leaseID, Kind: history.AcquireFailed, Err: err.Error()})
			acquireErrs.Add(1)
			sleepCtx(loopCtx, 100*time.Millisecond)
			continue
		}
		granted := history.Event{Lease: leaseID, Kind: history.Granted, Token: lease.Token(), TTL: lease.TTL()}
		emit(granted)
		grants.Add(1)
		wg.Go(func() {
			select {
			case <-lease.Done():
				emit(history.Event{Lease: leaseID, Kind: history.Done})
			case <-watchers:
			}
		})
		usable := func() bool {
			select {
			case <-lease.Done():
				return false
			default:
			}
			return renew || time.Now().Before(invoked.Add(ttl))
		}
		write := func() {
			if !usable() {
				skipped.Add(1)
				return
			}
			emit(history.Event{Lease: leaseID, Kind: history.WriteInvoked, Token: lease.Token()})
			ok, err := history.WriteTo(ctx, hc, resource, history.Write{Process: proc, Lock: lock, Lease: leaseID, Token: lease.Token()})
			switch {
			case err != nil:
				writeErrs.Add(1)
			case ok:
				accepted.Add(1)
			default:
				rejected.Add(1)
			}
		}
		write()
		sleepCtx(ctx, 150*time.Millisecond+rand.N(350*time.Millisecond)) // the critical section
		write()
		emit(history.Event{Lease: leaseID, Kind: history.ReleaseInvoked})
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = lease.Release(rctx)
		rcancel()
		ret := history.Event{Lease: leaseID, Kind: history.ReleaseReturned}
		if err != nil {
			ret.Err = err.Error()
			releaseErrs.Add(1)
		}
		emit(ret)
	}
	close(watchers)
	wg.Wait()
	d.o.printf("done %s %d %d %d %d %d %d %d", id, grants.Load(), acquireErrs.Load(), accepted.Load(), rejected.Load(),
		skipped.Load(), writeErrs.Load(), releaseErrs.Load())
	return nil
}

// getOrLoad runs callers concurrent GetOrLoad calls of one key; the loader
// counts its runs in Redis and takes loader-time (standing for real work,
// so that calls from every node overlap).
func (d *driver) getOrLoad(ctx context.Context, f []string) error {
	if err := args(f, 8); err != nil {
		return err
	}
	id, cacheName, key := f[1], f[2], f[3]
	callers, err1 := strconv.Atoi(f[4])
	work, err2 := time.ParseDuration(f[5])
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	rc, err := redisClient(f[6])
	if err != nil {
		return err
	}
	defer rc.Close()
	counter := f[7]
	cache := d.n.Cache(cacheName)
	var errs atomic.Int64
	var value atomic.Value
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			v, err := cache.GetOrLoad(ctx, key, backends.LoadOptions{TTL: time.Minute}, func(ctx context.Context) ([]byte, error) {
				if err := rc.Incr(ctx, counter).Err(); err != nil {
					return nil, err
				}
				t := time.NewTimer(work)
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				return []byte("loaded-by-" + d.n.Address()), nil
			})
			if err != nil {
				errs.Add(1)
				d.o.printf("error %s getorload: %v", id, err)
				return
			}
			value.Store(string(v))
		})
	}
	wg.Wait()
	v, _ := value.Load().(string)
	d.o.printf("done %s %d %s", id, errs.Load(), v)
	return nil
}

// unknown sends a request of a protobuf type no Baton binary links (built
// at run time) to actor at address and reports the answer's status.
func (d *driver) unknown(ctx context.Context, f []string) error {
	if err := args(f, 4); err != nil {
		return err
	}
	msg, err := unknownMessage()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pid := actorPID(f[2], f[3])
	_, err = actors.Request[*statusv1.Status](rctx, d.n.ActorSystem().Root, pid, msg)
	st := statusv1.FromError(err)
	d.o.printf("status %s %s %s", f[1], st.GetCode(), strings.ReplaceAll(st.GetMessage(), "\n", " "))
	return nil
}

// probeActors are the runtime's component actors on every member.
var probeActors = []string{"baton-cache", "baton-lock", "baton-election", "baton-discovery", "baton-config", "baton-connectors"}

// probe sends every Baton message type, empty, as a request to every
// component actor at address, and reports each answer: run against a
// node's own address and another node's, the answers must be the same.
func (d *driver) probe(ctx context.Context, f []string) error {
	if err := args(f, 3); err != nil {
		return err
	}
	var types []protoreflect.MessageType
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		if strings.HasPrefix(string(mt.Descriptor().FullName()), "baton.") {
			types = append(types, mt)
		}
		return true
	})
	var wg sync.WaitGroup
	for _, name := range probeActors {
		for _, mt := range types {
			wg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				resp, err := actors.Request[proto.Message](rctx, d.n.ActorSystem().Root, actorPID(f[2], name), mt.New().Interface())
				st := statusv1.FromError(err)
				d.o.printf("probe %s %s %s %T %s %s", f[1], name, mt.Descriptor().FullName(), resp, st.GetCode(),
					strings.ReplaceAll(st.GetMessage(), "\n", " "))
			})
		}
	}
	wg.Wait()
	d.o.printf("done %s", f[1])
	return nil
}

// unknownSend sends such a message without a sender (no answer).
func (d *driver) unknownSend(f []string) error {
	if err := args(f, 4); err != nil {
		return err
	}
	msg, err := unknownMessage()
	if err != nil {
		return err
	}
	d.n.ActorSystem().Root.Send(actorPID(f[2], f[3]), msg)
	d.o.printf("sent %s", f[1])
	return nil
}

func unknownMessage() (*dynamicpb.Message, error) {
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:    ptr("baton_test_unknown.proto"),
		Package: ptr("baton.test.unknown"),
		Syntax:  ptr("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: ptr("Mystery"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name: ptr("text"), Number: ptr(int32(1)), JsonName: ptr("text"),
				Type:  descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
				Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			}},
		}},
	}, nil)
	if err != nil {
		return nil, err
	}
	m := dynamicpb.NewMessage(fd.Messages().Get(0))
	m.Set(fd.Messages().Get(0).Fields().Get(0), protoreflectString("who am i?"))
	return m, nil
}

func ptr[T any](v T) *T { return &v }

func protoreflectString(s string) protoreflect.Value { return protoreflect.ValueOfString(s) }

func actorPID(address, id string) *actor.PID { return actor.NewPID(address, id) }

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
