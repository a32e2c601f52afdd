package dispatcher_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
	"google.golang.org/protobuf/proto"
)

// --- JobFinished ---

func TestJobFinishedRecordsResultOnce(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addReporter()
	w.addRunner("r1", 1)
	w.observe("main", "", coretest.Commit(1))
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
	assert.Equal(t, coretest.Commit(1), jobs[0].Result.Job.Commit, "the dispatcher's view of the job, not the runner's")

	recorded := coretest.SendsTo[*messages.ResultRecorded](fx, repAddr)
	require.Len(t, recorded, 1)
	assert.True(t, proto.Equal(jobs[0].Result, recorded[0].Result))

	acks := coretest.SendsTo[*messages.JobFinishedAck](fx, runnerAddr("r1"))
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
	assert.Empty(t, coretest.Sends[*messages.ResultRecorded](fx))
	acks = coretest.SendsTo[*messages.JobFinishedAck](fx, runnerAddr("r1"))
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
	w.observe("main", "", coretest.Commit(1))
	w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	w.step(repAddr, &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: coretest.Commit(1), Build: 1})

	w.advance(time.Second)
	fx := w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)

	acks := coretest.SendsTo[*messages.JobFinishedAck](fx, runnerAddr("r1"))
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
	w.observe("main", "", coretest.Commit(1))
	w.finish("r1", 2, 1, 1, messages.Status_STATUS_PASSED)

	for _, when := range []string{"recorded", "forwarded"} {
		if when == "forwarded" {
			w.step(repAddr, &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: coretest.Commit(1), Build: 1})
		}
		stale := w.d.Counter(dispatcher.CounterStale)
		fx := w.finish("r1", 1, 1, 1, messages.Status_STATUS_FAILED)
		acks := coretest.SendsTo[*messages.JobFinishedAck](fx, runnerAddr("r1"))
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
	w.observe("main", "", coretest.Commit(1))
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
		assert.Empty(t, coretest.Sends[*messages.ResultRecorded](fx), tc.name)
		acks := coretest.Sends[*messages.JobFinishedAck](fx)
		require.Len(t, acks, 1, tc.name)
		assert.False(t, acks[0].Recorded, tc.name)
		assert.EqualValues(t, i+1, w.d.Counter(dispatcher.CounterStale), tc.name)
		assert.Equal(t, messages.JobState_JOB_STATE_RUNNING, w.job(1).State, tc.name)
		assert.EqualValues(t, 2, w.job(1).Attempt, tc.name)
	}

	fx = w.finish("r2", 1, 1, 2, messages.Status_STATUS_PASSED)
	require.Len(t, coretest.Sends[*messages.ResultRecorded](fx), 1, "the current attempt's result is recorded")
	assert.EqualValues(t, 2, coretest.Sends[*messages.ResultRecorded](fx)[0].Result.Attempt)
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterRecorded))
}

// --- Reporter ---

