package dispatcher

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/jobspec"
	"github.com/voltci/volt/messages"
)

// maxJobsPerBuild bounds a pipeline the dispatcher accepts from an
// observer (jobspec caps the expansion at the same number).
const maxJobsPerBuild = 1000

// build is one commit's pipeline while any of its jobs is in the core: the
// graph the jobs are scheduled by (docs/pipelines.md). Job i of the build
// has id build.id+i.
type build struct {
	id    int64
	cells []*messages.PipelineJob // by index; one nil cell for a one-job build
	ended []messages.Status       // by index: the final status, UNSPECIFIED until the job ends
	left  int                     // jobs not ended
	held  int                     // jobs in Core.jobs
	// ready holds the queued jobs whose needs are met, in the order they
	// start; the build stands in Core.turn while it has any.
	ready []int64
}

// buildOf returns j's build, nil for a job brought back from the archive
// (see unarchive) whose build has ended.
func (c *Core) buildOf(j *job) *build { return c.builds[j.Job.BuildID()] }

// hold puts j in c.jobs, counted by its build.
func (c *Core) hold(j *job) {
	c.jobs[j.Job.Id] = j
	if b := c.buildOf(j); b != nil {
		b.held++
	}
}

// release takes j out of c.jobs; a build whose jobs have all ended and left
// leaves the core.
func (c *Core) release(j *job) {
	delete(c.jobs, j.Job.Id)
	b := c.buildOf(j)
	if b == nil { // brought back from the archive
		k := pair{j.Job.Repo, j.Job.Commit}
		if id, ok := c.byKey[k]; ok && id == j.Job.BuildID() {
			delete(c.byKey, k)
		}
		return
	}
	b.held--
	if b.held <= 0 && b.left <= 0 {
		delete(c.builds, b.id)
		k := pair{j.Job.Repo, j.Job.Commit}
		if id, ok := c.byKey[k]; ok && id == b.id {
			delete(c.byKey, k)
		}
	}
}

// satisfies reports whether a need that ended with status lets the jobs
// that need it run: it passed, or it may fail (allow-failure).
func satisfies(status messages.Status, cell *messages.PipelineJob) bool {
	switch status {
	case messages.Status_STATUS_PASSED:
		return true
	case messages.Status_STATUS_FAILED, messages.Status_STATUS_TIMED_OUT:
		return cell.GetAllowFailure()
	case messages.Status_STATUS_ERRORED:
		return cell.GetAllowFailure() || plant.On(plant.NeedErroredSatisfies)
	}
	return false
}

// needsOf says whether job i of b may start (all its needs ended and
// satisfy it) or can never start (one ended and does not), naming that
// need.
func (b *build) needsOf(i int32) (met bool, blockedBy int32) {
	met = true
	for _, n := range b.cells[i].GetNeeds() {
		st := b.ended[n]
		switch {
		case st == messages.Status_STATUS_UNSPECIFIED:
			met = false
		case !satisfies(st, b.cells[n]):
			return false, n
		}
	}
	return met, -1
}

// name is job i's name as users see it.
func (b *build) name(i int32) string {
	if n := b.cells[i].GetName(); n != "" {
		return n
	}
	return "build"
}

// makeReady lets queued job j start: it joins its build's ready jobs
// (first when it goes again after a lost attempt) and the build takes its
// turn.
func (c *Core) makeReady(b *build, j *job, first bool) {
	if j.ready {
		return
	}
	j.ready = true
	if first {
		b.ready = slices.Insert(b.ready, 0, j.Job.Id)
	} else {
		b.ready = append(b.ready, j.Job.Id)
	}
	i := slices.Index(c.turn, b.id)
	switch {
	case i < 0 && first:
		c.turn = slices.Insert(c.turn, 0, b.id)
	case i < 0:
		c.turn = append(c.turn, b.id)
	case first:
		c.turn = slices.Insert(slices.Delete(c.turn, i, i+1), 0, b.id)
	}
}

