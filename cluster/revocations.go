package cluster

import (
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/voltci/volt/messages"
)

// revocationsTarget is the actor id Revocations are addressed to. No actor
// has it: the receiving node's guard applies the message and drops it.
const revocationsTarget = "$revocations"

// revocationsCheckEvery is how often a dispatcher node looks for new
// revocations to announce.
const revocationsCheckEvery = time.Second

// announceRevocations makes a node that holds the CA key (the dispatcher,
// `volt up`) tell every node it is connected to which identities are
// revoked: at once when a connection comes up, and again whenever the list
// changes. A runner or reporter on another machine has no revocation file;
// this is how it learns to refuse a revoked peer too.
func (n *Node) announceRevocations() {
	send := func(address string, entries []string) {
		n.System.Root.Send(actor.NewPID(address, revocationsTarget), &messages.Revocations{Entries: entries})
	}
	n.System.EventStream.SubscribeWithPredicate(func(ev any) {
		if list := n.Credentials.RevokedList(); len(list) > 0 {
			send(ev.(*remote.EndpointConnectedEvent).Address, list)
		}
	}, func(ev any) bool {
		_, ok := ev.(*remote.EndpointConnectedEvent)
		return ok
	})
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		t := time.NewTicker(revocationsCheckEvery)
		defer t.Stop()
		last := n.Credentials.RevokedList()
		for {
			select {
			case <-n.stopBG:
				return
			case <-t.C:
			}
			list := n.Credentials.RevokedList()
			if slices.Equal(list, last) {
				continue
			}
			last = list
			for _, a := range n.links.connected() {
				send(a, list)
			}
			n.logger.Info("revocations announced", "entries", len(list))
		}
	}()
}
