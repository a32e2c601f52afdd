package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// maxBuildJobs bounds the jobs read for one build, whatever a stored
// record says (the dispatcher accepts at most 1,000 per pipeline).
const maxBuildJobs = 1000

// errBadCursor is returned by Builds for a cursor it did not make.
var errBadCursor = errors.New("malformed cursor")

// storeBuilds is the buildSource of a Server: the jobs that ended from the
// reporter's store (store.DB.Build: their results are the final word), the
// others from the dispatcher's memory. A build's jobs have consecutive ids
// from the build's id (docs/pipelines.md), so job i of build id is the
// dispatcher's job id+i.
type storeBuilds struct {
	db *store.DB
	// status asks the dispatcher for the jobs in its memory.
	status func(context.Context) (*messages.StatusReply, error)
}

// inMemory is what the dispatcher's status says of builds: its jobs by id,
// and one job of each build it holds (by build id), which names the build
// while none of its jobs has a stored result.
type inMemory struct {
	jobs  map[int64]*messages.JobRecord
	heads map[int64]*messages.Job
}

// dispatcherJobs indexes the jobs a dispatcher's status holds.
func dispatcherJobs(st *messages.StatusReply) inMemory {
	m := inMemory{jobs: make(map[int64]*messages.JobRecord, len(st.GetJobs())), heads: map[int64]*messages.Job{}}
	for _, rec := range st.GetJobs() {
		j := rec.GetJob()
		if j == nil {
			continue
		}
		m.jobs[j.GetId()] = rec
		if h := m.heads[j.BuildID()]; h == nil || j.GetIndex() < h.GetIndex() {
			m.heads[j.BuildID()] = j
		}
	}
	return m
}

// Build implements buildSource.
func (b *storeBuilds) Build(ctx context.Context, id int64) (*BuildView, error) {
	st, stErr := b.status(ctx)
	return b.build(id, dispatcherJobs(st), stErr)
}

// result is the stored result of job index of build id, nil when there is
// none (yet).
func (b *storeBuilds) result(id int64, index int32) (*messages.Result, error) {
	r, err := b.db.ResultByJob(id + int64(index))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	if j := r.GetJob(); j.BuildID() != id || j.GetIndex() != index {
		return nil, nil // another build's job: ids are only consecutive within a build
	}
	return r, nil
}

// inBuild reports whether rec is job index of build id.
func inBuild(rec *messages.JobRecord, id int64, index int32) bool {
	return rec != nil && rec.GetJob().BuildID() == id && rec.GetJob().GetIndex() == index
}

// build assembles build id from the store's results of its jobs
// (store.DB.Build) and recs, the dispatcher's jobs (stErr says why there
// are none when it did not answer).
func (b *storeBuilds) build(id int64, recs inMemory, stErr error) (*BuildView, error) {
	stored, err := b.db.Build(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		stored = nil
	case err != nil:
		return nil, err
	}
	head := recs.heads[id] // job 0 may be done, its result on its way to the store
	switch {
	case stored != nil:
	case head != nil:
	case recs.jobs[id] != nil:
		j := recs.jobs[id].GetJob()
		return nil, fmt.Errorf("%d is job %d of build %d: %w", id, j.GetIndex(), j.BuildID(), errNoBuild)
	default:
		if r, err := b.db.ResultByJob(id); err == nil {
			return nil, fmt.Errorf("%d is job %d of build %d: %w", id, r.GetJob().GetIndex(), r.GetJob().BuildID(), errNoBuild)
		}
		if stErr != nil {
			return nil, fmt.Errorf("build %d has no result yet and the dispatcher did not answer: %w", id, stErr)
		}
		return nil, fmt.Errorf("build %d: %w (it may have been pruned, or the id is wrong)", id, errNoBuild)
	}
	v := &BuildView{}
	n := int32(0)
	if stored != nil {
		v.BuildSummary = BuildSummary{BuildID: id, Repo: stored.Repo, RepoName: stored.RepoName, Commit: stored.Commit,
			Subject: stored.Result.GetJob().GetSubject(), Branches: append([]string{}, stored.Branches...), Number: stored.Number}
		n = stored.JobCount
	} else {
		v.BuildSummary = BuildSummary{BuildID: id, Repo: head.GetRepo(), RepoName: head.GetRepoName(), Commit: head.GetCommit(),
			Subject: head.GetSubject(), Branches: append([]string{}, head.GetBranches()...), Number: head.GetBuild()}
		n = head.JobsInBuild()
	}
	n = min(n, maxBuildJobs)
	v.Jobs = make([]BuildJob, 0, n)
	for i := range n {
		var res *messages.Result
		if stored != nil && int(i) < len(stored.Jobs) {
			res = stored.Jobs[i].Result
		}
		rec := recs.jobs[id+int64(i)]
		if !inBuild(rec, id, i) {
			rec = nil
		}
		v.Jobs = append(v.Jobs, buildJob(id, i, res, rec))
	}
	v.finish()
	return v, nil
}

