package runner_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

// A failover group of three nodes: a, b and c.
var (
	nodeA = actors.NewAddr("127.0.0.1:8001", "dispatcher")
	nodeB = actors.NewAddr("127.0.0.1:8002", "dispatcher")
	nodeC = actors.NewAddr("127.0.0.1:8003", "dispatcher")
)

var dispatcherID = actors.Identity{Role: actors.RoleDispatcher, Name: "disp-host"}

// registeredTo returns the node each Register effect in fx goes to.
func registeredTo(fx []actors.Effect) []actors.Addr {
	var out []actors.Addr
	for _, e := range fx {
		if r, ok := e.(actors.Register); ok {
			out = append(out, r.To)
		}
	}
	return out
}

func newGroupRunner(t *testing.T) (*runner.Core, []actors.Effect) {
	t.Helper()
	c := runner.New(runner.Config{ID: runnerID, Incarnation: incarnation, Dispatcher: nodeA,
		Nodes: []actors.Addr{nodeA, nodeB, nodeC}, Grace: 10 * time.Second})
	return c, c.Start(coretest.T0)
}

func groupAccept(seq uint64, epoch int64) *messages.RunnerRegistered {
	return &messages.RunnerRegistered{Accepted: true, RunnerId: runnerID, Incarnation: incarnation, Epoch: epoch, Seq: seq,
		HeartbeatMs: 1000, DeadAfterMs: 9000, LeaseMs: 8000, SilenceMs: 3000}
}

func lastSeq(t *testing.T, fx []actors.Effect) uint64 {
	t.Helper()
	for i := len(fx) - 1; i >= 0; i-- {
		if r, ok := fx[i].(actors.Register); ok {
			return r.Msg.(*messages.RegisterRunner).Seq
		}
	}
	t.Fatal("no registration in the effects")
	return 0
}

func TestRunnerTriesTheNextNodeWhenARegistrationGoesUnanswered(t *testing.T) {
	c, fx := newGroupRunner(t)
	require.Equal(t, []actors.Addr{nodeA}, registeredTo(fx))
	var to []actors.Addr
	for at := 10 * time.Millisecond; at < 800*time.Millisecond; at += 10 * time.Millisecond {
		to = append(to, registeredTo(c.Step(coretest.T0.Add(at), actors.FromLocal(""), actors.Tick{}))...)
	}
	assert.Equal(t, []actors.Addr{nodeB, nodeC, nodeA}, to[:3], "each unanswered registration moves on to the next node")
}

func TestRunnerFollowsTheLeaderAStandbyNames(t *testing.T) {
	c, _ := newGroupRunner(t)
	now := coretest.T0.Add(10 * time.Millisecond) // before the next registration is due
	fx := c.Step(now, actors.From{Addr: nodeA, Who: dispatcherID}, &messages.NotLeader{Leader: "127.0.0.1:8003", Epoch: 7, Node: "127.0.0.1:8001"})
	assert.Equal(t, []actors.Addr{nodeC}, registeredTo(fx), "straight to the leader, without waiting for the backoff")

	// A late NotLeader from a node the runner has left changes nothing.
	fx = c.Step(now, actors.From{Addr: nodeB, Who: dispatcherID}, &messages.NotLeader{Leader: "127.0.0.1:8002"})
	assert.Empty(t, registeredTo(fx))
}

