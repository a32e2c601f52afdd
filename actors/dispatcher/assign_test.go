package dispatcher_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

// --- Assignment ---

func TestQueuedJobAssignedToIdleRunnerPersistBeforeRunJob(t *testing.T) {
	tests := []struct {
		name  string
		setup func(w *world) []actors.Effect // returns the effects of the step that assigns
	}{
		{"runner first, then commit", func(w *world) []actors.Effect {
			w.addRunner("r1", 7)
			return w.observe("main", "", coretest.Commit(1))
		}},
		{"commit first, then runner", func(w *world) []actors.Effect {
			w.observe("main", "", coretest.Commit(1))
			return w.addRunner("r1", 7)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, dispatcher.DefaultConfig())
			w.addObserver(obsAddr)

			fx := tt.setup(w)

			runs := coretest.SendsTo[*messages.RunJob](fx, runnerAddr("r1"))
			require.Len(t, runs, 1)
			run := runs[0]
			assert.EqualValues(t, 1, run.Job.Id)
			assert.Equal(t, coretest.Commit(1), run.Job.Commit)
			assert.EqualValues(t, 1, run.Attempt)
			assert.Equal(t, "r1", run.RunnerId)
			assert.EqualValues(t, 7, run.Incarnation)
			assert.Equal(t, (10 * time.Minute).Milliseconds(), run.TimeoutMs)
			assert.Empty(t, run.LogSink, "no reporter registered")

			persistAt := firstIndex(fx, isPersistOf(1))
			runAt := firstIndex(fx, isSendOf[*messages.RunJob]())
			require.GreaterOrEqual(t, persistAt, 0)
			assert.Less(t, persistAt, runAt, "the assignment is durable before the runner hears of it")

			j := w.job(1)
			assert.Equal(t, messages.JobState_JOB_STATE_RUNNING, j.State)
			assert.Equal(t, "r1", j.RunnerId)
			assert.EqualValues(t, 7, j.RunnerIncarnation)
			assert.Equal(t, "busy", w.runner("r1").State)
		})
	}
}

func TestTwoRunnersTwoJobsAndNoAssignmentToBusyRunner(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.addRunner("r2", 1)

	fx := w.observe("main", "", coretest.Commit(1), coretest.Commit(2))
	assert.Equal(t, []string{"1/1->r1@1", "2/1->r2@1"}, runJobs(fx))

	fx = w.observe("main", coretest.Commit(2), coretest.Commit(3))
	assert.Empty(t, runJobs(fx), "both runners are busy")
	assert.EqualValues(t, 1, w.queued())
	assert.Equal(t, messages.JobState_JOB_STATE_QUEUED, w.job(3).State)

	w.advance(time.Second)
	fx = w.finish("r2", 1, 2, 1, messages.Status_STATUS_PASSED)
	assert.Equal(t, []string{"3/1->r2@1"}, runJobs(fx), "the runner that became idle gets the queued job")
	assert.EqualValues(t, 0, w.queued())
}

// --- Lost runners ---

func TestLostRunnerJobRequeuedAtFrontAndReassigned(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.addRunner("r2", 1)
	fx := w.observe("main", "", coretest.Commit(1), coretest.Commit(2), coretest.Commit(3))
	require.Equal(t, []string{"1/1->r1@1", "2/1->r2@1"}, runJobs(fx))

	w.advance(time.Second)
	fx = w.step("", actors.PeerTerminated{Addr: runnerAddr("r1"), Reason: "connection closed"})
	assert.Contains(t, fx, actors.Effect(actors.Unwatch{Addr: runnerAddr("r1")}))
	jobs := persistedJobs(fx)
	require.Len(t, jobs, 1)
	assert.EqualValues(t, 1, jobs[0].Job.Id)
	assert.Equal(t, messages.JobState_JOB_STATE_QUEUED, jobs[0].State)
	assert.Contains(t, jobs[0].LastError, "r1")
	assert.Empty(t, runJobs(fx), "no idle runner")
	assert.Nil(t, w.runner("r1"))
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterRunnersLost))
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterReassigned))

	fx = w.finish("r2", 1, 2, 1, messages.Status_STATUS_PASSED)
	assert.Equal(t, []string{"1/2->r2@1"}, runJobs(fx), "the requeued job goes before job 3")
}

func TestRunnerLostAfterHeartbeatDeadline(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	w := newWorld(t, cfg)
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.addRunner("r2", 1)
	w.observe("main", "", coretest.Commit(1))
	require.Equal(t, "r1", w.job(1).RunnerId)

	// r2 keeps heartbeating; r1 falls silent.
	for i := 1; i <= 3; i++ {
		w.advance(time.Second)
		w.heartbeat("r2", 1, uint64(i))
		fx := w.tick()
		require.Empty(t, runJobs(fx), "at %s r1 is not dead yet", w.now.Sub(coretest.T0))
	}
	require.Equal(t, w.now, coretest.T0.Add(cfg.DeadAfter))
	assert.NotNil(t, w.runner("r1"), "exactly DeadAfter without a heartbeat is not yet dead")

	w.advance(time.Millisecond)
	fx := w.tick()
	assert.Contains(t, fx, actors.Effect(actors.Unwatch{Addr: runnerAddr("r1")}))
	assert.Nil(t, w.runner("r1"))
	assert.Equal(t, []string{"1/2->r2@1"}, runJobs(fx))
	assert.Less(t, firstIndex(fx, isPersistOf(1)), firstIndex(fx, isSendOf[*messages.RunJob]()))

	// The presumed-dead runner's heartbeat is answered "unknown": it must register again.
	fx = w.heartbeat("r1", 1, 9, ref(1, 1))
	acks := coretest.Sends[*messages.HeartbeatAck](fx)
	require.Len(t, acks, 1)
	assert.True(t, acks[0].Unknown)
	assert.Empty(t, acks[0].Valid)
}

