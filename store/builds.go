package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/messages"
)

// Builds and their jobs (docs/pipelines.md): the reporter records one
// result per job (RecordResult); a build is the set of its jobs' results,
// and once every job has one, its aggregate is what the lists show.

// maxBuildJobs bounds the jobs a Build lists, whatever a stored record
// claims (the dispatcher makes at most 1,000 per pipeline).
const maxBuildJobs = 10_000

// Build is one build of a commit as the reporter holds it: the results of
// its jobs recorded so far and their aggregate. A build of the single-list
// format has one job (index 0, no cell) and is complete with its result.
type Build struct {
	// ID is the build's id: the id of its first job (index 0).
	ID int64
	// Repo is the URL or path runners fetch from; RepoName the short name shown.
	Repo     string
	RepoName string
	Commit   string
	// Number is the build's number among the commit's builds (1, then
	// rebuilds).
	Number int32
	// Branches are every branch the build's commit was seen on.
	Branches []string
	// JobCount is how many jobs the build has (Job.build_jobs).
	JobCount int32
	// Recorded is how many of them have a result.
	Recorded int32
	// Complete is set once every job has a result: the build then shows in
	// the lists, and its result file is written.
	Complete bool
	// Status is messages.Aggregate of the recorded jobs' statuses, each
	// job's allow_failure (from its cell) counting: final once Complete.
	Status messages.Status
	// Result is the build as one Result, as ListResults, Results and
	// ResultForCommit give it: the result of the job that decided Status
	// (the lowest index whose status is the build's, or else counts as
	// the build's: an allowed failure counts as passed), with the build's
	// Status, every branch, the earliest queued and started times and the
	// latest finished time. Its attempt, runner, reason, failed step and
	// log are that job's. For a build of one job it is that job's result
	// unchanged.
	Result *messages.Result
	// Jobs are the build's jobs by index, JobCount of them (at most
	// 10,000); a job without a result yet has only Index and ID. Nil in
	// the builds ListBuilds returns: ask Build for them.
	Jobs []BuildJob
	// Row is the build's place in the lists (the id in a PageCursor); 0
	// until Complete.
	Row int64
}

// BuildJob is one job of a Build.
type BuildJob struct {
	// Index is the job's place in its build; ID its id (the build's id
	// plus Index).
	Index int32
	ID    int64
	// Name is the job's name as users see it (messages.Job.DisplayName:
	// "build" for the one job of the single-list format); empty until the
	// job has a result.
	Name string
	// Cell is the job's place in the pipeline (key, matrix values, shard,
	// needs as indexes, allow_failure): nil for the one job of the
	// single-list format, and until the job has a result.
	Cell *messages.PipelineJob
	// Status is the job's own status; STATUS_UNSPECIFIED until it has a
	// result.
	Status messages.Status
	// Result is the job's result (attempt, runner, times, reason, log
	// size); nil until it has one. Its log is CopyLog(Result.Job,
	// Result.Attempt).
	Result *messages.Result
}

// Build returns build id (the id of its first job) with every job's
// result recorded so far; ErrNotFound when none of its jobs has a result
// (it may be queued or running, pruned, or id may be another job's id).
func (db *DB) Build(id int64) (*Build, error) {
	return db.build(context.Background(), db.sql, fmt.Sprintf("build %d", id),
		`SELECT record FROM results WHERE build_id = ? ORDER BY job_index`, id)
}

// BuildOf returns build number of commit in repo as Build does.
func (db *DB) BuildOf(repo, commit string, number int32) (*Build, error) {
	return db.build(context.Background(), db.sql, fmt.Sprintf("build %d of %s in %s", number, commit, repo),
		`SELECT record FROM results WHERE repo = ? AND commit_hash = ? AND build = ? ORDER BY job_index`, repo, commit, number)
}

// BuildForCommit returns the newest build of a commit given in full or as
// a unique prefix of at least 4 hex digits that has at least one job's
// result, complete or not, as Build does. It returns ErrNotFound when no
// result matches, ErrAmbiguous when the prefix matches several commits, and
// ErrInvalidCommit for a prefix that is not hex.
func (db *DB) BuildForCommit(prefix string) (b *Build, err error) {
	lo, hi, err := prefixRange(prefix, 4)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("find the build of %s in %s: begin: %w", prefix, db.path(), err)
	}
	defer endTx(tx, &err)
	commit, err := uniqueCommit(ctx, tx, "results", prefix, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("find the build of %s in %s: %w", prefix, db.path(), err)
	}
	var repo string
	var number int32
	if err := tx.QueryRowContext(ctx, `SELECT repo, build FROM results WHERE commit_hash = ? ORDER BY build DESC, id DESC LIMIT 1`,
		commit).Scan(&repo, &number); err != nil {
		return nil, fmt.Errorf("find the build of %s in %s: %w", prefix, db.path(), err)
	}
	return db.build(ctx, tx, fmt.Sprintf("build %d of %s in %s", number, commit, repo),
		`SELECT record FROM results WHERE repo = ? AND commit_hash = ? AND build = ? ORDER BY job_index`, repo, commit, number)
}

// buildQueryer is what build needs of a *sql.DB or *sql.Tx.
type buildQueryer interface {
	rowsQueryer
	queryer
}

