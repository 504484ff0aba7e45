package protoconv_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/baton-go/baton/backends"
	"github.com/baton-go/baton/internal/protoconv"
	configv1 "github.com/baton-go/baton/messages/config/v1"
	discoveryv1 "github.com/baton-go/baton/messages/discovery/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

// FuzzFromProto unmarshals arbitrary bytes into each message protoconv
// reads (inputs that do not unmarshal are skipped for that message) and
// converts them. Nothing panics; every field arrives; domain → proto →
// domain gives the value back; an enum maps to a known kind or to the
// zero kind; a registration cause is either no error or one that matches
// a backends sentinel, a context error or statusv1.ErrInternal. The
// fuzzed weight checks the documented clamping of ServiceInfoToProto.
func FuzzFromProto(f *testing.F) {
	seeds := []proto.Message{
		&configv1.Item{Key: "app/a", Value: "1", Version: 7},
		&discoveryv1.ServiceInfo{Id: "api-1", Name: "api", Address: "h:1", Metadata: map[string]string{"zone": "a"}, Tags: []string{"x"}, Version: "1", Weight: -3},
		&discoveryv1.ServiceEvent{Type: discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT, Revision: 9,
			Instances: []*discoveryv1.ServiceInfo{{Id: "a"}, {}}},
		&discoveryv1.ServiceEvent{Type: discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_REMOVED, Service: &discoveryv1.ServiceInfo{Id: "a", Name: "api"}},
		&discoveryv1.RegistrationEvent{ServiceId: "a", ServiceName: "api", State: discoveryv1.RegistrationState_REGISTRATION_STATE_LOST,
			Cause: &statusv1.Status{Code: statusv1.Code_CODE_UNAVAILABLE, Message: "down"}},
		&discoveryv1.RegistrationEvent{Cause: &statusv1.Status{Code: 99}},
		&configv1.GetResponse{Status: &statusv1.Status{Code: statusv1.Code_CODE_INVALID_ARGUMENT,
			InvalidArgument: &statusv1.InvalidArgument{Field: "key"}}},
	}
	for i, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, int64(i)-3)
	}
	f.Add([]byte{0xff}, int64(math.MaxInt32)+1)
	f.Add([]byte{}, int64(math.MinInt32)-1)

	f.Fuzz(func(t *testing.T, data []byte, n int64) {
		if m := new(configv1.Item); proto.Unmarshal(data, m) == nil {
			it := protoconv.ConfigItemFromProto(m)
			if it.Key != m.GetKey() || it.Value != m.GetValue() || it.Version != m.GetVersion() {
				t.Fatalf("ConfigItemFromProto(%v) = %+v", m, it)
			}
			if back := protoconv.ConfigItemFromProto(protoconv.ConfigItemToProto(it)); back != it {
				t.Fatalf("config item %+v comes back as %+v", it, back)
			}
		}
		if m := new(discoveryv1.ServiceInfo); proto.Unmarshal(data, m) == nil {
			checkServiceInfo(t, m)
		}
		if m := new(discoveryv1.ServiceEvent); proto.Unmarshal(data, m) == nil {
			checkServiceEvent(t, m)
		}
		if m := new(discoveryv1.RegistrationEvent); proto.Unmarshal(data, m) == nil {
			ev := protoconv.RegistrationEventFromProto(m)
			if ev.ServiceID != m.GetServiceId() || ev.ServiceName != m.GetServiceName() {
				t.Fatalf("RegistrationEventFromProto(%v) = %+v", m, ev)
			}
			switch m.GetState() {
			case discoveryv1.RegistrationState_REGISTRATION_STATE_LOST:
				if ev.State != backends.RegistrationLost {
					t.Fatalf("state %v became %v", m.GetState(), ev.State)
				}
			case discoveryv1.RegistrationState_REGISTRATION_STATE_RESTORED:
				if ev.State != backends.RegistrationRestored {
					t.Fatalf("state %v became %v", m.GetState(), ev.State)
				}
			default:
				if ev.State != 0 {
					t.Fatalf("unknown state %v became %v", m.GetState(), ev.State)
				}
			}
			wantErr := m.GetCause() != nil && m.GetCause().GetCode() != statusv1.Code_CODE_OK
			if (ev.Err != nil) != wantErr {
				t.Fatalf("cause %v gave error %v", m.GetCause(), ev.Err)
			}
			checkTyped(t, ev.Err)
		}
		if m := new(configv1.GetResponse); proto.Unmarshal(data, m) == nil {
			st, ok := protoconv.StatusOf(m)
			if !ok || st != m.GetStatus() {
				t.Fatalf("StatusOf(%v) = %v, %v", m, st, ok)
			}
			checkTyped(t, st.Err())
			if protoconv.MessageName(m) != "baton.config.v1.GetResponse" {
				t.Fatalf("MessageName = %q", protoconv.MessageName(m))
			}
		}

		checkEnums(t, int32(n))
		// A domain weight beyond int32 is clamped, never wrapped around.
		w := int(n)
		got := protoconv.ServiceInfoToProto(backends.ServiceInfo{Weight: w}).GetWeight()
		if want := max(min(w, math.MaxInt32), math.MinInt32); int(got) != want {
			t.Fatalf("weight %d became %d, want %d", w, got, want)
		}
	})
}

