package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors/observer"
	"github.com/voltci/volt/gitexec"
	"github.com/voltci/volt/messages"
)

// DispatcherClient asks a dispatcher questions over Proto.Actor for the web
// server (it implements web.Backend). The dispatcher may be in this process
// or, when the node has remote, in another one.
type DispatcherClient struct {
	root *actor.RootContext
	pid  *actor.PID
	// group, for a failover group, are its nodes' dispatcher actors: a
	// question goes to the one that led last, and follows a standby's
	// answer to the leader.
	group []*actor.PID
	mu    sync.Mutex
	cur   int
}

// DispatcherGroupClient returns a client for the dispatcher nodes at
// addresses (one, or every node of a failover group).
func (n *Node) DispatcherGroupClient(addresses []string) *DispatcherClient {
	if len(addresses) == 1 {
		return n.DispatcherClient(addresses[0])
	}
	c := &DispatcherClient{root: n.System.Root}
	for _, a := range addresses {
		c.group = append(c.group, actor.NewPID(a, DispatcherName))
	}
	c.pid = c.group[0]
	return c
}

// target is the node to ask now.
func (c *DispatcherClient) target() *actor.PID {
	if len(c.group) == 0 {
		return c.pid
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.group[c.cur]
}

// follow moves to the leader a standby named ("" for none: the next node).
func (c *DispatcherClient) follow(from *actor.PID, leader string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.group[c.cur].Equal(from) {
		return // another question moved on already
	}
	for i, p := range c.group {
		if leader != "" && p.Address == leader {
			c.cur = i
			return
		}
	}
	c.cur = (c.cur + 1) % len(c.group)
}

// standbyLeader reports whether res is a standby's answer, and the leader it names.
func standbyLeader(res any) (string, bool) {
	switch m := res.(type) {
	case *messages.NotLeader:
		return m.Leader, true
	case *messages.StatusReply:
		if m.Node != nil && m.Node.State == "standby" {
			return m.Node.Leader, true
		}
	}
	return "", false
}

// DispatcherClient returns a client for the dispatcher at address (host:port
// as the node names it; this node's own Address for a local dispatcher).
func (n *Node) DispatcherClient(address string) *DispatcherClient {
	return &DispatcherClient{root: n.System.Root, pid: actor.NewPID(address, DispatcherName)}
}

// ReporterStatus asks the reporter at address (this node's own Address for
// a local one) for its status: the web server shows its store condition.
type ReporterStatus struct {
	root *actor.RootContext
	pid  *actor.PID
}

// ReporterStatus returns a ReporterStatus for the reporter at address.
func (n *Node) ReporterStatus(address string) *ReporterStatus {
	return &ReporterStatus{root: n.System.Root, pid: actor.NewPID(address, ReporterName)}
}

// Status implements web.StatusSource.
func (r *ReporterStatus) Status(ctx context.Context) (*messages.StatusReply, error) {
	return ask[*messages.StatusReply](ctx, &DispatcherClient{root: r.root, pid: r.pid}, &messages.StatusRequest{OpenOnly: true})
}

// ask sends req and waits for an answer of type T until ctx ends. A
// failover group's standby answers send it on to the leader, once per node.
func ask[T any](ctx context.Context, c *DispatcherClient, req any) (T, error) {
	var zero T
	res, err := c.Ask(ctx, req)
	if err != nil {
		return zero, err
	}
	t, ok := res.(T)
	if !ok {
		pid := c.target()
		return zero, fmt.Errorf("the %s at %s answered %T, want %T: are both the same Volt version?", pid.Id, pid.Address, res, zero)
	}
	return t, nil
}

// Ask sends req and returns the answer, waiting until ctx ends (3 s
// without a deadline). A failover group's standby answers send it on to
// the leader, once per node; a standby's NotLeader is an error.
func (c *DispatcherClient) Ask(ctx context.Context, req any) (any, error) {
	timeout := 3 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	for try := 0; ; try++ {
		pid := c.target()
		if timeout <= 0 {
			return nil, fmt.Errorf("ask the %s at %s: %w", pid.Id, pid.Address, context.DeadlineExceeded)
		}
		res, err := c.root.RequestFuture(pid, req, timeout).Result()
		if err != nil {
			if len(c.group) > 1 && try < len(c.group) {
				c.follow(pid, "")
				continue
			}
			return nil, fmt.Errorf("no answer from the %s at %s within %s (is it running?): %w", pid.Id, pid.Address, timeout.Round(time.Millisecond), err)
		}
		leader, standby := standbyLeader(res)
		if _, notLeader := res.(*messages.NotLeader); standby && (notLeader || len(c.group) > 1) {
			if len(c.group) <= 1 || try >= len(c.group) {
				return nil, fmt.Errorf("the dispatcher node at %s does not lead, and no node it knows of does (an election under way, or etcd without a quorum): try again in a few seconds", pid.Address)
			}
			c.follow(pid, leader)
			continue
		}
		return res, nil
	}
}

// Status implements web.Backend.
func (c *DispatcherClient) Status(ctx context.Context) (*messages.StatusReply, error) {
	return ask[*messages.StatusReply](ctx, c, &messages.StatusRequest{OpenOnly: true})
}

// Cancel implements web.Backend.
func (c *DispatcherClient) Cancel(ctx context.Context, req *messages.CancelRequest) (*messages.CancelReply, error) {
	return ask[*messages.CancelReply](ctx, c, req)
}

// Rebuild implements web.Backend.
func (c *DispatcherClient) Rebuild(ctx context.Context, req *messages.RebuildRequest) (*messages.RebuildReply, error) {
	return ask[*messages.RebuildReply](ctx, c, req)
}

// Notify implements web.Backend.
func (c *DispatcherClient) Notify(ctx context.Context, req *messages.Notify) (*messages.NotifyAck, error) {
	return ask[*messages.NotifyAck](ctx, c, req)
}

// StartObserverTimed is StartObserver with onPoll called after each read of
// a branch with the time it took (for the poll-duration metric).
func (n *Node) StartObserverTimed(cfg observer.Config, repos []*gitexec.Repo, onPoll func(time.Duration)) (*actor.PID, error) {
	rd := repoReader{repos: map[string]*gitexec.Repo{}}
	for _, r := range repos {
		rd.repos[r.URL()] = r
	}
	return n.Spawn(ObserverName, func() actor.Actor {
		a := observer.NewActor(cfg, rd, n.Env("observer"))
		a.SetOnPoll(onPoll)
		return a
	})
}
