package dispatcher_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

// cell is a pipeline job for tests.
func cell(key string, needs ...int32) *messages.PipelineJob {
	return &messages.PipelineJob{Key: key, Name: key, Needs: needs}
}

// newBuildWorld is a dispatcher with an observer and a reporter
// registered: the runners are each test's own.
func newBuildWorld(t *testing.T, cfg dispatcher.Config) *world {
	w := newWorld(t, cfg)
	w.addObserver(obsAddr)
	w.addReporter()
	return w
}

// observePipeline observes one commit on main whose pipeline is cells.
func (w *world) observePipeline(n int, cells ...*messages.PipelineJob) []actors.Effect {
	m := w.observed("main", "", coretest.Commit(n))
	m.Pipelines = []*messages.Pipeline{{Jobs: cells}}
	return w.step(obsAddr, m)
}

// addRunnerWith registers runner id with labels and slots.
func (w *world) addRunnerWith(id string, slots int32, labels ...string) []actors.Effect {
	w.t.Helper()
	fx := w.step(runnerAddr(id), &messages.RegisterRunner{RunnerId: id, Incarnation: 1, ProtocolVersion: messages.ProtocolVersion,
		Hostname: "host-" + id, Labels: labels, Slots: slots})
	regs := coretest.SendsTo[*messages.RunnerRegistered](fx, runnerAddr(id))
	require.Len(w.t, regs, 1)
	require.True(w.t, regs[0].Accepted, regs[0].Reason)
	return fx
}

// results returns the results sent to the reporter, as "job:status".
func results(fx []actors.Effect) map[int64]messages.Status {
	out := map[int64]messages.Status{}
	for _, m := range coretest.SendsTo[*messages.ResultRecorded](fx, repAddr) {
		out[m.Result.Job.Id] = m.Result.Status
	}
	return out
}

func started(fx []actors.Effect) []int64 {
	var out []int64
	for _, m := range coretest.EffectsOf[actors.Send](fx) {
		if r, ok := m.Msg.(*messages.RunJob); ok {
			out = append(out, r.Job.Id)
		}
	}
	return out
}

func TestAJobStartsOnlyAfterItsNeedsPassed(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 4)
	// lint -> test -> package, and docs needing nothing.
	fx := w.observePipeline(1, cell("lint"), cell("docs"), cell("test", 0), cell("package", 2))
	assert.ElementsMatch(t, []int64{1, 2}, started(fx), "only the jobs without needs start")
	assert.Equal(t, "needs lint", w.job(3).Waiting)
	assert.Equal(t, "needs test", w.job(4).Waiting)
	assert.Empty(t, started(w.finish("r1", 1, 2, 1, messages.Status_STATUS_PASSED)), "docs is needed by nobody")
	assert.Equal(t, []int64{3}, started(w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)))
	assert.Equal(t, []int64{4}, started(w.finish("r1", 1, 3, 1, messages.Status_STATUS_PASSED)))
}

func TestAJobWhoseNeedFailedIsSkippedAndSoAreItsDependents(t *testing.T) {
	for _, st := range []messages.Status{messages.Status_STATUS_FAILED, messages.Status_STATUS_ERRORED, messages.Status_STATUS_TIMED_OUT} {
		t.Run(st.Name(), func(t *testing.T) {
			w := newBuildWorld(t, dispatcher.DefaultConfig())
			w.addRunnerWith("r1", 1)
			w.observePipeline(1, cell("lint"), cell("test", 0), cell("package", 1), cell("other"))
			fx := w.finish("r1", 1, 1, 1, st)
			got := results(fx)
			assert.Equal(t, st, got[1])
			assert.Equal(t, messages.Status_STATUS_SKIPPED, got[2])
			assert.Equal(t, messages.Status_STATUS_SKIPPED, got[3])
			assert.Equal(t, []int64{4}, started(fx), "the free runner takes the job that needs nothing")
		})
	}
}

func TestAllowedFailureSatisfiesItsDependents(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 1)
	lint := cell("lint")
	lint.AllowFailure = true
	w.observePipeline(1, lint, cell("test", 0))
	assert.Equal(t, []int64{2}, started(w.finish("r1", 1, 1, 1, messages.Status_STATUS_FAILED)))
}

