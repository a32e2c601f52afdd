package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/messages"
)

// RecordResult stores the final result of one job of a build, keyed by
// (repo, commit, build, job index), and reports whether the stored copy
// changed. A result for a key already held changes nothing (changed=false:
// the dispatcher resends until acknowledged, and the first copy wins),
// except that a branch it names and the stored copy does not is added: the
// dispatcher sends a job's result again when its commit is seen on another
// branch, and a build's branches only grow.
//
// When the result is the last of its build's jobs to arrive (every index
// below Job.build_jobs has one), the build's aggregate is stored in the same
// transaction (see Build): from then on the lists show the build. A build of
// one job is complete with its one result, as before pipelines.
func (db *DB) RecordResult(r *messages.Result) (changed bool, err error) {
	if err := db.writable("record result"); err != nil {
		return false, err
	}
	j := r.GetJob()
	if j == nil || j.GetRepo() == "" || j.GetCommit() == "" {
		return false, errors.New("record result: result without a job, repo or commit: this is a bug in the sender")
	}
	if j.GetIndex() < 0 || j.GetIndex() >= j.JobsInBuild() {
		return false, fmt.Errorf("record result of job %d: index %d is outside its build of %d jobs: this is a bug in the sender",
			j.GetId(), j.GetIndex(), j.JobsInBuild())
	}
	what := fmt.Sprintf("result of job %d (%s) of build %d of %s in %s", j.GetId(), j.DisplayName(), j.GetBuild(), j.GetCommit(), db.path())
	blob, err := marshal.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("record %s: encode: %w", what, err)
	}
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("record %s: begin: %w", what, err)
	}
	defer endTx(tx, &err)
	res, err := tx.ExecContext(ctx, `
		INSERT INTO results (repo, repo_name, commit_hash, build, job_index, build_id, build_jobs, job_name, allow_failure,
			status, branches, finished_unix_ms, job_id, record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (repo, commit_hash, build, job_index) DO NOTHING`,
		j.GetRepo(), j.GetRepoName(), j.GetCommit(), j.GetBuild(), j.GetIndex(), j.BuildID(), j.JobsInBuild(), j.DisplayName(),
		j.GetCell().GetAllowFailure(), r.GetStatus().Name(), strings.Join(j.GetBranches(), ","), r.GetFinishedUnixMs(), j.GetId(), blob)
	if err != nil {
		return false, fmt.Errorf("record %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record %s: %w", what, err)
	}
	if n == 0 {
		if changed, err = addBranches(ctx, tx, j); err != nil {
			return false, fmt.Errorf("record %s: add branches: %w", what, err)
		}
		if !changed {
			return false, nil // the deferred endTx rolls back
		}
	}
	if err := updateBuild(ctx, tx, j.GetRepo(), j.GetCommit(), j.GetBuild()); err != nil {
		return false, fmt.Errorf("record %s: aggregate its build: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("record %s: commit: %w", what, err)
	}
	return true, nil
}

