package dispatcher

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

type recentResult struct {
	attempt     int32
	runner      string
	incarnation int64
}

// recentMax bounds Core.recent.
const recentMax = 1024

func sentKey(j *job) int64 { return j.sent }

func (c *Core) jobFinished(now time.Time, from actors.Addr, m *messages.JobFinished) []actors.Effect {
	res := m.Result
	if res == nil || res.Job == nil {
		c.counters[cRejected]++
		return []actors.Effect{actors.Warn("malformed JobFinished ignored", "from", string(from))}
	}
	a := new(struct {
		ack messages.JobFinishedAck
		ref messages.JobRef
	})
	a.ref.JobId, a.ref.Attempt = res.Job.Id, res.Attempt
	fin := &a.ack
	fin.Ref = &a.ref
	ack := actors.Send{To: from, Msg: fin}
	j := c.jobs[res.Job.Id]
	r := c.current(m.RunnerId, m.Incarnation)
	if j != nil && j.State == messages.JobState_JOB_STATE_DONE && j.Result != nil &&
		j.Result.Attempt == res.Attempt && j.Result.RunnerId == m.RunnerId && j.RunnerIncarnation == m.Incarnation {
		fin.Recorded = true // a duplicate of what we recorded
		return []actors.Effect{ack}
	}
	if r == nil && c.runners.get(m.RunnerId) == nil && m.Incarnation >= c.incarnation(m.RunnerId) && c.lost[m.RunnerId] != m.Incarnation {
		// Unknown after a restart of ours: have it register first; it keeps
		// the outcome and sends it again once registered (and re-adopted).
		// Like a heartbeat's, the answer carries no epoch.
		return []actors.Effect{actors.Send{To: from, Msg: &messages.HeartbeatAck{
			RunnerId: m.RunnerId, Incarnation: m.Incarnation, Unknown: true}}}
	}
	if rr, ok := c.recent[res.Job.Id]; ok && j == nil && rr.attempt == res.Attempt && rr.runner == m.RunnerId && rr.incarnation == m.Incarnation {
		fin.Recorded = true // a duplicate of what we recorded and forwarded
		return []actors.Effect{ack}
	}
	if j == nil || r == nil || j.State != messages.JobState_JOB_STATE_RUNNING ||
		((j.Attempt != res.Attempt || j.RunnerId != m.RunnerId || j.RunnerIncarnation != m.Incarnation) && !plant.On(plant.ResultsNotFenced)) {
		c.counters[cStale]++
		return []actors.Effect{
			actors.Warn("stale result ignored", "job", res.Job.Id, "attempt", res.Attempt, "runner", m.RunnerId, "incarnation", m.Incarnation),
			ack,
		}
	}
	c.heard(r, now)
	c.free(r, j.Job.Id)
	final := finalResult(j, m.RunnerId, res)
	fin.Recorded = true
	if (final.Status == messages.Status_STATUS_FAILED || final.Status == messages.Status_STATUS_TIMED_OUT) && j.Retries < j.Job.Cell.GetRetry() {
		return append(c.retry(j, final), ack)
	}
	if plant.On(plant.AckBeforePersist) {
		return c.finish(now, append(make([]actors.Effect, 0, 6), ack), j, final)
	}
	fx := c.finish(now, make([]actors.Effect, 0, 6), j, final)
	return append(fx, ack)
}

// finalResult is the result to record for j's attempt, which runner
// reported as res.
func finalResult(j *job, runner string, res *messages.Result) *messages.Result {
	final := &messages.Result{
		Job: j.Job, Attempt: j.Attempt, RunnerId: runner, Status: res.Status, Reason: res.Reason,
		ExitCode: res.ExitCode, StartedUnixMs: res.StartedUnixMs, FinishedUnixMs: res.FinishedUnixMs,
		FailedStep: res.FailedStep, LogBytes: res.LogBytes, LogDropped: res.LogDropped, QueuedUnixMs: j.QueuedUnixMs,
		Retries: j.Retries,
	}
	if j.cancelPending() && final.Status != messages.Status_STATUS_CANCELLED {
		// The user was told it is cancelled: a cancel wins unless the
		// result was recorded first.
		final.Reason = fmt.Sprintf("cancelled by a user; its runner finished it (%s) before it heard of the cancel", final.Status.Name())
		final.Status = messages.Status_STATUS_CANCELLED
	}
	return final
}

