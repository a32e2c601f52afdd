package runner

// The job a runner holds: taking it, giving it up, finishing it, and
// shutting down with it.

import (
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

func (c *Core) runJob(now time.Time, from actors.Addr, m *messages.RunJob) []actors.Effect {
	if from != c.cfg.Dispatcher || m.RunnerId != c.cfg.ID || m.Incarnation != c.cfg.Incarnation || m.Job == nil || m.Epoch != c.epoch {
		c.stale++
		return []actors.Effect{actors.Warn("RunJob for another incarnation or epoch ignored", "job", m.GetJob().GetId(), "runner", m.RunnerId, "incarnation", m.Incarnation)}
	}
	if err := messages.ValidateCommit(m.Job.Commit); err != nil {
		c.stale++
		return []actors.Effect{actors.Warn("RunJob rejected", "error", err.Error())}
	}
	if !c.link.IsRegistered() || (now.Sub(c.leaseFrom()) > c.lease && !plant.On(plant.LeaseIgnored)) {
		// Sent before the dispatcher lost track of us, or we could not hold
		// it: our lease has lapsed (we were frozen). The dispatcher requeues it.
		c.stale++
		return []actors.Effect{actors.Warn("RunJob without a live lease ignored", "job", m.Job.Id, "attempt", m.Attempt)}
	}
	ref := &messages.JobRef{JobId: m.Job.Id, Attempt: m.Attempt}
	if sameRef(c.lastDone, ref) {
		return nil // a late duplicate of an attempt already finished
	}
	if c.job != nil {
		if sameRef(c.job.ref, ref) {
			return nil // a duplicate
		}
		c.stale++
		return []actors.Effect{actors.Warn("RunJob while busy ignored", "job", m.Job.Id, "busy_with", c.job.ref.JobId)}
	}
	c.lastContact = now
	c.job = &job{run: m, ref: ref, seq: c.seq}
	return []actors.Effect{
		actors.Info("job started", "job", m.Job.Id, "commit", m.Job.Commit, "attempt", m.Attempt),
		StartJob{Run: m},
	}
}

func (c *Core) abandon(reason string) []actors.Effect {
	j := c.job
	if j == nil || j.abandoned {
		return nil
	}
	if j.done {
		c.job = nil
		return []actors.Effect{actors.Info("finished attempt dropped", "job", j.ref.JobId, "reason", reason)}
	}
	j.abandoned = true
	return []actors.Effect{
		actors.Warn("job given up", "job", j.ref.JobId, "attempt", j.ref.Attempt, "reason", reason),
		CancelRun{Ref: j.ref, Reason: reason},
	}
}

func (c *Core) jobDone(now time.Time, m JobDone) []actors.Effect {
	j := c.job
	if j == nil || !sameRef(j.ref, m.Ref) || j.done {
		return nil
	}
	if j.abandoned {
		c.job = nil
		return nil
	}
	j.done = true
	j.result = m.Result
	j.result.Attempt = j.ref.Attempt
	j.result.RunnerId = c.cfg.ID
	if j.result.Job == nil {
		j.result.Job = j.run.Job
	}
	fx := []actors.Effect{actors.Info("job finished", "job", j.ref.JobId, "attempt", j.ref.Attempt, "status", m.Result.Status.Name())}
	if c.link.IsRegistered() {
		fx = append(fx, c.sendResult(now)...)
	}
	return fx
}

func (c *Core) sendResult(now time.Time) []actors.Effect {
	c.job.lastSent = now
	return []actors.Effect{actors.Send{To: c.cfg.Dispatcher, Msg: &messages.JobFinished{
		RunnerId: c.cfg.ID, Incarnation: c.cfg.Incarnation, Result: c.job.result}}}
}

func (c *Core) shutdown(reason string) []actors.Effect {
	var fx []actors.Effect
	var released []*messages.JobRef
	if j := c.job; j != nil && !j.done && !j.abandoned {
		released = append(released, j.ref)
		j.abandoned = true
		fx = append(fx, CancelRun{Ref: j.ref, Reason: reason})
	}
	if c.link.IsRegistered() {
		fx = append(fx, actors.Send{To: c.cfg.Dispatcher, Msg: &messages.RunnerStopping{
			RunnerId: c.cfg.ID, Incarnation: c.cfg.Incarnation, Released: released, Reason: reason}})
	}
	c.exited = true
	return append(fx, actors.Exit{Code: 0, Reason: reason})
}
