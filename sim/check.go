package sim

import (
	"bytes"
	"fmt"
	"maps"
	"path"
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
	InvSecretGrant      = "a secret's value goes only to the runner running the job's current attempt, and only if bound to its repository and branch"
	InvSecretAllOrNone  = "secrets are granted all or nothing: a refusal carries no value"
	InvSecretMalicious  = "the malicious peer never gets a secret's value nor changes the secret store"
	InvLogTicket        = "the runner given an attempt may write its log: its ticket verifies at the reporter"
	InvNoOverlap        = "never two attempts of one job at once (hung or replaced runners excepted)"
	InvRunnersExit      = "runners exit within grace after the dispatcher is lost"
	InvEveryCommit      = "every observed commit gets exactly one result (liveness)"
	InvQueueDrains      = "the queue drains and no runner stays busy (liveness)"
	InvAttemptCap       = "a job that kills its runners ends errored at the attempt cap"
	InvProgress         = "the system makes progress (no livelock)"
)

// Invariants lists every invariant in the order the summary prints them.
var Invariants = []string{InvOneResult, InvNoCommitLost, InvObservedOnly, InvNoDeadAssignment, InvOldIncarnation, InvMalicious,
	InvSecretGrant, InvSecretAllOrNone, InvSecretMalicious, InvLogTicket, InvNoOverlap, InvRunnersExit, InvEveryCommit, InvQueueDrains, InvAttemptCap, InvProgress,
	InvAttempts, InvDeadAfter, InvCancel, InvRebuilt, InvResultFile, InvAckedKept,
	InvNeedsFirst, InvSkipped, InvBuildOnce, InvLabels, InvSlots, InvNoRunnerWaits,
	InvFencedWrites, InvNewerEpoch, InvStaleLeader}

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
	w *World
	// epochs is, for each runner node of a failover world, the newest
	// epoch it registered with (failover.go).
	epochs map[int]int64
	// pendingObserved is, per repo and branch, the CommitObserved whose
	// step persisted a batch not yet known to be durable.
	pendingObserved map[string]*messages.CommitObserved
	registered      map[int]bool
	results         map[int64]*messages.Result // job id -> the recorded result
	recordedBy      map[int64]recordedBy       // job id -> the attempt and incarnation that delivered it
	// deciding is recordedBy as the dispatcher core decided it, before its
	// batch is durable: an answer about that result waits behind the
	// batch, so it is true when it goes out (a slow store widens the gap).
	deciding map[int64]recordedBy
	reported map[string]*messages.Result
	observed map[string]bool // commits durably queued
	queuing  map[string]bool // commits a dispatcher core decided to queue (pipelineStep)
	poison   map[string]bool
	maxInc   map[string]int64
	dead     map[runnerKey]bool
	byAddr   map[actors.Addr]runnerKey
	running  map[int64][]live
	assigned map[int64]int32  // job id -> latest attempt assigned
	jobOf    map[string]int64 // repo@commit#build -> job id
	skipped  map[string]bool  // commits the contract lets go unbuilt (see markSkipped)
	// stuck are the commits whose pipeline has a job that asks for labels
	// no simulated runner has: it stays queued, with its reason, for ever.
	stuck map[string]bool
	// pipes is the pipelines as the dispatcher's core decides them; cells
	// each job's cell as persisted (jobKey -> cell).
	pipes      *pipelineView
	cells      map[string]*messages.PipelineJob
	model      *model
	checked    map[string]bool // invariants that had something to check
	violations []Violation
	// logs names who wrote each attempt's log at the reporter (in the
	// simulator only the malicious peer tries, and must be refused: see
	// tickets.go): "repo@commit#build/attempt".
	logs map[string]actors.Identity
	// The checker's own view of who may get a job's secrets: each job as
	// it was assigned, the branches each commit was observed on (repo
	// \x00 commit -> branches), and the addresses of the runner
	// incarnations that started each attempt.
	jobs     map[int64]*messages.Job
	branches map[string][]string
	started  map[jobAttempt][]actors.Addr
}

