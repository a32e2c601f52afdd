//go:build plantedbugs

package dispatcher_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

// Each test plants one bug whose site is in the dispatcher core and shows
// the core misbehaving with it: the unit-level proof that the site is live.
// The simulator's own proofs are in property_test.

// planted plants b for the rest of the test.
func planted(t *testing.T, b plant.Bug) {
	plant.Set(b)
	t.Cleanup(func() { plant.Set(plant.None) })
}

func TestPlantedAckBeforePersist(t *testing.T) {
	planted(t, plant.AckBeforePersist)
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.observe("main", "", coretest.Commit(1))

	fx := w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	ackAt := firstIndex(fx, isSendOf[*messages.JobFinishedAck]())
	persistAt := firstIndex(fx, isPersistOf(1))
	require.GreaterOrEqual(t, ackAt, 0)
	require.GreaterOrEqual(t, persistAt, 0)
	assert.Less(t, ackAt, persistAt, "planted: the runner hears its result is recorded before it is durable")
}

func TestPlantedAttemptCapOffByOne(t *testing.T) {
	planted(t, plant.AttemptCapOffByOne)
	cfg := dispatcher.DefaultConfig()
	w := newWorld(t, cfg)
	w.addObserver(obsAddr)
	w.observe("main", "", coretest.Commit(1))
	for i, id := range []string{"r1", "r2", "r3"} {
		w.advance(time.Second)
		require.Equal(t, []string{fmt.Sprintf("1/%d->%s@1", i+1, id)}, runJobs(w.addRunner(id, 1)))
		w.advance(time.Second)
		w.step("", actors.PeerTerminated{Addr: runnerAddr(id), Reason: "killed by the job"})
	}
	assert.Equal(t, messages.JobState_JOB_STATE_QUEUED, w.job(1).State,
		"planted: %d lost attempts and the job is still queued", cfg.MaxAttempts)
	assert.Equal(t, []string{"1/4->r4@1"}, runJobs(w.addRunner("r4", 1)), "planted: a fourth attempt")
}

func TestPlantedDeadAfterIsLease(t *testing.T) {
	planted(t, plant.DeadAfterIsLease)
	cfg := dispatcher.DefaultConfig()
	require.Less(t, cfg.Lease, cfg.DeadAfter)
	w := newWorld(t, cfg)
	w.addRunner("r1", 1)
	w.advance(cfg.Lease + time.Millisecond)
	assert.True(t, w.d.Deadline().Before(w.now.Add(time.Nanosecond)), "planted: the deadline is the lease")
	w.tick()
	assert.Nil(t, w.runner("r1"), "planted: silent for the lease only, and declared dead")
}

func TestPlantedCancelNotResent(t *testing.T) {
	planted(t, plant.CancelNotResent)
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.observe("main", "", coretest.Commit(1))
	require.Len(t, coretest.SendsTo[*messages.CancelJob](w.step(cliAddr, &messages.CancelRequest{JobId: 1, Who: "ann"}), runnerAddr("r1")), 1)
	// That CancelJob is lost; the runner reports it still runs the job.
	assert.Empty(t, coretest.SendsTo[*messages.CancelJob](w.heartbeat("r1", 1, 1, ref(1, 1)), runnerAddr("r1")), "planted: not sent again")
	assert.Empty(t, coretest.SendsTo[*messages.CancelJob](w.addRunner("r1", 1, ref(1, 1)), runnerAddr("r1")), "planted: not sent again")
	w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	assert.Equal(t, messages.Status_STATUS_PASSED, w.job(1).Result.Status, "planted: the user was told cancelled")
}
