package dispatcher_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

// archivedRecord is the durable record of job id, commit c built on
// branches, finished passed and forwarded to the reporter long ago. Its
// Result has a Job of its own, as one read from the store does.
func archivedRecord(id int64, c string, branches ...string) *messages.JobRecord {
	job := func() *messages.Job {
		return &messages.Job{Id: id, Repo: repoURL, RepoName: repoName, Commit: c, Branches: branches, Build: 1}
	}
	return &messages.JobRecord{Job: job(), State: messages.JobState_JOB_STATE_DONE, Attempt: 1, RunnerId: "r1",
		RunnerIncarnation: 1, Forwarded: true,
		Result: &messages.Result{Job: job(), Attempt: 1, RunnerId: "r1", Status: messages.Status_STATUS_PASSED}}
}

// TestArchivedCommitOnANewBranchRecordsTheBranch: a commit built long ago
// (finished, forwarded, out of memory) that becomes the tip of another
// branch gets that branch recorded: persisted with the job, and sent to the
// reporter again until it acknowledges (issue 11, bug F).
func TestArchivedCommitOnANewBranchRecordsTheBranch(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addReporter()
	w.addRunner("r1", 1)
	rec := archivedRecord(41, coretest.Commit(1), "feature")

	fx := w.step(obsAddr, dispatcher.Observed{
		Msg:      w.observed("main", "", coretest.Commit(1)),
		Archived: map[string]*messages.JobRecord{coretest.Commit(1): rec},
	})

	jobs := persistedJobs(fx)
	require.Len(t, jobs, 1, "the job is saved again with its new branch")
	assert.Equal(t, []string{"feature", "main"}, jobs[0].Job.Branches)
	assert.Equal(t, messages.JobState_JOB_STATE_DONE, jobs[0].State)
	assert.False(t, jobs[0].Forwarded, "to be sent to the reporter again, even after a restart")
	assert.Equal(t, []string{"feature"}, rec.Job.Branches, "the store's record is not changed in place")
	results := coretest.SendsTo[*messages.ResultRecorded](fx, repAddr)
	require.Len(t, results, 1)
	assert.Equal(t, []string{"feature", "main"}, results[0].Result.Job.Branches)
	assert.Equal(t, messages.Status_STATUS_PASSED, results[0].Result.Status)
	assert.Less(t, firstIndex(fx, isPersistOf(41)), firstIndex(fx, isSendOf[*messages.ResultRecorded]()))
	acks := coretest.SendsTo[*messages.CommitObservedAck](fx, obsAddr)
	require.Len(t, acks, 1)
	assert.Equal(t, []int64{41}, acks[0].JobIds)
	assert.Empty(t, runJobs(fx), "not built again")

	fx = w.step(repAddr, &messages.ResultRecordedAck{JobId: 41, Repo: repoURL, Commit: coretest.Commit(1), Build: 1})
	jobs = persistedJobs(fx)
	require.Len(t, jobs, 1)
	assert.True(t, jobs[0].Forwarded)
	assert.Nil(t, w.job(41), "archived again")

	// Seen again on a branch its record names: nothing to record.
	fx = w.step(obsAddr, dispatcher.Observed{
		Msg:      w.observed("main", coretest.Commit(1), coretest.Commit(1)),
		Archived: map[string]*messages.JobRecord{coretest.Commit(1): archivedRecord(41, coretest.Commit(1), "feature", "main")},
	})
	assert.Empty(t, persistedJobs(fx))
	assert.Empty(t, coretest.Sends[*messages.ResultRecorded](fx))
}

// TestRecoveredResultOnANewBranch: a finished job recovered from the store
// (its Result has a Job of its own) seen on a new branch before it was
// forwarded sends the reporter the new branch too.
func TestRecoveredResultOnANewBranch(t *testing.T) {
	d := dispatcher.New(dispatcher.DefaultConfig())
	rec := archivedRecord(5, coretest.Commit(1), "feature")
	rec.Forwarded = false
	d.Recover(coretest.T0, dispatcher.Durable{Jobs: []*messages.JobRecord{rec}, MaxID: 5})
	w := &world{t: t, d: d, now: coretest.T0}
	w.addObserver(obsAddr)
	w.observe("main", "", coretest.Commit(1))
	results := coretest.SendsTo[*messages.ResultRecorded](w.addReporter(), repAddr)
	require.Len(t, results, 1)
	assert.Equal(t, []string{"feature", "main"}, results[0].Result.Job.Branches)
}
