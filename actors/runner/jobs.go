package runner

// The jobs a runner holds, up to its slots at once: taking one, giving it
// up, finishing it, and shutting down with them.

import (
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// runJob starts m's attempt in a free slot. A RunJob the runner cannot take
// (no slot free, or an earlier attempt of the same job still running here)
// is not started, not listed in heartbeats and answered with nothing: the
// dispatcher requeues a job its runner never lists once its start grace has
// passed.
func (c *Core) runJob(now time.Time, from actors.Addr, m *messages.RunJob) []actors.Effect {
	if !c.link.IsTarget(from) || m.RunnerId != c.cfg.ID || m.Incarnation != c.cfg.Incarnation || m.Job == nil || m.Epoch != c.epoch {
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
	for _, r := range c.recent {
		if sameRef(r, ref) {
			return nil // a late duplicate of an attempt already finished
		}
	}
	if c.find(ref) != nil {
		return nil // a duplicate
	}
	for _, j := range c.jobs {
		if j.ref.JobId == ref.JobId && !j.done {
			c.stale++
			return []actors.Effect{actors.Warn("RunJob ignored: an earlier attempt of the job still runs here",
				"job", m.Job.Id, "attempt", m.Attempt, "running_attempt", j.ref.Attempt)}
		}
	}
	if n := c.Running(); n >= c.slots {
		c.stale++
		return []actors.Effect{actors.Warn("RunJob beyond the runner's slots ignored; the dispatcher requeues it",
			"job", m.Job.Id, "attempt", m.Attempt, "slots", c.slots, "running", n)}
	}
	c.lastContact = now
	c.jobs = append(c.jobs, &job{run: m, ref: ref, seq: c.seq})
	return []actors.Effect{
		actors.Info("job started", "job", m.Job.Id, "commit", m.Job.Commit, "attempt", m.Attempt),
		StartJob{Run: m},
	}
}

// abandon gives j up: a finished attempt is dropped unreported, a running
// one is killed and never reported.
func (c *Core) abandon(j *job, reason string) []actors.Effect {
	if j.abandoned {
		return nil
	}
	if j.done {
		c.drop(j)
		return []actors.Effect{actors.Info("finished attempt dropped", "job", j.ref.JobId, "attempt", j.ref.Attempt, "reason", reason)}
	}
	j.abandoned = true
	return []actors.Effect{
		actors.Warn("job given up", "job", j.ref.JobId, "attempt", j.ref.Attempt, "reason", reason),
		CancelRun{Ref: j.ref, Reason: reason},
	}
}

// finished forgets j, whose outcome the dispatcher acknowledged, and
// remembers its attempt against late duplicates of its RunJob.
func (c *Core) finished(j *job) {
	c.drop(j)
	if len(c.recent) == recentMax {
		c.recent = append(c.recent[:0], c.recent[1:]...)
	}
	c.recent = append(c.recent, j.ref)
}

func (c *Core) jobDone(now time.Time, m JobDone) []actors.Effect {
	j := c.find(m.Ref)
	if j == nil || j.done {
		return nil
	}
	if j.abandoned {
		c.drop(j)
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
		fx = append(fx, c.sendResult(now, j))
	}
	return fx
}

func (c *Core) sendResult(now time.Time, j *job) actors.Effect {
	j.lastSent = now
	return actors.Send{To: c.link.Target(), Msg: &messages.JobFinished{
		RunnerId: c.cfg.ID, Incarnation: c.cfg.Incarnation, Result: j.result}}
}

// shutdown kills every running job, tells the dispatcher it gives them
// back, and exits.
func (c *Core) shutdown(reason string) []actors.Effect {
	var fx []actors.Effect
	var released []*messages.JobRef
	for _, j := range c.jobs {
		if j.live() {
			released = append(released, j.ref)
			j.abandoned = true
			fx = append(fx, CancelRun{Ref: j.ref, Reason: reason})
		}
	}
	if c.link.IsRegistered() {
		fx = append(fx, actors.Send{To: c.link.Target(), Msg: &messages.RunnerStopping{
			RunnerId: c.cfg.ID, Incarnation: c.cfg.Incarnation, Released: released, Reason: reason}})
	}
	c.exited = true
	return append(fx, actors.Exit{Code: 0, Reason: reason})
}
