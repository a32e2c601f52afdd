package cluster

import (
	"log/slog"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
)

// endpoints tracks which of Proto.Actor remote's outbound connections are
// up, from the events remote publishes, so that a registration is never
// parked behind a connection that will not come up soon.
//
// Proto.Actor's endpoint writer sleeps 2 s after a failed dial, and every
// message to that address waits behind it. A role that lost the dispatcher
// probes its port before it registers, but the probe can succeed against a
// dispatcher that is still dying (its listening socket closes after its
// connections), and the registration then dials a port that is already
// gone. The next attempt, after the new dispatcher is up, would wait out the
// 2 s; unstick drops the stuck connection first, so that it dials afresh.
type endpoints struct {
	system *actor.ActorSystem
	logger *slog.Logger

	mu sync.Mutex
	up map[string]bool // addresses whose connection came up after it was last lost
}

// trackEndpoints subscribes to remote's endpoint events; call it before
// anything is sent to a remote address.
func trackEndpoints(sys *actor.ActorSystem, logger *slog.Logger) *endpoints {
	e := &endpoints{system: sys, logger: logger, up: map[string]bool{}}
	sys.EventStream.SubscribeWithPredicate(func(ev any) {
		e.mu.Lock()
		defer e.mu.Unlock()
		switch ev := ev.(type) {
		case *remote.EndpointConnectedEvent:
			e.up[ev.Address] = true
		case *remote.EndpointTerminatedEvent:
			delete(e.up, ev.Address)
		}
	}, func(ev any) bool {
		switch ev.(type) {
		case *remote.EndpointConnectedEvent, *remote.EndpointTerminatedEvent:
			return true
		}
		return false
	})
	return e
}

// unstick drops the connection to address unless it has come up since it
// was last lost. Call it just before sending a registration to a peer whose
// port was just seen to accept connections: a connection that has not come
// up is either still dialling or sleeping after a failed dial, and a fresh
// one reaches the peer at once. Dropping one that does not exist does
// nothing; messages queued on a dropped one still go out once it connects,
// and registrations are idempotent.
func (e *endpoints) unstick(address string) {
	e.mu.Lock()
	up := e.up[address]
	e.mu.Unlock()
	if up {
		return
	}
	e.logger.Debug("dialling afresh", "address", address)
	// remote's endpoint manager removes the endpoint when it sees this event,
	// synchronously, so the next message to address creates a new one.
	e.system.EventStream.Publish(&remote.EndpointTerminatedEvent{Address: address})
}

// connected lists the addresses whose outbound connection is up.
func (e *endpoints) connected() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.up))
	for a := range e.up {
		out = append(out, a)
	}
	return out
}
