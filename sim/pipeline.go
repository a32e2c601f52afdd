package sim

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"strings"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
)

// Pipeline invariants (docs/pipelines.md), as the summary prints them.
const (
	InvNeedsFirst    = "a job starts only after every job it needs passed (or failed allowed)"
	InvSkipped       = "a job whose need did not pass ends skipped (or cancelled) and never runs"
	InvBuildOnce     = "every job of a build ends exactly once, and the build's status is the aggregate of its jobs'"
	InvLabels        = "a job runs only on a runner whose labels include its runs-on"
	InvSlots         = "a runner never has more jobs than its slots"
	InvNoRunnerWaits = "a job no runner can take stays queued with its reason: never lost, never errored for that"
)

// pipelineView is what the checker knows of the pipelines as the
// dispatcher's core decides (heardStep): each job's status once decided,
// and which runner incarnation holds each running job.
type pipelineView struct {
	decided map[string]messages.Status // jobKey -> status decided
	holds   map[int64]runnerKey        // job id -> the runner incarnation it runs on
	held    map[runnerKey]int          // how many of holds each incarnation has
	labels  map[runnerKey][]string     // as each incarnation registered
	slots   map[runnerKey]int32
}

func newPipelineView() *pipelineView {
	return &pipelineView{decided: map[string]messages.Status{}, holds: map[int64]runnerKey{}, held: map[runnerKey]int{},
		labels: map[runnerKey][]string{}, slots: map[runnerKey]int32{}}
}

// booted forgets what a dead dispatcher core decided and never made
// durable: a restarted one knows its store's records only, and holds no
// job on any runner until the runner registers again and claims it.
func (v *pipelineView) booted(d *durable) {
	clear(v.decided)
	clear(v.holds)
	clear(v.held)
	clear(v.labels)
	clear(v.slots)
	for _, j := range d.jobs {
		if j.State == messages.JobState_JOB_STATE_DONE && j.Result != nil {
			v.decided[jobKey(j.Job)] = j.Result.Status
		}
	}
}

// hold notes that job id runs on incarnation k (and on no other).
func (v *pipelineView) hold(id int64, k runnerKey) {
	v.drop(id)
	v.holds[id] = k
	v.held[k]++
}

// drop notes that job id runs nowhere.
func (v *pipelineView) drop(id int64) {
	if k, ok := v.holds[id]; ok {
		delete(v.holds, id)
		if v.held[k]--; v.held[k] == 0 {
			delete(v.held, k)
		}
	}
}

// needKey names need n of j's build.
func needKey(j *messages.Job, n int32) string {
	return fmt.Sprintf("%s@%s#%d/%d", j.GetRepo(), j.GetCommit(), j.GetBuild(), n)
}

// satisfiesNeed is the contract's rule, written again here rather than
// taken from the dispatcher: a need lets its dependents run when it passed,
// or failed with allow-failure.
func satisfiesNeed(st messages.Status, cell *messages.PipelineJob) bool {
	switch st {
	case messages.Status_STATUS_PASSED:
		return true
	case messages.Status_STATUS_FAILED, messages.Status_STATUS_TIMED_OUT, messages.Status_STATUS_ERRORED:
		return cell.GetAllowFailure()
	}
	return false
}