// unready takes j off its build's ready jobs.
func (c *Core) unready(j *job) {
	if !j.ready {
		return
	}
	j.ready = false
	if b := c.buildOf(j); b != nil {
		if i := slices.Index(b.ready, j.Job.Id); i >= 0 {
			b.ready = slices.Delete(b.ready, i, i+1)
		}
		if len(b.ready) == 0 {
			if i := slices.Index(c.turn, b.id); i >= 0 {
				c.turn = slices.Delete(c.turn, i, i+1)
			}
		}
	}
}

// newBuild makes the jobs of commit i of m, queued at queuedMs, from its
// pipeline, and returns them; start then decides which may run.
func (c *Core) newBuild(m *messages.CommitObserved, i int, queuedMs int64) (*build, []*job) {
	var p *messages.Pipeline
	if i < len(m.Pipelines) {
		p = m.Pipelines[i]
	}
	return c.makeBuild(m.Repo, m.RepoName, m.Commits[i], []string{m.Branch}, subject(m.Subjects, i), 1, queuedMs, p)
}

// makeBuild makes the jobs of build number num of commit from pipeline p
// (nil: one job), all queued.
func (c *Core) makeBuild(repo, repoName, commit string, branches []string, subj string, num int32, queuedMs int64, p *messages.Pipeline) (*build, []*job) {
	cells := p.GetJobs()
	if err := validPipeline(cells); err != nil && p.GetError() == "" {
		p = &messages.Pipeline{Error: err.Error()}
		cells = nil
	}
	if p.GetError() != "" {
		cells = nil
	}
	n := max(1, len(cells))
	b := &build{id: c.nextID, cells: make([]*messages.PipelineJob, n), ended: make([]messages.Status, n), left: n}
	copy(b.cells, cells)
	c.builds[b.id] = b
	c.byKey[pair{repo, commit}] = b.id
	jobs := make([]*job, n)
	for k := range n {
		j := newJob(c.nextID, repo, repoName, commit, branches[0], subj, num, queuedMs)
		if len(branches) > 1 {
			j.Job.Branches = append([]string(nil), branches...)
		}
		j.Job.Index, j.Job.BuildId, j.Job.BuildJobs, j.Job.Cell = int32(k), b.id, int32(n), b.cells[k]
		c.nextID++
		c.hold(j)
		c.counters[cJobsQueued]++
		jobs[k] = j
	}
	if p.GetError() != "" {
		jobs[0].pipelineError = p.GetError()
	}
	return b, jobs
}

// validPipeline checks what the observer sent: a bounded number of cells,
// each needing only cells before it.
func validPipeline(cells []*messages.PipelineJob) error {
	if len(cells) > maxJobsPerBuild {
		return fmt.Errorf("the pipeline has %d jobs: at most %d are allowed", len(cells), maxJobsPerBuild)
	}
	for i, cell := range cells {
		if cell == nil || cell.Key == "" {
			return fmt.Errorf("the pipeline's job %d has no name", i)
		}
		for _, n := range cell.Needs {
			if n < 0 || int(n) >= i {
				return fmt.Errorf("the pipeline's job %s needs job %d, which does not come before it", cell.Name, n)
			}
		}
	}
	return nil
}

// start decides, once a build's jobs are made and persisted, which of them
// end at once (a pipeline error, a branches: filter that leaves the commit
// out, and the jobs that need those) and which may run now.
func (c *Core) start(now time.Time, fx []actors.Effect, b *build, jobs []*job) []actors.Effect {
	if why := jobs[0].pipelineError; why != "" {
		jobs[0].pipelineError = ""
		return c.finish(now, fx, jobs[0], &messages.Result{Job: jobs[0].Job, Status: messages.Status_STATUS_ERRORED,
			Reason: "the pipeline in .volt.yml is wrong: " + why, FinishedUnixMs: now.UnixMilli(), QueuedUnixMs: jobs[0].QueuedUnixMs})
	}
	for k, j := range jobs {
		if j.State != messages.JobState_JOB_STATE_QUEUED {
			continue // skipped with a need
		}
		cell := b.cells[k]
		if pats := cell.GetBranches(); len(pats) > 0 && !onBranches(pats, j.Job.Branches) {
			fx = c.finish(now, fx, j, c.skipped(now, j, fmt.Sprintf("not on a branch it runs on (%s)", strings.Join(pats, ", "))))
			continue
		}
		if met, _ := b.needsOf(int32(k)); met || plant.On(plant.NeedsNotAwaited) {
			c.makeReady(b, j, false)
		}
	}
	return fx
}

