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
	"google.golang.org/protobuf/proto"
)

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

			regs := coretest.SendsTo[*messages.RunnerRegistered](fx, runnerAddr("r1"))
			require.Len(t, regs, 1)
			assert.False(t, regs[0].Accepted)
			for _, want := range tt.wantReason {
				assert.Contains(t, regs[0].Reason, want)
			}
			assert.Equal(t, messages.SupportedVersions, regs[0].SupportedVersions)
			assert.Empty(t, coretest.EffectsOf[actors.Watch](fx))
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
		regs := coretest.Sends[*messages.RunnerRegistered](fx)
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

	regs := coretest.Sends[*messages.RunnerRegistered](fx)
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
	w.observe("main", "", coretest.Commit(1))
	require.EqualValues(t, 1, w.job(1).RunnerIncarnation)

	w.advance(time.Second)
	fx := w.addRunnerAt(newAddr, "r1", 2)

	assert.Contains(t, fx, actors.Effect(actors.Unwatch{Addr: oldAddr}))
	assert.Contains(t, fx, actors.Effect(actors.Watch{Addr: newAddr}))
	runs := coretest.SendsTo[*messages.RunJob](fx, newAddr)
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
		assert.Empty(t, coretest.Sends[*messages.HeartbeatAck](fx), "an older incarnation is not answered")
		w.tick()
	}
	assert.EqualValues(t, 3, w.d.Counter(dispatcher.CounterStaleMessages))
	require.NotNil(t, w.runner("r1"))
	assert.Equal(t, coretest.T0.UnixMilli(), w.runner("r1").LastHeartbeatUnixMs, "liveness not renewed by the old incarnation")

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
	w.observe("main", "", coretest.Commit(1))
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
		w.now = coretest.T0.Add(tt.at)
		seq++
		w.heartbeat("r2", 1, seq)
		fx := w.heartbeat("r1", 1, seq)
		acks := coretest.Sends[*messages.HeartbeatAck](fx)
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
	w.observe("main", "", coretest.Commit(1))

	for i := 1; i <= 10; i++ {
		w.advance(time.Second)
		fx := w.heartbeat("r1", 1, uint64(i), ref(1, 1), ref(99, 1))
		acks := coretest.Sends[*messages.HeartbeatAck](fx)
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
		Job:   &messages.Job{Id: id, Repo: repoURL, RepoName: repoName, Commit: coretest.Commit(int(id)), Branches: []string{"main"}, Build: 1},
		State: messages.JobState_JOB_STATE_RUNNING, Attempt: attempt, RunnerId: runner, RunnerIncarnation: inc,
		AssignedUnixMs: coretest.T0.Add(-10 * time.Second).UnixMilli(),
	}
}

func recovered(t *testing.T, jobs ...*messages.JobRecord) *world {
	t.Helper()
	d := dispatcher.New(dispatcher.DefaultConfig())
	fx := d.Recover(coretest.T0, dispatcher.Durable{Jobs: jobs, MaxID: 10})
	require.Len(t, coretest.EffectsOf[actors.Note](fx), 1)
	return &world{t: t, d: d, now: coretest.T0}
}

func TestRecoveredRunningJobAdoptedByItsRunner(t *testing.T) {
	w := recovered(t, runningRecord(7, "r1", 5, 1))

	w.advance(500 * time.Millisecond)
	fx := w.addRunner("r1", 5, ref(7, 1))

	jobs := persistedJobs(fx)
	require.Len(t, jobs, 1)
	assert.Equal(t, messages.JobState_JOB_STATE_RUNNING, jobs[0].State, "adopted, not requeued")
	assert.Empty(t, runJobs(fx))
	assert.Empty(t, coretest.Sends[*messages.CancelJob](fx))
	assert.Equal(t, "busy", w.runner("r1").State)
	assert.EqualValues(t, 7, w.runner("r1").Job.JobId)

	for i := 1; i <= 5; i++ {
		w.advance(time.Second)
		fx := w.heartbeat("r1", 5, uint64(i), ref(7, 1))
		require.Len(t, coretest.Sends[*messages.HeartbeatAck](fx)[0].Valid, 1)
		fx = w.tick()
		assert.Empty(t, persisted(fx), "an adopted job is not requeued after DeadAfter")
	}
	assert.EqualValues(t, 1, w.job(7).Attempt)
	assert.EqualValues(t, 0, w.d.Counter(dispatcher.CounterReassigned))

	fx = w.finish("r1", 5, 7, 1, messages.Status_STATUS_PASSED)
	assert.True(t, coretest.Sends[*messages.JobFinishedAck](fx)[0].Recorded)
	assert.Equal(t, messages.JobState_JOB_STATE_DONE, w.job(7).State)
}

func TestRecoveredRunningJobRequeuedWhenUnclaimedByDeadAfter(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	w := recovered(t, runningRecord(7, "r1", 5, 1))
	w.addRunner("r2", 1)

	w.now = coretest.T0.Add(cfg.DeadAfter - time.Millisecond)
	fx := w.tick()
	assert.Empty(t, persisted(fx))
	assert.Empty(t, runJobs(fx))

	w.now = coretest.T0.Add(cfg.DeadAfter)
	fx = w.tick()
	jobs := persistedJobs(fx)
	require.NotEmpty(t, jobs)
	assert.Contains(t, jobs[0].LastError, "did not come back")
	assert.Equal(t, []string{"7/2->r2@1"}, runJobs(fx))

	// The original runner turns up late still running attempt 1: it is told to stop.
	fx = w.addRunner("r1", 5, ref(7, 1))
	cancels := coretest.SendsTo[*messages.CancelJob](fx, runnerAddr("r1"))
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
		return &messages.JobRecord{Job: &messages.Job{Id: id, Repo: repoURL, Commit: coretest.Commit(int(id)), Branches: []string{"main"}, Build: 1},
			State: messages.JobState_JOB_STATE_QUEUED}
	}
	d := dispatcher.New(dispatcher.DefaultConfig())
	d.Recover(coretest.T0, dispatcher.Durable{Jobs: []*messages.JobRecord{queued(5), queued(3)}, Cursors: []*messages.Cursor{{Repo: repoURL, Branch: "main", Commit: coretest.Commit(5)}}, MaxID: 12})
	w := &world{t: t, d: d, now: coretest.T0}

	fx := w.addObserver(obsAddr)
	regs := coretest.Sends[*messages.ObserverRegistered](fx)
	require.Len(t, regs[0].Cursors, 1, "the observer learns the durable cursor")
	assert.Equal(t, coretest.Commit(5), regs[0].Cursors[0].Commit)

	fx = w.addRunner("r1", 1)
	assert.Equal(t, []string{"3/1->r1@1"}, runJobs(fx), "oldest job first")

	fx = w.observe("main", coretest.Commit(5), coretest.Commit(5), coretest.Commit(20))
	acks := coretest.Sends[*messages.CommitObservedAck](fx)
	require.Len(t, acks, 1)
	assert.Equal(t, []int64{5, 13}, acks[0].JobIds, "a recovered commit is not queued twice; new ids follow the maximum")
}
