// Package failovertest runs failover nodes in one process under the race
// detector, in a test binary of their own and without remotes:
// Proto.Actor sets gRPC's global logger whenever a remote starts, which
// races with gRPC goroutines already running in the process (an etcd
// client's). Production runs one node per process and opens etcd after
// its remote starts; the end-to-end tests cover the remotes.
package failovertest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/internal/etcdtest"
	"github.com/voltci/volt/store/etcdstore"
)

// groupNode is one dispatcher node of a failover group in this process.
type groupNode struct {
	n  *cluster.Node
	db *etcdstore.DB
	f  *cluster.Failover
}

// startGroupNodes starts the nodes (local actor systems), then etcd and
// the elections.
func startGroupNodes(t *testing.T, count int) []*groupNode {
	t.Helper()
	var out []*groupNode
	for range count {
		n, err := cluster.Start(cluster.NodeConfig{Logger: quietLogger(t), ActorLogLevel: 100})
		require.NoError(t, err)
		out = append(out, &groupNode{n: n})
	}
	e := etcdtest.Start(t, etcdtest.Options{Members: 1})
	for _, g := range out {
		db, err := etcdstore.Open(context.Background(), etcdstore.Config{Endpoints: e.Endpoints()})
		require.NoError(t, err)
		g.db = db
		g.f, err = g.n.StartFailover(cluster.FailoverConfig{Dispatcher: dispatcher.DefaultConfig().WithFailover(4 * time.Second), DB: db, TTL: time.Second})
		require.NoError(t, err)
		t.Cleanup(g.stop)
	}
	return out
}

func (g *groupNode) stop() {
	if g.n != nil {
		g.n.Shutdown()
		g.db.Close()
		g.n = nil
	}
}

// Two nodes in one process under the race detector: one leads, the other
// stands by and names it, and a graceful stop of the leader hands the
// lead over with a higher epoch.
func TestFailoverNodesElectAndHandOver(t *testing.T) {
	nodes := startGroupNodes(t, 2)
	var leader, standby *groupNode
	eventually(t, 10*time.Second, func() bool {
		a, b := nodes[0], nodes[1]
		switch {
		case a.f.Role() == "leader" && b.f.Role() == "standby" && b.f.Standby().Leader != "":
			leader, standby = a, b
		case b.f.Role() == "leader" && a.f.Role() == "standby" && a.f.Standby().Leader != "":
			leader, standby = b, a
		}
		return leader != nil
	}, "one node leads and the other stands by, naming a leader")
	epoch := standby.f.Standby().Epoch
	require.NotZero(t, epoch)

	start := time.Now()
	leader.stop()
	eventually(t, 5*time.Second, func() bool { return standby.f.Role() == "leader" }, "the standby leads after the hand-over")
	t.Logf("hand-over took %s", time.Since(start).Round(time.Millisecond))
	assert.Greater(t, standby.f.Standby().Epoch, epoch, "a new epoch")
}

func quietLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func eventually(t *testing.T, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