// pipelineStep judges a dispatcher step's decisions as its core takes them:
// the jobs it records and requeues, and the jobs it assigns.
func (c *checker) pipelineStep(from actors.From, in any, fx []actors.Effect) {
	v := c.pipes
	if m, ok := in.(*messages.RegisterRunner); ok && replied(fx, func(r *messages.RunnerRegistered) bool { return r.Accepted }) {
		k := runnerKey{m.RunnerId, m.Incarnation}
		v.labels[k] = slices.Clone(m.Labels)
		v.slots[k] = max(1, m.Slots)
	}
	if m, ok := in.(dispatcher.Observed); ok {
		for _, commit := range m.Msg.Commits {
			c.queuing[commit] = true
		}
	}
	for _, e := range fx {
		switch e := e.(type) {
		case dispatcher.Persist:
			for _, j := range e.Jobs {
				c.cells[jobKey(j.Job)] = j.Job.Cell
				switch j.State {
				case messages.JobState_JOB_STATE_RUNNING:
					v.hold(j.Job.Id, runnerKey{j.RunnerId, j.RunnerIncarnation})
				default:
					v.drop(j.Job.Id)
				}
				if j.State == messages.JobState_JOB_STATE_DONE && j.Result != nil {
					c.decided(j)
				}
			}
		case actors.Send:
			if r, ok := e.Msg.(*messages.RunJob); ok {
				c.assignedJob(r)
			}
		}
	}
}

// decided checks a job's result as the core records it: a skipped job
// never ran, and one of its needs did not pass (or a branches: filter left
// it out).
func (c *checker) decided(j *messages.JobRecord) {
	v := c.pipes
	k := jobKey(j.Job)
	if prev, again := v.decided[k]; again {
		// The same result persisted again (a branch added, forwarded) is
		// fine; another outcome is the job ending twice.
		c.checked[InvBuildOnce] = true
		if prev != j.Result.Status {
			c.fail(InvBuildOnce, "%s ended %s, then %s", keyOf(j.Job), prev.Name(), j.Result.Status.Name())
		}
		return
	}
	v.decided[k] = j.Result.Status
	if j.Result.Status != messages.Status_STATUS_SKIPPED {
		return
	}
	c.checked[InvSkipped] = true
	if j.Attempt > 0 {
		c.fail(InvSkipped, "%s ended skipped after running attempt %d", keyOf(j.Job), j.Attempt)
	}
	cell := j.Job.Cell
	if len(cell.GetBranches()) > 0 && !branchesMatch(cell.Branches, j.Job.Branches) {
		return
	}
	for _, n := range cell.GetNeeds() {
		if st, ok := v.decided[needKey(j.Job, n)]; ok && st != messages.Status_STATUS_PASSED {
			return // a need that did not pass (its cell may allow a failure: then it is a violation below)
		}
	}
	c.fail(InvSkipped, "%s ended skipped, and every one of its needs passed", keyOf(j.Job))
}

// branchesMatch is the branches: rule: a pattern (path.Match) matches one
// of the commit's branches.
func branchesMatch(patterns, branches []string) bool {
	for _, p := range patterns {
		for _, b := range branches {
			if ok, _ := path.Match(p, b); ok || p == b {
				return true
			}
		}
	}
	return false
}

// assignedJob checks an assignment as the core decides it: its needs, the
// runner's labels and its slots.
func (c *checker) assignedJob(r *messages.RunJob) {
	v := c.pipes
	j := r.Job
	if cell := j.GetCell(); cell != nil {
		c.checked[InvNeedsFirst] = true
		for _, n := range cell.Needs {
			st, ok := v.decided[needKey(j, n)]
			if !ok || !satisfiesNeed(st, c.cellOf(j, n)) {
				what := "has not ended"
				if ok {
					what = "ended " + st.Name()
				}
				c.fail(InvNeedsFirst, "%s (%s) assigned while its need %d %s", keyOf(j), cell.Name, n, what)
			}
		}
	}
	k := runnerKey{r.RunnerId, r.Incarnation}
	if want := j.GetCell().GetRunsOn(); len(want) > 0 {
		c.checked[InvLabels] = true
		have := v.labels[k]
		for _, l := range want {
			if !slices.Contains(have, l) {
				c.fail(InvLabels, "%s asks for labels %s and went to %s, whose labels are %s", keyOf(j), strings.Join(want, ","), r.RunnerId, strings.Join(have, ","))
				break
			}
		}
	}
	v.hold(j.Id, k)
	n := v.held[k]
	if slots, ok := v.slots[k]; ok {
		c.checked[InvSlots] = true
		if int32(n) > slots {
			c.fail(InvSlots, "%s incarnation %d was given %s while it held %d jobs with %d slots", r.RunnerId, r.Incarnation, keyOf(j), n-1, slots)
		}
	}
}

