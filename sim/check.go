package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/messages"
)

// Invariant names, as the summary prints them.
const (
	InvOneResult        = "one job and one final result per build, from its current attempt"
	InvNoCommitLost     = "no pushed commit is lost (only the backlog cap and force pushes skip)"
	InvObservedOnly     = "results only for observed commits"
	InvNoDeadAssignment = "no assignment to a dead or superseded runner"
	InvOldIncarnation   = "older incarnations change nothing"
	InvMalicious        = "nothing a malicious peer sends changes state or makes a runner run a job"
	InvNoOverlap        = "never two attempts of one job at once (hung or replaced runners excepted)"
	InvRunnersExit      = "runners exit within grace after the dispatcher is lost"
	InvEveryCommit      = "every observed commit gets exactly one result (liveness)"
	InvQueueDrains      = "the queue drains and no runner stays busy (liveness)"
	InvAttemptCap       = "a job that kills its runners ends errored at the attempt cap"
	InvProgress         = "the system makes progress (no livelock)"
)

// Invariants lists every invariant in the order the summary prints them.
var Invariants = []string{InvOneResult, InvNoCommitLost, InvObservedOnly, InvNoDeadAssignment, InvOldIncarnation, InvMalicious,
	InvNoOverlap, InvRunnersExit, InvEveryCommit, InvQueueDrains, InvAttemptCap, InvProgress}

// Violation is one broken invariant.
type Violation struct {
	Invariant string
	At        time.Duration
	Detail    string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s at %s: %s", v.Invariant, v.At, v.Detail)
}

type runnerKey struct {
	id  string
	inc int64
}

type live struct {
	node    int
	attempt int32
	proc    uint64
	hung    bool
}

// checker watches every step of a world.
type checker struct {
	w          *World
	results    map[int64]*messages.Result // job id -> the recorded result
	reported   map[string]*messages.Result
	observed   map[string]bool // commits durably queued
	poison     map[string]bool
	maxInc     map[string]int64
	dead       map[runnerKey]bool
	byAddr     map[actors.Addr]runnerKey
	running    map[int64][]live
	assigned   map[int64]int32   // job id -> latest attempt assigned
	jobOf      map[string]int64  // repo@commit#build -> job id
	firstSeq   map[string]uint64 // branch -> repo sequence when first queued
	skipped    map[string]bool   // commits a backlog cap or force push skipped
	lostCheck  bool
	checked    map[string]bool // invariants that had something to check
	violations []Violation
	// logs names who wrote each attempt's log at the reporter (only the
	// malicious peer does in the simulator): "repo@commit#build/attempt".
	logs map[string]actors.Identity
}

func newChecker(w *World) *checker {
	return &checker{w: w, results: map[int64]*messages.Result{}, reported: map[string]*messages.Result{},
		observed: map[string]bool{}, poison: map[string]bool{}, maxInc: map[string]int64{},
		dead: map[runnerKey]bool{}, byAddr: map[actors.Addr]runnerKey{}, running: map[int64][]live{},
		assigned: map[int64]int32{}, jobOf: map[string]int64{}, firstSeq: map[string]uint64{}, skipped: map[string]bool{},
		checked: map[string]bool{}, logs: map[string]actors.Identity{}}
}

func (c *checker) fail(inv, format string, args ...any) {
	v := Violation{Invariant: inv, At: c.w.now.Sub(c.w.start), Detail: fmt.Sprintf(format, args...)}
	c.violations = append(c.violations, v)
	c.w.report.Violations = append(c.w.report.Violations, v)
	c.w.traceWorld("VIOLATION " + v.String())
}

// dispatcherBooted forgets what the previous dispatcher incarnation knew.
func (c *checker) dispatcherBooted() {
	clear(c.maxInc)
	clear(c.dead)
	clear(c.byAddr)
}

func incOf(in any) (string, int64, bool) {
	switch m := in.(type) {
	case *messages.Heartbeat:
		return m.RunnerId, m.Incarnation, true
	case *messages.JobFinished:
		return m.RunnerId, m.Incarnation, true
	case *messages.RunnerStopping:
		return m.RunnerId, m.Incarnation, true
	}
	return "", 0, false
}