// finish records the one final result of j and forwards it.
func (c *Core) finish(now time.Time, fx []actors.Effect, j *job, res *messages.Result) []actors.Effect {
	j.State = messages.JobState_JOB_STATE_DONE
	j.Result = res
	delete(c.orphans, j.Job.Id)
	c.counters[cRecorded]++
	c.unsent.pushBack(j)
	id, commit := j.noteArgs()
	runner := j.runnerArg
	if s, ok := runner.(string); !ok || s != res.RunnerId {
		runner = res.RunnerId
	}
	fx = append(fx,
		persistOne(nil, j),
		actors.Info("result recorded", "job", id, "commit", commit, "build", j.Job.Build, "attempt", res.Attempt, "status", statusArg(res.Status), "runner", runner),
	)
	fx = c.forward(now, fx, j)
	return c.ended(now, fx, j, res.Status)
}

// forward sends j's result to the reporter, if there is one.
func (c *Core) forward(now time.Time, fx []actors.Effect, j *job) []actors.Effect {
	if c.reporter == "" {
		return fx
	}
	c.unsent.remove(j)
	j.sent = c.at(now)
	c.sent.place(j, sentKey)
	return append(fx, actors.Send{To: c.reporter, Msg: &messages.ResultRecorded{Result: j.Result}})
}

func (c *Core) registerReporter(now time.Time, from actors.Addr, m *messages.RegisterReporter) []actors.Effect {
	reply := &messages.ReporterRegistered{SupportedVersions: messages.SupportedVersions, Reason: c.refuseRole("reporter", m.ProtocolVersion, m.Token)}
	if reply.Reason != "" {
		c.counters[cRejected]++
		return []actors.Effect{actors.Send{To: from, Msg: reply}}
	}
	var fx []actors.Effect
	if c.reporter != from {
		if c.reporter != "" {
			fx = append(fx, actors.Unwatch{Addr: c.reporter})
		}
		c.reporter = from
		fx = append(fx, actors.Watch{Addr: from}, actors.Info("reporter registered", "addr", string(from)))
	}
	reply.Accepted = true
	reply.LogKey = c.cfg.LogKey // only ever to the proven reporter: permit
	fx = append(fx, actors.Send{To: from, Msg: reply})
	// Every result not yet acknowledged, in job order: one send each.
	var pending []*job
	for j := c.unsent.head; j != nil; j = j.unsent.next {
		pending = append(pending, j)
	}
	for j := c.sent.head; j != nil; j = j.resent.next {
		pending = append(pending, j)
	}
	slices.SortFunc(pending, func(a, b *job) int { return cmp.Compare(a.Job.Id, b.Job.Id) })
	for _, j := range pending {
		fx = c.forward(now, fx, j)
	}
	return fx
}

func (c *Core) resultAcked(m *messages.ResultRecordedAck) []actors.Effect {
	j := c.jobs[m.JobId]
	if j == nil || j.State != messages.JobState_JOB_STATE_DONE || j.Job.Commit != m.Commit || j.Job.Build != m.Build {
		return nil // a duplicate ack
	}
	j.Forwarded = true
	c.release(j)
	c.unsent.remove(j)
	c.sent.remove(j)
	c.remember(m.JobId, recentResult{attempt: j.Result.GetAttempt(), runner: j.Result.GetRunnerId(), incarnation: j.RunnerIncarnation})
	c.counters[cResultsAcked]++
	// The record leaves the core: it is written as it is, not copied.
	b := new(struct {
		fx   [1]actors.Effect
		jobs [1]*messages.JobRecord
	})
	b.jobs[0] = &j.JobRecord
	b.fx[0] = Persist{Jobs: b.jobs[:]}
	return b.fx[:]
}

// remember adds a forwarded result to c.recent, forgetting the oldest
// beyond recentMax.
func (c *Core) remember(id int64, rr recentResult) {
	n := len(c.recent)
	c.recent[id] = rr
	if n < recentMax {
		c.recentIDs[(c.recentHead+n)%recentMax] = id
		return
	}
	delete(c.recent, c.recentIDs[c.recentHead])
	c.recentIDs[c.recentHead] = id
	c.recentHead = (c.recentHead + 1) % recentMax
}