// addBranches adds to the stored result of job j the branches of j it does
// not name yet, and reports whether there were any.
func addBranches(ctx context.Context, tx *sql.Tx, j *messages.Job) (added bool, err error) {
	var blob []byte
	err = tx.QueryRowContext(ctx, `SELECT record FROM results WHERE repo = ? AND commit_hash = ? AND build = ? AND job_index = ?`,
		j.GetRepo(), j.GetCommit(), j.GetBuild(), j.GetIndex()).Scan(&blob)
	if err != nil {
		return false, err
	}
	stored := &messages.Result{}
	if err := proto.Unmarshal(blob, stored); err != nil {
		return false, fmt.Errorf("decode: %w", err)
	}
	if stored.Job == nil {
		stored.Job = &messages.Job{}
	}
	for _, b := range j.GetBranches() {
		if !slices.Contains(stored.Job.Branches, b) {
			stored.Job.Branches = append(stored.Job.Branches, b)
			added = true
		}
	}
	if !added {
		return false, nil
	}
	if blob, err = marshal.Marshal(stored); err != nil {
		return false, fmt.Errorf("encode: %w", err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE results SET branches = ?, record = ? WHERE repo = ? AND commit_hash = ? AND build = ? AND job_index = ?`,
		strings.Join(stored.Job.Branches, ","), blob, j.GetRepo(), j.GetCommit(), j.GetBuild(), j.GetIndex())
	return err == nil, err
}

// updateBuild stores the aggregate of build (repo, commit, build) in the
// builds table once every one of its jobs has a result, and refreshes it
// when a job's branches grew. A new row takes the next row id: the lists
// and ResultsAfter see builds in the order they completed.
func updateBuild(ctx context.Context, tx *sql.Tx, repo, commit string, build int32) error {
	// Counting costs no decoding: a build of n jobs reads its records once,
	// when its last job arrives, not n times.
	var held, want int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(build_jobs), 1) FROM results WHERE repo = ? AND commit_hash = ? AND build = ?`,
		repo, commit, build).Scan(&held, &want); err != nil {
		return err
	}
	if held < want {
		return nil
	}
	jobs, err := queryRecords(ctx, tx, func() *messages.Result { return &messages.Result{} },
		`SELECT record FROM results WHERE repo = ? AND commit_hash = ? AND build = ? ORDER BY job_index`, repo, commit, build)
	if err != nil {
		return err
	}
	b := assemble(jobs)
	if b == nil || !b.Complete {
		return nil
	}
	agg := b.Result
	blob, err := marshal.Marshal(agg)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO builds (repo, repo_name, commit_hash, build, build_id, build_jobs, status, branches, finished_unix_ms, record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (repo, commit_hash, build) DO UPDATE SET
			status = excluded.status, branches = excluded.branches, finished_unix_ms = excluded.finished_unix_ms, record = excluded.record`,
		repo, agg.GetJob().GetRepoName(), commit, build, b.ID, b.JobCount, agg.GetStatus().Name(),
		strings.Join(agg.GetJob().GetBranches(), ","), agg.GetFinishedUnixMs(), blob)
	return err
}

// ResultFilter selects results. Empty fields match everything.
type ResultFilter struct {
	// Repo matches the job's repo (URL or path) exactly.
	Repo string
	// Branch matches results whose commit was seen on this branch.
	Branch string
	// Status is a status name: passed, failed, timed_out, errored, cancelled,
	// skipped (a build's aggregate status).
	Status string
	// CommitPrefix matches commits starting with these hex digits.
	CommitPrefix string
	// Limit caps the number of results; 0 or less means no cap.
	Limit int
	// Offset skips this many results first, for pagination.
	Offset int
}

// Results lists the builds that match f, newest first (by finished time,
// then by the order they completed), each as its aggregate Result (see
// Build.Result): one per build whose every job has a result. A build of
// one job is that job's result, as before pipelines.
func (db *DB) Results(f ResultFilter) ([]*messages.Result, error) {
	var where []string
	var args []any
	if f.Repo != "" {
		where = append(where, `repo = ?`)
		args = append(args, f.Repo)
	}
	if f.Branch != "" {
		where = append(where, `instr(',' || branches || ',', ?) > 0`)
		args = append(args, ","+f.Branch+",")
	}
	if f.Status != "" {
		st, err := messages.ParseStatus(f.Status)
		if err != nil {
			return nil, fmt.Errorf("list results: %w", err)
		}
		where = append(where, `status = ?`)
		args = append(args, st.Name())
	}
	if f.CommitPrefix != "" {
		lo, hi, err := prefixRange(f.CommitPrefix, 1)
		if err != nil {
			return nil, fmt.Errorf("list results: %w", err)
		}
		where = append(where, `commit_hash >= ? AND commit_hash < ?`)
		args = append(args, lo, hi)
	}
	query := `SELECT record FROM builds`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	query += ` ORDER BY finished_unix_ms DESC, id DESC LIMIT ? OFFSET ?`
	args = append(args, limit, max(f.Offset, 0))
	out, err := queryRecords(context.Background(), db.sql, func() *messages.Result { return &messages.Result{} }, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list results from %s: %w", db.path(), err)
	}
	return out, nil
}

// ResultForCommit returns the aggregate result (see Build.Result) of the
// latest complete build of a commit given in full or as a unique prefix of
// at least 4 hex digits; BuildForCommit has the latest build, complete or
// not, with its jobs. It returns
// ErrNotFound when no result matches, ErrAmbiguous when the prefix matches
// several commits, and ErrInvalidCommit for a prefix that is not hex.
func (db *DB) ResultForCommit(prefix string) (*messages.Result, error) {
	lo, hi, err := prefixRange(prefix, 4)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("find result of %s in %s: begin: %w", prefix, db.path(), err)
	}
	defer endTx(tx, &err)

	commit, err := uniqueCommit(ctx, tx, "builds", prefix, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("find result of %s in %s: %w", prefix, db.path(), err)
	}
	recs, err := queryRecords(ctx, tx, func() *messages.Result { return &messages.Result{} },
		`SELECT record FROM builds WHERE commit_hash = ? ORDER BY build DESC, finished_unix_ms DESC, id DESC LIMIT 1`,
		commit)
	if err != nil {
		return nil, fmt.Errorf("find result of %s in %s: %w", prefix, db.path(), err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("no result for commit %s in %s: %w", prefix, db.dir, ErrNotFound)
	}
	return recs[0], nil
}

// uniqueCommit returns the one commit of table (builds or results) in
// [lo, hi), the ids that start with prefix: ErrNotFound when there is none,
// ErrAmbiguous when there are several.
func uniqueCommit(ctx context.Context, q rowsQueryer, table, prefix, lo, hi string) (commit string, err error) {
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT commit_hash FROM `+table+` WHERE commit_hash >= ? AND commit_hash < ? LIMIT 3`, lo, hi)
	if err != nil {
		return "", err
	}
	var commits []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return "", errors.Join(err, rows.Close())
		}
		commits = append(commits, c)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return "", err
	}
	switch len(commits) {
	case 0:
		return "", fmt.Errorf("no commit %s has a result: %w", prefix, ErrNotFound)
	case 1:
		return commits[0], nil
	}
	return "", fmt.Errorf("commit prefix %s matches %s, ...: give more digits: %w", prefix, strings.Join(commits[:2], ", "), ErrAmbiguous)
}

// prefixRange checks that prefix is at least minLen hex digits (at most 64,
// a SHA-256 commit id) and returns the half-open range [lo, hi) of commit ids
// that start with it, in lower case, so the commit index answers the query.
func prefixRange(prefix string, minLen int) (lo, hi string, err error) {
	if err := checkHex(prefix, minLen); err != nil {
		return "", "", err
	}
	lo = strings.ToLower(prefix)
	// Every id starting with lo sorts before lo with its last digit raised
	// by one; hex digits are below 0x7f, so the raise never overflows.
	hi = lo[:len(lo)-1] + string(rune(lo[len(lo)-1]+1))
	return lo, hi, nil
}

// checkHex verifies that s is between minLen and 64 hex digits.
func checkHex(s string, minLen int) error {
	if len(s) < minLen || len(s) > 64 {
		return fmt.Errorf("commit %q: want %d to 64 hex digits: %w", s, minLen, ErrInvalidCommit)
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return fmt.Errorf("commit %q: %q is not a hex digit: %w", s, c, ErrInvalidCommit)
		}
	}
	return nil
}