// buildJob is the view of job index of build id from its result, or else
// the dispatcher's record of it; with neither its state is unknown.
func buildJob(id int64, index int32, res *messages.Result, rec *messages.JobRecord) BuildJob {
	bj := BuildJob{Index: index, JobID: id + int64(index), Name: fmt.Sprintf("job %d", index), Needs: []int32{},
		State: stateUnknown, Status: stateUnknown,
		PageURL:      fmt.Sprintf("/builds/%d/jobs/%d", id, index),
		LogURL:       fmt.Sprintf("/api/v2/builds/%d/jobs/%d/log", id, index),
		ArtifactsURL: fmt.Sprintf("/api/v2/builds/%d/jobs/%d/artifacts", id, index)}
	var v Job
	switch {
	case res != nil:
		v = fromResult(res)
	case rec != nil:
		v = fromRecord(rec)
	default:
		return bj
	}
	j := v.job
	bj.Name = j.DisplayName()
	if c := j.GetCell(); c != nil {
		bj.Key, bj.AllowFailure = c.GetKey(), c.GetAllowFailure()
		for _, m := range c.GetMatrix() {
			bj.Matrix = append(bj.Matrix, MatrixValue{Name: m.GetName(), Value: m.GetValue()})
		}
		if c.GetShardTotal() > 0 {
			bj.Shard = &Shard{Index: c.GetShardIndex(), Total: c.GetShardTotal()}
		}
		bj.Needs = append(bj.Needs, c.GetNeeds()...)
	}
	bj.State, bj.Status = v.State, v.State
	if v.State == stateDone {
		bj.Status = v.Status
	}
	bj.Attempt, bj.Runner, bj.Reason, bj.FailedStep, bj.ExitCode = v.Attempt, v.Runner, v.Reason, v.FailedStep, v.ExitCode
	bj.QueuedAt, bj.StartedAt, bj.FinishedAt, bj.DurationMS, bj.LogBytes = v.QueuedAt, v.StartedAt, v.FinishedAt, v.DurationMS, v.LogBytes
	if res != nil {
		bj.Retries = res.GetRetries()
	}
	if rec != nil {
		bj.Retries = rec.GetRetries()
		if v.State != stateDone {
			bj.Waiting = rec.GetWaiting()
		}
	}
	return bj
}

// CopyJobLog implements buildSource.
func (b *storeBuilds) CopyJobLog(ctx context.Context, w io.Writer, id int64, index int32) (int64, error) {
	res, err := b.result(id, index)
	if err != nil {
		return 0, err
	}
	if res != nil {
		return b.db.CopyLog(w, res.GetJob(), res.GetAttempt())
	}
	st, err := b.status(ctx)
	if err != nil {
		return 0, fmt.Errorf("job %d of build %d has no result yet and the dispatcher did not answer: %w", index, id, err)
	}
	rec := dispatcherJobs(st).jobs[id+int64(index)]
	if !inBuild(rec, id, index) {
		return 0, fmt.Errorf("job %d of build %d: %w", index, id, errNoBuild)
	}
	if rec.GetAttempt() == 0 {
		return 0, nil
	}
	return b.db.CopyLog(w, rec.GetJob(), rec.GetAttempt())
}

// Builds implements buildSource: the first page starts with the builds the
// dispatcher has in flight (up to the limit), then come finished ones,
// newest first, from a page of up to the limit of stored results (one per
// build: a build is listed once its every job has a result).
func (b *storeBuilds) Builds(ctx context.Context, q BuildQuery) (BuildsPage, error) {
	var after *store.PageCursor
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return BuildsPage{}, fmt.Errorf("%w: %v", errBadCursor, err)
		}
		after = c
	}
	st, stErr := b.status(ctx)
	recs := dispatcherJobs(st)
	match := func(v *BuildView) bool {
		return (q.RepoName == "" || v.RepoName == q.RepoName) && (q.Repo == "" || v.Repo == q.Repo) &&
			(q.Branch == "" || slices.Contains(v.Branches, q.Branch)) && (q.Status == "" || v.Status == q.Status)
	}
	inflight := map[int64]bool{}
	var open []int64
	for _, rec := range recs.jobs {
		if id := rec.GetJob().BuildID(); rec.GetState() != messages.JobState_JOB_STATE_DONE && !inflight[id] {
			inflight[id] = true
			open = append(open, id)
		}
	}
	slices.SortFunc(open, func(a, b int64) int { return cmp.Compare(b, a) })
	var page BuildsPage
	add := func(id int64) error {
		v, err := b.build(id, recs, stErr)
		switch {
		case errors.Is(err, errNoBuild):
			return nil
		case err != nil:
			return err
		}
		if match(v) {
			page.Builds = append(page.Builds, v.BuildSummary)
		}
		return nil
	}
	if after == nil {
		for _, id := range open {
			if len(page.Builds) == q.Limit {
				break
			}
			if err := add(id); err != nil {
				return BuildsPage{}, err
			}
		}
	}
	if q.Status == stateQueued || q.Status == stateRunning {
		return page, nil
	}
	rows, next, err := b.db.ListResults(store.Query{RepoName: q.RepoName, Repo: q.Repo, Branch: q.Branch, Status: q.Status,
		Limit: q.Limit, After: after})
	if err != nil {
		return BuildsPage{}, err
	}
	page.Next = encodeCursor(next)
	seen := map[int64]bool{}
	for _, row := range rows {
		id := row.Result.GetJob().BuildID()
		if inflight[id] || seen[id] {
			continue // in flight: on the first page
		}
		seen[id] = true
		if err := add(id); err != nil {
			return BuildsPage{}, err
		}
	}
	return page, nil
}
