package dispatcher

import (
	"slices"
	"strings"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

type observerState struct {
	id    string
	repos []*messages.WatchedRepo
}

func (c *Core) registerObserver(from actors.Addr, m *messages.RegisterObserver) []actors.Effect {
	reply := &messages.ObserverRegistered{SupportedVersions: messages.SupportedVersions, Reason: c.refuseRole("observer", m.ProtocolVersion, m.Token)}
	if reply.Reason != "" {
		c.counters[cRejected]++
		return []actors.Effect{actors.Send{To: from, Msg: reply}}
	}
	var fx []actors.Effect
	if _, known := c.observers[from]; !known {
		fx = append(fx, actors.Watch{Addr: from}, actors.Info("observer registered", "observer", m.ObserverId, "repos", len(m.Repos)))
	}
	c.observers[from] = &observerState{id: m.ObserverId, repos: m.Repos}
	for _, repo := range m.Repos {
		for _, b := range repo.Branches {
			if cur := c.cursors[pair{repo.Url, b}]; cur != nil {
				reply.Cursors = append(reply.Cursors, cur)
			}
		}
	}
	reply.Accepted = true
	return append(fx, actors.Send{To: from, Msg: reply})
}

func (c *Core) observed(now time.Time, from actors.Addr, o Observed) []actors.Effect {
	m := o.Msg
	if fx := c.rejectObserved(from, m); fx != nil {
		return fx
	}
	ack := newObservedAck(m)
	var one [1]*job
	saves := one[:0]
	var pending []*job // unarchived with a new branch: for the reporter
	var made []*build  // new builds, started once persisted
	var madeJobs [][]*job
	// The Persist first, then a note per new build, the ack, and the
	// assignments (a Persist, then a send and a note per job).
	fx := make([]actors.Effect, 1, 4+3*len(m.Commits))
	// The notes' arguments that every job shares, made once.
	if c.repoNameArg == nil || m.RepoName != c.repoName {
		c.repoName, c.repoNameArg = m.RepoName, m.RepoName
	}
	if c.branchArg == nil || m.Branch != c.branch {
		c.branch, c.branchArg = m.Branch, m.Branch
	}
	queuedMs := now.UnixMilli()
	for i, commit := range m.Commits {
		if id, more, back, ok := c.known(o, commit); ok {
			saves = append(saves, more...)
			if back {
				pending = append(pending, more...)
			}
			ack.JobIds = append(ack.JobIds, id)
			continue
		}
		b, jobs := c.newBuild(m, i, queuedMs)
		saves = append(saves, jobs...)
		made, madeJobs = append(made, b), append(madeJobs, jobs)
		ack.JobIds = append(ack.JobIds, b.id)
		idArg, commitArg := jobs[0].noteArgs()
		if len(jobs) == 1 {
			fx = append(fx, actors.Info("commit queued", "job", idArg, "repo", c.repoNameArg, "branch", c.branchArg, "commit", commitArg))
		} else {
			fx = append(fx, actors.Info("commit queued", "build", idArg, "repo", c.repoNameArg, "branch", c.branchArg, "commit", commitArg, "jobs", len(jobs)))
		}
	}
	cur, curs := c.moveCursor(m)
	if cur != nil {
		ack.Cursor = cur.Commit
	}
	if m.Skipped > 0 {
		fx = append(fx, actors.Warn("backlog capped: older commits skipped", "repo", m.RepoName, "branch", m.Branch, "skipped", m.Skipped))
	}
	if len(saves) > 0 || len(curs) > 0 {
		fx[0] = persist(curs, saves)
	} else {
		fx = fx[1:]
	}
	for i, b := range made {
		fx = c.start(now, fx, b, madeJobs[i])
	}
	for _, j := range pending {
		fx = c.forward(now, fx, j)
	}
	return append(fx, actors.Send{To: from, Msg: ack})
}

// rejectObserved answers a CommitObserved that changes nothing: from an
// unregistered observer (told to register) or naming a bad branch or
// commit. It returns nil for one to take.
func (c *Core) rejectObserved(from actors.Addr, m *messages.CommitObserved) []actors.Effect {
	if _, ok := c.observers[from]; !ok {
		c.counters[cRejected]++
		return []actors.Effect{
			actors.Warn("CommitObserved from an unregistered observer: asking it to register", "from", string(from)),
			actors.Send{To: from, Msg: &messages.CommitObservedAck{ObserverId: m.ObserverId, Seq: m.Seq, Repo: m.Repo, Branch: m.Branch, Unknown: true}},
		}
	}
	if err := messages.ValidateRef(m.Branch); err != nil {
		c.counters[cRejected]++
		return []actors.Effect{actors.Warn("CommitObserved rejected", "error", err.Error())}
	}
	for _, commit := range m.Commits {
		if err := messages.ValidateCommit(commit); err != nil {
			c.counters[cRejected]++
			return []actors.Effect{actors.Warn("CommitObserved rejected", "error", err.Error())}
		}
	}
	return nil
}

// newObservedAck is the acknowledgement of m, with room for its job ids.
func newObservedAck(m *messages.CommitObserved) *messages.CommitObservedAck {
	a := new(struct {
		ack messages.CommitObservedAck
		ids [1]int64
	})
	ack := &a.ack
	ack.ObserverId, ack.Seq, ack.Repo, ack.Branch = m.ObserverId, m.Seq, m.Repo, m.Branch
	if len(m.Commits) <= 1 {
		ack.JobIds = a.ids[:0]
	} else {
		ack.JobIds = make([]int64, 0, len(m.Commits))
	}
	return ack
}

// known looks up a commit of o already built or being built (ok), and
// returns its build's id; more, the jobs to persist because the commit's
// branch is new to them; and back, whether more was brought back from the
// archive (see unarchive) and so must go to the reporter again.
func (c *Core) known(o Observed, commit string) (id int64, more []*job, back, ok bool) {
	m := o.Msg
	if plant.On(plant.DuplicateObservedCreatesJobs) {
		return 0, nil, false, false
	}
	if id, ok := c.byKey[pair{m.Repo, commit}]; ok {
		n := int64(1)
		if b := c.builds[id]; b != nil {
			n = int64(len(b.cells))
		}
		// The build's jobs still here take the branch; those forwarded
		// have ended, and the build's branches are its jobs' together.
		for k := range n {
			if j := c.jobs[id+k]; j != nil && !slices.Contains(j.Job.Branches, m.Branch) {
				withBranch(j, m.Branch)
				more = append(more, j)
			}
		}
		return id, more, false, true
	}
	rec := o.Archived[commit]
	if rec == nil {
		return 0, nil, false, false
	}
	if !slices.Contains(rec.Job.Branches, m.Branch) {
		j := c.unarchive(rec, m.Branch)
		return j.Job.BuildID(), []*job{j}, true, true
	}
	return rec.Job.BuildID(), nil, false, true
}

// moveCursor moves the cursor of m's branch to m's tip, but only from where
// the observer computed (or when forced): a reordered older message must
// not move it back. It returns the cursor and, if it moved, the cursors to
// persist.
func (c *Core) moveCursor(m *messages.CommitObserved) (*messages.Cursor, []*messages.Cursor) {
	cur := c.cursors[pair{m.Repo, m.Branch}]
	if len(m.Commits) == 0 {
		return cur, nil
	}
	tip := m.Commits[len(m.Commits)-1]
	if (cur != nil && cur.Commit != m.Previous && !m.Forced) || (cur != nil && cur.Commit == tip) {
		return cur, nil
	}
	b := new(struct {
		cur  messages.Cursor
		curs [1]*messages.Cursor
	})
	cur = &b.cur
	cur.Repo, cur.Branch, cur.Commit = m.Repo, m.Branch, tip
	c.cursors[pair{m.Repo, m.Branch}] = cur
	b.curs[0] = cur
	return cur, b.curs[:]
}

// unarchive brings back the finished, forwarded job rec, now seen on
// branch too: in memory, done and not forwarded, with a new Job naming the
// branch, so that it is saved and sent to the reporter again until
// acknowledged (the reporter adds the branch to its copy). rec, the
// store's, is not changed.
func (c *Core) unarchive(rec *messages.JobRecord, branch string) *job {
	j := &job{}
	copyRecord(&j.JobRecord, rec)
	withBranch(j, branch)
	j.Forwarded = false
	c.hold(j)
	if _, ok := c.byKey[pair{j.Job.Repo, j.Job.Commit}]; !ok && c.buildOf(j) == nil {
		c.byKey[pair{j.Job.Repo, j.Job.Commit}] = j.Job.BuildID()
	}
	c.unsent.pushBack(j)
	return j
}

// subject returns subjects[i] cut to one line of at most 200 bytes.
func subject(subjects []string, i int) string {
	if i >= len(subjects) {
		return ""
	}
	s := subjects[i]
	if n := strings.IndexAny(s, "\r\n"); n >= 0 {
		s = s[:n]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func (c *Core) notify(from actors.Addr, m *messages.Notify) []actors.Effect {
	if !c.tokenOK(m.Token) {
		c.counters[cRejected]++
		return []actors.Effect{actors.Send{To: from, Msg: &messages.NotifyAck{Observers: -1}}}
	}
	var fx []actors.Effect
	addrs := sortedKeys(c.observers)
	for _, a := range addrs {
		fx = append(fx, actors.Send{To: a, Msg: &messages.PollNow{Repo: m.Repo, Branch: m.Branch}})
	}
	return append(fx, actors.Send{To: from, Msg: &messages.NotifyAck{Observers: int32(len(addrs))}})
}
