package dispatcher

import (
	"fmt"
	"slices"
	"time"

	"github.com/voltci/volt/actors"
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

func (c *Core) cancel(now time.Time, from actors.Addr, m *messages.CancelRequest) []actors.Effect {
	reply := &messages.CancelReply{JobId: m.JobId}
	j := c.jobs[m.JobId]
	switch {
	case !c.tokenOK(m.Token):
		reply.Error = "wrong or missing token: cancelling needs the dispatcher's --token"
	case j == nil || j.State == messages.JobState_JOB_STATE_DONE:
		reply.Error = fmt.Sprintf("job %d is not queued or running", m.JobId)
	}
	if reply.Error != "" {
		return []actors.Effect{actors.Send{To: from, Msg: reply}}
	}
	who := m.Who
	if who == "" {
		who = "a user"
	}
	if j.State == messages.JobState_JOB_STATE_QUEUED {
		c.cancelledQueued++ // its id stays in the queue: see assign
		fx := c.finish(now, nil, j, &messages.Result{Job: j.Job, Attempt: j.Attempt, Status: messages.Status_STATUS_CANCELLED,
			Reason: "cancelled by " + who + " while queued", FinishedUnixMs: now.UnixMilli(), QueuedUnixMs: j.QueuedUnixMs})
		return append(fx, actors.Send{To: from, Msg: reply})
	}
	j.CancelRequested = true
	var fx []actors.Effect
	fx = append(fx, persistOne(nil, j), actors.Info("cancel requested", "job", j.Job.Id, "attempt", j.Attempt, "by", who))
	if r := c.runners.get(j.RunnerId); r != nil && r.job == j.Job.Id {
		fx = append(fx, cancelJob(r.addr, j, "cancelled by "+who))
	}
	return append(fx, actors.Send{To: from, Msg: reply})
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
	case m.Prev == nil:
		reply.Error = fmt.Sprintf("commit %s of %s was never built here: nothing to rebuild", m.Msg.Commit, m.Msg.Repo)
		return send()
	}
	k := pair{m.Msg.Repo, m.Msg.Commit}
	if id, ok := c.byKey[k]; ok {
		if j := c.jobs[id]; j != nil && j.State != messages.JobState_JOB_STATE_DONE {
			reply.Error = fmt.Sprintf("commit %s is already %s as job %d", m.Msg.Commit, j.State.Name(), id)
			return send()
		}
	}
	build := m.Prev.Build + 1
	if id, ok := c.byKey[k]; ok && c.jobs[id] != nil && c.jobs[id].Job.Build >= build {
		build = c.jobs[id].Job.Build + 1
	}
	j := &job{JobRecord: messages.JobRecord{
		Job: &messages.Job{Id: c.nextID, Repo: m.Prev.Repo, RepoName: m.Prev.RepoName, Commit: m.Prev.Commit,
			Branches: append([]string(nil), m.Prev.Branches...), Build: build, Subject: m.Prev.Subject},
		State: messages.JobState_JOB_STATE_QUEUED, QueuedUnixMs: now.UnixMilli(),
	}}
	c.nextID++
	c.jobs[j.Job.Id] = j
	c.byKey[pair{j.Job.Repo, j.Job.Commit}] = j.Job.Id
	c.queue.pushBack(j.Job.Id)
	c.counters[cJobsQueued]++
	reply.JobId, reply.Build = j.Job.Id, build
	return []actors.Effect{
		persistOne(nil, j),
		actors.Info("rebuild queued", "job", j.Job.Id, "commit", j.Job.Commit, "build", build, "by", m.Msg.Who),
		actors.Send{To: from, Msg: reply},
	}
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
	for _, r := range c.runners.sorted() {
		rs := &messages.RunnerStatus{RunnerId: r.id, Incarnation: r.incarnation, Address: string(r.addr),
			State: "idle", LastHeartbeatUnixMs: c.time(r.seen).UnixMilli()}
		if j := c.jobs[r.job]; r.job != 0 && j != nil {
			rs.State = "busy"
			rs.Job = &messages.JobRef{JobId: r.job, Attempt: j.Attempt}
		}
		s.Runners = append(s.Runners, rs)
	}
	for _, id := range sortedKeys(c.jobs) {
		s.Jobs = append(s.Jobs, messages.CloneJobRecord(&c.jobs[id].JobRecord))
	}
	for _, a := range sortedKeys(c.observers) {
		s.Observers = append(s.Observers, c.observers[a].id)
	}
	for i, v := range c.counters {
		if v != 0 { // counters only grow: a zero one was never counted
			s.Counters[counterNames[i]] = v
		}
	}
	s.Counters["queued"] = int64(c.queue.len() - c.cancelledQueued)
	return s
}
