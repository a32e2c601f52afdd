package dispatcher_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
)

// --- CommitObserved ---

func TestCommitObservedQueuesOneJobPerCommitPersistedBeforeAck(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)

	fx := w.observe("main", "", commit(1), commit(2), commit(3))

	ps := persisted(fx)
	require.Len(t, ps, 1)
	var commits []string
	var ids []int64
	for _, j := range ps[0].Jobs {
		commits = append(commits, j.Job.Commit)
		ids = append(ids, j.Job.Id)
		assert.Equal(t, messages.JobState_JOB_STATE_QUEUED, j.State)
		assert.Equal(t, []string{"main"}, j.Job.Branches)
		assert.EqualValues(t, 1, j.Job.Build)
		assert.Equal(t, repoURL, j.Job.Repo)
	}
	assert.Equal(t, []string{commit(1), commit(2), commit(3)}, commits, "one job per commit, oldest first")
	assert.Equal(t, []int64{1, 2, 3}, ids)
	require.Len(t, ps[0].Cursors, 1)
	assert.Equal(t, commit(3), ps[0].Cursors[0].Commit, "the cursor moves to the tip")
	assert.Equal(t, "main", ps[0].Cursors[0].Branch)

	acks := sendsTo[*messages.CommitObservedAck](fx, obsAddr)
	require.Len(t, acks, 1)
	assert.Equal(t, []int64{1, 2, 3}, acks[0].JobIds)
	assert.Equal(t, commit(3), acks[0].Cursor)
	assert.EqualValues(t, 1, acks[0].Seq)
	assert.Equal(t, "main", acks[0].Branch)

	persistAt := firstIndex(fx, func(e actors.Effect) bool { _, ok := e.(dispatcher.Persist); return ok })
	ackAt := firstIndex(fx, isSendOf[*messages.CommitObservedAck]())
	assert.Less(t, persistAt, ackAt, "jobs and cursor are durable before the observer hears of them")

	assert.EqualValues(t, 3, w.d.Counter(dispatcher.CounterJobsQueued))
	assert.EqualValues(t, 3, w.queued())
	assert.Empty(t, runJobs(fx), "no runner, no assignment")
}

func TestCommitObservedDuplicateCreatesNoJob(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	msg := w.observed("main", "", commit(1), commit(2))
	w.step(obsAddr, msg)

	fx := w.step(obsAddr, proto.Clone(msg)) // the observer's resend

	assert.Empty(t, persisted(fx), "nothing new to persist")
	acks := sendsTo[*messages.CommitObservedAck](fx, obsAddr)
	require.Len(t, acks, 1)
	assert.Equal(t, []int64{1, 2}, acks[0].JobIds, "the duplicate is acknowledged with the same jobs")
	assert.Equal(t, commit(2), acks[0].Cursor)
	assert.EqualValues(t, 2, w.d.Counter(dispatcher.CounterJobsQueued))
	assert.Len(t, w.d.Status().Jobs, 2)

	// A newer message moves the cursor; an older one delivered late does not move it back.
	w.observe("main", commit(2), commit(3))
	fx = w.step(obsAddr, proto.Clone(msg))
	acks = sendsTo[*messages.CommitObservedAck](fx, obsAddr)
	require.Len(t, acks, 1)
	assert.Equal(t, commit(3), acks[0].Cursor, "a reordered old message must not move the cursor back")
	assert.Empty(t, persisted(fx))
}

func TestCommitOnSecondBranchAddsBranchNotJob(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.observe("main", "", commit(1), commit(2))

	fx := w.observe("release", "", commit(2))

	jobs := persistedJobs(fx)
	require.Len(t, jobs, 1)
	assert.EqualValues(t, 2, jobs[0].Job.Id)
	assert.Equal(t, []string{"main", "release"}, jobs[0].Job.Branches)
	acks := sendsTo[*messages.CommitObservedAck](fx, obsAddr)
	require.Len(t, acks, 1)
	assert.Equal(t, []int64{2}, acks[0].JobIds)
	assert.Equal(t, "release", acks[0].Branch)
	assert.EqualValues(t, 2, w.d.Counter(dispatcher.CounterJobsQueued), "no new job")
	assert.Len(t, w.d.Status().Jobs, 2)

	fx = w.observe("release", commit(2), commit(2))
	assert.Empty(t, persistedJobs(fx), "a branch already recorded is not added twice")
}

func TestCommitObservedRejected(t *testing.T) {
	tests := []struct {
		name string
		from actors.Addr
		msg  *messages.CommitObserved
	}{
		{"unregistered observer", obs2Addr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "main", Commits: []string{commit(1)}}},
		{"commit id that git would read as an option", obsAddr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "main", Commits: []string{"--upload-pack=touch pwned"}}},
		{"one bad commit among good ones", obsAddr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "main", Commits: []string{commit(1), "HEAD", commit(2)}}},
		{"abbreviated commit id", obsAddr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "main", Commits: []string{"abc1234"}}},
		{"branch that git would read as an option", obsAddr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "-x", Commits: []string{commit(1)}}},
		{"empty branch", obsAddr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "", Commits: []string{commit(1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, dispatcher.DefaultConfig())
			w.addObserver(obsAddr)
			w.addRunner("r1", 1)

			fx := w.step(tt.from, tt.msg)

			assert.Empty(t, persisted(fx))
			for _, ack := range sends[*messages.CommitObservedAck](fx) {
				// The only answer allowed is "register first", which moves no cursor.
				assert.True(t, ack.Unknown, "not acknowledged: the cursor must not advance")
				assert.Empty(t, ack.Cursor)
			}
			assert.Empty(t, runJobs(fx))
			assert.Empty(t, w.d.Status().Jobs)
			assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterRejected))
			assert.NotEmpty(t, effectsOf[actors.Note](fx), "a rejection is logged")
		})
	}
}

func TestArchivedCommitsAreNotRequeued(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)

	fx := w.step(obsAddr, dispatcher.Observed{
		Msg:      w.observed("main", "", commit(1), commit(2)),
		Archived: map[string]int64{commit(1): 41},
	})

	ps := persisted(fx)
	require.NotEmpty(t, ps)
	jobs := ps[0].Jobs
	require.Len(t, jobs, 1, "only the commit not archived becomes a job")
	assert.Equal(t, commit(2), jobs[0].Job.Commit)
	acks := sendsTo[*messages.CommitObservedAck](fx, obsAddr)
	require.Len(t, acks, 1)
	assert.Equal(t, []int64{41, 1}, acks[0].JobIds, "the archived commit is answered with its old job")
	assert.Equal(t, []string{"1/1->r1@1"}, runJobs(fx))

	fx = w.step(obsAddr, dispatcher.Observed{
		Msg:      w.observed("release", "", commit(3)),
		Archived: map[string]int64{commit(3): 42},
	})
	assert.Empty(t, persistedJobs(fx))
	assert.Empty(t, runJobs(fx))
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterJobsQueued))
}

