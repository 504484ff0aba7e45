package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	subscriptionv1 "github.com/baton-go/baton/messages/subscription/v1"
)

// SubscriberOf converts a PID into the Subscriber field of a watch or
// subscribe request, so events go to that actor (nil stays nil).
func SubscriberOf(pid *actor.PID) *subscriptionv1.Subscriber {
	if pid == nil {
		return nil
	}
	return &subscriptionv1.Subscriber{Address: pid.Address, Id: pid.Id}
}
