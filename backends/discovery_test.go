package backends_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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

func TestServiceInfoLimits(t *testing.T) {
	ok := backends.ServiceInfo{ID: "a", Name: "api", Address: "127.0.0.1:1"}
	with := func(f func(*backends.ServiceInfo)) backends.ServiceInfo {
		s := ok
		f(&s)
		return s
	}
	atLimit := with(func(s *backends.ServiceInfo) {
		s.Metadata = map[string]string{"ab": strings.Repeat("m", backends.MaxServiceMetadataSize-2)}
		s.Tags = slices.Repeat([]string{strings.Repeat("t", backends.MaxServiceTagLen)}, backends.MaxServiceTags)
		s.Version = strings.Repeat("v", backends.MaxServiceVersionLen)
	})
	assert.NoError(t, atLimit.Validate())

	for field, s := range map[string]backends.ServiceInfo{
		"service metadata": with(func(s *backends.ServiceInfo) {
			s.Metadata = map[string]string{"ab": strings.Repeat("m", backends.MaxServiceMetadataSize-1)}
		}),
		"service tags": with(func(s *backends.ServiceInfo) {
			s.Tags = make([]string, backends.MaxServiceTags+1)
		}),
		"service tags[1]": with(func(s *backends.ServiceInfo) {
			s.Tags = []string{"", strings.Repeat("t", backends.MaxServiceTagLen+1)}
		}),
		"service version": with(func(s *backends.ServiceInfo) {
			s.Version = strings.Repeat("v", backends.MaxServiceVersionLen+1)
		}),
	} {
		err := s.Validate()
		require.ErrorIs(t, err, backends.ErrInvalidArgument, field)
		var ia *backends.InvalidArgumentError
		require.ErrorAs(t, err, &ia)
		assert.Equal(t, field, ia.Field)
	}
}