// --- Assignment ---

func TestQueuedJobAssignedToIdleRunnerPersistBeforeRunJob(t *testing.T) {
	tests := []struct {
		name  string
		setup func(w *world) []actors.Effect // returns the effects of the step that assigns
	}{
		{"runner first, then commit", func(w *world) []actors.Effect {
			w.addRunner("r1", 7)
			return w.observe("main", "", commit(1))
		}},
		{"commit first, then runner", func(w *world) []actors.Effect {
			w.observe("main", "", commit(1))
			return w.addRunner("r1", 7)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, dispatcher.DefaultConfig())
			w.addObserver(obsAddr)

			fx := tt.setup(w)

			runs := sendsTo[*messages.RunJob](fx, runnerAddr("r1"))
			require.Len(t, runs, 1)
			run := runs[0]
			assert.EqualValues(t, 1, run.Job.Id)
			assert.Equal(t, commit(1), run.Job.Commit)
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

	fx := w.observe("main", "", commit(1), commit(2))
	assert.Equal(t, []string{"1/1->r1@1", "2/1->r2@1"}, runJobs(fx))

	fx = w.observe("main", commit(2), commit(3))
	assert.Empty(t, runJobs(fx), "both runners are busy")
	assert.EqualValues(t, 1, w.queued())
	assert.Equal(t, messages.JobState_JOB_STATE_QUEUED, w.job(3).State)

	w.advance(time.Second)
	fx = w.finish("r2", 1, 2, 1, messages.Status_STATUS_PASSED)
	assert.Equal(t, []string{"3/1->r2@1"}, runJobs(fx), "the runner that became idle gets the queued job")
	assert.EqualValues(t, 0, w.queued())
}

// --- JobFinished ---

func TestJobFinishedRecordsResultOnce(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addReporter()
	w.addRunner("r1", 1)
	w.observe("main", "", commit(1))
	w.advance(5 * time.Second)
	w.heartbeat("r1", 1, 1, ref(1, 1))

	fx := w.finish("r1", 1, 1, 1, messages.Status_STATUS_FAILED)

	jobs := persistedJobs(fx)
	require.Len(t, jobs, 1)
	assert.Equal(t, messages.JobState_JOB_STATE_DONE, jobs[0].State)
	require.NotNil(t, jobs[0].Result)
	assert.Equal(t, messages.Status_STATUS_FAILED, jobs[0].Result.Status)
	assert.Equal(t, "r1", jobs[0].Result.RunnerId)
	assert.EqualValues(t, 1, jobs[0].Result.Attempt)
	assert.Equal(t, commit(1), jobs[0].Result.Job.Commit, "the dispatcher's view of the job, not the runner's")

	recorded := sendsTo[*messages.ResultRecorded](fx, repAddr)
	require.Len(t, recorded, 1)
	assert.True(t, proto.Equal(jobs[0].Result, recorded[0].Result))

	acks := sendsTo[*messages.JobFinishedAck](fx, runnerAddr("r1"))
	require.Len(t, acks, 1)
	assert.True(t, acks[0].Recorded)
	assert.True(t, proto.Equal(ref(1, 1), acks[0].Ref))

	persistAt := firstIndex(fx, isPersistOf(1))
	assert.Less(t, persistAt, firstIndex(fx, isSendOf[*messages.ResultRecorded]()))
	assert.Less(t, persistAt, firstIndex(fx, isSendOf[*messages.JobFinishedAck]()))
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterRecorded))
	assert.Equal(t, "idle", w.runner("r1").State)

	// The runner did not get the ack and sends the outcome again.
	fx = w.finish("r1", 1, 1, 1, messages.Status_STATUS_FAILED)
	assert.Empty(t, persisted(fx), "no second record")
	assert.Empty(t, sends[*messages.ResultRecorded](fx))
	acks = sendsTo[*messages.JobFinishedAck](fx, runnerAddr("r1"))
	require.Len(t, acks, 1)
	assert.True(t, acks[0].Recorded, "a duplicate of what was recorded is acknowledged as recorded")
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterRecorded))
	assert.EqualValues(t, 0, w.d.Counter(dispatcher.CounterStale))
}

func TestDuplicateJobFinishedAfterResultForwarded(t *testing.T) {
	// Once the reporter acknowledged a result the job leaves memory; a late
	// duplicate JobFinished (the runner missed its ack) is still the recorded
	// result, not a stale one.
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addReporter()
	w.addRunner("r1", 1)
	w.observe("main", "", commit(1))
	w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	w.step(repAddr, &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: commit(1), Build: 1})

	w.advance(time.Second)
	fx := w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)

	acks := sendsTo[*messages.JobFinishedAck](fx, runnerAddr("r1"))
	require.Len(t, acks, 1)
	assert.Empty(t, persisted(fx))
	assert.EqualValues(t, 0, w.d.Counter(dispatcher.CounterStale), "a duplicate is not a stale result")
	assert.True(t, acks[0].Recorded, "a duplicate of what was recorded is acknowledged as recorded")
}

// A JobFinished for the recorded attempt from another incarnation of the
// same runner is not the recorded result: it is stale, and its ack does not
// claim it was recorded, before and after the job left memory.
func TestDuplicateJobFinishedFromAnotherIncarnationIsStale(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addReporter()
	w.addRunner("r1", 2)
	w.observe("main", "", commit(1))
	w.finish("r1", 2, 1, 1, messages.Status_STATUS_PASSED)

	for _, when := range []string{"recorded", "forwarded"} {
		if when == "forwarded" {
			w.step(repAddr, &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: commit(1), Build: 1})
		}
		stale := w.d.Counter(dispatcher.CounterStale)
		fx := w.finish("r1", 1, 1, 1, messages.Status_STATUS_FAILED)
		acks := sendsTo[*messages.JobFinishedAck](fx, runnerAddr("r1"))
		require.Len(t, acks, 1, when)
		assert.False(t, acks[0].Recorded, "%s: an older incarnation's outcome acknowledged as recorded", when)
		assert.Empty(t, persisted(fx), when)
		assert.Equal(t, stale+1, w.d.Counter(dispatcher.CounterStale), when)
	}
}