func TestResultsWaitForReporterThenForwardedAndRetried(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	w := newWorld(t, cfg)
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.observe("main", "", coretest.Commit(1), coretest.Commit(2))
	w.advance(time.Second)
	fx := w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	fx = append(fx, w.finish("r1", 1, 2, 1, messages.Status_STATUS_FAILED)...)
	w.advance(time.Second)
	fx = append(fx, w.tick()...)
	assert.Empty(t, coretest.Sends[*messages.ResultRecorded](fx), "no reporter: results wait")
	assert.Equal(t, messages.JobState_JOB_STATE_DONE, w.job(1).State)
	assert.Equal(t, messages.JobState_JOB_STATE_DONE, w.job(2).State)

	fx = w.addReporter()
	assert.Contains(t, fx, actors.Effect(actors.Watch{Addr: repAddr}))
	var forwarded []int64
	for _, m := range coretest.SendsTo[*messages.ResultRecorded](fx, repAddr) {
		forwarded = append(forwarded, m.Result.Job.Id)
	}
	assert.Equal(t, []int64{1, 2}, forwarded, "every pending result, in job order")

	fx = w.step(repAddr, &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: coretest.Commit(1), Build: 1})
	jobs := persistedJobs(fx)
	require.Len(t, jobs, 1)
	assert.EqualValues(t, 1, jobs[0].Job.Id)
	assert.True(t, jobs[0].Forwarded)
	assert.Nil(t, w.job(1), "a forwarded result leaves memory")
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterResultsAcked))

	fx = w.step(repAddr, &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: coretest.Commit(1), Build: 1})
	assert.Empty(t, fx, "a duplicate ack changes nothing")
	fx = w.step(repAddr, &messages.ResultRecordedAck{JobId: 2, Repo: repoURL, Commit: coretest.Commit(1), Build: 1})
	assert.Empty(t, fx, "an ack naming another commit changes nothing")

	w.advance(cfg.ResultRetry - time.Millisecond)
	assert.Empty(t, coretest.Sends[*messages.ResultRecorded](w.tick()))
	w.advance(time.Millisecond)
	fx = w.tick()
	resent := coretest.SendsTo[*messages.ResultRecorded](fx, repAddr)
	require.Len(t, resent, 1, "only the unacknowledged result is sent again")
	assert.EqualValues(t, 2, resent[0].Result.Job.Id)

	// New jobs stream their logs to the reporter.
	fx = w.observe("main", coretest.Commit(2), coretest.Commit(3))
	runs := coretest.Sends[*messages.RunJob](fx)
	require.Len(t, runs, 1)
	assert.Equal(t, string(repAddr), runs[0].LogSink)

	// Reporter lost: results wait again.
	w.step("", actors.PeerTerminated{Addr: repAddr})
	w.advance(time.Minute)
	assert.Empty(t, coretest.Sends[*messages.ResultRecorded](w.tick()))
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
		regs := coretest.Sends[*messages.ReporterRegistered](fx)
		require.Len(t, regs, 1)
		assert.False(t, regs[0].Accepted)
		assert.NotEmpty(t, regs[0].Reason)
		assert.Empty(t, coretest.EffectsOf[actors.Watch](fx))
	}
	assert.Empty(t, w.d.Status().Reporter)
}

// --- Across a dispatcher restart ---

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
	assert.Empty(t, coretest.Sends[*messages.JobFinishedAck](fx), "no ack: the runner must keep its outcome")
	unknown := coretest.Sends[*messages.HeartbeatAck](fx)
	require.Len(t, unknown, 1)
	assert.True(t, unknown[0].Unknown, "the runner is asked to register")
	assert.Empty(t, persisted(fx))

	w.advance(100 * time.Millisecond)
	w.addRunner("r1", 5, ref(7, 3))
	fx = w.finish("r1", 5, 7, 3, messages.Status_STATUS_PASSED)
	acks := coretest.Sends[*messages.JobFinishedAck](fx)
	require.Len(t, acks, 1)
	assert.True(t, acks[0].Recorded)
	require.NotNil(t, w.job(7))
	require.NotNil(t, w.job(7).Result)
	assert.Equal(t, messages.Status_STATUS_PASSED, w.job(7).Result.Status, "the build passed; its result must be the one recorded")
}

// Proto.Actor delivers local messages by pointer (volt up runs every role in
// one process), so a message must not share what the core mutates later.
func TestSentMessagesDoNotAliasCoreState(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addReporter()
	w.addRunner("r1", 1)
	fx := w.observe("main", "", coretest.Commit(1))
	runs := coretest.Sends[*messages.RunJob](fx)
	require.Len(t, runs, 1)
	sentRun := proto.Clone(runs[0])
	fx = w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	recs := coretest.Sends[*messages.ResultRecorded](fx)
	require.Len(t, recs, 1)
	sentResult := proto.Clone(recs[0])

	w.observe("release", "", coretest.Commit(1))

	assert.True(t, proto.Equal(sentRun, runs[0]), "RunJob changed after it was sent: %v", runs[0].Job.Branches)
	assert.True(t, proto.Equal(sentResult, recs[0]), "ResultRecorded changed after it was sent")
}