func TestAJobRunsOnlyOnARunnerWithItsLabels(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("plain", 2, "os=linux")
	gpu := cell("train")
	gpu.RunsOn = []string{"gpu", "os=linux"}
	fx := w.observePipeline(1, gpu, cell("lint"))
	assert.Equal(t, []int64{2}, started(fx), "the plain runner takes lint, not train")
	assert.Equal(t, "no runner has labels gpu,os=linux", w.job(1).Waiting)
	assert.Equal(t, messages.JobState_JOB_STATE_QUEUED, w.job(1).State, "waiting is not an error")
	fx = w.addRunnerWith("big", 1, "gpu", "os=linux", "arch=amd64")
	require.Equal(t, []string{"1/1->big@1"}, runJobs(fx))
	assert.Empty(t, w.job(1).Waiting)
}

func TestARunnerNeverRunsMoreJobsThanItsSlots(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 3)
	cells := make([]*messages.PipelineJob, 5)
	for i := range cells {
		cells[i] = cell("m")
	}
	fx := w.observePipeline(1, cells...)
	assert.Equal(t, []int64{1, 2, 3}, started(fx))
	assert.EqualValues(t, 3, w.runner("r1").Running)
	assert.Equal(t, []int64{4}, started(w.finish("r1", 1, 2, 1, messages.Status_STATUS_PASSED)))
}

func TestALostRunnerHasEveryJobOfItsSlotsReassigned(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 3)
	w.observePipeline(1, cell("a"), cell("b"), cell("c"))
	w.addRunnerWith("r2", 3)
	fx := w.step("", actors.PeerTerminated{Addr: runnerAddr("r1")})
	assert.Equal(t, []string{"1/2->r2@1", "2/2->r2@1", "3/2->r2@1"}, runJobs(fx))
}

func TestBuildsTakeTurns(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 1)
	matrix := make([]*messages.PipelineJob, 200)
	for i := range matrix {
		matrix[i] = cell("m")
	}
	w.observePipeline(1, matrix...)
	m := w.observed("main", coretest.Commit(1), coretest.Commit(2))
	w.step(obsAddr, m) // build 201: one job
	assert.Equal(t, []int64{2}, started(w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)), "the matrix had the turn")
	assert.Equal(t, []int64{201}, started(w.finish("r1", 1, 2, 1, messages.Status_STATUS_PASSED)),
		"the build queued after the matrix takes the next turn, 198 cells before the matrix ends")
	assert.Equal(t, []int64{3}, started(w.finish("r1", 1, 201, 1, messages.Status_STATUS_PASSED)))
}

func TestRetryRunsAFailedJobAgainApartFromTheAttemptCap(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	cfg.MaxAttempts = 1
	w := newBuildWorld(t, cfg)
	w.addRunnerWith("r1", 1)
	w.addRunnerWith("r2", 1)
	flaky := cell("test")
	flaky.Retry = 2
	fx := w.observePipeline(1, flaky)
	require.Equal(t, []string{"1/1->r1@1"}, runJobs(fx))
	fx = w.finish("r1", 1, 1, 1, messages.Status_STATUS_FAILED)
	assert.Empty(t, results(fx), "a retried failure is not the result")
	assert.Equal(t, []string{"1/2->r2@1"}, runJobs(fx), "the retry goes to another runner")
	fx = w.step("", actors.PeerTerminated{Addr: runnerAddr("r2")})
	assert.Equal(t, messages.Status_STATUS_ERRORED, results(fx)[1], "a lost runner still counts against --max-attempts 1")
}

func TestRetriesRunOutIntoTheFailure(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 1)
	c := cell("test")
	c.Retry = 1
	w.observePipeline(1, c)
	require.Equal(t, []string{"1/2->r1@1"}, runJobs(w.finish("r1", 1, 1, 1, messages.Status_STATUS_FAILED)), "no other runner: the same one")
	fx := w.finish("r1", 1, 1, 2, messages.Status_STATUS_FAILED)
	assert.Equal(t, messages.Status_STATUS_FAILED, results(fx)[1])
	assert.EqualValues(t, 1, w.job(1).Retries)
	res := coretest.SendsTo[*messages.ResultRecorded](fx, repAddr)
	require.Len(t, res, 1)
	assert.EqualValues(t, 1, res[0].Result.Retries, "the result says how many retries it took")
}