// recordedBy is who delivered the result recorded for a job.
type recordedBy struct {
	attempt int32
	runner  runnerKey
}

type jobAttempt struct {
	job     int64
	attempt int32
}

func newChecker(w *World) *checker {
	return &checker{w: w, results: map[int64]*messages.Result{}, recordedBy: map[int64]recordedBy{}, deciding: map[int64]recordedBy{}, pendingObserved: map[string]*messages.CommitObserved{}, reported: map[string]*messages.Result{},
		observed: map[string]bool{}, queuing: map[string]bool{}, poison: map[string]bool{}, maxInc: map[string]int64{},
		dead: map[runnerKey]bool{}, byAddr: map[actors.Addr]runnerKey{}, running: map[int64][]live{},
		assigned: map[int64]int32{}, jobOf: map[string]int64{}, model: newModel(), skipped: map[string]bool{}, stuck: map[string]bool{},
		pipes: newPipelineView(), cells: map[string]*messages.PipelineJob{},
		checked: map[string]bool{}, logs: map[string]actors.Identity{},
		jobs: map[int64]*messages.Job{}, branches: map[string][]string{}, started: map[jobAttempt][]actors.Addr{}}
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
	clear(c.model.heard)
	c.pipes.booted(c.w.store)
	// A restarted dispatcher knows only what its store holds: assignments
	// it decided and never made durable are gone, and their attempt
	// numbers are given again.
	for _, mj := range c.model.jobs {
		mj.attempts, mj.holder = mj.durable, mj.durableHolder
		mj.forgetRetries()
	}
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

// stale reports whether in, about to be handed to n, comes from a runner
// incarnation older than one the dispatcher has accepted: the world then
// takes n's digest before and after the step and calls staleStep.
func (c *checker) stale(n *node, in any) bool {
	if n.role != roleDispatcher {
		return false
	}
	id, inc, ok := incOf(in)
	return ok && inc < c.maxInc[id]
}

// staleStep checks the contract for a message from an older incarnation:
// it may be answered, truthfully, but it changes nothing. So the
// dispatcher's state digest is the same before and after the step, nothing
// is persisted, and the only message sent back is a JobFinishedAck that
// says "recorded" only when the checker's own record says this very
// attempt, runner and incarnation's result is the one recorded for the
// job (a duplicate of what was recorded), or says "not recorded".
func (c *checker) staleStep(n *node, in any, before, after uint64, fx []actors.Effect) {
	id, inc, _ := incOf(in)
	c.checked[InvOldIncarnation] = true
	if before != after {
		c.fail(InvOldIncarnation, "a %s from %s incarnation %d (current %d) changed the dispatcher's state", inputName(in), id, inc, c.maxInc[id])
	}
	for _, e := range fx {
		switch e := e.(type) {
		case dispatcher.Persist:
			c.fail(InvOldIncarnation, "a %s from %s incarnation %d (current %d) persisted state", inputName(in), id, inc, c.maxInc[id])
		case actors.Send:
			ack, ok := e.Msg.(*messages.JobFinishedAck)
			fin, _ := in.(*messages.JobFinished)
			if ok && fin != nil && (!ack.Recorded || c.recordedFrom(fin, inc)) {
				continue // a truthful answer
			}
			c.fail(InvOldIncarnation, "a %s from %s incarnation %d (current %d) was answered with %s", inputName(in), id, inc, c.maxInc[id], ackLabel(e.Msg))
		}
	}
}

// recordedFrom reports whether the result the checker saw recorded for
// fin's job is fin's: same attempt, from the same runner incarnation.
func (c *checker) recordedFrom(fin *messages.JobFinished, inc int64) bool {
	res := fin.GetResult()
	want := recordedBy{attempt: res.GetAttempt(), runner: runnerKey{fin.RunnerId, inc}}
	if by, ok := c.recordedBy[res.GetJob().GetId()]; ok && by == want {
		return true
	}
	by, ok := c.deciding[res.GetJob().GetId()]
	return ok && by == want
}

func ackLabel(m any) string {
	if a, ok := m.(*messages.JobFinishedAck); ok {
		return fmt.Sprintf("JobFinishedAck (recorded %v)", a.Recorded)
	}
	return inputName(m)
}

// step checks one core step: its input and the effects it returned.
func (c *checker) step(w *World, n *node, from actors.From, in any, fx []actors.Effect) {
	if n.role != roleDispatcher {
		return
	}
	switch m := in.(type) {
	case dispatcher.Observed:
		for _, e := range fx {
			if _, ok := e.(dispatcher.Persist); ok {
				c.observedDurable(w, m.Msg)
			}
		}
	}
	c.modelStep(w, from, in, fx)
	for _, e := range fx {
		switch e := e.(type) {
		case dispatcher.Persist:
			// What a Persist records is checked once it is durable
			// (persisted, told by the store): a batch a crash loses
			// never happened.
			for _, j := range e.Jobs {
				if j.State != messages.JobState_JOB_STATE_DONE {
					continue
				}
				c.checked[InvOneResult] = true
				// Only the job the runner reports: its step may end others too
				// (skipped dependents, a fail-fast matrix's queued cells).
				if fin, fromRunner := in.(*messages.JobFinished); fromRunner && fin.GetResult().GetJob().GetId() == j.Job.Id && j.Result.Attempt != c.assigned[j.Job.Id] {
					c.fail(InvOneResult, "job %d recorded attempt %d's result, but attempt %d is the current one", j.Job.Id, j.Result.Attempt, c.assigned[j.Job.Id])
				}
				if fin, ok := in.(*messages.JobFinished); ok {
					c.recordedBy[j.Job.Id] = recordedBy{attempt: j.Result.Attempt, runner: runnerKey{fin.RunnerId, fin.Incarnation}}
				}
			}
		case actors.Send:
			if g, ok := e.Msg.(*messages.SecretGrant); ok {
				c.secretGrant(w, in, e.To, g)
			}
			if r, ok := e.Msg.(*messages.RunJob); ok {
				if r.Attempt > 1 {
					w.report.Reassignments++
				}
				c.assigned[r.Job.Id] = max(c.assigned[r.Job.Id], r.Attempt)
				c.jobs[r.Job.Id] = r.Job
			}
		}
	}
}

// forged checks one step of a core on a malicious peer's message: the
// core's state digest is unchanged and it did nothing but note the refusal.
// One exception: a request for secrets in the peer's own name (a runner
// certificate may ask) is answered, with a refusal that must carry no
// value (InvSecretMalicious, as must every change of secrets it asks for).
// A runner certificate's log chunk is no exception: the peer was never
// given an attempt, so it holds no log ticket, and the reporter must take
// none of its chunks.
func (c *checker) forged(w *World, n *node, from actors.From, in any, before, after uint64, fx []actors.Effect) {
	c.checked[InvMalicious] = true
	// what names the forgery in a failure (made only then: most steps pass).
	what := forgeryLabel{in, from}
	for _, e := range fx {
		switch e := e.(type) {
		case actors.Note:
			continue
		case actors.Send:
			// A runner certificate may ask for secrets in its own name: the
			// answer is a refusal, with no value (InvSecretAllOrNone checks
			// the rest of it).
			g, ok := e.Msg.(*messages.SecretGrant)
			ask, asked := in.(dispatcher.SecretAsk)
			switch {
			case !ok:
			case len(g.Values) > 0:
				c.fail(InvSecretMalicious, "%s made %s send the values of %s to %q", what, n.name, strings.Join(slices.Sorted(maps.Keys(g.Values)), ", "), e.To)
				return
			case asked && ask.Msg != nil && from.Who.IsRunner(ask.Msg.RunnerId):
				continue
			}
			c.fail(InvMalicious, "%s made %s send %s to %q", what, n.name, inputName(e.Msg), e.To)
		case dispatcher.SecretChange:
			c.fail(InvSecretMalicious, "%s made %s carry out a %s", what, n.name, inputName(e.Msg))
		case reporter.AppendLog, reporter.CloseLog:
			c.fail(InvMalicious, "%s made %s store or answer for a log", what, n.name)
		case runner.StartJob:
			c.fail(InvMalicious, "%s made %s run job %d attempt %d", what, n.name, e.Run.GetJob().GetId(), e.Run.Attempt)
		case dispatcher.Persist:
			c.fail(InvMalicious, "%s made %s persist %d jobs, %d cursors", what, n.name, len(e.Jobs), len(e.Cursors))
		default:
			c.fail(InvMalicious, "%s made %s carry out %T", what, n.name, e)
		}
		return
	}
	if before != after {
		c.fail(InvMalicious, "%s changed %s's state", what, n.name)
	}
}

type forgeryLabel struct {
	in   any
	from actors.From
}

func (f forgeryLabel) String() string {
	return fmt.Sprintf("a forged %s from %s claiming to be %q", inputName(f.in), identityLabel(f.from.Who), f.from.Addr)
}

// forgedSecrets checks that a forgery, once carried out, left the secret
// store as it was.
func (c *checker) forgedSecrets(n *node, from actors.From, in any, before, after int) {
	if n.role != roleDispatcher || !isSecretInput(in) {
		return
	}
	c.checked[InvSecretMalicious] = true
	if before != after {
		c.fail(InvSecretMalicious, "a forged %s from %s claiming to be %q changed the secret store", inputName(in), identityLabel(from.Who), from.Addr)
	}
}

// secretGrant checks a SecretGrant the dispatcher sends to `to` (in
// answer to in) against the checker's own view: values only for the
// current attempt of their job (the highest the dispatcher ever assigned),
// only to the address of a runner incarnation that started that attempt,
// only values of a stored secret of that name bound to the job's
// repository (its URL or name) and to one of the branches its commit was
// observed on; a refusal carries no value, a grant every name asked for.
//
// A runner that started the attempt may have died since it asked: the
// dispatcher cannot know yet, and the value goes nowhere, so that address
// still counts.
func (c *checker) secretGrant(w *World, in any, to actors.Addr, g *messages.SecretGrant) {
	names := slices.Sorted(maps.Keys(g.Values))
	c.checked[InvSecretAllOrNone] = true
	if ask, ok := in.(dispatcher.SecretAsk); ok && ask.Msg != nil && g.Error == "" {
		if asked := slices.Compact(slices.Sorted(slices.Values(ask.Msg.Names))); !slices.Equal(names, asked) {
			c.fail(InvSecretAllOrNone, "job %d attempt %d asked for %v and was granted %v", g.JobId, g.Attempt, asked, names)
		}
	}
	if len(g.Values) == 0 {
		return
	}
	if g.Error != "" {
		c.fail(InvSecretAllOrNone, "the refusal of job %d attempt %d's secrets (%s) carries the values of %s", g.JobId, g.Attempt, g.Error, strings.Join(names, ", "))
	}
	c.checked[InvSecretGrant] = true
	if to == malAddr {
		c.fail(InvSecretMalicious, "the values of %s (job %d attempt %d) went to the malicious peer's own address", strings.Join(names, ", "), g.JobId, g.Attempt)
	}
	job := c.jobs[g.JobId]
	switch cur, by := c.assigned[g.JobId], c.started[jobAttempt{g.JobId, g.Attempt}]; {
	case job == nil:
		c.fail(InvSecretGrant, "the values of %s went to %q for job %d, which was never assigned", strings.Join(names, ", "), to, g.JobId)
		return
	case g.Attempt != cur:
		c.fail(InvSecretGrant, "the values of %s went to %q for job %d attempt %d, but attempt %d is the current one", strings.Join(names, ", "), to, g.JobId, g.Attempt, cur)
	case !slices.Contains(by, to):
		c.fail(InvSecretGrant, "the values of %s for job %d attempt %d went to %q, which is not a runner that started that attempt (%v)", strings.Join(names, ", "), g.JobId, g.Attempt, to, by)
	}
	branches := c.branches[job.Repo+"\x00"+job.Commit]
	for _, name := range names {
		if !boundTo(w.secrets.secrets, name, g.Values[name], job, branches) {
			c.fail(InvSecretGrant, "job %d (%s, commit %s on %s) got secret %s = %q, which no binding of its repository and branches holds",
				g.JobId, job.RepoName, job.Commit[:min(12, len(job.Commit))], strings.Join(branches, ", "), name, g.Values[name])
		}
	}
}

// boundTo reports whether value is the readable value of a stored secret
// name bound to job's repository (its URL or name) and to one of branches
// (no patterns: every branch).
func boundTo(stored []dispatcher.Secret, name string, value []byte, job *messages.Job, branches []string) bool {
	for _, s := range stored {
		if s.Name != name || s.Err != "" || !bytes.Equal(s.Value, value) || s.Repo == "" || (s.Repo != job.Repo && s.Repo != job.RepoName) {
			continue
		}
		if len(s.Branches) == 0 {
			return true
		}
		for _, p := range s.Branches {
			for _, b := range branches {
				if ok, err := path.Match(p, b); ok && err == nil {
					return true
				}
			}
		}
	}
	return false
}

func logKeyOf(j *messages.Job, attempt int32) string {
	return fmt.Sprintf("%s:%d", jobKey(j), attempt)
}

// wholeBuilds counts the builds whose every job the reporter recorded.
func (c *checker) wholeBuilds() int {
	n := 0
	for _, r := range c.reported {
		if r.Job.GetIndex() == 0 && c.buildDone(r.Job.Repo, r.Job.Commit, r.Job.Build) {
			n++
		}
	}
	return n
}

// buildDone reports whether the reporter has a result for every job of
// build number build of commit.
func (c *checker) buildDone(repo, commit string, build int32) bool {
	first := c.reported[fmt.Sprintf("%s@%s#%d/0", repo, commit, build)]
	if first == nil {
		return false
	}
	for i := int32(1); i < first.Job.JobsInBuild(); i++ {
		if c.reported[fmt.Sprintf("%s@%s#%d/%d", repo, commit, build, i)] == nil {
			return false
		}
	}
	return true
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

func (c *checker) recorded(w *World, r *messages.Result) {
	key := jobKey(r.Job)
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
	k := jobAttempt{p.ref.JobId, p.ref.Attempt}
	c.started[k] = append(c.started[k], n.addr)
}

func (c *checker) attemptEnded(n *node, p *proc) {
	c.model.ended[jobAttempt{p.ref.JobId, p.ref.Attempt}] = c.w.now
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
		if !c.buildDone(w.repo.URL, commit, 1) && !c.stuck[commit] {
			missing = append(missing, commit[:12])
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		c.fail(InvEveryCommit, "%d observed commits have no result after %s of calm: %s", len(missing), w.cfg.Settle, strings.Join(missing, " "))
	}
	c.checked[InvNoCommitLost] = true
	c.checked[InvProgress] = true
	// Every commit pushed (the simulated repository's histories), the first
	// of each branch included, is built unless the contract skips it.
	var lost []string
	for _, b := range w.repo.order {
		for _, commit := range w.repo.branches[b] {
			if !c.skipped[commit] && !c.stuck[commit] && !c.buildDone(w.repo.URL, commit, 1) {
				lost = append(lost, b+":"+commit[:12])
			}
		}
	}
	if len(lost) > 0 {
		c.fail(InvNoCommitLost, "%d pushed commits were never built: %s", len(lost), strings.Join(lost, " "))
	}
	c.checked[InvQueueDrains] = true
	d := w.dispatcherNode()
	if d.disp == nil {
		c.fail(InvQueueDrains, "no dispatcher node leads at the end")
		return
	}
	st := d.disp.Status()
	for _, j := range st.Jobs {
		if c.stuck[j.Job.Commit] && j.State == messages.JobState_JOB_STATE_QUEUED {
			// A job no runner can take waits, and says why; those that need
			// it wait for it.
			c.checked[InvNoRunnerWaits] = true
			if j.Waiting == "" {
				c.fail(InvNoRunnerWaits, "job %d (%s) of commit %s is still queued at the end and says no reason", j.Job.Id, j.Job.DisplayName(), j.Job.Commit[:12])
			}
			continue
		}
		if j.State != messages.JobState_JOB_STATE_DONE || !j.Forwarded {
			c.fail(InvQueueDrains, "job %d still %s (forwarded %v) at the end", j.Job.Id, j.State.Name(), j.Forwarded)
		}
	}
	for _, r := range w.runners() {
		if r.up && r.run.Busy() {
			c.fail(InvQueueDrains, "%s still busy at the end", r.name)
		}
	}
	for _, commit := range slices.Sorted(maps.Keys(c.poison)) {
		c.checked[InvAttemptCap] = true
		res := c.reported[fmt.Sprintf("%s@%s#1/0", w.repo.URL, commit)]
		if res != nil && res.Status != messages.Status_STATUS_ERRORED && res.Status != messages.Status_STATUS_CANCELLED {
			c.fail(InvAttemptCap, "poison commit %s ended %s at the reporter, want errored at the attempt cap", commit[:12], res.Status.Name())
		}
	}
	c.endModel(w)
	c.endPipelines()
}

// markSkipped records the commits an observation legitimately leaves out:
// those the backlog cap dropped, after a force push everything but the
// new tip, and on a branch's first observation (which builds the tip of
// what was pushed before the observer first saw it, the contract says)
// everything below that tip. Only a branch's first durably queued
// observation may start from nothing: a later one that does (a cursor
// lost) skips nothing.
// observedDurable records commits the dispatcher has durably queued: at
// the step's end (Carried), or as soon as its batch is durable
// (persistedCursors), whichever comes first. A failover leader whose
// lease ran out may make a batch durable (its key still stood) and never
// carry out its step (its gate drops the completion).
func (c *checker) observedDurable(w *World, m *messages.CommitObserved) {
	delete(c.pendingObserved, m.Repo+"\x00"+m.Branch)
	for _, commit := range m.Commits {
		c.observed[commit] = true
		if k := m.Repo + "\x00" + commit; !slices.Contains(c.branches[k], m.Branch) {
			c.branches[k] = append(c.branches[k], m.Branch)
		}
		if info := w.repo.commits[commit]; info != nil && info.poison {
			c.poison[commit] = true
		}
	}
	c.markSkipped(w, m)
}

// persistedCursors is told of the cursors of each durable batch: the
// commits a pending Observed step queued are observed now.
func (c *checker) persistedCursors(w *World, cursors []*messages.Cursor) {
	for _, cur := range cursors {
		if m, ok := c.pendingObserved[cur.Repo+"\x00"+cur.Branch]; ok {
			c.observedDurable(w, m)
		}
	}
}

func (c *checker) markSkipped(w *World, m *messages.CommitObserved) {
	first := !c.model.firstSeen[m.Branch]
	c.model.firstSeen[m.Branch] = true
	if len(m.Commits) == 0 {
		return
	}
	h := w.repo.branches[m.Branch]
	tip := slices.Index(h, m.Commits[0])
	if tip < 0 {
		return
	}
	if first && m.Previous == "" {
		for _, commit := range h[:tip] {
			c.skipped[commit] = true
		}
	}
	from := 0
	if !m.Forced {
		if m.Skipped == 0 {
			return
		}
		from = slices.Index(h, m.Previous) + 1
	}
	for _, commit := range h[from:tip] {
		c.skipped[commit] = true
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
