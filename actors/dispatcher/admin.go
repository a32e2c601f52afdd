package dispatcher

import (
	"fmt"
	"slices"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// cancelJob asks the runner at to to stop j's attempt and report it
// cancelled. A cancel is sent when it is requested and again each time the
// runner reports it still holds the job, until the job ends: the runner
// ignores the repeats.
func cancelJob(to actors.Addr, j *job, reason string) actors.Send {
	return actors.Send{To: to, Msg: &messages.CancelJob{
		Ref: &messages.JobRef{JobId: j.Job.Id, Attempt: j.Attempt}, Reason: reason, Report: true}}
}

// resentReason is the reason a resent CancelJob gives: who asked is not
// kept.
const resentReason = "cancelled by a user"

// cancel cancels a build (m names its id) or one job of one (m names a
// job's id): every job of it that has not ended.
func (c *Core) cancel(now time.Time, from actors.Addr, m *messages.CancelRequest) []actors.Effect {
	reply := &messages.CancelReply{JobId: m.JobId}
	var open []*job
	if b := c.builds[m.JobId]; b != nil {
		for k := range int64(len(b.cells)) {
			if j := c.jobs[b.id+k]; j != nil && j.State != messages.JobState_JOB_STATE_DONE {
				open = append(open, j)
			}
		}
	} else if j := c.jobs[m.JobId]; j != nil && j.State != messages.JobState_JOB_STATE_DONE {
		open = append(open, j)
	}
	switch {
	case !c.tokenOK(m.Token):
		reply.Error = "wrong or missing token: cancelling needs the dispatcher's --token"
	case len(open) == 0:
		reply.Error = fmt.Sprintf("build %d is not queued or running", m.JobId)
	}
	if reply.Error != "" {
		return []actors.Effect{actors.Send{To: from, Msg: reply}}
	}
	who := m.Who
	if who == "" {
		who = "a user"
	}
	var fx []actors.Effect
	for _, j := range open {
		if j.State != messages.JobState_JOB_STATE_DONE { // a cancelled need skipped it meanwhile
			fx = c.cancelOne(now, fx, j, "cancelled by "+who)
		}
	}
	return append(fx, actors.Send{To: from, Msg: reply})
}

// cancelOne cancels j: a queued job ends cancelled at once; a running one
// is told to stop, and its result is recorded as cancelled.
func (c *Core) cancelOne(now time.Time, fx []actors.Effect, j *job, why string) []actors.Effect {
	switch {
	case j.State == messages.JobState_JOB_STATE_QUEUED || (j.State == messages.JobState_JOB_STATE_DONE && plant.On(plant.EndedJobCancelled)):
		return c.finish(now, fx, j, &messages.Result{Job: j.Job, Attempt: j.Attempt, Status: messages.Status_STATUS_CANCELLED,
			Reason: why + " while queued", FinishedUnixMs: now.UnixMilli(), QueuedUnixMs: j.QueuedUnixMs})
	case j.State != messages.JobState_JOB_STATE_RUNNING:
		return fx
	}
	j.CancelRequested = true
	fx = append(fx, persistOne(nil, j), actors.Info("cancel requested", "job", j.Job.Id, "attempt", j.Attempt, "reason", why))
	if r := c.runners.get(j.RunnerId); r != nil && r.runs(j.Job.Id) {
		fx = append(fx, cancelJob(r.addr, j, why))
	}
	return fx
}

func (c *Core) rebuild(now time.Time, from actors.Addr, m Rebuild) []actors.Effect {
	reply := &messages.RebuildReply{}
	send := func() []actors.Effect { return []actors.Effect{actors.Send{To: from, Msg: reply}} }
	switch {
	case !c.tokenOK(m.Msg.Token):
		reply.Error = "wrong or missing token: rebuilding needs the dispatcher's --token"
		return send()
	case messages.ValidateCommit(m.Msg.Commit) != nil:
		reply.Error = messages.ValidateCommit(m.Msg.Commit).Error()
		return send()
	case len(m.Prev) == 0:
		reply.Error = fmt.Sprintf("commit %s of %s was never built here: nothing to rebuild", m.Msg.Commit, m.Msg.Repo)
		return send()
	}
	k := pair{m.Msg.Repo, m.Msg.Commit}
	build := m.Prev[0].Build + 1
	if id, ok := c.byKey[k]; ok && c.builds[id] != nil {
		b := c.builds[id]
		if b.left > 0 {
			state := messages.JobState_JOB_STATE_QUEUED
			for k := range int64(len(b.cells)) {
				if j := c.jobs[id+k]; j != nil && j.State == messages.JobState_JOB_STATE_RUNNING {
					state = j.State
				}
			}
			reply.Error = fmt.Sprintf("commit %s is already %s as build %d", m.Msg.Commit, state.Name(), id)
			return send()
		}
		if j := c.jobs[id]; j != nil && j.Job.Build >= build {
			build = j.Job.Build + 1
		}
	}
	prev := m.Prev[0]
	var p *messages.Pipeline
	if prev.Cell != nil {
		p = &messages.Pipeline{Jobs: make([]*messages.PipelineJob, len(m.Prev))}
		for i, j := range m.Prev {
			p.Jobs[i] = j.Cell
		}
	}
	b, jobs := c.makeBuild(prev.Repo, prev.RepoName, prev.Commit, prev.Branches, prev.Subject, build, now.UnixMilli(), p)
	reply.JobId, reply.Build = b.id, build
	fx := []actors.Effect{
		persist(nil, jobs),
		actors.Info("rebuild queued", "build", b.id, "commit", prev.Commit, "number", build, "by", m.Msg.Who),
	}
	fx = c.start(now, fx, b, jobs)
	return append(fx, actors.Send{To: from, Msg: reply})
}

func (c *Core) status(from actors.Addr, m *messages.StatusRequest) []actors.Effect {
	s := c.Status()
	if m.OpenOnly {
		s.Jobs = slices.DeleteFunc(s.Jobs, func(j *messages.JobRecord) bool { return j.State == messages.JobState_JOB_STATE_DONE })
	}
	return []actors.Effect{actors.Send{To: from, Msg: s}}
}

// Status describes the runners, the jobs in memory and the counters.
func (c *Core) Status() *messages.StatusReply {
	s := &messages.StatusReply{Role: "dispatcher", Reporter: string(c.reporter), Counters: map[string]int64{}}
	runners := c.runners.sorted()
	for _, r := range runners {
		rs := &messages.RunnerStatus{RunnerId: r.id, Incarnation: r.incarnation, Address: string(r.addr),
			State: "idle", LastHeartbeatUnixMs: c.time(r.seen).UnixMilli(),
			Labels: r.labels, Slots: r.slots, Running: int32(len(r.jobs))}
		if len(r.jobs) > 0 {
			rs.State = "busy"
			if j := c.jobs[r.jobs[0]]; j != nil {
				rs.Job = &messages.JobRef{JobId: j.Job.Id, Attempt: j.Attempt}
			}
		}
		s.Runners = append(s.Runners, rs)
	}
	queued := int64(0)
	for _, id := range sortedKeys(c.jobs) {
		j := c.jobs[id]
		rec := messages.CloneJobRecord(&j.JobRecord)
		rec.Waiting = c.waiting(j, runners)
		s.Jobs = append(s.Jobs, rec)
		if j.State == messages.JobState_JOB_STATE_QUEUED {
			queued++
		}
	}
	for _, a := range sortedKeys(c.observers) {
		s.Observers = append(s.Observers, c.observers[a].id)
	}
	for i, v := range c.counters {
		if v != 0 { // counters only grow: a zero one was never counted
			s.Counters[counterNames[i]] = v
		}
	}
	s.Counters["queued"] = queued
	return s
}