// onBranches reports whether one of branches matches one of the patterns
// (path.Match: "release/*").
func onBranches(patterns, branches []string) bool {
	for _, p := range patterns {
		for _, br := range branches {
			if ok, _ := path.Match(p, br); ok || p == br {
				return true
			}
		}
	}
	return false
}

// skipped is the result of a job that never ran.
func (c *Core) skipped(now time.Time, j *job, why string) *messages.Result {
	return &messages.Result{Job: j.Job, Attempt: j.Attempt, Status: messages.Status_STATUS_SKIPPED, Reason: why,
		FinishedUnixMs: now.UnixMilli(), QueuedUnixMs: j.QueuedUnixMs}
}

// ended updates j's build once j has ended with status: jobs that need it
// start or are skipped, and a failed cell of a fail-fast matrix cancels
// the rest of it.
func (c *Core) ended(now time.Time, fx []actors.Effect, j *job, status messages.Status) []actors.Effect {
	b := c.buildOf(j)
	i := j.Job.Index
	if b == nil || int(i) >= len(b.ended) || b.ended[i] != messages.Status_STATUS_UNSPECIFIED {
		return fx
	}
	c.unready(j)
	b.ended[i] = status
	b.left--
	for k := i + 1; int(k) < len(b.cells); k++ {
		if !slices.Contains(b.cells[k].GetNeeds(), i) {
			continue
		}
		d := c.jobs[b.id+int64(k)]
		if d == nil || d.State != messages.JobState_JOB_STATE_QUEUED || d.ready {
			continue
		}
		switch met, blockedBy := b.needsOf(k); {
		case blockedBy >= 0:
			fx = c.finish(now, fx, d, c.skipped(now, d, fmt.Sprintf("%s ended %s", b.name(blockedBy), b.ended[blockedBy].Name())))
		case met:
			c.makeReady(b, d, false)
		}
	}
	cell := b.cells[i]
	if cell.GetFailFast() && (status == messages.Status_STATUS_FAILED || status == messages.Status_STATUS_TIMED_OUT) && !cell.GetAllowFailure() {
		fx = c.failFast(now, fx, b, i)
	}
	return fx
}

// failFast cancels the cells of b with the key of cell i that have not
// ended: a queued one ends cancelled at once, a running one is told to
// stop.
func (c *Core) failFast(now time.Time, fx []actors.Effect, b *build, i int32) []actors.Effect {
	why := "cancelled: " + b.name(i) + " failed and its matrix is fail-fast"
	for k := range int32(len(b.cells)) {
		if k == i || b.cells[k].GetKey() != b.cells[i].GetKey() || (b.ended[k] != messages.Status_STATUS_UNSPECIFIED && !plant.On(plant.EndedJobCancelled)) {
			continue
		}
		if j := c.jobs[b.id+int64(k)]; j != nil {
			fx = c.cancelOne(now, fx, j, why)
		}
	}
	return fx
}

// waiting says why queued job j has not started, "" when nothing but a
// free runner stands in its way; runners are the registered ones.
func (c *Core) waiting(j *job, runners []*runnerState) string {
	b := c.buildOf(j)
	if b == nil || j.State != messages.JobState_JOB_STATE_QUEUED {
		return ""
	}
	if !j.ready {
		var names []string
		for _, n := range b.cells[j.Job.Index].GetNeeds() {
			if b.ended[n] == messages.Status_STATUS_UNSPECIFIED {
				names = append(names, b.name(n))
			}
		}
		if len(names) > 3 {
			names = append(names[:3], fmt.Sprintf("%d more", len(names)-3))
		}
		return "needs " + strings.Join(names, ", ")
	}
	want := j.Job.Cell.GetRunsOn()
	if len(want) == 0 {
		return ""
	}
	for _, r := range runners {
		if hasLabels(r.labels, want) {
			return ""
		}
	}
	return "no runner has labels " + strings.Join(want, ",")
}

// hasLabels reports whether a runner's labels include every one of want.
func hasLabels(labels, want []string) bool {
	return plant.On(plant.LabelsIgnored) || jobspec.LabelsSatisfy(labels, want)
}
