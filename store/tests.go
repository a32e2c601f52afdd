package store

// Tests: the cases of the test reports jobs upload, kept per attempt of
// each job, and what is read from them: a build's tests (each job's newest
// attempt that has a report, failures first) and one test's history across
// commits with its flake rate.
//
// Flaky is computed when read, never stored. A test is flaky on a commit
// when, in one job (by name, so a matrix cell counts apart from the
// others), it failed or errored in one run and passed in a later one of
// the same commit: a later attempt of that job (a retry:) or the job of a
// later build (a rebuild), in (build, attempt) order. Computing it on read
// keeps it right whatever order reports arrive in, and costs one indexed
// read of the commit's runs.

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/voltci/volt/messages"
)

// The statuses a test case may have.
const (
	TestPassed  = "passed"
	TestFailed  = "failed"
	TestSkipped = "skipped"
	TestErrored = "errored"
)

// TestCase is one test's result in one attempt of a job.
type TestCase struct {
	// Suite groups the test (a Go package, a JUnit classname).
	Suite string
	// Name is the test's name within Suite.
	Name string
	// Status is TestPassed, TestFailed, TestSkipped or TestErrored.
	Status     string
	DurationMS int64
	// Message says why the test failed, errored or was skipped.
	Message string
}

// TestRun is a stored TestCase with the job attempt it ran in.
type TestRun struct {
	TestCase
	Repo     string
	RepoName string
	Commit   string
	Build    int32
	BuildID  int64
	JobIndex int32
	JobID    int64
	// JobName is the job's name (messages.Job.DisplayName).
	JobName string
	Attempt int32
	// FinishedUnixMS is when the report was recorded.
	FinishedUnixMS int64
	// Flaky is set when the test is flaky on this commit in this job (see
	// the top of tests.go): it failed or errored, then passed.
	Flaky bool
}

// JobTests is the tests of one job of a build: those of its newest
// attempt that has a report.
type JobTests struct {
	BuildID int64
	Index   int32
	JobID   int64
	Name    string
	Attempt int32
	// Tests are failures first (failed and errored), then flaky ones,
	// then skipped, then passed; by suite and name within each.
	Tests []TestRun
}

// TestQuery selects one test's history.
type TestQuery struct {
	// RepoName is the repository's short name, as the pages show it.
	RepoName string
	// Name is the test's name; Suite, when set, its suite (else every
	// suite holding a test of that name).
	Name  string
	Suite string
	// Limit is how many runs, newest first: 1 to 1,000.
	Limit int
}

// TestHistory is one test's newest runs and its flake rate over them.
type TestHistory struct {
	// Runs are newest first, by when their report was recorded.
	Runs []TestRun
	// Groups counts the (commit, job, suite) of Runs in which the test
	// passed, failed or errored at least once (every stored run of the
	// commit counts, not only those in Runs); skipped-only ones do not.
	Groups int
	// Flaky counts those Groups in which the test was flaky.
	Flaky int
	// FlakeRate is Flaky / Groups, 0 when Groups is 0.
	FlakeRate float64
}

// maxTestHistory caps TestQuery.Limit.
const maxTestHistory = 1000

// testRank is how much a status says: a case recorded twice for one
// attempt (two reports naming one test) keeps the worse.
const testRank = `CASE %s WHEN 'errored' THEN 3 WHEN 'failed' THEN 2 WHEN 'passed' THEN 1 ELSE 0 END`

