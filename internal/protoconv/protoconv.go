// Package protoconv converts between the protobuf messages of package
// messages and the value types of package backends, in one place, and finds
// the status of a response message.
package protoconv

import (
	"maps"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/baton-go/baton/backends"
	configv1 "github.com/baton-go/baton/messages/config/v1"
	discoveryv1 "github.com/baton-go/baton/messages/discovery/v1"
	electionv1 "github.com/baton-go/baton/messages/election/v1"
	statusv1 "github.com/baton-go/baton/messages/status/v1"
)

// ConfigItemToProto converts a backends.ConfigItem.
func ConfigItemToProto(it backends.ConfigItem) *configv1.Item {
	return &configv1.Item{Key: it.Key, Value: it.Value, Version: it.Version}
}

// ConfigItemFromProto converts a configv1.Item (nil is the zero item).
func ConfigItemFromProto(it *configv1.Item) backends.ConfigItem {
	return backends.ConfigItem{Key: it.GetKey(), Value: it.GetValue(), Version: it.GetVersion()}
}

// ConfigEventTypeToProto converts a backends.ConfigEventType.
func ConfigEventTypeToProto(t backends.ConfigEventType) configv1.EventType {
	switch t {
	case backends.ConfigPut:
		return configv1.EventType_EVENT_TYPE_PUT
	case backends.ConfigDelete:
		return configv1.EventType_EVENT_TYPE_DELETE
	case backends.ConfigResync:
		return configv1.EventType_EVENT_TYPE_RESYNC
	}
	return configv1.EventType_EVENT_TYPE_UNSPECIFIED
}

// ConfigEventTypeFromProto converts a configv1.EventType (0 for unknown).
func ConfigEventTypeFromProto(t configv1.EventType) backends.ConfigEventType {
	switch t {
	case configv1.EventType_EVENT_TYPE_PUT:
		return backends.ConfigPut
	case configv1.EventType_EVENT_TYPE_DELETE:
		return backends.ConfigDelete
	case configv1.EventType_EVENT_TYPE_RESYNC:
		return backends.ConfigResync
	}
	return 0
}

// LayerToProto converts a backends layer name (LayerSystem, …).
func LayerToProto(layer string) configv1.Layer {
	switch layer {
	case backends.LayerSystem:
		return configv1.Layer_LAYER_SYSTEM
	case backends.LayerComponent:
		return configv1.Layer_LAYER_COMPONENT
	case backends.LayerInstance:
		return configv1.Layer_LAYER_INSTANCE
	}
	return configv1.Layer_LAYER_UNSPECIFIED
}

// LayerFromProto converts a configv1.Layer to a backends layer name ("" for
// unspecified).
func LayerFromProto(l configv1.Layer) string {
	switch l {
	case configv1.Layer_LAYER_SYSTEM:
		return backends.LayerSystem
	case configv1.Layer_LAYER_COMPONENT:
		return backends.LayerComponent
	case configv1.Layer_LAYER_INSTANCE:
		return backends.LayerInstance
	}
	return ""
}

// ConfigItemsToProto converts a list of items (nil stays nil).
func ConfigItemsToProto(items []backends.ConfigItem) []*configv1.Item {
	if items == nil {
		return nil
	}
	out := make([]*configv1.Item, len(items))
	for i, it := range items {
		out[i] = ConfigItemToProto(it)
	}
	return out
}

// ServiceInfoToProto converts a backends.ServiceInfo. A weight beyond the
// int32 range is clamped; callers that care reject it first.
func ServiceInfoToProto(s backends.ServiceInfo) *discoveryv1.ServiceInfo {
	w := s.Weight
	switch {
	case w > math.MaxInt32:
		w = math.MaxInt32
	case w < math.MinInt32:
		w = math.MinInt32
	}
	return &discoveryv1.ServiceInfo{Id: s.ID, Name: s.Name, Address: s.Address, Metadata: s.Metadata,
		Tags: s.Tags, Version: s.Version, Weight: int32(w)}
}

// ServiceInfoFromProto converts a discoveryv1.ServiceInfo (nil is the zero
// value). Empty metadata and tags become nil.
func ServiceInfoFromProto(s *discoveryv1.ServiceInfo) backends.ServiceInfo {
	out := backends.ServiceInfo{ID: s.GetId(), Name: s.GetName(), Address: s.GetAddress(),
		Version: s.GetVersion(), Weight: int(s.GetWeight())}
	if len(s.GetMetadata()) > 0 {
		out.Metadata = maps.Clone(s.GetMetadata())
	}
	if len(s.GetTags()) > 0 {
		out.Tags = slices.Clone(s.GetTags())
	}
	return out
}