// step checks one core step: its input and the effects it returned.
func (c *checker) step(w *World, n *node, from actors.From, in any, fx []actors.Effect) {
	if n.role != roleDispatcher {
		return
	}
	if id, inc, ok := incOf(in); ok && inc < c.maxInc[id] {
		c.checked[InvOldIncarnation] = true
		for _, e := range fx {
			switch e := e.(type) {
			case dispatcher.Persist:
				c.fail(InvOldIncarnation, "a %s from %s incarnation %d (current %d) persisted state", inputName(in), id, inc, c.maxInc[id])
			case actors.Send:
				// The only answer an older incarnation may get is "not recorded".
				if ack, ok := e.Msg.(*messages.JobFinishedAck); ok && !ack.Recorded {
					continue
				}
				c.fail(InvOldIncarnation, "a %s from %s incarnation %d (current %d) was answered with %s", inputName(in), id, inc, c.maxInc[id], inputName(e.Msg))
			}
		}
	}
	switch m := in.(type) {
	case *messages.RegisterRunner:
		for _, e := range fx {
			if s, ok := e.(actors.Send); ok {
				if r, ok := s.Msg.(*messages.RunnerRegistered); ok && r.Accepted {
					c.maxInc[m.RunnerId] = max(c.maxInc[m.RunnerId], m.Incarnation)
					c.byAddr[from.Addr] = runnerKey{m.RunnerId, m.Incarnation}
					delete(c.dead, runnerKey{m.RunnerId, m.Incarnation}) // back from a hang or partition
				}
			}
		}
	case actors.PeerTerminated:
		if k, ok := c.byAddr[m.Addr]; ok {
			c.dead[k] = true
		}
	case dispatcher.Observed:
		for _, e := range fx {
			if _, ok := e.(dispatcher.Persist); ok {
				for _, commit := range m.Msg.Commits {
					c.observed[commit] = true
					if info := w.repo.commits[commit]; info != nil && info.poison {
						c.poison[commit] = true
					}
				}
				if _, seen := c.firstSeq[m.Msg.Branch]; !seen {
					c.firstSeq[m.Msg.Branch] = w.repo.seq
				}
				c.markSkipped(w, m.Msg)
			}
		}
	}
	for _, e := range fx {
		switch e := e.(type) {
		case dispatcher.Persist:
			for _, j := range e.Jobs {
				k := fmt.Sprintf("%s@%s#%d", j.Job.Repo, j.Job.Commit, j.Job.Build)
				if id, ok := c.jobOf[k]; ok && id != j.Job.Id {
					c.fail(InvOneResult, "jobs %d and %d are both build %d of %s", id, j.Job.Id, j.Job.Build, j.Job.Commit[:12])
				}
				c.jobOf[k] = j.Job.Id
				if j.State != messages.JobState_JOB_STATE_DONE {
					continue
				}
				c.checked[InvOneResult] = true
				if _, fromRunner := in.(*messages.JobFinished); fromRunner && j.Result.Attempt != c.assigned[j.Job.Id] {
					c.fail(InvOneResult, "job %d recorded attempt %d's result, but attempt %d is the current one", j.Job.Id, j.Result.Attempt, c.assigned[j.Job.Id])
				}
				c.checked[InvObservedOnly] = true
				if !c.observed[j.Job.Commit] {
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
		case actors.Send:
			if r, ok := e.Msg.(*messages.RunJob); ok {
				if r.Attempt > 1 {
					w.report.Reassignments++
				}
				c.assigned[r.Job.Id] = max(c.assigned[r.Job.Id], r.Attempt)
				c.checked[InvNoDeadAssignment] = true
				k := runnerKey{r.RunnerId, r.Incarnation}
				if c.dead[k] || r.Incarnation < c.maxInc[r.RunnerId] {
					c.fail(InvNoDeadAssignment, "job %d attempt %d assigned to %s incarnation %d, known dead or superseded", r.Job.Id, r.Attempt, r.RunnerId, r.Incarnation)
				}
			}
		}
	}
}

// forged checks one step of a core on a malicious peer's message: the
// core's state digest is unchanged and it did nothing but note the refusal.
// The exception is a runner certificate's log chunk (or close) at the
// reporter: whose job the log is, only the result will tell, so it may be
// stored under a claim; logRecorded checks that the claim decides.
func (c *checker) forged(w *World, n *node, from actors.From, in any, before, after uint64, fx []actors.Effect) {
	c.checked[InvMalicious] = true
	claim := false
	if n.role == roleReporter && from.Who.Role == actors.RoleRunner {
		switch in.(type) {
		case *messages.LogChunk, *messages.LogClosed:
			claim = true
		}
	}
	what := fmt.Sprintf("a forged %s from %s claiming to be %q", inputName(in), identityLabel(from.Who), from.Addr)
	for _, e := range fx {
		switch e := e.(type) {
		case actors.Note:
			continue
		case reporter.AppendLog, reporter.CloseLog:
			if claim {
				continue
			}
			c.fail(InvMalicious, "%s made %s store or answer for a log", what, n.name)
		case runner.StartJob:
			c.fail(InvMalicious, "%s made %s run job %d attempt %d", what, n.name, e.Run.GetJob().GetId(), e.Run.Attempt)
		case dispatcher.Persist:
			c.fail(InvMalicious, "%s made %s persist %d jobs, %d cursors", what, n.name, len(e.Jobs), len(e.Cursors))
		case actors.Send:
			c.fail(InvMalicious, "%s made %s send %s to %q", what, n.name, inputName(e.Msg), e.To)
		default:
			c.fail(InvMalicious, "%s made %s carry out %T", what, n.name, e)
		}
		return
	}
	if before != after && !claim {
		c.fail(InvMalicious, "%s changed %s's state", what, n.name)
	}
}

func logKeyOf(j *messages.Job, attempt int32) string {
	return fmt.Sprintf("%s@%s#%d/%d", j.GetRepo(), j.GetCommit(), j.GetBuild(), attempt)
}

// logWritten records who wrote to an attempt's log at the reporter.
func (c *checker) logWritten(j *messages.Job, attempt int32, who actors.Identity) {
	k := logKeyOf(j, attempt)
	if prev, ok := c.logs[k]; ok && prev != who {
		c.fail(InvMalicious, "the reporter stored the log of job %d attempt %d from %s, then from %s", j.GetId(), attempt,
			identityLabel(prev), identityLabel(who))
	}
	c.logs[k] = who
}

// logRecorded checks that the reporter keeps an attempt's log with its
// result only if the runner the result names wrote it.
func (c *checker) logRecorded(r *messages.Result, dropped bool) {
	k := logKeyOf(r.Job, r.Attempt)
	who, ok := c.logs[k]
	if !ok {
		return
	}
	c.checked[InvMalicious] = true
	if dropped {
		delete(c.logs, k)
		return
	}
	if !who.IsRunner(r.RunnerId) {
		c.fail(InvMalicious, "the reporter kept the log of job %d attempt %d that %s wrote, for a result of runner %s",
			r.Job.GetId(), r.Attempt, identityLabel(who), r.RunnerId)
	}
}

// note reads the dispatcher's trace events for what it learns by deadline.
func (c *checker) note(n *node, e actors.Note) {
	if n.role != roleDispatcher || e.Msg != "runner lost" {
		return
	}
	var k runnerKey
	for i := 0; i+1 < len(e.Args); i += 2 {
		switch e.Args[i] {
		case "runner":
			k.id, _ = e.Args[i+1].(string)
		case "incarnation":
			k.inc, _ = e.Args[i+1].(int64)
		}
	}
	c.dead[k] = true
}

func (c *checker) recorded(w *World, r *messages.Result) {
	key := fmt.Sprintf("%s@%s#%d", r.Job.Repo, r.Job.Commit, r.Job.Build)
	if prev := c.reported[key]; prev != nil {
		if prev.Attempt != r.Attempt || prev.Status != r.Status {
			c.fail(InvOneResult, "the reporter got two results for %s: attempt %d %s, then attempt %d %s", key,
				prev.Attempt, prev.Status.Name(), r.Attempt, r.Status.Name())
		}
		return
	}
	c.reported[key] = r
}

func (c *checker) attemptStarted(w *World, n *node, p *proc) {
	c.checked[InvNoOverlap] = true
	for _, l := range c.running[p.ref.JobId] {
		// A hung runner cannot give its lease back, and a replaced one (an
		// older incarnation still alive) is the same case: both exempt.
		if !l.hung && !w.nodes[l.node].zombie && !n.zombie {
			c.fail(InvNoOverlap, "job %d attempt %d started on %s while attempt %d still runs on %s",
				p.ref.JobId, p.ref.Attempt, n.name, l.attempt, w.nodes[l.node].name)
		}
	}
	c.running[p.ref.JobId] = append(c.running[p.ref.JobId], live{node: n.idx, attempt: p.ref.Attempt, proc: p.id})
}

func (c *checker) attemptEnded(n *node, p *proc) {
	c.running[p.ref.JobId] = slices.DeleteFunc(c.running[p.ref.JobId], func(l live) bool { return l.node == n.idx })
	if len(c.running[p.ref.JobId]) == 0 {
		delete(c.running, p.ref.JobId)
	}
}

func (c *checker) hung(n *node) {
	for id, ls := range c.running {
		for i := range ls {
			if ls[i].node == n.idx {
				c.running[id][i].hung = true
			}
		}
	}
}

// dispatcherLost schedules the check that runners exit within their grace.
func (c *checker) dispatcherLost(w *World) {
	c.lostCheck = true
}

func (c *checker) healed(w *World) {}

// final checks the end state: liveness after healing, or the runners'
// exit after the dispatcher was lost for good.
func (c *checker) end(w *World) {
	if !w.lostAt.IsZero() {
		c.checked[InvRunnersExit] = true
		bound := w.cfg.RunnerGrace + w.dispCfg.DeadAfter + time.Second
		for _, r := range w.runners() {
			switch {
			case r.up:
				c.fail(InvRunnersExit, "%s still up %s after the dispatcher was lost (grace %s)", r.name, w.now.Sub(w.lostAt), w.cfg.RunnerGrace)
			case r.exited && r.exitedAt.Sub(latest(w.lostAt, r.bootedAt)) > bound+r.hungLost:
				c.fail(InvRunnersExit, "%s exited %s after the dispatcher was lost (bound %s)", r.name, r.exitedAt.Sub(latest(w.lostAt, r.bootedAt)), bound)
			}
		}
		return
	}
	c.checked[InvEveryCommit] = true
	var missing []string
	for commit := range c.observed {
		if c.reported[fmt.Sprintf("%s@%s#1", w.repo.URL, commit)] == nil {
			missing = append(missing, commit[:12])
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		c.fail(InvEveryCommit, "%d observed commits have no result after %s of calm: %s", len(missing), w.cfg.Settle, strings.Join(missing, " "))
	}
	c.checked[InvNoCommitLost] = true
	c.checked[InvProgress] = true
	var lost []string
	for _, b := range w.repo.order {
		first, seen := c.firstSeq[b]
		if !seen {
			continue
		}
		for _, commit := range w.repo.branches[b] {
			if w.repo.commits[commit].seq > first && !c.skipped[commit] &&
				c.reported[fmt.Sprintf("%s@%s#1", w.repo.URL, commit)] == nil {
				lost = append(lost, b+":"+commit[:12])
			}
		}
	}
	if len(lost) > 0 {
		c.fail(InvNoCommitLost, "%d pushed commits were never built: %s", len(lost), strings.Join(lost, " "))
	}
	c.checked[InvQueueDrains] = true
	st := w.dispatcherNode().disp.Status()
	for _, j := range st.Jobs {
		if j.State != messages.JobState_JOB_STATE_DONE || !j.Forwarded {
			c.fail(InvQueueDrains, "job %d still %s (forwarded %v) at the end", j.Job.Id, j.State.Name(), j.Forwarded)
		}
	}
	for _, r := range w.runners() {
		if r.up && r.run.Busy() {
			c.fail(InvQueueDrains, "%s still busy at the end", r.name)
		}
	}
	for commit := range c.poison {
		c.checked[InvAttemptCap] = true
		res := c.reported[fmt.Sprintf("%s@%s#1", w.repo.URL, commit)]
		if res != nil && (res.Status != messages.Status_STATUS_ERRORED || !strings.Contains(res.Reason, "attempts")) {
			c.fail(InvAttemptCap, "poison commit %s ended %s (%s), want errored at the attempt cap", commit[:12], res.Status.Name(), res.Reason)
		}
	}
}

// markSkipped records the commits an observation legitimately leaves out:
// those the backlog cap dropped, and after a force push everything but the
// new tip.
func (c *checker) markSkipped(w *World, m *messages.CommitObserved) {
	if len(m.Commits) == 0 {
		return
	}
	h := w.repo.branches[m.Branch]
	first := slices.Index(h, m.Commits[0])
	if first < 0 {
		return
	}
	from := 0
	if !m.Forced {
		if m.Skipped == 0 {
			return
		}
		from = slices.Index(h, m.Previous) + 1
	}
	for _, commit := range h[from:first] {
		c.skipped[commit] = true
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
