package sim

import (
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/messages"
)

// logsAccepted tells the checker whose log chunks the reporter's core
// accepted in one step (the store is not told who wrote a chunk).
func (c *checker) logsAccepted(fx []actors.Effect) {
	for _, e := range fx {
		if a, ok := e.(reporter.AppendLog); ok {
			c.logWritten(a.Chunk.Job, a.Chunk.Attempt, a.Writer)
		}
	}
}

// persisted checks the job records of a batch the dispatcher's store made
// durable (moved from step: only what is durable was recorded).
func (c *checker) persisted(jobs []*messages.JobRecord) {
	for _, j := range jobs {
		k := jobKey(j.Job)
		if id, ok := c.jobOf[k]; ok && id != j.Job.Id {
			c.fail(InvOneResult, "jobs %d and %d are both job %d of build %d of %s", id, j.Job.Id, j.Job.Index, j.Job.Build, j.Job.Commit[:12])
		}
		c.jobOf[k] = j.Job.Id
		if j.CancelRequested {
			// A cancel made durable counts even if its reply was lost
			// (a crash between the write and the answer).
			if mj := c.model.job(keyOf(j.Job)); !mj.recorded && !mj.cancelled {
				mj.cancelled, mj.cancelBy = true, c.w.now.Add(2200*time.Microsecond+c.w.extraDelay)
			}
		}
		if mj := c.model.job(keyOf(j.Job)); j.Retries > mj.durableRetries {
			mj.durableRetries = j.Retries
		}
		if j.State == messages.JobState_JOB_STATE_RUNNING && j.Attempt > 0 {
			// What a restarted dispatcher goes on from (dispatcherBooted).
			if mj := c.model.job(keyOf(j.Job)); j.Attempt >= mj.durable {
				mj.durable, mj.durableHolder = j.Attempt, runnerKey{j.RunnerId, j.RunnerIncarnation}
			}
		}
		if j.State != messages.JobState_JOB_STATE_DONE {
			continue
		}
		c.checked[InvObservedOnly] = true
		if !c.observed[j.Job.Commit] && !c.queuing[j.Job.Commit] {
			c.fail(InvObservedOnly, "job %d recorded for commit %s, which no CommitObserved queued", j.Job.Id, j.Job.Commit)
		}
		if prev := c.results[j.Job.Id]; prev != nil {
			if prev.Attempt != j.Result.Attempt || prev.Status != j.Result.Status || prev.RunnerId != j.Result.RunnerId {
				c.fail(InvOneResult, "job %d recorded twice: attempt %d %s on %q, then attempt %d %s on %q", j.Job.Id,
					prev.Attempt, prev.Status.Name(), prev.RunnerId, j.Result.Attempt, j.Result.Status.Name(), j.Result.RunnerId)
			}
			continue
		}
		c.results[j.Job.Id] = j.Result
	}
}
