package dispatcher_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
)

func TestCancelQueuedJobEndsItCancelled(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.observe("main", "", commit(1)) // no runner: it stays queued

	fx := w.step(cliAddr, &messages.CancelRequest{JobId: 1, Who: "ann"})
	replies := sendsTo[*messages.CancelReply](fx, cliAddr)
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
	w.observe("main", "", commit(1))

	fx := w.step(cliAddr, &messages.CancelRequest{JobId: 1, Who: "ann"})
	cancels := sendsTo[*messages.CancelJob](fx, runnerAddr("r1"))
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
	replies := sendsTo[*messages.CancelReply](w.step(cliAddr, &messages.CancelRequest{JobId: 42}), cliAddr)
	require.Len(t, replies, 1)
	assert.Contains(t, replies[0].Error, "not queued or running")
}

func TestRebuildQueuesTheNextBuild(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	prev := &messages.Job{Id: 7, Repo: repoURL, RepoName: repoName, Commit: commit(1), Branches: []string{"main"}, Build: 2}

	fx := w.step(cliAddr, dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: commit(1)}, Prev: prev})
	replies := sendsTo[*messages.RebuildReply](fx, cliAddr)
	require.Len(t, replies, 1)
	assert.Empty(t, replies[0].Error)
	assert.EqualValues(t, 3, replies[0].Build)
	assert.Equal(t, int32(3), w.job(replies[0].JobId).Job.Build)
	assert.Equal(t, []string{"main"}, w.job(replies[0].JobId).Job.Branches)

	again := sendsTo[*messages.RebuildReply](w.step(cliAddr, dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: commit(1)}, Prev: prev}), cliAddr)
	require.Len(t, again, 1)
	assert.Contains(t, again[0].Error, "already queued")

	never := sendsTo[*messages.RebuildReply](w.step(cliAddr, dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: commit(2)}}), cliAddr)
	require.Len(t, never, 1)
	assert.Contains(t, never[0].Error, "never built")
}

func TestCancelAndRebuildNeedTheToken(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	cfg.Token = "s3cret"
	w := newWorld(t, cfg)
	c := sendsTo[*messages.CancelReply](w.step(cliAddr, &messages.CancelRequest{JobId: 1}), cliAddr)
	require.Len(t, c, 1)
	assert.Contains(t, c[0].Error, "token")
	r := sendsTo[*messages.RebuildReply](w.step(cliAddr, dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: commit(1)}}), cliAddr)
	require.Len(t, r, 1)
	assert.Contains(t, r[0].Error, "token")
}