// cellOf is the cell of job n of j's build, as the checker saw it persisted.
func (c *checker) cellOf(j *messages.Job, n int32) *messages.PipelineJob {
	return c.cells[needKey(j, n)]
}

// endPipelines checks, after the calm, each build the reporter recorded
// whole: every job's result once (checked as they come: InvOneResult), a
// job whose need did not pass ended skipped or cancelled, and the
// aggregate the reporter gives the build is the aggregate of its jobs.
func (c *checker) endPipelines() {
	builds := map[string][]*messages.Result{} // repo@commit#build -> results by index
	for _, r := range c.reported {
		n := r.Job.JobsInBuild()
		if n < 2 {
			continue
		}
		k := fmt.Sprintf("%s@%s#%d", r.Job.Repo, r.Job.Commit, r.Job.Build)
		if builds[k] == nil {
			builds[k] = make([]*messages.Result, n)
		}
		if int(r.Job.Index) < len(builds[k]) {
			builds[k][r.Job.Index] = r
		}
	}
	for _, k := range slices.Sorted(maps.Keys(builds)) {
		rs := builds[k]
		if slices.Contains(rs, nil) {
			continue // not whole: a stuck or unfinished build (liveness judges it)
		}
		c.checked[InvBuildOnce] = true
		for _, r := range rs {
			for _, n := range r.Job.GetCell().GetNeeds() {
				need := rs[n]
				if satisfiesNeed(need.Status, need.Job.GetCell()) {
					continue
				}
				c.checked[InvSkipped] = true
				if r.Status != messages.Status_STATUS_SKIPPED && r.Status != messages.Status_STATUS_CANCELLED {
					c.fail(InvSkipped, "%s ended %s although its need %s ended %s", keyOf(r.Job), r.Status.Name(), need.Job.DisplayName(), need.Status.Name())
				}
			}
		}
		// The reporter's store shows a build as messages.Aggregate of its
		// jobs' recorded results: it must say what the contract says.
		statuses := make([]messages.Status, len(rs))
		allow := make([]bool, len(rs))
		for i, r := range rs {
			statuses[i], allow[i] = r.Status, r.Job.GetCell().GetAllowFailure()
		}
		if got, want := messages.Aggregate(statuses, allow), contractAggregate(rs); got != want {
			c.fail(InvBuildOnce, "build %s shows %s, and by the contract its jobs (%s) make it %s", k, got.Name(), statusList(rs), want.Name())
		}
	}
}

// contractAggregate is docs/pipelines.md's rule, written again here: any
// job failed (an allowed failure aside) makes the build failed, else
// timed_out, errored or cancelled in that order, else passed, or skipped
// when every job was skipped.
func contractAggregate(rs []*messages.Result) messages.Status {
	has := map[messages.Status]bool{}
	for _, r := range rs {
		st := r.Status
		if r.Job.GetCell().GetAllowFailure() && (st == messages.Status_STATUS_FAILED || st == messages.Status_STATUS_TIMED_OUT || st == messages.Status_STATUS_ERRORED) {
			st = messages.Status_STATUS_PASSED
		}
		has[st] = true
	}
	for _, st := range []messages.Status{messages.Status_STATUS_FAILED, messages.Status_STATUS_TIMED_OUT, messages.Status_STATUS_ERRORED,
		messages.Status_STATUS_CANCELLED, messages.Status_STATUS_PASSED} {
		if has[st] {
			return st
		}
	}
	return messages.Status_STATUS_SKIPPED
}

// statusList is the jobs' statuses, by index, for a violation's detail.
func statusList(rs []*messages.Result) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Status.Name())
	}
	return strings.Join(s, " ")
}

