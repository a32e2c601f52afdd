package sim

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
)

// The reference model: what must happen to each job, derived from the
// simulator's own records (the pushes in the simulated repository, the
// crashes it caused, the messages it delivered and the answers it carried
// back), never from the dispatcher's numbering or its log text. The
// dispatcher's effects are what the model judges, not what it learns from.
//
// It is keyed by (build, job): a build is a commit's nth run (build 1 when
// first observed, n+1 after each rebuild), and a build holds jobs (today
// one, whose name is ""; pipelines will add more).

// Model invariants, as the summary prints them.
const (
	InvAttempts   = "attempt numbers go up by one on each reassignment, and end errored after exactly max-attempts lost ones"
	InvDeadAfter  = "a runner is declared dead by deadline only after dead-after without a word from it"
	InvCancel     = "a cancel wins unless the result was recorded first"
	InvRebuilt    = "every accepted rebuild gets exactly one result (liveness)"
	InvResultFile = "a recorded result's file exists, for its latest build, after any crash"
	InvAckedKept  = "a result acknowledged to its runner as recorded is the one recorded (nothing is acknowledged before it is durable)"
)

// buildJob names one job of one build.
type buildJob struct {
	repo, commit string
	build        int32
	job          string // the job's name in its build ("" for today's one job)
}

func (k buildJob) String() string {
	s := fmt.Sprintf("%s build %d", k.commit[:min(12, len(k.commit))], k.build)
	if k.job != "" {
		s += " job " + k.job
	}
	return s
}

func keyOf(j *messages.Job) buildJob {
	k := buildJob{repo: j.GetRepo(), commit: j.GetCommit(), build: j.GetBuild()}
	if j.JobsInBuild() > 1 {
		k.job = strconv.Itoa(int(j.GetIndex()))
	}
	return k
}

// jobKey names one job of one build in the checker's maps:
// "repo@commit#build/index".
func jobKey(j *messages.Job) string {
	return fmt.Sprintf("%s@%s#%d/%d", j.GetRepo(), j.GetCommit(), j.GetBuild(), j.GetIndex())
}

// modelJob is what the model knows of one job.
type modelJob struct {
	attempts int32     // the highest attempt assigned
	holder   runnerKey // the runner incarnation it was assigned to
	// durable and durableHolder are the newest assignment the dispatcher's
	// store holds: a restarted dispatcher goes on from there, so attempts
	// it decided but never made durable are forgotten then.
	durable       int32
	durableHolder runnerKey
	released      map[int32]bool
	retried       map[int32]bool // attempts that failed and ran again (retry:)
	// durableRetries is how many retries the dispatcher's store holds: a
	// restarted dispatcher forgets the others.
	durableRetries int32
	recorded       bool
	cancelled      bool      // a cancel was accepted before any result was recorded
	cancelBy       time.Time // when it was accepted, plus the longest the network then took to reach the runner
}

// model is the checker's reference model.
type model struct {
	jobs map[buildJob]*modelJob
	// acked is, per job id, the attempt whose result the dispatcher told
	// its runner was recorded (JobFinishedAck, recorded): the runner then
	// forgets it, so it must be the result the store keeps.
	acked map[int64]int32
	// byID maps the dispatcher's job ids to the builds they name, learnt
	// from what it persisted (an id is only a name here: the model never
	// trusts its numbering).
	byID map[int64]buildJob
	// heard is when the dispatcher last heard from each runner incarnation
	// in a way that renews its liveness (an accepted registration, a
	// heartbeat it acknowledged, a result it recorded).
	heard map[runnerKey]time.Time
	// rebuilds are the builds the dispatcher accepted to run again.
	rebuilds map[buildJob]bool
	// files is the build of each commit's result file, as the reporter
	// wrote it (resultFileWritten).
	files map[string]int32
	// firstSeen: each branch's first durably queued observation built
	// only the tip of what had been pushed before it (the contract); the
	// commits below that tip are skipped.
	firstSeen map[string]bool
	// ended is when each attempt's job process last ended on a runner
	// (dispatcher job id and attempt: the runner knows no other name).
	ended map[jobAttempt]time.Time
}

