package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/baton-go/baton/backends"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

// remoteConfig is the remoting configuration of a node.
//
// Two protections against peers are wired into the gRPC server:
//
//   - protoactor's receiver resolves every message's type name in the
//     protobuf registry and dereferences the result without checking it
//     (remote/proto_serializer.go, Deserialize): one message of a type this
//     binary does not link panics the connection's goroutine and kills the
//     whole process. guardedStream inspects every batch before protoactor
//     sees it and rewrites such a message into a baton.status.v1.Status with
//     CODE_INVALID_ARGUMENT: sent back to the sender when there is one (a
//     request gets an error answer), else delivered to the target in its
//     place (a reply of an unknown type becomes an error reply). Envelopes
//     that point outside their batch are dropped.
//   - the unimplemented diagnostic RPCs of protoactor's endpoint reader
//     panic when called; every handler runs under recover.
//
// Keep-alives on both ends make a silently vanished peer (no RST) end its
// connection within about 10s, which protoactor reports as Terminated to
// everyone watching actors on that peer — lock grains rely on that to free
// the locks of dead holders.
func remoteConfig(host string, port int, advertise string, log *slog.Logger, gate *streamGate) *remote.Config {
	kp := keepalive.ClientParameters{Time: 5 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}
	cfg := remote.Configure(host, port,
		remote.WithAdvertisedHost(advertise),
		remote.WithServerOptions(
			grpc.ChainStreamInterceptor(guardStream(log, gate)),
			grpc.ChainUnaryInterceptor(guardUnary(log)),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
			grpc.KeepaliveParams(keepalive.ServerParameters{Time: 5 * time.Second, Timeout: 5 * time.Second}),
			grpc.MaxRecvMsgSize(maxBatchBytes),
		),
		remote.WithDialOptions(
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithKeepaliveParams(kp),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(maxBatchBytes)),
		),
	)
	// protoactor retries a failed connection MaxRetryCount times, sleeping
	// 2s after each attempt inside the endpoint writer; messages to a dead
	// peer wait for all of it before they are dead-lettered. One attempt
	// keeps that to about 2s; the next message tries again anyway.
	cfg.MaxRetryCount = 1
	// protoactor pre-allocates each peer's outgoing queue at
	// EndpointWriterQueueSize slots, 1,000,000 by default: 16 MB per peer,
	// before a single message. The queue grows by doubling when full, so a
	// small start costs nothing but the first few resizes of a burst.
	cfg.EndpointWriterQueueSize = endpointQueueStart
	return cfg
}

// endpointQueueStart is the initial size of the queue of messages to one
// peer (see remoteConfig).
const endpointQueueStart = 4096

// maxBatchBytes bounds one batch of remote messages. protoactor batches up
// to 1000 messages per write, and a value may be 1 MiB by default (64 MiB at
// most): gRPC's 4 MiB default would break the connection on a burst of
// large values.
const maxBatchBytes = 512 << 20

func guardUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.Warn("baton: remote call panicked", "method", info.FullMethod, "panic", fmt.Sprint(r))
				resp, err = nil, status.Errorf(codes.Unimplemented, "%s: not available", info.FullMethod)
			}
		}()
		return handler(ctx, req)
	}
}

func guardStream(log *slog.Logger, gate *streamGate) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		gs := &guardedStream{ServerStream: ss, log: log, gate: gate}
		defer func() {
			gs.release()
			if r := recover(); r != nil {
				log.Warn("baton: remote stream panicked", "method", info.FullMethod, "panic", fmt.Sprint(r))
				err = status.Errorf(codes.Internal, "remote stream failed")
			}
		}()
		return handler(srv, gs)
	}
}

// streamGate stops the handling of incoming messages when the node shuts
// down. A connection holds the gate (read lock) from the moment it has a
// message until it asks for the next; close takes the write lock, so every
// message being handled is done with, and afterwards a connection drops
// what it receives and waits for its stream to end (protoactor's reader
// must not end on its own while the endpoint manager is being stopped).
type streamGate struct {
	mu      sync.RWMutex
	closing bool
}