func checkServiceInfo(t *testing.T, m *discoveryv1.ServiceInfo) {
	t.Helper()
	s := protoconv.ServiceInfoFromProto(m)
	if s.ID != m.GetId() || s.Name != m.GetName() || s.Address != m.GetAddress() ||
		s.Version != m.GetVersion() || s.Weight != int(m.GetWeight()) ||
		len(s.Metadata) != len(m.GetMetadata()) || len(s.Tags) != len(m.GetTags()) {
		t.Fatalf("ServiceInfoFromProto(%v) = %+v", m, s)
	}
	p := protoconv.ServiceInfoToProto(s)
	if back := protoconv.ServiceInfoFromProto(p); !reflect.DeepEqual(back, s) {
		t.Fatalf("service info %+v comes back as %+v", s, back)
	}
	clean := proto.Clone(m)
	clean.ProtoReflect().SetUnknown(nil)
	if !proto.Equal(p, clean) {
		t.Fatalf("proto %v converts back to %v", clean, p)
	}
	if len(m.GetMetadata()) > 0 {
		// The result is a copy: changing it leaves the message alone.
		for k := range s.Metadata {
			s.Metadata[k] += "!"
			if m.GetMetadata()[k] == s.Metadata[k] {
				t.Fatalf("metadata shares storage with the message")
			}
			break
		}
	}
}

func checkServiceEvent(t *testing.T, m *discoveryv1.ServiceEvent) {
	t.Helper()
	ev := protoconv.ServiceEventFromProto(m)
	want := map[discoveryv1.ServiceEventType]backends.ServiceEventType{
		discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT: backends.ServiceSnapshot,
		discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_ADDED:    backends.ServiceAdded,
		discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_UPDATED:  backends.ServiceUpdated,
		discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_REMOVED:  backends.ServiceRemoved,
	}[m.GetType()]
	if ev.Type != want || ev.Revision != m.GetRevision() {
		t.Fatalf("ServiceEventFromProto(%v) = %+v", m, ev)
	}
	if ev.Type == backends.ServiceSnapshot {
		if ev.Instances == nil || len(ev.Instances) != len(m.GetInstances()) {
			t.Fatalf("snapshot of %d instances gave %d", len(m.GetInstances()), len(ev.Instances))
		}
		for i, s := range m.GetInstances() {
			if !reflect.DeepEqual(ev.Instances[i], protoconv.ServiceInfoFromProto(s)) {
				t.Fatalf("snapshot instance %d: %+v", i, ev.Instances[i])
			}
		}
	} else if ev.Instances != nil {
		t.Fatalf("%v event carries instances", ev.Type)
	}
	if !reflect.DeepEqual(ev.Service, protoconv.ServiceInfoFromProto(m.GetService())) {
		t.Fatalf("event service %+v from %v", ev.Service, m.GetService())
	}
}

func checkEnums(t *testing.T, n int32) {
	t.Helper()
	et := configv1.EventType(n)
	if d := protoconv.ConfigEventTypeFromProto(et); d != 0 && protoconv.ConfigEventTypeToProto(d) != et {
		t.Fatalf("event type %v → %v → %v", et, d, protoconv.ConfigEventTypeToProto(d))
	}
	dt := backends.ConfigEventType(n)
	known := dt >= backends.ConfigPut && dt <= backends.ConfigResync
	if back := protoconv.ConfigEventTypeFromProto(protoconv.ConfigEventTypeToProto(dt)); (known && back != dt) || (!known && back != 0) {
		t.Fatalf("domain event type %d comes back as %d", dt, back)
	}
	l := configv1.Layer(n)
	if name := protoconv.LayerFromProto(l); name != "" && protoconv.LayerToProto(name) != l {
		t.Fatalf("layer %v → %q → %v", l, name, protoconv.LayerToProto(name))
	} else if name == "" && l != configv1.Layer_LAYER_UNSPECIFIED && configv1.Layer_name[n] != "" {
		t.Fatalf("known layer %v has no name", l)
	}
}

// checkTyped fails unless err is nil or matches one of the errors a status
// stands for.
func checkTyped(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, target := range append([]error{statusv1.ErrInternal, context.Canceled, context.DeadlineExceeded}, backends.Sentinels...) {
		if errors.Is(err, target) {
			return
		}
	}
	t.Fatalf("error %q (%T) matches no sentinel", err, err)
}