func newModel() *model {
	return &model{jobs: map[buildJob]*modelJob{}, acked: map[int64]int32{}, byID: map[int64]buildJob{}, heard: map[runnerKey]time.Time{},
		rebuilds: map[buildJob]bool{}, files: map[string]int32{}, firstSeen: map[string]bool{},
		ended: map[jobAttempt]time.Time{}}
}

func (m *model) job(k buildJob) *modelJob {
	j := m.jobs[k]
	if j == nil {
		j = &modelJob{released: map[int32]bool{}, retried: map[int32]bool{}}
		m.jobs[k] = j
	}
	return j
}

// forgetRetries drops the retries decided after the last durable one, the
// newest first, as a restarted dispatcher does.
func (j *modelJob) forgetRetries() {
	for int32(len(j.retried)) > j.durableRetries {
		delete(j.retried, slices.Max(slices.Collect(maps.Keys(j.retried))))
	}
}

// lost counts a job's attempts that ended without a result, as the model
// sees them: every attempt assigned but the last, and those the runner
// gave back on its way down.
func (j *modelJob) lost() int32 {
	return j.attempts - int32(len(j.released)) - int32(len(j.retried))
}

// heardStep runs the parts of the model that must see a dispatcher step
// as its core takes it (its effects may be carried out later, behind a
// batch): whom it heard from in a way that renews a runner's liveness (an
// accepted registration, an acknowledged heartbeat, a result it records),
// and which runners it declares dead by deadline, judged by the same clock.
func (c *checker) heardStep(w *World, from actors.From, in any, fx []actors.Effect) {
	c.pipelineStep(from, in, fx)
	if o, ok := in.(dispatcher.Observed); ok {
		for _, e := range fx {
			if _, ok := e.(dispatcher.Persist); ok {
				c.pendingObserved[o.Msg.Repo+"\x00"+o.Msg.Branch] = o.Msg
			}
		}
	}
	if msg, ok := in.(*messages.JobFinished); ok {
		c.retriedModel(msg, fx) // before the retry's assignment is judged
		for _, e := range fx {
			if p, ok := e.(dispatcher.Persist); ok {
				for _, j := range p.Jobs {
					if j.State == messages.JobState_JOB_STATE_DONE && j.Job.Id == msg.GetResult().GetJob().GetId() && j.Result != nil {
						c.deciding[j.Job.Id] = recordedBy{attempt: j.Result.Attempt, runner: runnerKey{msg.RunnerId, msg.Incarnation}}
					}
				}
			}
		}
	}
	m := c.model
	switch msg := in.(type) {
	case actors.Tick:
		c.deadlineLosses(w, fx) // judged as the core decides, by the same clock
	case actors.PeerTerminated:
		if k, ok := c.byAddr[msg.Addr]; ok {
			c.dead[k] = true
		}
	case *messages.RegisterRunner:
		if replied(fx, func(r *messages.RunnerRegistered) bool { return r.Accepted }) {
			k := runnerKey{msg.RunnerId, msg.Incarnation}
			m.heard[k] = w.now
			c.maxInc[msg.RunnerId] = max(c.maxInc[msg.RunnerId], msg.Incarnation)
			c.byAddr[from.Addr] = k
			delete(c.dead, k) // back from a hang or partition
		}
	case *messages.Heartbeat:
		if replied(fx, func(a *messages.HeartbeatAck) bool { return !a.Unknown && a.Epoch != 0 }) {
			m.heard[runnerKey{msg.RunnerId, msg.Incarnation}] = w.now
		}
	case *messages.JobFinished:
		for _, e := range fx {
			if p, ok := e.(dispatcher.Persist); ok {
				for _, j := range p.Jobs {
					if j.State == messages.JobState_JOB_STATE_DONE {
						m.heard[runnerKey{msg.RunnerId, msg.Incarnation}] = w.now
					}
				}
			}
		}
	}
	for _, e := range fx {
		switch e := e.(type) {
		case actors.Unwatch:
			if k, ok := c.byAddr[e.Addr]; ok {
				c.dead[k] = true
			}
		case actors.Send:
			// No assignment to a runner the core knows is dead or
			// superseded, judged when it decides (a RunJob held behind a
			// batch may go out after the runner's loss, and is ignored).
			// Attempts are counted as decided too: a crash point may keep
			// the RunJob from going out, and a batch may merge two
			// assignments of one job into the newer.
			if r, ok := e.Msg.(*messages.RunJob); ok {
				c.assignedModel(r)
				c.checked[InvNoDeadAssignment] = true
				k := runnerKey{r.RunnerId, r.Incarnation}
				if c.dead[k] || r.Incarnation < c.maxInc[r.RunnerId] {
					c.fail(InvNoDeadAssignment, "job %d attempt %d assigned to %s incarnation %d, known dead or superseded", r.Job.Id, r.Attempt, r.RunnerId, r.Incarnation)
				}
			}
		}
	}
}