func TestResultFromSupersededAttemptIgnored(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addReporter()
	w.addRunner("r1", 1)
	w.addRunner("r2", 1)
	w.observe("main", "", commit(1))
	require.Equal(t, "r1", w.job(1).RunnerId)

	w.advance(time.Second)
	fx := w.step("", actors.PeerTerminated{Addr: runnerAddr("r1"), Reason: "connection closed"})
	require.Equal(t, []string{"1/2->r2@1"}, runJobs(fx))

	cases := []struct {
		name string
		fx   func() []actors.Effect
	}{
		{"from the lost runner", func() []actors.Effect { return w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED) }},
		{"from the lost runner once it registered again", func() []actors.Effect {
			w.addRunner("r1", 1, ref(1, 1))
			return w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
		}},
		{"attempt 1 claimed by the current runner", func() []actors.Effect {
			return w.finish("r2", 1, 1, 1, messages.Status_STATUS_PASSED)
		}},
	}
	// The cases run in order on one world: each builds on the one before.
	for i, tc := range cases {
		fx := tc.fx()
		assert.Empty(t, persisted(fx), "%s: nothing recorded", tc.name)
		assert.Empty(t, sends[*messages.ResultRecorded](fx), tc.name)
		acks := sends[*messages.JobFinishedAck](fx)
		require.Len(t, acks, 1, tc.name)
		assert.False(t, acks[0].Recorded, tc.name)
		assert.EqualValues(t, i+1, w.d.Counter(dispatcher.CounterStale), tc.name)
		assert.Equal(t, messages.JobState_JOB_STATE_RUNNING, w.job(1).State, tc.name)
		assert.EqualValues(t, 2, w.job(1).Attempt, tc.name)
	}

	fx = w.finish("r2", 1, 1, 2, messages.Status_STATUS_PASSED)
	require.Len(t, sends[*messages.ResultRecorded](fx), 1, "the current attempt's result is recorded")
	assert.EqualValues(t, 2, sends[*messages.ResultRecorded](fx)[0].Result.Attempt)
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterRecorded))
}

// --- Lost runners ---

func TestLostRunnerJobRequeuedAtFrontAndReassigned(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.addRunner("r2", 1)
	fx := w.observe("main", "", commit(1), commit(2), commit(3))
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
	w.observe("main", "", commit(1))
	require.Equal(t, "r1", w.job(1).RunnerId)

	// r2 keeps heartbeating; r1 falls silent.
	for i := 1; i <= 3; i++ {
		w.advance(time.Second)
		w.heartbeat("r2", 1, uint64(i))
		fx := w.tick()
		require.Empty(t, runJobs(fx), "at %s r1 is not dead yet", w.now.Sub(t0))
	}
	require.Equal(t, w.now, t0.Add(cfg.DeadAfter))
	assert.NotNil(t, w.runner("r1"), "exactly DeadAfter without a heartbeat is not yet dead")

	w.advance(time.Millisecond)
	fx := w.tick()
	assert.Contains(t, fx, actors.Effect(actors.Unwatch{Addr: runnerAddr("r1")}))
	assert.Nil(t, w.runner("r1"))
	assert.Equal(t, []string{"1/2->r2@1"}, runJobs(fx))
	assert.Less(t, firstIndex(fx, isPersistOf(1)), firstIndex(fx, isSendOf[*messages.RunJob]()))

	// The presumed-dead runner's heartbeat is answered "unknown": it must register again.
	fx = w.heartbeat("r1", 1, 9, ref(1, 1))
	acks := sends[*messages.HeartbeatAck](fx)
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
	w.observe("main", "", commit(1))

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
	assert.Len(t, sendsTo[*messages.ResultRecorded](all, repAddr), 1, "exactly one result")
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
	w.observe("main", "", commit(1))

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
	w.observe("main", "", commit(1))
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

// --- Registration and incarnations ---

func TestRunnerRegistrationRefused(t *testing.T) {
	tests := []struct {
		name       string
		token      string
		msg        *messages.RegisterRunner
		wantReason []string
	}{
		{"protocol version too new", "",
			&messages.RegisterRunner{RunnerId: "r1", Incarnation: 1, ProtocolVersion: 99},
			[]string{"99", "[1]"}},
		{"protocol version missing", "",
			&messages.RegisterRunner{RunnerId: "r1", Incarnation: 1},
			[]string{"protocol version 0", "[1]"}},
		{"wrong token", "s3cret",
			&messages.RegisterRunner{RunnerId: "r1", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion, Token: "guess"},
			[]string{"token"}},
		{"missing token", "s3cret",
			&messages.RegisterRunner{RunnerId: "r1", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion},
			[]string{"token"}},
		{"empty runner id", "",
			&messages.RegisterRunner{Incarnation: 1, ProtocolVersion: messages.ProtocolVersion},
			[]string{"empty runner id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := dispatcher.DefaultConfig()
			cfg.Token = tt.token
			w := newWorld(t, cfg)

			fx := w.step(runnerAddr("r1"), tt.msg)

			regs := sendsTo[*messages.RunnerRegistered](fx, runnerAddr("r1"))
			require.Len(t, regs, 1)
			assert.False(t, regs[0].Accepted)
			for _, want := range tt.wantReason {
				assert.Contains(t, regs[0].Reason, want)
			}
			assert.Equal(t, messages.SupportedVersions, regs[0].SupportedVersions)
			assert.Empty(t, effectsOf[actors.Watch](fx))
			assert.Empty(t, w.d.Status().Runners)
			assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterRejected))
		})
	}

	t.Run("right token accepted with the timers", func(t *testing.T) {
		cfg := dispatcher.DefaultConfig()
		cfg.Token = "s3cret"
		w := newWorld(t, cfg)
		fx := w.step(runnerAddr("r1"), &messages.RegisterRunner{RunnerId: "r1", Incarnation: 1,
			ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"})
		regs := sends[*messages.RunnerRegistered](fx)
		require.Len(t, regs, 1)
		assert.True(t, regs[0].Accepted)
		assert.EqualValues(t, 1000, regs[0].HeartbeatMs)
		assert.EqualValues(t, 3000, regs[0].DeadAfterMs)
		assert.EqualValues(t, 2000, regs[0].LeaseMs)
		assert.Contains(t, fx, actors.Effect(actors.Watch{Addr: runnerAddr("r1")}))
	})
}

func TestOlderIncarnationRefused(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addRunner("r1", 5)

	fx := w.step(runnerAddr("r1"), &messages.RegisterRunner{RunnerId: "r1", Incarnation: 4, ProtocolVersion: messages.ProtocolVersion})

	regs := sends[*messages.RunnerRegistered](fx)
	require.Len(t, regs, 1)
	assert.False(t, regs[0].Accepted)
	assert.Contains(t, regs[0].Reason, "older")
	assert.EqualValues(t, 5, w.runner("r1").Incarnation, "the registered incarnation stays")
}

func TestNewerIncarnationReplacesOldAndRequeuesItsJob(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	oldAddr, newAddr := runnerAddr("r1"), actors.NewAddr("10.0.0.2:8900", "r1")
	w.addRunnerAt(oldAddr, "r1", 1)
	w.observe("main", "", commit(1))
	require.EqualValues(t, 1, w.job(1).RunnerIncarnation)

	w.advance(time.Second)
	fx := w.addRunnerAt(newAddr, "r1", 2)

	assert.Contains(t, fx, actors.Effect(actors.Unwatch{Addr: oldAddr}))
	assert.Contains(t, fx, actors.Effect(actors.Watch{Addr: newAddr}))
	runs := sendsTo[*messages.RunJob](fx, newAddr)
	require.Len(t, runs, 1, "the job is requeued and handed to the new incarnation")
	assert.EqualValues(t, 2, runs[0].Attempt)
	assert.EqualValues(t, 2, runs[0].Incarnation)
	assert.EqualValues(t, 2, w.runner("r1").Incarnation)
	assert.Equal(t, string(newAddr), w.runner("r1").Address)

	// The old incarnation's result is stale.
	fx = w.step(oldAddr, &messages.JobFinished{RunnerId: "r1", Incarnation: 1,
		Result: &messages.Result{Job: &messages.Job{Id: 1}, Attempt: 1, Status: messages.Status_STATUS_PASSED}})
	assert.Empty(t, persisted(fx))
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterStale))
}

