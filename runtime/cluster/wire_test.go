package cluster

import (
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/baton-go/baton/backends"
	cachev1 "github.com/baton-go/baton/messages/cache/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

func batch(typeName string, sender bool) *remote.MessageBatch {
	data, _ := proto.Marshal(&cachev1.GetRequest{Name: "c", Key: "k"})
	b := &remote.MessageBatch{
		TypeNames: []string{typeName},
		Targets:   []*actor.PID{actor.NewPID("127.0.0.1:1", "baton-cache")},
		Envelopes: []*remote.MessageEnvelope{{TypeId: 0, MessageData: data, Target: 0}},
	}
	if sender {
		b.Senders = []*actor.PID{actor.NewPID("127.0.0.1:2", "reply1")}
		b.Envelopes[0].Sender = 1
		b.Envelopes[0].SenderRequestId = 7
	}
	return b
}

func statusIn(t *testing.T, b *remote.MessageBatch, e *remote.MessageEnvelope) *statusv1.Status {
	t.Helper()
	require.Equal(t, statusTypeName, b.TypeNames[e.TypeId])
	var st statusv1.Status
	require.NoError(t, proto.Unmarshal(e.MessageData, &st))
	return &st
}

func TestSanitizeBatch(t *testing.T) {
	log := slog.New(slog.DiscardHandler)

	t.Run("known type untouched", func(t *testing.T) {
		b := batch("baton.cache.v1.GetRequest", true)
		want := proto.Clone(b)
		sanitizeBatch(b, log)
		assert.True(t, proto.Equal(want, b))
	})

	t.Run("unknown request answered to its sender", func(t *testing.T) {
		b := batch("acme.secret.v9.Thing", true)
		sanitizeBatch(b, log)
		require.Len(t, b.Envelopes, 1)
		e := b.Envelopes[0]
		st := statusIn(t, b, e)
		assert.Equal(t, statusv1.Code_CODE_INVALID_ARGUMENT, st.GetCode())
		assert.Contains(t, st.GetMessage(), "acme.secret.v9.Thing")
		assert.Equal(t, "reply1", b.Targets[e.Target].GetId(), "bounced to the sender")
		assert.Equal(t, uint32(7), e.TargetRequestId)
		assert.Zero(t, e.Sender, "the answer has no sender")
	})

	t.Run("unknown one-way message replaced in place", func(t *testing.T) {
		b := batch("acme.secret.v9.Thing", false)
		sanitizeBatch(b, log)
		require.Len(t, b.Envelopes, 1)
		e := b.Envelopes[0]
		assert.Equal(t, statusv1.Code_CODE_INVALID_ARGUMENT, statusIn(t, b, e).GetCode())
		assert.Equal(t, "baton-cache", b.Targets[e.Target].GetId())
	})

	t.Run("unknown serializer", func(t *testing.T) {
		b := batch("baton.cache.v1.GetRequest", true)
		b.Envelopes[0].SerializerId = 9
		sanitizeBatch(b, log)
		assert.Equal(t, statusv1.Code_CODE_INVALID_ARGUMENT, statusIn(t, b, b.Envelopes[0]).GetCode())
	})

	t.Run("malformed envelopes dropped", func(t *testing.T) {
		for name, broken := range map[string]func(*remote.MessageEnvelope){
			"type id":   func(e *remote.MessageEnvelope) { e.TypeId = 5 },
			"target":    func(e *remote.MessageEnvelope) { e.Target = -1 },
			"sender":    func(e *remote.MessageEnvelope) { e.Sender = 3 },
			"no target": nil,
		} {
			t.Run(name, func(t *testing.T) {
				b := batch("baton.cache.v1.GetRequest", true)
				if broken != nil {
					broken(b.Envelopes[0])
				} else {
					b.Targets[0] = nil
				}
				ok := &remote.MessageEnvelope{TypeId: 0, Target: 0}
				if broken == nil {
					b.Targets = append(b.Targets, actor.NewPID("127.0.0.1:1", "x"))
					ok.Target = 1
				}
				b.Envelopes = append(b.Envelopes, ok)
				sanitizeBatch(b, log)
				assert.Equal(t, []*remote.MessageEnvelope{ok}, b.Envelopes)
			})
		}
	})
}

func TestIdentities(t *testing.T) {
	ns := backendsNS("prod")
	id, err := parseIdentity(lockIdentity(ns, "job"), 0)
	require.NoError(t, err)
	assert.Equal(t, "job", id.name)
	assert.Equal(t, "prod", id.ns.Env)

	id, err = parseIdentity(configIdentity(configOpts(ns, "app", 16, 3)), 2)
	require.NoError(t, err)
	assert.Equal(t, []int{16, 3}, id.numbers)

	for _, bad := range []string{"", "baton/prod", "baton/prod/a/b", "baton/PROD!/job", "baton/prod/job/x"} {
		_, err := parseIdentity(bad, 0)
		assert.Error(t, err, "identity %q", bad)
	}
	_, err = parseIdentity("baton/prod/c/-1", 1)
	assert.Error(t, err)
}

func backendsNS(env string) backends.Namespace { return backends.Namespace{Env: env} }

func configOpts(ns backends.Namespace, name string, max, history int) backends.ConfigOptions {
	return backends.ConfigOptions{Namespace: ns, Name: name, MaxValueSize: max, HistoryLimit: history}
}