// modelStep runs the model over one dispatcher step.
func (c *checker) modelStep(w *World, from actors.From, in any, fx []actors.Effect) {
	m := c.model
	switch msg := in.(type) {
	case *messages.RunnerStopping:
		if from.Who.IsRunner(msg.RunnerId) && msg.Incarnation == c.maxInc[msg.RunnerId] && c.byAddr[from.Addr] == (runnerKey{msg.RunnerId, msg.Incarnation}) {
			for _, ref := range msg.Released {
				if k, ok := m.byID[ref.GetJobId()]; ok && m.job(k).attempts == ref.GetAttempt() && len(m.job(k).released) < 10 {
					m.job(k).released[ref.GetAttempt()] = true
				}
			}
		}
	case *messages.CancelRequest:
		if from.Who == adminWho {
			c.cancelAsked(msg, fx)
		}

	case dispatcher.Rebuild:
		if from.Who != adminWho {
			break
		}
		for _, e := range fx {
			if s, ok := e.(actors.Send); ok {
				if r, ok := s.Msg.(*messages.RebuildReply); ok && r.Error == "" && len(msg.Prev) > 0 {
					c.checked[InvRebuilt] = true
					m.rebuilds[buildJob{repo: msg.Prev[0].Repo, commit: msg.Prev[0].Commit, build: r.Build}] = true
				}
			}
		}
	}
	for _, e := range fx {
		switch e := e.(type) {
		case dispatcher.Persist:
			for _, j := range e.Jobs {
				k := keyOf(j.Job)
				m.byID[j.Job.Id] = k
				mj := m.job(k)
				if j.State != messages.JobState_JOB_STATE_DONE || mj.recorded {
					continue
				}
				mj.recorded = true
				c.resultModel(w, k, mj, j.Result)
			}
		case actors.Send:
			if a, ok := e.Msg.(*messages.JobFinishedAck); ok && a.Recorded {
				// A failed run taken for a retry is acknowledged too, and
				// is not the job's result.
				if k, known := m.byID[a.GetRef().GetJobId()]; !known || !m.job(k).retried[a.GetRef().GetAttempt()] {
					m.acked[a.GetRef().GetJobId()] = a.GetRef().GetAttempt()
				}
			}
		}
	}
}

// replied reports whether a step's effects send a T for which ok holds.
func replied[T any](fx []actors.Effect, ok func(T) bool) bool {
	for _, e := range fx {
		if s, isSend := e.(actors.Send); isSend {
			if t, isT := s.Msg.(T); isT && ok(t) {
				return true
			}
		}
	}
	return false
}

// assignedModel checks an assignment: attempt 1 first, then one more on
// each reassignment (the same attempt may be sent again), and never one
// past the cap.
func (c *checker) assignedModel(r *messages.RunJob) {
	k := keyOf(r.Job)
	mj := c.model.job(k)
	c.checked[InvAttempts] = true
	switch {
	case r.Attempt < mj.attempts:
		c.fail(InvAttempts, "%s: attempt %d assigned after attempt %d", k, r.Attempt, mj.attempts)
	case r.Attempt > mj.attempts+1:
		c.fail(InvAttempts, "%s: attempt %d assigned after attempt %d, skipping %d", k, r.Attempt, mj.attempts, mj.attempts+1)
	case mj.recorded:
		c.fail(InvAttempts, "%s: attempt %d assigned after its result was recorded", k, r.Attempt)
	case r.Attempt == mj.attempts && mj.holder != (runnerKey{r.RunnerId, r.Incarnation}):
		// An attempt number is a fencing token: one assignment each.
		c.fail(InvAttempts, "%s: attempt %d assigned to %s incarnation %d, and before to %s incarnation %d", k, r.Attempt,
			r.RunnerId, r.Incarnation, mj.holder.id, mj.holder.inc)
	}
	mj.holder = runnerKey{r.RunnerId, r.Incarnation}
	if r.Attempt > mj.attempts {
		// The attempts before this one ended without a result.
		if lost := r.Attempt - 1 - int32(len(mj.released)) - int32(len(mj.retried)); lost >= int32(c.w.dispCfg.MaxAttempts) {
			c.fail(InvAttempts, "%s: attempt %d assigned after %d lost attempts (max attempts %d)", k, r.Attempt, lost, c.w.dispCfg.MaxAttempts)
		}
		mj.attempts = r.Attempt
	}
}