func TestRunnerRidesOutAFailoverWithItsJob(t *testing.T) {
	c, fx := newGroupRunner(t)
	epoch1 := int64(5 << 16)
	fx = c.Step(coretest.T0, actors.From{Addr: nodeA, Who: dispatcherID}, groupAccept(lastSeq(t, fx), epoch1))
	require.True(t, c.Registered())
	run := &messages.RunJob{Job: &messages.Job{Id: 1, Repo: "/srv/git/app.git", Commit: coretest.Commit(1), Branches: []string{"main"}, Build: 1},
		Attempt: 1, RunnerId: runnerID, Incarnation: incarnation, Epoch: epoch1, TimeoutMs: 600_000}
	fx = c.Step(coretest.T0, actors.From{Addr: nodeA, Who: dispatcherID}, run)
	require.Len(t, startJob(fx), 1)

	// Node a dies without a word: after the silence the runner looks for
	// the leader, and still holds its job (the lease is the failover grace).
	var regs []actors.Addr
	now := coretest.T0
	for ; now.Before(coretest.T0.Add(6 * time.Second)); now = now.Add(50 * time.Millisecond) {
		fx = c.Step(now, actors.FromLocal(""), actors.Tick{})
		regs = append(regs, registeredTo(fx)...)
		for _, e := range fx {
			_, cancel := e.(runner.CancelRun)
			require.False(t, cancel, "the job is given up before the failover grace")
		}
		if len(regs) > 0 && regs[len(regs)-1] == nodeC && now.After(coretest.T0.Add(4*time.Second)) {
			break
		}
	}
	require.False(t, c.Registered())
	require.Contains(t, regs, nodeB)

	// Node c is a standby and names b, which leads now with a newer epoch:
	// the runner registers there, listing its job.
	epoch2 := int64(9 << 16)
	fx = c.Step(now, actors.From{Addr: nodeC, Who: dispatcherID}, &messages.NotLeader{Leader: "127.0.0.1:8002", Epoch: 9})
	var reg *messages.RegisterRunner
	for _, e := range fx {
		if r, ok := e.(actors.Register); ok && r.To == nodeB {
			reg = r.Msg.(*messages.RegisterRunner)
		}
	}
	if reg == nil {
		t.Fatalf("no registration to b in %v", fx)
	}
	require.Len(t, reg.Running, 1, "the new leader adopts the running attempt")
	c.Step(now, actors.From{Addr: nodeB, Who: dispatcherID}, groupAccept(reg.Seq, epoch2))
	require.True(t, c.Registered())

	// The deposed leader wakes up: neither its RunJob nor a registration
	// of its older epoch is obeyed.
	stale := &messages.RunJob{Job: &messages.Job{Id: 2, Repo: "/srv/git/app.git", Commit: coretest.Commit(2), Branches: []string{"main"}, Build: 1},
		Attempt: 1, RunnerId: runnerID, Incarnation: incarnation, Epoch: epoch1, TimeoutMs: 600_000}
	assert.Empty(t, startJob(c.Step(now, actors.From{Addr: nodeA, Who: dispatcherID}, stale)))
}

func TestRunnerRefusesARegistrationOfAnOlderEpoch(t *testing.T) {
	c, fx := newGroupRunner(t)
	fx = c.Step(coretest.T0, actors.From{Addr: nodeA, Who: dispatcherID}, groupAccept(lastSeq(t, fx), 9<<16))
	require.True(t, c.Registered())
	// a goes quiet, the runner moves on to b, which answers with an older epoch.
	now := coretest.T0
	var seq uint64
	for ; now.Before(coretest.T0.Add(5 * time.Second)); now = now.Add(50 * time.Millisecond) {
		for _, e := range c.Step(now, actors.FromLocal(""), actors.Tick{}) {
			if r, ok := e.(actors.Register); ok && r.To == nodeB {
				seq = r.Msg.(*messages.RegisterRunner).Seq
			}
		}
		if seq != 0 {
			break
		}
	}
	require.NotZero(t, seq, "no registration to b")
	stale := c.Stale()
	c.Step(now, actors.From{Addr: nodeB, Who: dispatcherID}, groupAccept(seq, 8<<16))
	assert.False(t, c.Registered(), "a leader of an older epoch is not registered with")
	assert.Equal(t, stale+1, c.Stale())
	c.Step(now, actors.From{Addr: nodeB, Who: dispatcherID}, groupAccept(seq, 10<<16))
	assert.True(t, c.Registered())
}
