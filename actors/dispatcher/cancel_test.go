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
)

func TestCancelQueuedJobEndsItCancelled(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.observe("main", "", coretest.Commit(1)) // no runner: it stays queued

	fx := w.step(cliAddr, &messages.CancelRequest{JobId: 1, Who: "ann"})
	replies := coretest.SendsTo[*messages.CancelReply](fx, cliAddr)
	require.Len(t, replies, 1)
	assert.Empty(t, replies[0].Error)
	require.NotNil(t, w.job(1).Result)
	assert.Equal(t, messages.Status_STATUS_CANCELLED, w.job(1).Result.Status)
	assert.Contains(t, w.job(1).Result.Reason, "ann")

	w.addRunner("r1", 1)
	assert.Empty(t, runJobs(w.tick()), "a cancelled job is never assigned")
}

func TestCancelRunningJobAsksTheRunnerToReport(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.observe("main", "", coretest.Commit(1))

	fx := w.step(cliAddr, &messages.CancelRequest{JobId: 1, Who: "ann"})
	cancels := coretest.SendsTo[*messages.CancelJob](fx, runnerAddr("r1"))
	require.Len(t, cancels, 1)
	assert.True(t, cancels[0].Report, "a user's cancel is reported, not dropped")
	assert.True(t, w.job(1).CancelRequested)

	// The runner is lost before it stops: the build ends cancelled, not requeued.
	w.advance(dispatcher.DefaultConfig().DeadAfter * 2)
	w.tick()
	require.NotNil(t, w.job(1).Result)
	assert.Equal(t, messages.Status_STATUS_CANCELLED, w.job(1).Result.Status)
}

func TestCancelUnknownJobIsAnError(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	replies := coretest.SendsTo[*messages.CancelReply](w.step(cliAddr, &messages.CancelRequest{JobId: 42}), cliAddr)
	require.Len(t, replies, 1)
	assert.Contains(t, replies[0].Error, "not queued or running")
}

func TestRebuildQueuesTheNextBuild(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	prev := &messages.Job{Id: 7, Repo: repoURL, RepoName: repoName, Commit: coretest.Commit(1), Branches: []string{"main"}, Build: 2}

	fx := w.step(cliAddr, dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: coretest.Commit(1)}, Prev: []*messages.Job{prev}})
	replies := coretest.SendsTo[*messages.RebuildReply](fx, cliAddr)
	require.Len(t, replies, 1)
	assert.Empty(t, replies[0].Error)
	assert.EqualValues(t, 3, replies[0].Build)
	assert.Equal(t, int32(3), w.job(replies[0].JobId).Job.Build)
	assert.Equal(t, []string{"main"}, w.job(replies[0].JobId).Job.Branches)

	again := coretest.SendsTo[*messages.RebuildReply](w.step(cliAddr, dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: coretest.Commit(1)}, Prev: []*messages.Job{prev}}), cliAddr)
	require.Len(t, again, 1)
	assert.Contains(t, again[0].Error, "already queued")

	never := coretest.SendsTo[*messages.RebuildReply](w.step(cliAddr, dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: coretest.Commit(2)}}), cliAddr)
	require.Len(t, never, 1)
	assert.Contains(t, never[0].Error, "never built")
}

func TestCancelAndRebuildNeedTheToken(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	cfg.Token = "s3cret"
	w := newWorld(t, cfg)
	c := coretest.SendsTo[*messages.CancelReply](w.step(cliAddr, &messages.CancelRequest{JobId: 1}), cliAddr)
	require.Len(t, c, 1)
	assert.Contains(t, c[0].Error, "token")
	r := coretest.SendsTo[*messages.RebuildReply](w.step(cliAddr, dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: coretest.Commit(1)}}), cliAddr)
	require.Len(t, r, 1)
	assert.Contains(t, r[0].Error, "token")
}

// TestCancelIsResentUntilTheJobEnds: a CancelJob lost on its way is sent
// again to the runner each time it reports (a heartbeat or a registration)
// still holding the cancelled job, and the result it then reports is
// recorded as cancelled (issue 11, bug C).
func TestCancelIsResentUntilTheJobEnds(t *testing.T) {
	tests := []struct {
		name    string
		reports func(w *world) []actors.Effect
	}{
		{"heartbeat", func(w *world) []actors.Effect { return w.heartbeat("r1", 1, 1, ref(1, 1)) }},
		{"re-registration", func(w *world) []actors.Effect { return w.addRunner("r1", 1, ref(1, 1)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, dispatcher.DefaultConfig())
			w.addObserver(obsAddr)
			w.addRunner("r1", 1)
			w.observe("main", "", coretest.Commit(1))
			w.heartbeat("r1", 1, 0, ref(1, 1))
			require.Len(t, coretest.SendsTo[*messages.CancelJob](w.step(cliAddr, &messages.CancelRequest{JobId: 1, Who: "ann"}), runnerAddr("r1")), 1)
			// That CancelJob is lost; the runner reports it still runs the job.
			w.advance(time.Second)
			cancels := coretest.SendsTo[*messages.CancelJob](tt.reports(w), runnerAddr("r1"))
			require.Len(t, cancels, 1, "the cancel is sent again")
			assert.Equal(t, ref(1, 1).String(), cancels[0].Ref.String())
			assert.True(t, cancels[0].Report)
		})
	}
}

// TestCancelledJobRecordsCancelled: a runner that finishes a cancelled job
// before it hears of the cancel reports its real status; the build still
// ends cancelled, as the user was told (issue 11, bug C).
func TestCancelledJobRecordsCancelled(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.observe("main", "", coretest.Commit(1))
	w.step(cliAddr, &messages.CancelRequest{JobId: 1, Who: "ann"})
	w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	require.NotNil(t, w.job(1).Result)
	assert.Equal(t, messages.Status_STATUS_CANCELLED, w.job(1).Result.Status)
	assert.Empty(t, coretest.SendsTo[*messages.CancelJob](w.heartbeat("r1", 1, 2), runnerAddr("r1")), "ended: no more cancels")
}

// TestCancelledWhileQueuedIsNotCounted: the queued counter counts only jobs
// that wait for a runner, not one cancelled while it waited (issue 11,
// bug D); the queue still hands out the others in order.
func TestCancelledWhileQueuedIsNotCounted(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.observe("main", "", coretest.Commit(1), coretest.Commit(2))
	require.EqualValues(t, 2, w.queued())
	w.step(cliAddr, &messages.CancelRequest{JobId: 1, Who: "ann"})
	assert.EqualValues(t, 1, w.queued())

	assert.Equal(t, []string{"2/1->r1@1"}, runJobs(w.addRunner("r1", 1)))
	assert.EqualValues(t, 0, w.queued())
}