// resultModel checks a job's recorded result against the model: errored
// exactly when its attempts ran out (its last attempt lost too), cancelled
// when a cancel was accepted first, and a commit the simulator knows kills
// every runner ends errored or cancelled.
func (c *checker) resultModel(w *World, k buildJob, mj *modelJob, r *messages.Result) {
	if mj.cancelled {
		c.checked[InvCancel] = true
		// Once a cancel is accepted, the only result that may be recorded
		// is cancelled, or one of an attempt that had already ended on its
		// runner before the cancel could reach it (accepted, plus one
		// network delay): that result is still in flight and was first.
		ended, ok := c.model.ended[jobAttempt{r.GetJob().GetId(), r.Attempt}]
		finishedFirst := ok && !ended.After(mj.cancelBy)
		if r.Status != messages.Status_STATUS_CANCELLED && !finishedFirst {
			c.fail(InvCancel, "%s was cancelled before any result, then recorded %s", k, r.Status.Name())
		}
		return
	}
	if r.Status == messages.Status_STATUS_ERRORED {
		c.checked[InvAttempts] = true
		if lost := mj.lost(); lost != int32(w.dispCfg.MaxAttempts) {
			c.fail(InvAttempts, "%s ended errored after %d lost attempts (%d assigned, %d given back), want exactly %d",
				k, lost, mj.attempts, len(mj.released), w.dispCfg.MaxAttempts)
		}
	}
	if info := w.repo.commits[k.commit]; info != nil && info.poison {
		c.checked[InvAttemptCap] = true
		// A cancel wins over the attempt cap; whether a cancelled result
		// was due is InvCancel's to judge, as at the reporter (check.end).
		if r.Status != messages.Status_STATUS_ERRORED && r.Status != messages.Status_STATUS_CANCELLED {
			c.fail(InvAttemptCap, "poison commit %s ended %s, want errored at the attempt cap", k, r.Status.Name())
		}
	}
}

// retriedModel notes a failed run the dispatcher took and queued again
// (retry:): it is not a lost attempt; and no job runs again more often
// than its cell's retry: allows.
func (c *checker) retriedModel(msg *messages.JobFinished, fx []actors.Effect) {
	res := msg.GetResult()
	if res.GetStatus() != messages.Status_STATUS_FAILED && res.GetStatus() != messages.Status_STATUS_TIMED_OUT {
		return
	}
	for _, e := range fx {
		p, ok := e.(dispatcher.Persist)
		if !ok {
			continue
		}
		for _, j := range p.Jobs {
			if j.Job.Id != res.GetJob().GetId() || j.State != messages.JobState_JOB_STATE_QUEUED {
				continue
			}
			k := keyOf(j.Job)
			mj := c.model.job(k)
			mj.retried[res.Attempt] = true
			c.checked[InvAttempts] = true
			if allowed := j.Job.GetCell().GetRetry(); int32(len(mj.retried)) > allowed {
				c.fail(InvAttempts, "%s ran again after %d failed runs, and its retry: allows %d", k, len(mj.retried), allowed)
			}
		}
	}
}

