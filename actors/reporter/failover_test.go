package reporter_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

// A reporter of a failover group whose refresh goes unanswered looks for
// the leader among the nodes; a standby sends it to the leader.
func TestReporterFollowsTheLeaderAfterAnUnansweredRefresh(t *testing.T) {
	a, b := actors.NewAddr("127.0.0.1:8001", "dispatcher"), actors.NewAddr("127.0.0.1:8002", "dispatcher")
	disp := actors.Identity{Role: actors.RoleDispatcher, Name: "disp-host"}
	c := reporter.New(reporter.Config{ID: "rep", Dispatcher: a, Nodes: []actors.Addr{a, b}})
	now := coretest.T0
	c.Start(now)
	c.Step(now, actors.From{Addr: a, Who: disp}, &messages.ReporterRegistered{Accepted: true})
	require.True(t, c.Registered())

	registers := func(fx []actors.Effect) []actors.Addr {
		var out []actors.Addr
		for _, r := range coretest.EffectsOf[actors.Register](fx) {
			out = append(out, r.To)
		}
		return out
	}
	now = now.Add(reporter.Refresh)
	assert.Equal(t, []actors.Addr{a}, registers(c.Step(now, actors.FromLocal(""), actors.Tick{})), "the refresh goes to the leader")
	now = now.Add(reporter.Refresh)
	fx := c.Step(now, actors.FromLocal(""), actors.Tick{})
	assert.False(t, c.Registered(), "an unanswered refresh loses the link")
	assert.NotEmpty(t, registers(fx))

	// Whichever node it asks, a standby's answer names b, and b accepts.
	to := registers(fx)[0]
	if to != b {
		fx = c.Step(now, actors.From{Addr: to, Who: disp}, &messages.NotLeader{Leader: "127.0.0.1:8002"})
		assert.Equal(t, []actors.Addr{b}, registers(fx))
	}
	c.Step(now, actors.From{Addr: b, Who: disp}, &messages.ReporterRegistered{Accepted: true})
	assert.True(t, c.Registered())
}