// RecordTests stores the cases of one report of an attempt of job, as
// recorded at finished. An attempt may have several reports: their cases
// add up, and a test named twice keeps its worse status (errored, failed,
// passed, skipped), so a report sent again changes nothing.
func (db *DB) RecordTests(ctx context.Context, job *messages.Job, attempt int32, finished time.Time, cases []TestCase) (err error) {
	if err := db.writable("record tests"); err != nil {
		return err
	}
	if job == nil || job.GetRepo() == "" || job.GetCommit() == "" || attempt < 1 {
		return errors.New("record tests: no job, repo, commit or attempt: this is a bug in the caller")
	}
	for _, c := range cases {
		if c.Name == "" || !validTestStatus(c.Status) {
			return fmt.Errorf("record tests: case %q of suite %q has status %q: this is a bug in the caller", c.Name, c.Suite, c.Status)
		}
	}
	what := fmt.Sprintf("tests of job %d attempt %d in %s", job.GetId(), attempt, db.path())
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record %s: begin: %w", what, err)
	}
	defer endTx(tx, &err)
	stmt, err := tx.PrepareContext(ctx, `
		INSERT INTO tests (repo, repo_name, commit_hash, build, build_id, job_index, job_id, job_name, attempt,
			suite, name, status, duration_ms, message, finished_unix_ms)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (build_id, job_index, attempt, suite, name) DO UPDATE SET
			status = excluded.status, duration_ms = excluded.duration_ms, message = excluded.message,
			finished_unix_ms = excluded.finished_unix_ms
		WHERE `+fmt.Sprintf(testRank, "excluded.status")+` > `+fmt.Sprintf(testRank, "tests.status"))
	if err != nil {
		return fmt.Errorf("record %s: %w", what, err)
	}
	defer stmt.Close()
	for _, c := range cases {
		if _, err := stmt.ExecContext(ctx, job.GetRepo(), job.GetRepoName(), job.GetCommit(), job.GetBuild(), job.BuildID(),
			job.GetIndex(), job.GetId(), job.DisplayName(), attempt, c.Suite, c.Name, c.Status, max(c.DurationMS, 0),
			c.Message, finished.UnixMilli()); err != nil {
			return fmt.Errorf("record %s: %w", what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record %s: commit: %w", what, err)
	}
	return nil
}

func validTestStatus(s string) bool {
	return s == TestPassed || s == TestFailed || s == TestSkipped || s == TestErrored
}

const testColumns = `repo, repo_name, commit_hash, build, build_id, job_index, job_id, job_name, attempt,
	suite, name, status, duration_ms, message, finished_unix_ms`

// readTests runs a query selecting testColumns.
func readTests(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) (out []TestRun, err error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, rows.Close()) }()
	for rows.Next() {
		var r TestRun
		if err := rows.Scan(&r.Repo, &r.RepoName, &r.Commit, &r.Build, &r.BuildID, &r.JobIndex, &r.JobID, &r.JobName, &r.Attempt,
			&r.Suite, &r.Name, &r.Status, &r.DurationMS, &r.Message, &r.FinishedUnixMS); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// testGroup is what flakiness is judged over: one test in one job of one commit.
type testGroup struct{ repo, commit, job, suite, name string }

func groupOf(r *TestRun) testGroup {
	return testGroup{r.Repo, r.Commit, r.JobName, r.Suite, r.Name}
}

// judge says, of every group in runs, whether the test was flaky in it
// and whether it counts for a flake rate (it passed, failed or errored).
func judge(runs []TestRun) (flaky, counted map[testGroup]bool) {
	byGroup := map[testGroup][]*TestRun{}
	for i := range runs {
		g := groupOf(&runs[i])
		byGroup[g] = append(byGroup[g], &runs[i])
	}
	flaky, counted = map[testGroup]bool{}, map[testGroup]bool{}
	for g, rs := range byGroup {
		slices.SortFunc(rs, func(a, b *TestRun) int {
			return cmp.Or(cmp.Compare(a.Build, b.Build), cmp.Compare(a.Attempt, b.Attempt))
		})
		failed := false
		for _, r := range rs {
			switch r.Status {
			case TestFailed, TestErrored:
				failed = true
				counted[g] = true
			case TestPassed:
				counted[g] = true
				if failed {
					flaky[g] = true
				}
			}
		}
	}
	return flaky, counted
}

// BuildTests returns the tests of each job of build buildID that has any,
// by job index: for each job those of its newest attempt with a report
// (JobTests.Tests says their order). It returns ErrNotFound when no job of
// the build has a report.
func (db *DB) BuildTests(buildID int64) (jobs []JobTests, err error) {
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read the tests of build %d from %s: begin: %w", buildID, db.path(), err)
	}
	defer endTx(tx, &err)
	var repo, commit string
	err = tx.QueryRowContext(ctx, `SELECT repo, commit_hash FROM tests WHERE build_id = ? LIMIT 1`, buildID).Scan(&repo, &commit)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("no tests for build %d in %s: %w", buildID, db.dir, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("read the tests of build %d from %s: %w", buildID, db.path(), err)
	}
	runs, err := readTests(ctx, tx, `SELECT `+testColumns+` FROM tests WHERE repo = ? AND commit_hash = ?`, repo, commit)
	if err != nil {
		return nil, fmt.Errorf("read the tests of build %d from %s: %w", buildID, db.path(), err)
	}
	flaky, _ := judge(runs)
	newest := map[int32]int32{} // job index -> its newest attempt with tests
	for _, r := range runs {
		if r.BuildID == buildID && r.Attempt > newest[r.JobIndex] {
			newest[r.JobIndex] = r.Attempt
		}
	}
	for _, index := range slices.Sorted(maps.Keys(newest)) {
		j := JobTests{BuildID: buildID, Index: index, Attempt: newest[index]}
		for _, r := range runs {
			if r.BuildID != buildID || r.JobIndex != index || r.Attempt != j.Attempt {
				continue
			}
			r.Flaky = flaky[groupOf(&r)]
			j.JobID, j.Name = r.JobID, r.JobName
			j.Tests = append(j.Tests, r)
		}
		slices.SortFunc(j.Tests, func(a, b TestRun) int {
			return cmp.Or(cmp.Compare(listRank(a), listRank(b)), strings.Compare(a.Suite, b.Suite), strings.Compare(a.Name, b.Name))
		})
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// listRank orders a job's tests: failures, flaky, skipped, passed.
func listRank(r TestRun) int {
	switch {
	case r.Status == TestFailed || r.Status == TestErrored:
		return 0
	case r.Flaky:
		return 1
	case r.Status == TestSkipped:
		return 2
	}
	return 3
}

// TestHistory returns the newest q.Limit runs of a test of a repository
// and its flake rate over them (TestHistory's fields say how it is
// counted). It returns ErrNotFound when the test has no run.
func (db *DB) TestHistory(q TestQuery) (h *TestHistory, err error) {
	if q.RepoName == "" || q.Name == "" || q.Limit < 1 || q.Limit > maxTestHistory {
		return nil, fmt.Errorf("test history: want a repository, a test name and a limit from 1 to %d: this is a bug in the caller", maxTestHistory)
	}
	what := fmt.Sprintf("the history of test %s in %s from %s", q.Name, q.RepoName, db.path())
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read %s: begin: %w", what, err)
	}
	defer endTx(tx, &err)
	query := `SELECT ` + testColumns + ` FROM tests WHERE repo_name = ? AND name = ?`
	args := []any{q.RepoName, q.Name}
	if q.Suite != "" {
		query += ` AND suite = ?`
		args = append(args, q.Suite)
	}
	runs, err := readTests(ctx, tx, query+` ORDER BY finished_unix_ms DESC, id DESC LIMIT ?`, append(args, q.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("no runs of test %s in %s: %w", q.Name, q.RepoName, ErrNotFound)
	}
	// Every run of the test on the commits shown, to judge each commit whole.
	var all []TestRun
	seen := map[[2]string]bool{}
	for _, r := range runs {
		k := [2]string{r.Repo, r.Commit}
		if seen[k] {
			continue
		}
		seen[k] = true
		rs, err := readTests(ctx, tx, `SELECT `+testColumns+` FROM tests WHERE repo = ? AND commit_hash = ? AND name = ?`, r.Repo, r.Commit, q.Name)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		all = append(all, rs...)
	}
	flaky, counted := judge(all)
	h = &TestHistory{Runs: runs}
	groups := map[testGroup]bool{}
	for i := range h.Runs {
		g := groupOf(&h.Runs[i])
		h.Runs[i].Flaky = flaky[g]
		groups[g] = true
	}
	for g := range groups {
		if counted[g] {
			h.Groups++
		}
		if flaky[g] {
			h.Flaky++
		}
	}
	if h.Groups > 0 {
		h.FlakeRate = float64(h.Flaky) / float64(h.Groups)
	}
	return h, nil
}

// pruneTests deletes the tests of one build, in retention's transaction
// (retention.go); it returns how many cases went.
func pruneTests(exec func(string, ...any) (int64, error), repo, commit string, build int32) (int64, error) {
	return exec(`DELETE FROM tests WHERE repo = ? AND commit_hash = ? AND build = ?`, repo, commit, build)
}