func TestAttemptCapEndsJobErrored(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	require.Equal(t, 3, cfg.MaxAttempts)
	w := newWorld(t, cfg)
	w.addObserver(obsAddr)
	w.addReporter()
	w.observe("main", "", coretest.Commit(1))

	var all []actors.Effect
	done := 0 // persisted DONE states, counted as each step returns (records are shared pointers)
	for i, id := range []string{"r1", "r2", "r3"} {
		w.advance(time.Second)
		fx := w.addRunner(id, 1)
		require.Equal(t, []string{fmt.Sprintf("1/%d->%s@1", i+1, id)}, runJobs(fx))
		w.advance(time.Second)
		fx = w.step("", actors.PeerTerminated{Addr: runnerAddr(id), Reason: "killed by the job"})
		for _, r := range persistedJobs(fx) {
			if r.State == messages.JobState_JOB_STATE_DONE {
				done++
			}
		}
		all = append(all, fx...)
	}

	j := w.job(1)
	require.NotNil(t, j)
	assert.Equal(t, messages.JobState_JOB_STATE_DONE, j.State)
	require.NotNil(t, j.Result)
	assert.Equal(t, messages.Status_STATUS_ERRORED, j.Result.Status)
	assert.Contains(t, j.Result.Reason, "3 attempts")
	assert.EqualValues(t, 3, j.Result.Attempt)
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterGaveUp))
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterRecorded))
	assert.Len(t, coretest.SendsTo[*messages.ResultRecorded](all, repAddr), 1, "exactly one result")
	assert.Equal(t, 1, done, "the result is persisted once")

	// No fourth attempt, and the last runner's late result changes nothing.
	fx := w.addRunner("r4", 1)
	assert.Empty(t, runJobs(fx))
	fx = w.finish("r3", 1, 1, 3, messages.Status_STATUS_PASSED)
	assert.Empty(t, persisted(fx))
	assert.Equal(t, messages.Status_STATUS_ERRORED, w.job(1).Result.Status)
}

func TestRunnerStoppingGivesItsJobBack(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.addRunner("r2", 1)
	w.observe("main", "", coretest.Commit(1))

	fx := w.step(runnerAddr("r1"), &messages.RunnerStopping{RunnerId: "r1", Incarnation: 1, Released: []*messages.JobRef{ref(1, 1)}, Reason: "SIGTERM"})
	assert.Equal(t, []string{"1/2->r2@1"}, runJobs(fx))
	assert.Nil(t, w.runner("r1"))

	fx = w.step(runnerAddr("r2"), &messages.RunnerStopping{RunnerId: "r2", Incarnation: 0, Reason: "forged"})
	assert.Empty(t, fx, "a stopping message from another incarnation changes nothing")
	assert.NotNil(t, w.runner("r2"))
}

// Attempts that runners gave back while shutting down gracefully do not
// count against the attempt cap, and the count is saved with the job;
// attempts lost otherwise still count.
func TestGracefulReleasesKeepTheAttempts(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig()) // MaxAttempts 3
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.observe("main", "", coretest.Commit(1))
	for attempt := int32(1); attempt <= 4; attempt++ {
		id := fmt.Sprintf("r%d", attempt+1)
		w.addRunner(id, 1) // idle, waiting
		prev := fmt.Sprintf("r%d", attempt)
		fx := w.step(runnerAddr(prev), &messages.RunnerStopping{RunnerId: prev, Incarnation: 1,
			Released: []*messages.JobRef{ref(1, attempt)}, Reason: "SIGTERM"})
		assert.Equal(t, []string{fmt.Sprintf("1/%d->%s@1", attempt+1, id)}, runJobs(fx), "release %d", attempt)
		jobs := persistedJobs(fx)
		require.NotEmpty(t, jobs, "release %d", attempt)
		assert.Equal(t, attempt, jobs[0].Released, "release %d: the count is durable with the job", attempt)
	}
	// Attempt 5 runs on r5; losing it and two more without a release ends the build.
	w.addRunner("r6", 1)
	w.step(runnerAddr("r5"), actors.PeerTerminated{Addr: runnerAddr("r5")})
	w.addRunner("r7", 1)
	w.step(runnerAddr("r6"), actors.PeerTerminated{Addr: runnerAddr("r6")})
	fx := w.step(runnerAddr("r7"), actors.PeerTerminated{Addr: runnerAddr("r7")})
	assert.Empty(t, runJobs(fx))
	assert.Equal(t, messages.Status_STATUS_ERRORED, w.job(1).Result.Status)
	assert.EqualValues(t, 7, w.job(1).Result.Attempt)
}