func TestHeartbeatFromOlderIncarnationChangesNothing(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	w := newWorld(t, cfg)
	w.addRunner("r1", 1)
	w.addRunner("r1", 2)

	for i := 1; i <= 3; i++ {
		w.advance(time.Second)
		fx := w.heartbeat("r1", 1, uint64(i))
		assert.Empty(t, sends[*messages.HeartbeatAck](fx), "an older incarnation is not answered")
		w.tick()
	}
	assert.EqualValues(t, 3, w.d.Counter(dispatcher.CounterStaleMessages))
	require.NotNil(t, w.runner("r1"))
	assert.Equal(t, t0.UnixMilli(), w.runner("r1").LastHeartbeatUnixMs, "liveness not renewed by the old incarnation")

	w.advance(time.Millisecond)
	w.tick()
	assert.Nil(t, w.runner("r1"), "incarnation 2 never heartbeated: it is dead after DeadAfter")
}

// --- Heartbeats ---

func TestHeartbeatNotListingAssignedJobAfterStartGrace(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	w := newWorld(t, cfg)
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.addRunner("r2", 1)
	w.observe("main", "", commit(1))
	require.Equal(t, "r1", w.job(1).RunnerId)

	// r1 heartbeats without the job it was sent, at these times after the assignment.
	tests := []struct {
		at       time.Duration
		requeued bool
	}{
		{at: time.Second, requeued: false},                          // within StartGrace: RunJob may still be on its way
		{at: cfg.StartGrace, requeued: false},                       // exactly StartGrace
		{at: cfg.StartGrace + 100*time.Millisecond, requeued: true}, // lost in transit
	}
	seq := uint64(0)
	for _, tt := range tests {
		w.now = t0.Add(tt.at)
		seq++
		w.heartbeat("r2", 1, seq)
		fx := w.heartbeat("r1", 1, seq)
		acks := sends[*messages.HeartbeatAck](fx)
		require.Len(t, acks, 1)
		assert.Empty(t, acks[0].Valid)
		if !tt.requeued {
			assert.Empty(t, persisted(fx), "at %s", tt.at)
			assert.Equal(t, "r1", w.job(1).RunnerId)
			continue
		}
		jobs := persistedJobs(fx)
		require.NotEmpty(t, jobs, "at %s", tt.at)
		assert.Contains(t, jobs[0].LastError, "never started")
		assert.Equal(t, []string{"1/2->r2@1"}, runJobs(fx), "the longest idle runner gets it")
		assert.Equal(t, "idle", w.runner("r1").State)
	}
}

func TestHeartbeatListingJobRenewsIt(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.observe("main", "", commit(1))

	for i := 1; i <= 10; i++ {
		w.advance(time.Second)
		fx := w.heartbeat("r1", 1, uint64(i), ref(1, 1), ref(99, 1))
		acks := sends[*messages.HeartbeatAck](fx)
		require.Len(t, acks, 1)
		assert.EqualValues(t, i, acks[0].Seq)
		require.Len(t, acks[0].Valid, 1, "only the assigned attempt is valid")
		assert.True(t, proto.Equal(ref(1, 1), acks[0].Valid[0]))
		assert.Empty(t, persisted(w.tick()))
	}
	assert.Equal(t, "r1", w.job(1).RunnerId)
	assert.EqualValues(t, 1, w.job(1).Attempt)
}

// --- Restart recovery ---

func runningRecord(id int64, runner string, inc int64, attempt int32) *messages.JobRecord {
	return &messages.JobRecord{
		Job:   &messages.Job{Id: id, Repo: repoURL, RepoName: repoName, Commit: commit(int(id)), Branches: []string{"main"}, Build: 1},
		State: messages.JobState_JOB_STATE_RUNNING, Attempt: attempt, RunnerId: runner, RunnerIncarnation: inc,
		AssignedUnixMs: t0.Add(-10 * time.Second).UnixMilli(),
	}
}

func recovered(t *testing.T, jobs ...*messages.JobRecord) *world {
	t.Helper()
	d := dispatcher.New(dispatcher.DefaultConfig())
	fx := d.Recover(t0, dispatcher.Durable{Jobs: jobs, MaxID: 10})
	require.Len(t, effectsOf[actors.Note](fx), 1)
	return &world{t: t, d: d, now: t0}
}

func TestRecoveredRunningJobAdoptedByItsRunner(t *testing.T) {
	w := recovered(t, runningRecord(7, "r1", 5, 1))

	w.advance(500 * time.Millisecond)
	fx := w.addRunner("r1", 5, ref(7, 1))

	jobs := persistedJobs(fx)
	require.Len(t, jobs, 1)
	assert.Equal(t, messages.JobState_JOB_STATE_RUNNING, jobs[0].State, "adopted, not requeued")
	assert.Empty(t, runJobs(fx))
	assert.Empty(t, sends[*messages.CancelJob](fx))
	assert.Equal(t, "busy", w.runner("r1").State)
	assert.EqualValues(t, 7, w.runner("r1").Job.JobId)

	for i := 1; i <= 5; i++ {
		w.advance(time.Second)
		fx := w.heartbeat("r1", 5, uint64(i), ref(7, 1))
		require.Len(t, sends[*messages.HeartbeatAck](fx)[0].Valid, 1)
		fx = w.tick()
		assert.Empty(t, persisted(fx), "an adopted job is not requeued after DeadAfter")
	}
	assert.EqualValues(t, 1, w.job(7).Attempt)
	assert.EqualValues(t, 0, w.d.Counter(dispatcher.CounterReassigned))

	fx = w.finish("r1", 5, 7, 1, messages.Status_STATUS_PASSED)
	assert.True(t, sends[*messages.JobFinishedAck](fx)[0].Recorded)
	assert.Equal(t, messages.JobState_JOB_STATE_DONE, w.job(7).State)
}