// cellPlan is what the simulated executor knows of one job of a pipeline.
type cellPlan struct {
	fails bool // every run fails
	flaky bool // the first attempt fails, later ones pass (retry: finds it)
}

// pipelineShare is the share of commits (in percent) that carry a
// pipeline; the others are single-list builds of one job.
const pipelineShare = 35

// newPipelineRand is the stream pipelines are drawn from, apart from the
// world's, so that adding them did not move every other draw.
func newPipelineRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x706970656c696e65, seed+0x51afd7ed558ccd))
}

// drawPipeline gives info a random pipeline (or none): two to four keys,
// some a matrix of two or three cells (fail-fast or not), needs on earlier
// keys, retry:, allow-failure:, a branches: filter, and runs-on labels
// that one runner has ("gpu") or, rarely, none has ("tpu"). It reports
// whether a job asks for labels no runner has.
func drawPipeline(rng *rand.Rand, info *commitInfo, labelled bool) (stuck bool) {
	// A commit that kills runners or hangs stays one job: nine jobs that
	// each run to the job timeout, retried, outlast the calm.
	if info.poison || info.hangs || rng.IntN(100) >= pipelineShare {
		return false
	}
	p := &messages.Pipeline{}
	var keyCells [][]int32 // cells of each key
	keys := 2 + rng.IntN(3)
	for k := range keys {
		key := fmt.Sprintf("k%d", k)
		cells := 1
		if rng.IntN(3) == 0 {
			cells = 2 + rng.IntN(2)
		}
		failFast := cells > 1 && rng.IntN(2) == 0
		var needs []int32
		for prev := range k {
			if rng.IntN(3) == 0 {
				needs = append(needs, keyCells[prev]...)
			}
		}
		var runsOn []string
		switch x := rng.IntN(100); {
		case labelled && x < 15:
			runsOn = []string{"gpu"}
		case labelled && x < 17:
			runsOn, stuck = []string{"tpu"}, true
		}
		var branches []string
		if rng.IntN(10) == 0 {
			branches = []string{"main"}
		}
		retry := int32(0)
		if rng.IntN(5) == 0 {
			retry = 1
		}
		allow := rng.IntN(10) == 0
		var mine []int32
		for c := range cells {
			cell := &messages.PipelineJob{Key: key, Needs: needs, RunsOn: runsOn, Retry: retry, AllowFailure: allow,
				FailFast: failFast, Branches: branches}
			if cells > 1 {
				cell.Matrix = []*messages.MatrixValue{{Name: "n", Value: fmt.Sprint(c)}}
			}
			cell.Name = messages.CellName(key, cell.Matrix, 0, 0)
			mine = append(mine, int32(len(p.Jobs)))
			p.Jobs = append(p.Jobs, cell)
			plan := cellPlan{}
			switch x := rng.IntN(100); {
			case x < 10:
				plan.fails = true
			case x < 18:
				plan.flaky = true
			}
			info.cells = append(info.cells, plan)
		}
		keyCells = append(keyCells, mine)
	}
	info.pipeline = p
	return stuck
}

// cellStatus is how job run of a pipeline ends in the simulated executor.
func cellStatus(info *commitInfo, run *messages.RunJob) messages.Status {
	i := int(run.Job.GetIndex())
	if run.Job.GetCell() == nil || i >= len(info.cells) {
		return messages.Status_STATUS_PASSED
	}
	switch plan := info.cells[i]; {
	case plan.fails, plan.flaky && run.Attempt == 1:
		return messages.Status_STATUS_FAILED
	}
	return messages.Status_STATUS_PASSED
}

// slotsUsed checks, as a job process starts, that its runner runs no more
// of them than its slots.
func (c *checker) slotsUsed(n *node) {
	c.checked[InvSlots] = true
	if len(n.procs) > max(1, n.slots) {
		c.fail(InvSlots, "%s runs %d jobs at once with %d slots", n.name, len(n.procs), n.slots)
	}
}
