package dispatcher

import (
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// Persist asks the shell to make jobs, cursors and runner incarnations
// durable before carrying out the effects that follow it. It has a Batch's
// fields; the shell gathers many Persists into one Batch.
type Persist Batch

// A job's Job and Result are never changed once made: a change (a new
// branch) makes new ones. Snapshots, RunJob and ResultRecorded share them
// instead of copying them, and neither the shell, the store nor a local
// receiver may change them either.

// copyRecord copies src's fields into dst, sharing Job and Result. Persist
// effects carry such snapshots: the core goes on changing its records
// within the same step (an observed job is assigned at once), and what is
// written must be the state at this point, not a later one.
func copyRecord(dst, src *messages.JobRecord) *messages.JobRecord {
	dst.Job, dst.State, dst.Attempt, dst.RunnerId = src.Job, src.State, src.Attempt, src.RunnerId
	dst.RunnerIncarnation, dst.Result, dst.Forwarded = src.RunnerIncarnation, src.Result, src.Forwarded
	dst.QueuedUnixMs, dst.AssignedUnixMs, dst.LastError, dst.CancelRequested = src.QueuedUnixMs, src.AssignedUnixMs, src.LastError, src.CancelRequested
	dst.Released, dst.Retries, dst.Waiting = src.Released, src.Retries, src.Waiting
	return dst
}

// persistOne is a Persist of one job's snapshot, made in one allocation.
func persistOne(cursors []*messages.Cursor, j *job) Persist {
	s := new(struct {
		rec  messages.JobRecord
		jobs [1]*messages.JobRecord
	})
	copyRecord(&s.rec, &j.JobRecord)
	s.jobs[0] = &s.rec
	return Persist{Cursors: cursors, Jobs: s.jobs[:]}
}

// persist is a Persist of the snapshots of jobs.
func persist(cursors []*messages.Cursor, jobs []*job) Persist {
	if len(jobs) == 1 {
		return persistOne(cursors, jobs[0])
	}
	recs := make([]messages.JobRecord, len(jobs))
	p := Persist{Cursors: cursors, Jobs: make([]*messages.JobRecord, len(jobs))}
	for i, j := range jobs {
		p.Jobs[i] = copyRecord(&recs[i], &j.JobRecord)
	}
	return p
}

// job is a job record with the core's bookkeeping around it.
type job struct {
	messages.JobRecord
	sent   int64 // when its result was last sent to the reporter: nanoseconds after Core.base
	unsent links[job]
	resent links[job]
	// The arguments of its trace notes, each made an interface once.
	idArg, commitArg, runnerArg any
	// ready: queued with its needs met, in its build's ready jobs.
	ready bool
	// avoid is the runner its failed run ran on: a retry goes to another
	// runner when one is free.
	avoid string
	// pipelineError is why its build's pipeline was refused, until start
	// ends the job errored with it.
	pipelineError string
}

// maxFreeReleases bounds how many graceful releases of one job
// (JobRecord.Released: attempts given back by runners that shut down
// gracefully, durable with the job) are not counted against MaxAttempts, so that runners restarted over and over
// cannot keep a build from ending.
const maxFreeReleases = 10

// cancelPending reports whether a user cancelled j, which still runs: its
// runner is sent CancelJob again whenever it reports the job, and its
// result is recorded as cancelled.
func (j *job) cancelPending() bool { return j.CancelRequested && !plant.On(plant.CancelNotResent) }

// noteArgs returns j's id and commit as note arguments.
func (j *job) noteArgs() (id, commit any) {
	if j.idArg == nil {
		j.idArg, j.commitArg = j.Job.Id, j.Job.Commit
	}
	return j.idArg, j.commitArg
}

// statusArgs are the status names as note arguments.
var statusArgs = func() (a [6]any) {
	for s := range a {
		a[s] = messages.Status(s).Name()
	}
	return a
}()

func statusArg(s messages.Status) any {
	if int(s) >= 0 && int(s) < len(statusArgs) {
		return statusArgs[s]
	}
	return s.Name()
}

// newJob returns a job of commit, queued at now, with its Job and its one
// branch made in one allocation.
func newJob(id int64, repo, repoName, commit, branch, subject string, build int32, queuedMs int64) *job {
	b := new(struct {
		job      messages.Job
		branches [1]string
	})
	b.branches[0] = branch
	b.job = messages.Job{Id: id, Repo: repo, RepoName: repoName, Commit: commit, Branches: b.branches[:], Build: build, Subject: subject}
	return &job{JobRecord: messages.JobRecord{Job: &b.job, State: messages.JobState_JOB_STATE_QUEUED, QueuedUnixMs: queuedMs}}
}

// withBranch gives j a new Job that also names branch (Job is never
// changed in place: see snapshot), and its result, if it names the old one,
// a new Result with the new Job.
func withBranch(j *job, branch string) {
	old := j.Job
	nj := messages.CloneJob(old)
	nj.Branches = append(nj.Branches, branch)
	j.Job = nj
	// A result made here shares its job's Job; one read from the store
	// has a copy of it.
	if j.Result != nil && (j.Result.Job == old || j.Result.Job.GetId() == old.Id) {
		res := messages.CloneResult(j.Result)
		res.Job = nj
		j.Result = res
	}
}
