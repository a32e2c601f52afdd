package observer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/observer"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

var dispatcherID = actors.Identity{Role: actors.RoleDispatcher, Name: "disp-host"}

// An observer of a failover group whose leader goes silent with a batch of
// commits in flight looks for the leader among the other nodes, follows a
// standby to it, and sends the commits there once registered.
func TestObserverFindsTheNewLeaderWhenItsBatchGoesUnanswered(t *testing.T) {
	a, b := actors.NewAddr("127.0.0.1:8001", "dispatcher"), actors.NewAddr("127.0.0.1:8002", "dispatcher")
	c := observer.New(observer.Config{ID: "obs", Dispatcher: a, Nodes: []actors.Addr{a, b}, Poll: time.Hour, Grace: time.Minute,
		Repos: []*messages.WatchedRepo{{Url: repoURL, Name: repoName, Branches: []string{"main"}}}})
	now := coretest.T0
	c.Start(now)
	fx := c.Step(now, actors.From{Addr: a, Who: dispatcherID}, &messages.ObserverRegistered{Accepted: true})
	require.Len(t, coretest.EffectsOf[observer.Poll](fx), 1)
	fx = c.Step(now, actors.FromLocal(""), observer.Polled{Repo: repoURL, Branch: "main", Tip: coretest.Commit(1), Commits: []string{coretest.Commit(1)}})
	sent := coretest.EffectsOf[actors.Send](fx)
	require.Len(t, sent, 1)
	require.Equal(t, a, sent[0].To)

	// a never answers: the batch is sent again twice, then the observer
	// registers elsewhere.
	var to []actors.Addr
	for i := 0; i < 60 && len(to) == 0; i++ {
		now = now.Add(100 * time.Millisecond)
		for _, r := range coretest.EffectsOf[actors.Register](c.Step(now, actors.FromLocal(""), actors.Tick{})) {
			to = append(to, r.To)
		}
	}
	require.NotEmpty(t, to, "the observer kept sending to a silent leader")
	assert.True(t, now.Sub(coretest.T0) >= 3*time.Second, "gave up on the leader after %s", now.Sub(coretest.T0))

	// b leads: once registered there, the commits go to b.
	reg := c.Step(now, actors.From{Addr: to[0], Who: dispatcherID}, &messages.NotLeader{Leader: "127.0.0.1:8002"})
	if to[0] != b {
		require.Equal(t, []actors.Addr{b}, addrsOf(coretest.EffectsOf[actors.Register](reg)))
	}
	fx = c.Step(now, actors.From{Addr: b, Who: dispatcherID}, &messages.ObserverRegistered{Accepted: true})
	fx = append(fx, c.Step(now, actors.FromLocal(""), observer.Polled{Repo: repoURL, Branch: "main", Tip: coretest.Commit(1), Commits: []string{coretest.Commit(1)}})...)
	sent = coretest.EffectsOf[actors.Send](fx)
	require.NotEmpty(t, sent)
	assert.Equal(t, b, sent[len(sent)-1].To)
}

func addrsOf(rs []actors.Register) []actors.Addr {
	var out []actors.Addr
	for _, r := range rs {
		out = append(out, r.To)
	}
	return out
}