func TestRecoveredRunningJobRequeuedWhenUnclaimedByDeadAfter(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	w := recovered(t, runningRecord(7, "r1", 5, 1))
	w.addRunner("r2", 1)

	w.now = t0.Add(cfg.DeadAfter - time.Millisecond)
	fx := w.tick()
	assert.Empty(t, persisted(fx))
	assert.Empty(t, runJobs(fx))

	w.now = t0.Add(cfg.DeadAfter)
	fx = w.tick()
	jobs := persistedJobs(fx)
	require.NotEmpty(t, jobs)
	assert.Contains(t, jobs[0].LastError, "did not come back")
	assert.Equal(t, []string{"7/2->r2@1"}, runJobs(fx))

	// The original runner turns up late still running attempt 1: it is told to stop.
	fx = w.addRunner("r1", 5, ref(7, 1))
	cancels := sendsTo[*messages.CancelJob](fx, runnerAddr("r1"))
	require.Len(t, cancels, 1)
	assert.True(t, proto.Equal(ref(7, 1), cancels[0].Ref))
	assert.Equal(t, "r2", w.job(7).RunnerId)
}

func TestRecoveredRunningJobRequeuedWhenRunnerReturnsWithoutIt(t *testing.T) {
	tests := []struct {
		name string
		inc  int64
	}{
		{"same incarnation", 5},
		{"restarted runner, newer incarnation", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := recovered(t, runningRecord(7, "r1", 5, 1))
			w.advance(time.Second)

			fx := w.addRunner("r1", tt.inc)

			jobs := persistedJobs(fx)
			require.NotEmpty(t, jobs, "requeued at once, not after DeadAfter")
			assert.Contains(t, jobs[0].LastError, "came back without it")
			assert.Equal(t, []string{fmt.Sprintf("7/2->r1@%d", tt.inc)}, runJobs(fx))
		})
	}
}

func TestRecoverKeepsQueueOrderAndJobIDs(t *testing.T) {
	queued := func(id int64) *messages.JobRecord {
		return &messages.JobRecord{Job: &messages.Job{Id: id, Repo: repoURL, Commit: commit(int(id)), Branches: []string{"main"}, Build: 1},
			State: messages.JobState_JOB_STATE_QUEUED}
	}
	d := dispatcher.New(dispatcher.DefaultConfig())
	d.Recover(t0, dispatcher.Durable{Jobs: []*messages.JobRecord{queued(5), queued(3)}, Cursors: []*messages.Cursor{{Repo: repoURL, Branch: "main", Commit: commit(5)}}, MaxID: 12})
	w := &world{t: t, d: d, now: t0}

	fx := w.addObserver(obsAddr)
	regs := sends[*messages.ObserverRegistered](fx)
	require.Len(t, regs[0].Cursors, 1, "the observer learns the durable cursor")
	assert.Equal(t, commit(5), regs[0].Cursors[0].Commit)

	fx = w.addRunner("r1", 1)
	assert.Equal(t, []string{"3/1->r1@1"}, runJobs(fx), "oldest job first")

	fx = w.observe("main", commit(5), commit(5), commit(20))
	acks := sends[*messages.CommitObservedAck](fx)
	require.Len(t, acks, 1)
	assert.Equal(t, []int64{5, 13}, acks[0].JobIds, "a recovered commit is not queued twice; new ids follow the maximum")
}

// --- Reporter ---

func TestResultsWaitForReporterThenForwardedAndRetried(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	w := newWorld(t, cfg)
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.observe("main", "", commit(1), commit(2))
	w.advance(time.Second)
	fx := w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	fx = append(fx, w.finish("r1", 1, 2, 1, messages.Status_STATUS_FAILED)...)
	w.advance(time.Second)
	fx = append(fx, w.tick()...)
	assert.Empty(t, sends[*messages.ResultRecorded](fx), "no reporter: results wait")
	assert.Equal(t, messages.JobState_JOB_STATE_DONE, w.job(1).State)
	assert.Equal(t, messages.JobState_JOB_STATE_DONE, w.job(2).State)

	fx = w.addReporter()
	assert.Contains(t, fx, actors.Effect(actors.Watch{Addr: repAddr}))
	var forwarded []int64
	for _, m := range sendsTo[*messages.ResultRecorded](fx, repAddr) {
		forwarded = append(forwarded, m.Result.Job.Id)
	}
	assert.Equal(t, []int64{1, 2}, forwarded, "every pending result, in job order")

	fx = w.step(repAddr, &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: commit(1), Build: 1})
	jobs := persistedJobs(fx)
	require.Len(t, jobs, 1)
	assert.EqualValues(t, 1, jobs[0].Job.Id)
	assert.True(t, jobs[0].Forwarded)
	assert.Nil(t, w.job(1), "a forwarded result leaves memory")
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterResultsAcked))

	fx = w.step(repAddr, &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: commit(1), Build: 1})
	assert.Empty(t, fx, "a duplicate ack changes nothing")
	fx = w.step(repAddr, &messages.ResultRecordedAck{JobId: 2, Repo: repoURL, Commit: commit(1), Build: 1})
	assert.Empty(t, fx, "an ack naming another commit changes nothing")

	w.advance(cfg.ResultRetry - time.Millisecond)
	assert.Empty(t, sends[*messages.ResultRecorded](w.tick()))
	w.advance(time.Millisecond)
	fx = w.tick()
	resent := sendsTo[*messages.ResultRecorded](fx, repAddr)
	require.Len(t, resent, 1, "only the unacknowledged result is sent again")
	assert.EqualValues(t, 2, resent[0].Result.Job.Id)

	// New jobs stream their logs to the reporter.
	fx = w.observe("main", commit(2), commit(3))
	runs := sends[*messages.RunJob](fx)
	require.Len(t, runs, 1)
	assert.Equal(t, string(repAddr), runs[0].LogSink)

	// Reporter lost: results wait again.
	w.step("", actors.PeerTerminated{Addr: repAddr})
	w.advance(time.Minute)
	assert.Empty(t, sends[*messages.ResultRecorded](w.tick()))
}

func TestReporterRegistrationRefused(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	cfg.Token = "s3cret"
	w := newWorld(t, cfg)
	for _, m := range []*messages.RegisterReporter{
		{ProtocolVersion: 42, Token: "s3cret"},
		{ProtocolVersion: messages.ProtocolVersion, Token: "nope"},
	} {
		fx := w.step(repAddr, m)
		regs := sends[*messages.ReporterRegistered](fx)
		require.Len(t, regs, 1)
		assert.False(t, regs[0].Accepted)
		assert.NotEmpty(t, regs[0].Reason)
		assert.Empty(t, effectsOf[actors.Watch](fx))
	}
	assert.Empty(t, w.d.Status().Reporter)
}