func TestFailFastCancelsTheRestOfTheMatrix(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 2)
	cells := make([]*messages.PipelineJob, 4)
	for i := range cells {
		cells[i] = cell("m")
		cells[i].FailFast = true
	}
	w.observePipeline(1, append(cells, cell("other"))...)
	w.finish("r1", 1, 2, 1, messages.Status_STATUS_PASSED) // cell 2 passes; 3 starts
	fx := w.finish("r1", 1, 1, 1, messages.Status_STATUS_FAILED)
	got := results(fx)
	assert.Equal(t, messages.Status_STATUS_FAILED, got[1])
	assert.Equal(t, messages.Status_STATUS_CANCELLED, got[4], "the queued cell ends cancelled")
	_, passedAgain := got[2]
	assert.False(t, passedAgain, "an ended cell is not touched")
	cancels := coretest.SendsTo[*messages.CancelJob](fx, runnerAddr("r1"))
	require.Len(t, cancels, 1, "the running cell is told to stop")
	assert.EqualValues(t, 3, cancels[0].Ref.JobId)
	assert.Equal(t, messages.JobState_JOB_STATE_RUNNING, w.job(5).State, "other keys go on")
}

func TestBranchesFilterSkipsAJobAndItsDependents(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 4)
	pkg := cell("package")
	pkg.Branches = []string{"release/*"}
	rel := cell("release")
	rel.Branches = []string{"main"}
	fx := w.observePipeline(1, cell("test"), pkg, cell("upload", 1), rel)
	got := results(fx)
	assert.Equal(t, messages.Status_STATUS_SKIPPED, got[2])
	assert.Equal(t, messages.Status_STATUS_SKIPPED, got[3])
	assert.ElementsMatch(t, []int64{1, 4}, started(fx))
}

func TestCancellingABuildCancelsEveryJobNotEnded(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 1)
	w.observePipeline(1, cell("a"), cell("b"), cell("c", 0))
	fx := w.step(cliAddr, &messages.CancelRequest{JobId: 1})
	got := results(fx)
	assert.Equal(t, messages.Status_STATUS_CANCELLED, got[2])
	assert.Equal(t, messages.Status_STATUS_CANCELLED, got[3])
	assert.Len(t, coretest.SendsTo[*messages.CancelJob](fx, runnerAddr("r1")), 1)
	fx = w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	assert.Equal(t, messages.Status_STATUS_CANCELLED, results(fx)[1])
}

func TestAPipelineErrorEndsTheBuildErroredWithoutARunner(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 1)
	m := w.observed("main", "", coretest.Commit(1))
	m.Pipelines = []*messages.Pipeline{{Error: "line 3, column 5: needs: no job is named lnt"}}
	fx := w.step(obsAddr, m)
	assert.Empty(t, started(fx))
	res := coretest.SendsTo[*messages.ResultRecorded](fx, repAddr)
	require.Len(t, res, 1)
	assert.Equal(t, messages.Status_STATUS_ERRORED, res[0].Result.Status)
	assert.Contains(t, res[0].Result.Reason, "line 3, column 5")
}

func TestAMalformedPipelineFromTheObserverIsRefusedAsAnError(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 1)
	fx := w.observePipeline(1, cell("a", 0)) // needs itself
	res := coretest.SendsTo[*messages.ResultRecorded](fx, repAddr)
	require.Len(t, res, 1)
	assert.Equal(t, messages.Status_STATUS_ERRORED, res[0].Result.Status)
}

func TestARestartedDispatcherResumesAHalfDoneBuild(t *testing.T) {
	w := newBuildWorld(t, dispatcher.DefaultConfig())
	w.addRunnerWith("r1", 1)
	fx := w.observePipeline(1, cell("lint"), cell("test", 0), cell("docs", 0))
	recs := map[int64]*messages.JobRecord{}
	keep := func(fx []actors.Effect) {
		for _, r := range persistedJobs(fx) {
			recs[r.Job.Id] = r
		}
	}
	keep(fx)
	fx = w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	keep(fx)
	keep(w.step(repAddr, &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: coretest.Commit(1), Build: 1}))
	require.True(t, recs[1].Forwarded)
	// A new dispatcher recovers the three records: lint forwarded, test
	// running on r1, docs queued.
	d := dispatcher.New(dispatcher.DefaultConfig())
	var durable []*messages.JobRecord
	for _, id := range []int64{1, 2, 3} {
		durable = append(durable, recs[id])
	}
	d.Recover(w.now, dispatcher.Durable{Jobs: durable, MaxID: 3})
	w.d = d
	w.addRunnerWith("r2", 1)
	assert.NotNil(t, w.job(2))
	assert.Nil(t, w.job(1), "the forwarded need is not held, only its outcome")
	assert.Empty(t, w.job(3).Waiting, "docs' need passed before the restart: it may start")
}
