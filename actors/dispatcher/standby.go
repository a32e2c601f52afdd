package dispatcher

import (
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// Standby is a node of a failover group that does not lead, as it answers
// the roles that contact it: in production (cluster) and in the simulator
// alike. It holds no queue and decides nothing.
type Standby struct {
	// Node is this node's address (host:port).
	Node string
	// Leader is the address of the node that leads, "" when none does.
	Leader string
	// Epoch is the leader's epoch (0 when none leads).
	Epoch int64
	// Since is when this node became a standby.
	Since time.Time
}

// Answer is the standby's answer to in from from: NotLeader, naming the
// leader, to any message a role sends the dispatcher; its node status to
// a status request from an identity that may read it; nothing to anything
// else (a message no role sends the dispatcher, or from the zero identity).
func (s Standby) Answer(from actors.From, in any) []actors.Effect {
	if from.Who == (actors.Identity{}) {
		return nil
	}
	switch in.(type) {
	case *messages.StatusRequest:
		if !from.Who.MayAskStatus() {
			return nil
		}
		return []actors.Effect{actors.Send{To: from.Addr, Msg: s.Status()}}
	case *messages.RegisterRunner, *messages.Heartbeat, *messages.JobFinished, *messages.RunnerStopping,
		*messages.RegisterObserver, *messages.CommitObserved, *messages.Notify,
		*messages.RegisterReporter, *messages.ResultRecordedAck,
		*messages.SecretRequest, *messages.SecretSet, *messages.SecretDelete, *messages.SecretList,
		*messages.CancelRequest, *messages.RebuildRequest:
		return []actors.Effect{actors.Send{To: from.Addr, Msg: &messages.NotLeader{Leader: s.Leader, Epoch: s.Epoch, Node: s.Node}}}
	}
	return nil
}

// Status is the standby's StatusReply: its place in the group, no queue.
func (s Standby) Status() *messages.StatusReply {
	return &messages.StatusReply{Role: "dispatcher", Address: s.Node, Node: &messages.DispatcherNode{
		Address: s.Node, State: "standby", Leader: s.Leader, Epoch: s.Epoch, SinceUnixMs: s.Since.UnixMilli()}}
}