// cancelAsked notes an accepted cancel of a job with no result yet.
func (c *checker) cancelAsked(msg *messages.CancelRequest, fx []actors.Effect) {
	k, ok := c.model.byID[msg.JobId]
	if !ok {
		return
	}
	mj := c.model.job(k)
	if replied(fx, func(r *messages.CancelReply) bool { return r.Error == "" }) {
		if !mj.recorded && !mj.cancelled {
			mj.cancelled, mj.cancelBy = true, c.w.now.Add(2200*time.Microsecond+c.w.extraDelay)
		}
		return
	}
	// A job the model knows, with no result yet and never cancelled, is
	// queued or running: a refusal is a cancel lost.
	if !mj.recorded && !mj.cancelled && replied(fx, func(r *messages.CancelReply) bool { return r.Error != "" }) {
		c.checked[InvCancel] = true
		c.fail(InvCancel, "a cancel of %s (job %d), which has no result yet, was refused", k, msg.JobId)
	}
}

// deadlineLosses checks each runner the dispatcher gave up on at a
// deadline (it stopped watching it in a tick): the model's record of when
// it last heard from that incarnation must be at least dead-after ago.
func (c *checker) deadlineLosses(w *World, fx []actors.Effect) {
	for _, e := range fx {
		u, ok := e.(actors.Unwatch)
		if !ok {
			continue
		}
		k, known := c.byAddr[u.Addr]
		if !known {
			continue
		}
		c.dead[k] = true
		at, heard := c.model.heard[k]
		if !heard {
			continue
		}
		c.checked[InvDeadAfter] = true
		if silent := w.now.Sub(at); silent < w.dispCfg.DeadAfter {
			c.fail(InvDeadAfter, "%s incarnation %d declared dead %s after the dispatcher last heard from it (dead-after %s)",
				k.id, k.inc, silent, w.dispCfg.DeadAfter)
		}
	}
}

// lastHeard is when the dispatcher last heard from n's incarnation.
func (c *checker) lastHeard(n *node) (time.Time, bool) {
	at, ok := c.model.heard[runnerKey{n.runnerID, n.inc}]
	return at, ok
}

// resultFileWritten records that the reporter wrote r's result file
// (test_results/<commit>). The world calls it where the reporter's
// shell writes the file.
func (c *checker) resultFileWritten(r *messages.Result) {
	commit := r.GetJob().GetCommit()
	c.model.files[commit] = max(c.model.files[commit], r.GetJob().GetBuild())
}

// endModel checks, after the calm, that each recorded result's file is
// there for the commit's latest recorded build, and that each accepted
// rebuild got its result.
func (c *checker) endModel(w *World) {
	if w.lostAt.IsZero() {
		for _, id := range slices.Sorted(maps.Keys(c.model.acked)) {
			c.checked[InvAckedKept] = true
			attempt := c.model.acked[id]
			switch r := c.results[id]; {
			case r == nil:
				c.fail(InvAckedKept, "job %d attempt %d was acknowledged as recorded, and no result of it is durable", id, attempt)
			case r.Attempt != attempt:
				c.fail(InvAckedKept, "job %d attempt %d was acknowledged as recorded, and attempt %d's result is the one durable", id, attempt, r.Attempt)
			}
		}
	}
	latest := map[string]int32{}
	for _, r := range c.reported {
		commit := r.GetJob().GetCommit()
		latest[commit] = max(latest[commit], r.GetJob().GetBuild())
	}
	var missing []string
	for _, commit := range slices.Sorted(maps.Keys(latest)) {
		c.checked[InvResultFile] = true
		if c.model.files[commit] < latest[commit] {
			missing = append(missing, fmt.Sprintf("%s (build %d recorded, file has %d)", commit[:12], latest[commit], c.model.files[commit]))
		}
	}
	if len(missing) > 0 {
		c.fail(InvResultFile, "%d recorded results have no result file: %s", len(missing), strings.Join(missing, ", "))
	}
	var unbuilt []string
	for k := range c.model.rebuilds {
		if !c.buildDone(k.repo, k.commit, k.build) && !c.stuck[k.commit] {
			unbuilt = append(unbuilt, k.String())
		}
	}
	slices.Sort(unbuilt)
	if len(unbuilt) > 0 {
		c.fail(InvRebuilt, "%d accepted rebuilds have no result after %s of calm: %s", len(unbuilt), w.cfg.Settle, strings.Join(unbuilt, ", "))
	}
}
