package property_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/messages"
)

// olderEpochWorld drives one runner of a three-node failover group
// through a drawn sequence of what its dispatcher nodes can say to it,
// late and out of order included: registrations accepted under epochs
// old and new (a deposed leader whose answer was delayed, a node that led
// before), NotLeader redirects, silences long enough for it to look
// elsewhere. It returns the first breach of the runner's rule, "never
// register with a leader of an older epoch than one it registered with"
// (sim.InvNewerEpoch), or "".
//
// In the simulated world this rule is defence in depth: fencing and the
// leader's own clock already keep a deposed leader from answering, so
// only a world with an adversarial network shows it, and this is one.
func olderEpochWorld(seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	nodes := []actors.Addr{"d1:8000/dispatcher", "d2:8000/dispatcher", "d3:8000/dispatcher"}
	c := runner.New(runner.Config{ID: "r1", Incarnation: 1, Dispatcher: nodes[0], Nodes: nodes, Grace: time.Hour})
	now := time.Unix(1_700_000_000, 0)
	var seqs []uint64 // registrations sent, newest last
	var target actors.Addr
	note := func(fx []actors.Effect) {
		for _, e := range fx {
			if r, ok := e.(actors.Register); ok {
				seqs = append(seqs, r.Msg.(*messages.RegisterRunner).Seq)
				target = r.To
			}
		}
	}
	note(c.Start(now))
	who := actors.Identity{Role: actors.RoleDispatcher, Name: "dispatcher"}
	newest := int64(0)
	for step := 0; step < 60; step++ {
		switch rng.IntN(4) {
		case 0, 1:
			// An accepted registration under a drawn epoch, from the node
			// the runner asks now (a late answer looks just like this).
			if len(seqs) == 0 || target == "" {
				continue
			}
			epoch := dispatcher.FailoverEpoch(1+rng.Int64N(6), 0)
			was := c.Registered()
			note(c.Step(now, actors.From{Addr: target, Who: who}, &messages.RunnerRegistered{Accepted: true, RunnerId: "r1", Incarnation: 1,
				Epoch: epoch, Seq: seqs[rng.IntN(len(seqs))], HeartbeatMs: 1000, LeaseMs: 6000, DeadAfterMs: 7000, SilenceMs: 3000}))
			if !was && c.Registered() {
				if epoch < newest {
					return fmt.Sprintf("registered with epoch %d after epoch %d", dispatcher.EpochRevision(epoch), dispatcher.EpochRevision(newest))
				}
				newest = max(newest, epoch)
			}
		case 2:
			// A standby names a leader (or none).
			if target == "" {
				continue
			}
			leader := ""
			if rng.IntN(3) > 0 {
				leader = fmt.Sprintf("d%d:8000", 1+rng.IntN(3))
			}
			note(c.Step(now, actors.From{Addr: target, Who: who}, &messages.NotLeader{Leader: leader}))
		default:
			// Time passes without a word: the runner may look elsewhere.
			now = now.Add(time.Duration(rng.Int64N(int64(5 * time.Second))))
			note(c.Step(now, actors.FromLocal(""), actors.Tick{}))
		}
	}
	return ""
}

// TestRunnerNeverRegistersWithAnOlderEpoch: whatever its nodes say, and
// in whatever order, a runner of a failover group never goes back to an
// older epoch.
func TestRunnerNeverRegistersWithAnOlderEpoch(t *testing.T) {
	for seed := uint64(1); seed <= 2000; seed++ {
		if v := olderEpochWorld(seed); v != "" {
			t.Fatalf("seed %d: %s", seed, v)
		}
	}
}