// --- Notify ---

func TestNotifyPollsEveryObserver(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obs2Addr)
	w.addObserver(obsAddr)

	fx := w.step(cliAddr, &messages.Notify{Repo: repoName, Branch: "main"})

	var to []actors.Addr
	for _, e := range effectsOf[actors.Send](fx) {
		if m, ok := e.Msg.(*messages.PollNow); ok {
			to = append(to, e.To)
			assert.Equal(t, repoName, m.Repo)
			assert.Equal(t, "main", m.Branch)
		}
	}
	assert.Equal(t, []actors.Addr{obsAddr, obs2Addr}, to, "every observer, in a stable order")
	acks := sendsTo[*messages.NotifyAck](fx, cliAddr)
	require.Len(t, acks, 1)
	assert.EqualValues(t, 2, acks[0].Observers)

	w.step("", actors.PeerTerminated{Addr: obs2Addr})
	fx = w.step(cliAddr, &messages.Notify{})
	assert.Len(t, sends[*messages.PollNow](fx), 1, "a gone observer is not told")
	assert.EqualValues(t, 1, sends[*messages.NotifyAck](fx)[0].Observers)
}

func TestNotifyWithWrongTokenRefused(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	cfg.Token = "s3cret"
	w := newWorld(t, cfg)
	w.step(obsAddr, &messages.RegisterObserver{ObserverId: "o", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"})

	fx := w.step(cliAddr, &messages.Notify{Repo: repoName, Token: "nope"})
	assert.Empty(t, sends[*messages.PollNow](fx))
	require.Len(t, sends[*messages.NotifyAck](fx), 1)
	assert.EqualValues(t, -1, sends[*messages.NotifyAck](fx)[0].Observers)

	fx = w.step(cliAddr, &messages.Notify{Repo: repoName, Token: "s3cret"})
	assert.Len(t, sends[*messages.PollNow](fx), 1)
}

// --- Bugs found across a dispatcher restart ---

// After a dispatcher restart (New+Recover; also an actor restart after a
// panic, which keeps the PID so runners get no PeerTerminated), a
// JobFinished from the runner the durable record names may arrive before
// that runner re-registers. It must not be dropped: the dispatcher asks the
// runner to register (HeartbeatAck.unknown), the runner reports the finished
// attempt in its registration, is re-adopted, and sends the outcome again.
func TestResultReportedBeforeReRegistrationAfterRestart(t *testing.T) {
	w := recovered(t, runningRecord(7, "r1", 5, 3))
	w.addReporter()

	w.advance(100 * time.Millisecond)
	fx := w.finish("r1", 5, 7, 3, messages.Status_STATUS_PASSED)
	assert.Empty(t, sends[*messages.JobFinishedAck](fx), "no ack: the runner must keep its outcome")
	unknown := sends[*messages.HeartbeatAck](fx)
	require.Len(t, unknown, 1)
	assert.True(t, unknown[0].Unknown, "the runner is asked to register")
	assert.Empty(t, persisted(fx))

	w.advance(100 * time.Millisecond)
	w.addRunner("r1", 5, ref(7, 3))
	fx = w.finish("r1", 5, 7, 3, messages.Status_STATUS_PASSED)
	acks := sends[*messages.JobFinishedAck](fx)
	require.Len(t, acks, 1)
	assert.True(t, acks[0].Recorded)
	require.NotNil(t, w.job(7))
	require.NotNil(t, w.job(7).Result)
	assert.Equal(t, messages.Status_STATUS_PASSED, w.job(7).Result.Status, "the build passed; its result must be the one recorded")
}

func TestObserverUnknownAfterRestartIsToldToRegister(t *testing.T) {
	// After a dispatcher restart that keeps the PID (an actor restart after a
	// panic) the observer gets no PeerTerminated; the fresh core must tell it
	// to register again rather than ignore it.
	d := dispatcher.New(dispatcher.DefaultConfig())
	d.Recover(t0, dispatcher.Durable{Cursors: []*messages.Cursor{{Repo: repoURL, Branch: "main", Commit: commit(1)}}, MaxID: 1})
	w := &world{t: t, d: d, now: t0}

	fx := w.observe("main", commit(1), commit(2))

	assert.NotEmpty(t, sendsTo[proto.Message](fx, obsAddr),
		"the observer must hear something (e.g. an 'unknown, register again' answer, like HeartbeatAck.unknown)")
}

// Proto.Actor delivers local messages by pointer (volt up runs every role in
// one process), so a message must not share what the core mutates later.
func TestSentMessagesDoNotAliasCoreState(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addReporter()
	w.addRunner("r1", 1)
	fx := w.observe("main", "", commit(1))
	runs := sends[*messages.RunJob](fx)
	require.Len(t, runs, 1)
	sentRun := proto.Clone(runs[0])
	fx = w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	recs := sends[*messages.ResultRecorded](fx)
	require.Len(t, recs, 1)
	sentResult := proto.Clone(recs[0])

	w.observe("release", "", commit(1))

	assert.True(t, proto.Equal(sentRun, runs[0]), "RunJob changed after it was sent: %v", runs[0].Job.Branches)
	assert.True(t, proto.Equal(sentResult, recs[0]), "ResultRecorded changed after it was sent")
}

// --- Identity: the sender a connection proved, never the one a message claims ---

var (
	unauthenticated = actors.Identity{}
	mallory         = actors.Identity{Role: actors.RoleRunner, Name: "mallory"}
	asR2            = actors.Identity{Role: actors.RoleRunner, Name: "r2"}
	anObserver      = actors.Identity{Role: actors.RoleObserver, Name: "obs-host"}
	aReporter       = actors.Identity{Role: actors.RoleReporter, Name: "rep-host"}
	anAdmin         = actors.Identity{Role: actors.RoleAdmin, Name: "ops"}
	aNotify         = actors.Identity{Role: actors.RoleNotify, Name: "git-host"}
	aDispatcher     = actors.Identity{Role: actors.RoleDispatcher, Name: "other"}
)

// busyWorld has an observer, a reporter, runner r1 (incarnation 1) running
// job 2's attempt 1, job 3 queued and one result (job 1's, of commit 3)
// awaiting the reporter's acknowledgement: something for every forgery to
// aim at.
func busyWorld(t *testing.T) *world {
	cfg := dispatcher.DefaultConfig()
	cfg.Epoch = 42
	cfg.Token = "s3cret"
	w := newWorld(t, cfg)
	w.step(obsAddr, &messages.RegisterObserver{ObserverId: "o", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret",
		Repos: []*messages.WatchedRepo{{Url: repoURL, Name: repoName, Branches: []string{"main"}}}})
	w.step(repAddr, &messages.RegisterReporter{ReporterId: "rep", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"})
	w.step(runnerAddr("r1"), &messages.RegisterRunner{RunnerId: "r1", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"})
	w.observe("main", "", commit(3))
	w.advance(time.Second)
	w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	w.observe("main", commit(3), commit(1), commit(2))
	require.Equal(t, messages.JobState_JOB_STATE_DONE, w.job(1).State)
	require.Equal(t, messages.JobState_JOB_STATE_RUNNING, w.job(2).State)
	require.Equal(t, messages.JobState_JOB_STATE_QUEUED, w.job(3).State)
	return w
}

// TestForgeriesChangeNothingAndGetNoAnswer: every message from an identity
// that may not send it (the wrong role, the right role with another name,
// or no certificate at all) changes no state, gets no answer and leaks
// nothing, is counted and noted with the identity, type and reason, even
// when the claimed sender and every id in it are the real ones.
func TestForgeriesChangeNothingAndGetNoAnswer(t *testing.T) {
	r1 := runnerAddr("r1")
	running := &messages.JobFinished{RunnerId: "r1", Incarnation: 1, Result: &messages.Result{
		Job: &messages.Job{Id: 2}, Attempt: 1, Status: messages.Status_STATUS_PASSED}}
	observed := func() any {
		return dispatcher.Observed{Msg: &messages.CommitObserved{ObserverId: "o", Seq: 9, Repo: repoURL, RepoName: repoName,
			Branch: "main", Previous: commit(2), Commits: []string{commit(66)}}}
	}
	cases := []struct {
		name string
		who  actors.Identity
		addr actors.Addr
		msg  func() any
	}{
		{"register as r1 unauthenticated", unauthenticated, r1, func() any {
			return &messages.RegisterRunner{RunnerId: "r1", Incarnation: 2, ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"register as r1 with another runner's certificate", mallory, r1, func() any {
			return &messages.RegisterRunner{RunnerId: "r1", Incarnation: 2, ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"register as r1 with an observer's certificate", anObserver, r1, func() any {
			return &messages.RegisterRunner{RunnerId: "r1", Incarnation: 2, ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"heartbeat of r1 unauthenticated", unauthenticated, r1, func() any {
			return &messages.Heartbeat{RunnerId: "r1", Incarnation: 1, Seq: 9, Running: []*messages.JobRef{ref(2, 1)}}
		}},
		{"heartbeat of r1 from r2", asR2, r1, func() any {
			return &messages.Heartbeat{RunnerId: "r1", Incarnation: 1, Seq: 9, Running: []*messages.JobRef{ref(2, 1)}}
		}},
		{"heartbeat of an unknown runner from another runner", mallory, "mallory:1/x", func() any {
			return &messages.Heartbeat{RunnerId: "r9", Incarnation: 1, Seq: 1}
		}},
		{"heartbeat of r1 with a dispatcher's certificate", aDispatcher, r1, func() any {
			return &messages.Heartbeat{RunnerId: "r1", Incarnation: 1, Seq: 9}
		}},
		{"r1's result unauthenticated", unauthenticated, r1, func() any { return proto.Clone(running) }},
		{"r1's result from r2", asR2, r1, func() any { return proto.Clone(running) }},
		{"r1's result from another runner", mallory, r1, func() any { return proto.Clone(running) }},
		{"r1's result with an observer's certificate", anObserver, r1, func() any { return proto.Clone(running) }},
		{"r1's result with an admin's certificate", anAdmin, r1, func() any { return proto.Clone(running) }},
		{"r1 stopping unauthenticated", unauthenticated, r1, func() any {
			return &messages.RunnerStopping{RunnerId: "r1", Incarnation: 1, Released: []*messages.JobRef{ref(2, 1)}}
		}},
		{"r1 stopping from another runner", mallory, r1, func() any {
			return &messages.RunnerStopping{RunnerId: "r1", Incarnation: 1}
		}},
		{"r1 stopping with the reporter's certificate", aReporter, r1, func() any {
			return &messages.RunnerStopping{RunnerId: "r1", Incarnation: 1}
		}},
		{"register an observer unauthenticated", unauthenticated, "evil:1/observer", func() any {
			return &messages.RegisterObserver{ObserverId: "o2", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"register an observer with a runner's certificate", mallory, obsAddr, func() any {
			return &messages.RegisterObserver{ObserverId: "o", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"register an observer with a notify certificate", aNotify, obsAddr, func() any {
			return &messages.RegisterObserver{ObserverId: "o", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"commits unauthenticated", unauthenticated, obsAddr, observed},
		{"commits with a runner's certificate", mallory, obsAddr, observed},
		{"commits with an admin's certificate", anAdmin, obsAddr, observed},
		{"raw commits with a notify certificate", aNotify, obsAddr, func() any {
			return &messages.CommitObserved{ObserverId: "o", Seq: 9, Repo: repoURL, Branch: "main", Commits: []string{commit(66)}}
		}},
		{"register a reporter unauthenticated", unauthenticated, "evil:1/reporter", func() any {
			return &messages.RegisterReporter{ReporterId: "evil", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"register a reporter with an observer's certificate", anObserver, "evil:1/reporter", func() any {
			return &messages.RegisterReporter{ReporterId: "evil", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"result acknowledged unauthenticated", unauthenticated, repAddr, func() any {
			return &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: commit(3), Build: 1}
		}},
		{"result acknowledged by a runner", mallory, repAddr, func() any {
			return &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: commit(3), Build: 1}
		}},
		{"notify unauthenticated", unauthenticated, cliAddr, func() any { return &messages.Notify{Token: "s3cret"} }},
		{"notify from a runner", mallory, cliAddr, func() any { return &messages.Notify{Token: "s3cret"} }},
		{"status unauthenticated", unauthenticated, cliAddr, func() any { return &messages.StatusRequest{Token: "s3cret"} }},
		{"status from a runner", mallory, cliAddr, func() any { return &messages.StatusRequest{Token: "s3cret"} }},
		{"status from an observer", anObserver, cliAddr, func() any { return &messages.StatusRequest{} }},
		{"status from a notify certificate", aNotify, cliAddr, func() any { return &messages.StatusRequest{} }},
		{"cancel unauthenticated", unauthenticated, cliAddr, func() any { return &messages.CancelRequest{JobId: 2, Token: "s3cret"} }},
		{"cancel from a runner", asR2, cliAddr, func() any { return &messages.CancelRequest{JobId: 3, Token: "s3cret"} }},
		{"cancel from a notify certificate", aNotify, cliAddr, func() any { return &messages.CancelRequest{JobId: 3, Token: "s3cret"} }},
		{"rebuild unauthenticated", unauthenticated, cliAddr, func() any {
			return dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: commit(3), Token: "s3cret"},
				Prev: &messages.Job{Id: 1, Repo: repoURL, Commit: commit(3), Build: 1}}
		}},
		{"rebuild from an observer", anObserver, cliAddr, func() any {
			return dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: commit(3), Token: "s3cret"},
				Prev: &messages.Job{Id: 1, Repo: repoURL, Commit: commit(3), Build: 1}}
		}},
		{"a message no one sends the dispatcher, from the dispatcher's own certificate", aDispatcher, r1, func() any {
			return &messages.RunJob{Job: &messages.Job{Id: 3}, Attempt: 1, RunnerId: "r1", Incarnation: 1}
		}},
		{"a tick from the network", mallory, r1, func() any { return actors.Tick{} }},
		{"r1 terminated, said by r2", asR2, r1, func() any { return actors.PeerTerminated{Addr: r1} }},
		{"r1 terminated, said by no one", unauthenticated, "", func() any { return actors.PeerTerminated{Addr: r1} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := busyWorld(t)
			w.advance(2500 * time.Millisecond) // r1 is near its deadline: a forged heartbeat would matter
			before, status := w.d.Digest(), w.d.Status()
			refused := w.d.Counter(dispatcher.CounterForgedRefused)

			fx := w.stepAs(actors.From{Addr: tc.addr, Who: tc.who}, tc.msg())

			require.Len(t, fx, 1, "a note and nothing else: %v", fx)
			note, ok := fx[0].(actors.Note)
			require.True(t, ok, "%T", fx[0])
			assert.Equal(t, slog.LevelWarn, note.Level)
			assert.Contains(t, fmt.Sprint(note.Args...), identityLabel(tc.who), "the note names the identity")
			assert.Contains(t, fmt.Sprint(note.Args...), actors.TypeName(tc.msg()), "the note names the message type")
			assert.Equal(t, before, w.d.Digest(), "no state changed")
			after := w.d.Status()
			delete(after.Counters, dispatcher.CounterForgedRefused)
			assert.True(t, proto.Equal(status, after), "the status is the same")
			assert.Equal(t, refused+1, w.d.Counter(dispatcher.CounterForgedRefused), "the refusal is counted")
		})
	}
}

func identityLabel(id actors.Identity) string {
	if id.Role == "" {
		return "unauthenticated"
	}
	return id.String()
}

// TestRightfulSendersAreServed: the same messages from who may send them.
func TestRightfulSendersAreServed(t *testing.T) {
	cases := []struct {
		name string
		who  actors.Identity
		msg  any
		want func(*testing.T, []actors.Effect)
	}{
		{"status for the reporter (the web UI)", aReporter, &messages.StatusRequest{}, func(t *testing.T, fx []actors.Effect) {
			assert.Len(t, sends[*messages.StatusReply](fx), 1)
		}},
		{"status for admin", anAdmin, &messages.StatusRequest{}, func(t *testing.T, fx []actors.Effect) {
			assert.Len(t, sends[*messages.StatusReply](fx), 1)
		}},
		{"status for this process", actors.Local, &messages.StatusRequest{}, func(t *testing.T, fx []actors.Effect) {
			assert.Len(t, sends[*messages.StatusReply](fx), 1)
		}},
		{"notify from an observer (its webhook)", anObserver, &messages.Notify{Token: "s3cret"}, func(t *testing.T, fx []actors.Effect) {
			assert.Len(t, sends[*messages.PollNow](fx), 1)
		}},
		{"notify from the reporter (the webhook)", aReporter, &messages.Notify{Token: "s3cret"}, func(t *testing.T, fx []actors.Effect) {
			assert.Len(t, sends[*messages.PollNow](fx), 1)
		}},
		{"cancel from the reporter", aReporter, &messages.CancelRequest{JobId: 3, Token: "s3cret"}, func(t *testing.T, fx []actors.Effect) {
			require.Len(t, sends[*messages.CancelReply](fx), 1)
			assert.Empty(t, sends[*messages.CancelReply](fx)[0].Error)
		}},
		{"cancel from admin still needs the token", anAdmin, &messages.CancelRequest{JobId: 3, Token: "nope"}, func(t *testing.T, fx []actors.Effect) {
			require.Len(t, sends[*messages.CancelReply](fx), 1)
			assert.Contains(t, sends[*messages.CancelReply](fx)[0].Error, "token")
			assert.Empty(t, persisted(fx))
		}},
		{"r1's heartbeat from r1", actors.Identity{Role: actors.RoleRunner, Name: "r1"},
			&messages.Heartbeat{RunnerId: "r1", Incarnation: 1, Seq: 9, Running: []*messages.JobRef{ref(2, 1)}}, func(t *testing.T, fx []actors.Effect) {
				acks := sends[*messages.HeartbeatAck](fx)
				require.Len(t, acks, 1)
				assert.EqualValues(t, 42, acks[0].Epoch, "a registered runner learns the epoch")
			}},
		{"r2 registers as itself from this process", actors.Local,
			&messages.RegisterRunner{RunnerId: "r2", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}, func(t *testing.T, fx []actors.Effect) {
				regs := sends[*messages.RunnerRegistered](fx)
				require.Len(t, regs, 1)
				assert.True(t, regs[0].Accepted)
				assert.Equal(t, []string{"3/1->r2@1 via " + string(cliAddr)}, runJobs(fx))
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := busyWorld(t)
			fx := w.stepAs(actors.From{Addr: cliAddr, Who: tc.who}, tc.msg)
			tc.want(t, fx)
			assert.Zero(t, w.d.Counter(dispatcher.CounterForgedRefused))
		})
	}
}

// TestUnknownRunnerLearnsNoEpoch: a runner the dispatcher does not know (it
// restarted) is told to register again, and nothing more: the epoch goes
// only to a registered runner.
func TestUnknownRunnerLearnsNoEpoch(t *testing.T) {
	r9 := actors.Identity{Role: actors.RoleRunner, Name: "r9"}
	w := busyWorld(t)
	fx := w.stepAs(actors.From{Addr: runnerAddr("r9"), Who: r9}, &messages.Heartbeat{RunnerId: "r9", Incarnation: 1, Seq: 1})
	acks := sends[*messages.HeartbeatAck](fx)
	require.Len(t, acks, 1)
	assert.True(t, acks[0].Unknown)
	assert.Zero(t, acks[0].Epoch, "no epoch for a runner not registered")

	r := recovered(t, runningRecord(7, "r1", 5, 3))
	fx = r.stepAs(actors.From{Addr: runnerAddr("r1"), Who: actors.Identity{Role: actors.RoleRunner, Name: "r1"}},
		&messages.JobFinished{RunnerId: "r1", Incarnation: 5, Result: &messages.Result{Job: &messages.Job{Id: 7}, Attempt: 3}})
	acks = sends[*messages.HeartbeatAck](fx)
	require.Len(t, acks, 1)
	assert.True(t, acks[0].Unknown)
	assert.Zero(t, acks[0].Epoch, "no epoch for a runner not registered")
}