// build reads the job results query selects (by job index) and assembles
// them; what names the build in errors.
func (db *DB) build(ctx context.Context, q buildQueryer, what, query string, args ...any) (*Build, error) {
	jobs, err := queryRecords(ctx, q, func() *messages.Result { return &messages.Result{} }, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", what, db.path(), err)
	}
	b := assemble(jobs)
	if b == nil {
		return nil, fmt.Errorf("%s: no job of it has a result: %w", what, ErrNotFound)
	}
	if b.Complete {
		if err := q.QueryRowContext(ctx, `SELECT id FROM builds WHERE repo = ? AND commit_hash = ? AND build = ?`,
			b.Repo, b.Commit, b.Number).Scan(&b.Row); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("read %s from %s: %w", what, db.path(), err)
		}
	}
	return b, nil
}

// ListBuilds returns one page of the complete builds matching q, newest
// first (by finished time, then by the order they completed), without
// their Jobs, and the cursor of the next page (nil when this page is the
// last). ListResults is the same page as aggregate Results.
func (db *DB) ListBuilds(q Query) ([]*Build, *PageCursor, error) {
	rows, next, err := db.ListResults(q)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*Build, 0, len(rows))
	for _, r := range rows {
		out = append(out, summary(r))
	}
	return out, next, nil
}

// summary is the Build, without its jobs, of a row of the builds table.
func summary(r Row) *Build {
	j := r.Result.GetJob()
	n := min(j.JobsInBuild(), maxBuildJobs)
	return &Build{ID: j.BuildID(), Repo: j.GetRepo(), RepoName: j.GetRepoName(), Commit: j.GetCommit(), Number: j.GetBuild(),
		Branches: j.GetBranches(), JobCount: n, Recorded: n, Complete: true, Status: r.Result.GetStatus(), Result: r.Result, Row: r.ID}
}

// assemble makes the Build of one build's job results, sorted by index
// (nil for none). A result whose index is out of range, or a second one
// for an index, is ignored.
func assemble(jobs []*messages.Result) *Build {
	if len(jobs) == 0 {
		return nil
	}
	n := int32(1)
	for _, r := range jobs {
		n = max(n, r.GetJob().JobsInBuild())
	}
	n = min(n, maxBuildJobs)
	first := jobs[0].GetJob()
	b := &Build{ID: first.BuildID(), Repo: first.GetRepo(), RepoName: first.GetRepoName(),
		Commit: first.GetCommit(), Number: first.GetBuild(), JobCount: n, Jobs: make([]BuildJob, n)}
	for i := range b.Jobs {
		b.Jobs[i] = BuildJob{Index: int32(i), ID: b.ID + int64(i)}
	}
	recorded := make([]*messages.Result, 0, len(jobs))
	for _, r := range jobs {
		j := r.GetJob()
		i := j.GetIndex()
		if i < 0 || i >= n || b.Jobs[i].Result != nil {
			continue
		}
		b.Jobs[i] = BuildJob{Index: i, ID: j.GetId(), Name: j.DisplayName(), Cell: j.GetCell(), Status: r.GetStatus(), Result: r}
		recorded = append(recorded, r)
	}
	b.Recorded = int32(len(recorded))
	b.Complete = b.Recorded == n
	b.Result = aggregate(recorded)
	b.Status = b.Result.GetStatus()
	b.Branches = b.Result.GetJob().GetBranches()
	return b
}

// counted is a job's status as its build's aggregate counts it: an
// allowed failure (failed, timed out, errored) counts as passed.
func counted(r *messages.Result) messages.Status {
	return messages.Aggregate([]messages.Status{r.GetStatus()}, []bool{r.GetJob().GetCell().GetAllowFailure()})
}

// aggregate is the Result standing for a build's recorded job results
// (sorted by index; see Build.Result), nil for none.
func aggregate(jobs []*messages.Result) *messages.Result {
	if len(jobs) == 0 {
		return nil
	}
	if len(jobs) == 1 {
		return proto.CloneOf(jobs[0])
	}
	statuses := make([]messages.Status, len(jobs))
	allow := make([]bool, len(jobs))
	for i, r := range jobs {
		statuses[i], allow[i] = r.GetStatus(), r.GetJob().GetCell().GetAllowFailure()
	}
	st := messages.Aggregate(statuses, allow)
	decider := jobs[0]
	if i := slices.IndexFunc(jobs, func(r *messages.Result) bool { return r.GetStatus() == st }); i >= 0 {
		decider = jobs[i]
	} else if i := slices.IndexFunc(jobs, func(r *messages.Result) bool { return counted(r) == st }); i >= 0 {
		decider = jobs[i]
	}
	out := proto.CloneOf(decider)
	if out.Job == nil {
		out.Job = &messages.Job{}
	}
	out.Status = st
	earliest := func(a, b int64) int64 {
		if a == 0 || (b != 0 && b < a) {
			return b
		}
		return a
	}
	for _, r := range jobs {
		for _, br := range r.GetJob().GetBranches() {
			if !slices.Contains(out.Job.Branches, br) {
				out.Job.Branches = append(out.Job.Branches, br)
			}
		}
		out.QueuedUnixMs = earliest(out.QueuedUnixMs, r.GetQueuedUnixMs())
		out.StartedUnixMs = earliest(out.StartedUnixMs, r.GetStartedUnixMs())
		out.FinishedUnixMs = max(out.FinishedUnixMs, r.GetFinishedUnixMs())
	}
	return out
}