// ServiceEventFromProto converts a discoveryv1.ServiceEvent (type 0 when
// the event's type is unknown).
func ServiceEventFromProto(ev *discoveryv1.ServiceEvent) backends.ServiceEvent {
	out := backends.ServiceEvent{Revision: ev.GetRevision()}
	switch ev.GetType() {
	case discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_SNAPSHOT:
		out.Type = backends.ServiceSnapshot
		out.Instances = make([]backends.ServiceInfo, 0, len(ev.GetInstances()))
		for _, s := range ev.GetInstances() {
			out.Instances = append(out.Instances, ServiceInfoFromProto(s))
		}
	case discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_ADDED:
		out.Type = backends.ServiceAdded
	case discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_UPDATED:
		out.Type = backends.ServiceUpdated
	case discoveryv1.ServiceEventType_SERVICE_EVENT_TYPE_REMOVED:
		out.Type = backends.ServiceRemoved
	}
	if ev.GetService() != nil {
		out.Service = ServiceInfoFromProto(ev.GetService())
	}
	return out
}

// ServiceInfosToProto converts a list of instances (nil stays nil).
func ServiceInfosToProto(list []backends.ServiceInfo) []*discoveryv1.ServiceInfo {
	if list == nil {
		return nil
	}
	out := make([]*discoveryv1.ServiceInfo, len(list))
	for i, s := range list {
		out[i] = ServiceInfoToProto(s)
	}
	return out
}

// RegistrationEventFromProto converts a discoveryv1.RegistrationEvent.
func RegistrationEventFromProto(ev *discoveryv1.RegistrationEvent) backends.RegistrationEvent {
	out := backends.RegistrationEvent{ServiceID: ev.GetServiceId(), ServiceName: ev.GetServiceName()}
	switch ev.GetState() {
	case discoveryv1.RegistrationState_REGISTRATION_STATE_LOST:
		out.State = backends.RegistrationLost
	case discoveryv1.RegistrationState_REGISTRATION_STATE_RESTORED:
		out.State = backends.RegistrationRestored
	}
	if ev.GetCause() != nil {
		out.Err = ev.GetCause().Err()
	}
	return out
}

// ConfigItemsFromProto converts a list of items.
func ConfigItemsFromProto(items []*configv1.Item) []backends.ConfigItem {
	out := make([]backends.ConfigItem, len(items))
	for i, it := range items {
		out[i] = ConfigItemFromProto(it)
	}
	return out
}

// StatusOf finds the status of a response: the message itself when it is a
// Status, or its field named "status" of type baton.status.v1.Status.
func StatusOf(msg any) (*statusv1.Status, bool) {
	switch m := msg.(type) {
	case *statusv1.Status:
		return m, true
	case interface{ GetStatus() *statusv1.Status }:
		// Every generated response has this getter: no reflection needed.
		return m.GetStatus(), true
	}
	pm, ok := msg.(proto.Message)
	if !ok {
		return nil, false
	}
	m := pm.ProtoReflect()
	fd := m.Descriptor().Fields().ByName("status")
	if fd == nil || fd.Kind() != protoreflect.MessageKind ||
		fd.Message().FullName() != (&statusv1.Status{}).ProtoReflect().Descriptor().FullName() {
		return nil, false
	}
	if !m.Has(fd) {
		return nil, true // a response that forgot its status: Err() reports internal
	}
	s, ok := m.Get(fd).Message().Interface().(*statusv1.Status)
	return s, ok
}

// MessageName names a message for an error text: its proto name, or its
// kind for values that are not protobufs.
func MessageName(msg any) string {
	if pm, ok := msg.(proto.Message); ok && pm != nil {
		return string(pm.ProtoReflect().Descriptor().FullName())
	}
	switch msg.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	}
	return "a value that is not a protobuf message"
}

// LeaderInfoToProto converts a backends.LeaderInfo.
func LeaderInfoToProto(info backends.LeaderInfo) *electionv1.LeaderInfo {
	return &electionv1.LeaderInfo{Election: info.Election, Value: info.Value, Epoch: info.Epoch}
}

// LeaderInfoFromProto converts an electionv1.LeaderInfo of election (nil:
// no leader); the message's own election name wins when it has one.
func LeaderInfoFromProto(election string, m *electionv1.LeaderInfo) backends.LeaderInfo {
	if m.GetElection() != "" {
		election = m.GetElection()
	}
	return backends.LeaderInfo{Election: election, Value: m.GetValue(), Epoch: m.GetEpoch()}
}
