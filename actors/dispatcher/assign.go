package dispatcher

import (
	"fmt"
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
	lost := int(j.Attempt - j.Released)
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
	c.queue.pushFront(j.Job.Id) // a reassigned job goes first
	c.counters[cReassigned]++
	return []actors.Effect{
		persistOne(nil, j),
		actors.Info("job re-queued", "job", j.Job.Id, "attempt", j.Attempt, "reason", why),
	}
}

// setIdle marks r idle and puts it at the back of the idle line.
func (c *Core) setIdle(r *runnerState) {
	r.job = 0
	c.idle.remove(r)
	c.idle.pushBack(r)
}

// busy marks r as running job id.
func (c *Core) busy(r *runnerState, id int64) {
	r.job = id
	c.idle.remove(r)
}

// nextIdle returns the runner idle the longest without taking it off the
// line, dropping runners that no longer hold (replaced by a newer
// incarnation while left in the line).
func (c *Core) nextIdle() *runnerState {
	for r := c.idle.head; r != nil; r = c.idle.head {
		if c.runners.get(r.id) == r && r.job == 0 {
			return r
		}
		c.idle.remove(r)
	}
	return nil
}

// assign hands queued jobs to idle runners, the longest idle first, in time
// independent of the pool's size, and appends its effects to fx.
func (c *Core) assign(now time.Time, fx []actors.Effect) []actors.Effect {
	if c.queue.len() == 0 || c.idle.head == nil {
		return fx
	}
	var one *job
	var saves []*job
	slot := len(fx)
	for c.queue.len() > 0 {
		r := c.nextIdle()
		if r == nil {
			break
		}
		id := c.queue.popFront()
		j := c.jobs[id]
		if j == nil || j.State != messages.JobState_JOB_STATE_QUEUED {
			c.cancelledQueued--
			continue
		}
		c.busy(r, id)
		j.State = messages.JobState_JOB_STATE_RUNNING
		j.Attempt++
		j.RunnerId, j.RunnerIncarnation = r.id, r.incarnation
		j.AssignedUnixMs = now.UnixMilli()
		switch {
		case one == nil:
			one = j
			fx = append(fx, nil) // the Persist, filled in below
		case saves == nil:
			saves = append(make([]*job, 0, c.queue.len()+2), one, j)
		default:
			saves = append(saves, j)
		}
		// Job is shared: the core never changes it (see snapshot).
		run := &messages.RunJob{Job: j.Job, Attempt: j.Attempt, RunnerId: r.id, Incarnation: r.incarnation,
			LogSink: string(c.reporter), TimeoutMs: c.cfg.JobTimeout.Milliseconds(), Epoch: c.cfg.Epoch,
			LogTicket: messages.LogTicket(c.cfg.LogKey, j.Job, j.Attempt, r.id)}
		idArg, commitArg := j.noteArgs()
		j.runnerArg = r.id
		fx = append(fx, actors.Send{To: r.addr, Msg: run},
			actors.Info("job assigned", "job", idArg, "commit", commitArg, "attempt", j.Attempt, "runner", j.runnerArg))
	}
	switch {
	case one == nil:
	case saves == nil:
		fx[slot] = persistOne(nil, one)
	default:
		fx[slot] = persist(nil, saves)
	}
	return fx
}
