package dispatcher

import (
	"fmt"
	"slices"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// requeue puts a job whose attempt ended without a result back in the queue,
// or ends it errored at the attempts cap.
func (c *Core) requeue(now time.Time, j *job, why string) []actors.Effect {
	j.LastError = why
	j.RunnerId, j.RunnerIncarnation = "", 0
	delete(c.orphans, j.Job.Id)
	if j.CancelRequested {
		return c.finish(now, nil, j, &messages.Result{
			Job: j.Job, Attempt: j.Attempt, Status: messages.Status_STATUS_CANCELLED, QueuedUnixMs: j.QueuedUnixMs,
			Reason: "cancelled; its runner was lost before it stopped (" + why + ")", FinishedUnixMs: now.UnixMilli(), StartedUnixMs: j.AssignedUnixMs,
		})
	}
	lost := int(j.Attempt - j.Released - j.Retries)
	if plant.On(plant.AttemptCapOffByOne) {
		lost-- // counts the attempts before this one
	}
	if lost >= c.cfg.MaxAttempts && !plant.On(plant.AttemptCapIgnored) {
		c.counters[cGaveUp]++
		return c.finish(now, nil, j, &messages.Result{
			Job: j.Job, Attempt: j.Attempt, Status: messages.Status_STATUS_ERRORED,
			Reason:         fmt.Sprintf("gave up after %d attempts; the last one ended because %s", j.Attempt, why),
			FinishedUnixMs: now.UnixMilli(), StartedUnixMs: j.AssignedUnixMs, QueuedUnixMs: j.QueuedUnixMs,
		})
	}
	j.State = messages.JobState_JOB_STATE_QUEUED
	if b := c.buildOf(j); b != nil {
		c.makeReady(b, j, true) // a reassigned job goes first
	}
	c.counters[cReassigned]++
	return []actors.Effect{
		persistOne(nil, j),
		actors.Info("job re-queued", "job", j.Job.Id, "attempt", j.Attempt, "reason", why),
	}
}

// retry queues j again after a failed run its cell's retry: allows; the run
// does not count against the attempt cap.
func (c *Core) retry(j *job, res *messages.Result) []actors.Effect {
	j.Retries++
	j.LastError = fmt.Sprintf("attempt %d %s; retry %d of %d", res.Attempt, res.Status.Name(), j.Retries, j.Job.Cell.GetRetry())
	j.avoid = j.RunnerId
	j.RunnerId, j.RunnerIncarnation = "", 0
	j.State = messages.JobState_JOB_STATE_QUEUED
	if b := c.buildOf(j); b != nil {
		c.makeReady(b, j, true)
	}
	return []actors.Effect{
		persistOne(nil, j),
		actors.Info("job retried", "job", j.Job.Id, "attempt", res.Attempt, "status", statusArg(res.Status), "retry", j.Retries),
	}
}

// free gives r back the slot of job id and puts it at the back of the
// line of runners with a free slot.
func (c *Core) free(r *runnerState, id int64) {
	if i := slices.Index(r.jobs, id); i >= 0 {
		r.jobs = slices.Delete(r.jobs, i, i+1)
	}
	c.idle.remove(r)
	c.idle.pushBack(r)
}

// runs reports whether r holds a slot for job id.
func (r *runnerState) runs(id int64) bool { return slices.Contains(r.jobs, id) }

// full reports whether every slot of r is taken.
func (r *runnerState) full() bool {
	return len(r.jobs) >= int(r.slots) && !plant.On(plant.SlotsIgnored)
}

// busy gives r job id: r goes to the back of the line of runners with a
// free slot, or leaves it when it has none left.
func (c *Core) busy(r *runnerState, id int64) {
	if !r.runs(id) {
		r.jobs = append(r.jobs, id)
	}
	c.idle.remove(r)
	if !r.full() {
		c.idle.pushBack(r)
	}
}

// freeRunner returns the runner with a free slot waiting the longest that
// can take j (labels), preferring one other than the runner j's failed run
// ran on; it drops runners that no longer hold from the line.
func (c *Core) freeRunner(j *job) *runnerState {
	want := j.Job.Cell.GetRunsOn()
	var fallback *runnerState
	for r := c.idle.head; r != nil; {
		next := r.idle.next
		switch {
		case c.runners.get(r.id) != r || r.full():
			c.idle.remove(r)
		case !hasLabels(r.labels, want):
		case j.avoid != "" && r.id == j.avoid:
			if fallback == nil {
				fallback = r
			}
		default:
			return r
		}
		r = next
	}
	return fallback
}

// assign hands ready jobs to runners with a free slot, taking the builds
// in turn (one job per turn), each build's jobs in order, and appends its
// effects to fx. A job no free runner can take is passed over.
func (c *Core) assign(now time.Time, fx []actors.Effect) []actors.Effect {
	var saves []*job
	slot := len(fx)
	// Each pass over the turn starts at most one job per build; a build
	// that starts one goes to the back. Passes end when one starts none.
	for started := true; started && len(c.turn) > 0 && c.idle.head != nil; {
		started = false
		for i := 0; i < len(c.turn) && c.idle.head != nil; {
			b := c.builds[c.turn[i]]
			j, r := c.pick(b)
			if j == nil {
				i++
				continue
			}
			started = true
			c.unready(j) // takes b out of the turn if it has no ready job left
			if k := slices.Index(c.turn, b.id); k >= 0 {
				c.turn = append(slices.Delete(c.turn, k, k+1), b.id)
			}
			if saves == nil {
				fx = append(fx, nil) // the Persist, filled in below
			}
			saves = append(saves, j)
			fx = c.run(now, fx, j, r)
		}
	}
	if saves != nil {
		fx[slot] = persist(nil, saves)
	}
	return fx
}

// pick returns b's first ready job a free runner can take, and the runner.
func (c *Core) pick(b *build) (*job, *runnerState) {
	if b == nil {
		return nil, nil
	}
	for _, id := range b.ready {
		j := c.jobs[id]
		if j == nil {
			continue
		}
		if r := c.freeRunner(j); r != nil {
			return j, r
		}
	}
	return nil, nil
}

// run starts j's next attempt on r.
func (c *Core) run(now time.Time, fx []actors.Effect, j *job, r *runnerState) []actors.Effect {
	c.busy(r, j.Job.Id)
	j.State = messages.JobState_JOB_STATE_RUNNING
	j.Attempt++
	j.RunnerId, j.RunnerIncarnation = r.id, r.incarnation
	j.AssignedUnixMs = now.UnixMilli()
	j.avoid = ""
	// Job is shared: the core never changes it (see snapshot).
	run := &messages.RunJob{Job: j.Job, Attempt: j.Attempt, RunnerId: r.id, Incarnation: r.incarnation,
		LogSink: string(c.reporter), TimeoutMs: c.cfg.JobTimeout.Milliseconds(), Epoch: c.cfg.Epoch,
		LogTicket: messages.LogTicket(c.cfg.LogKey, j.Job, j.Attempt, r.id)}
	idArg, commitArg := j.noteArgs()
	j.runnerArg = r.id
	return append(fx, actors.Send{To: r.addr, Msg: run},
		actors.Info("job assigned", "job", idArg, "commit", commitArg, "attempt", j.Attempt, "runner", j.runnerArg))
}
