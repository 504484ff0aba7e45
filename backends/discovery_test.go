package backends_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/baton-go/baton/backends"
)

func TestApplyServiceEvent(t *testing.T) {
	a := backends.ServiceInfo{ID: "a", Name: "api", Address: "127.0.0.1:1"}
	b := backends.ServiceInfo{ID: "b", Name: "api", Address: "127.0.0.1:2"}
	var view map[string]backends.ServiceInfo
	view = backends.ApplyServiceEvent(view, backends.ServiceEvent{Type: backends.ServiceAdded, Service: a})
	assert.Equal(t, map[string]backends.ServiceInfo{"a": a}, view, "an add before any snapshot allocates")
	view = backends.ApplyServiceEvent(view, backends.ServiceEvent{Type: backends.ServiceSnapshot, Instances: []backends.ServiceInfo{b}})
	assert.Equal(t, map[string]backends.ServiceInfo{"b": b}, view, "a snapshot replaces")
	b2 := b
	b2.Address = "127.0.0.1:3"
	view = backends.ApplyServiceEvent(view, backends.ServiceEvent{Type: backends.ServiceUpdated, Service: b2})
	assert.Equal(t, "127.0.0.1:3", view["b"].Address)
	view = backends.ApplyServiceEvent(view, backends.ServiceEvent{Type: backends.ServiceRemoved, Service: b})
	assert.Empty(t, view)
}