func (g *streamGate) close() {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
}

// guardedStream checks every batch protoactor reads from a peer.
type guardedStream struct {
	grpc.ServerStream
	log  *slog.Logger
	gate *streamGate
	held bool // the gate's read lock, held while protoactor handles a message
}

func (s *guardedStream) release() {
	if s.held {
		s.held = false
		s.gate.mu.RUnlock()
	}
}

// RecvMsg implements grpc.ServerStream. protoactor calls it from one
// goroutine per connection.
func (s *guardedStream) RecvMsg(m any) error {
	s.release()
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	s.gate.mu.RLock()
	if s.gate.closing {
		s.gate.mu.RUnlock()
		// Shutting down: the message is dropped, and protoactor's
		// reader must neither see it nor end on its own (its shutdown
		// then signals a closed channel); it ends with the stream.
		<-s.Context().Done()
		return s.Context().Err()
	}
	s.held = true
	if rm, ok := m.(*remote.RemoteMessage); ok {
		if b := rm.GetMessageBatch(); b != nil {
			sanitizeBatch(b, s.log)
		}
	}
	return nil
}

var statusTypeName = string(proto.MessageName(&statusv1.Status{}))

// knownTypes caches type-name lookups (the registry is fixed once the
// program runs).
var knownTypes sync.Map // string → bool

func knownType(name string) bool {
	if v, ok := knownTypes.Load(name); ok {
		return v.(bool)
	}
	_, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
	known := err == nil
	knownTypes.Store(name, known)
	return known
}

// protoSerializerID is protoactor's protobuf serializer, the only one its
// senders use; the JSON serializer (1) copes with unknown types itself.
const (
	protoSerializerID = 0
	jsonSerializerID  = 1
)

// sanitizeBatch rewrites, in place, every envelope protoactor could not
// deliver without crashing (see remoteConfig).
func sanitizeBatch(b *remote.MessageBatch, log *slog.Logger) {
	statusType := int32(-1)
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		if e == nil || e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames) ||
			e.Target < 0 || int(e.Target) >= len(b.Targets) || b.Targets[e.Target] == nil ||
			e.Sender < 0 || int(e.Sender) > len(b.Senders) || (e.Sender > 0 && b.Senders[e.Sender-1] == nil) {
			log.Warn("baton: dropped a malformed remote envelope")
			continue
		}
		name := b.TypeNames[e.TypeId]
		switch {
		case e.SerializerId == jsonSerializerID:
		case e.SerializerId == protoSerializerID && knownType(name):
		default:
			if statusType < 0 {
				b.TypeNames = append(b.TypeNames, statusTypeName)
				statusType = int32(len(b.TypeNames) - 1)
			}
			rejectEnvelope(b, e, name, statusType, log)
		}
		kept = append(kept, e)
	}
	b.Envelopes = kept
}

// rejectEnvelope turns e into an INVALID_ARGUMENT status: addressed back to
// its sender when it has one, else to its target instead of the message.
func rejectEnvelope(b *remote.MessageBatch, e *remote.MessageEnvelope, name string, statusType int32, log *slog.Logger) {
	target := b.Targets[e.Target]
	st := statusv1.FromError(backends.Invalid("message", name,
		fmt.Sprintf("message type not known on the node of %s", target.GetId())))
	data, err := proto.Marshal(st)
	if err != nil { // cannot happen for a Status; keep the envelope harmless
		data = nil
	}
	log.Debug("baton: rejected a remote message of an unknown type", "type", name, "target", target.GetId())
	if e.Sender > 0 {
		b.Targets = append(b.Targets, b.Senders[e.Sender-1])
		e.Target = int32(len(b.Targets) - 1)
		e.TargetRequestId = e.SenderRequestId
		e.Sender, e.SenderRequestId = 0, 0
	}
	e.TypeId, e.SerializerId, e.MessageData, e.MessageHeader = statusType, protoSerializerID, data, nil
}

// pidOf builds a PID on a member.
func pidOf(address, id string) *actor.PID { return actor.NewPID(address, id) }
