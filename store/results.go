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

// RecordResult stores the final result of one build, keyed by (repo, commit,
// build), and reports whether the stored copy changed. A result for a key
// already held changes nothing (changed=false: the dispatcher resends until
// acknowledged, and the first copy wins), except that a branch it names and
// the stored copy does not is added: the dispatcher sends a build again when
// its commit is seen on another branch, and a build's branches only grow.
func (db *DB) RecordResult(r *messages.Result) (changed bool, err error) {
	if err := db.writable("record result"); err != nil {
		return false, err
	}
	j := r.GetJob()
	if j == nil || j.GetRepo() == "" || j.GetCommit() == "" {
		return false, errors.New("record result: result without a job, repo or commit: this is a bug in the sender")
	}
	blob, err := marshal.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("record result of job %d: encode: %w", j.GetId(), err)
	}
	res, err := db.sql.ExecContext(context.Background(), `
		INSERT INTO results (repo, repo_name, commit_hash, build, status, branches, finished_unix_ms, job_id, record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (repo, commit_hash, build) DO NOTHING`,
		j.GetRepo(), j.GetRepoName(), j.GetCommit(), j.GetBuild(), r.GetStatus().Name(),
		strings.Join(j.GetBranches(), ","), r.GetFinishedUnixMs(), j.GetId(), blob)
	if err != nil {
		return false, fmt.Errorf("record result of build %d of %s in %s: %w", j.GetBuild(), j.GetCommit(), db.path(), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record result of build %d of %s in %s: %w", j.GetBuild(), j.GetCommit(), db.path(), err)
	}
	if n == 1 {
		return true, nil
	}
	return db.addBranches(j)
}

// addBranches adds to the stored result of j's build the branches of j it
// does not name yet, and reports whether there were any.
func (db *DB) addBranches(j *messages.Job) (added bool, err error) {
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("add branches to build %d of %s in %s: begin: %w", j.GetBuild(), j.GetCommit(), db.path(), err)
	}
	defer endTx(tx, &err)
	var blob []byte
	err = tx.QueryRowContext(ctx, `SELECT record FROM results WHERE repo = ? AND commit_hash = ? AND build = ?`,
		j.GetRepo(), j.GetCommit(), j.GetBuild()).Scan(&blob)
	if err != nil {
		return false, fmt.Errorf("add branches to build %d of %s in %s: %w", j.GetBuild(), j.GetCommit(), db.path(), err)
	}
	stored := &messages.Result{}
	if err := proto.Unmarshal(blob, stored); err != nil {
		return false, fmt.Errorf("add branches to build %d of %s in %s: decode: %w", j.GetBuild(), j.GetCommit(), db.path(), err)
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
		return false, fmt.Errorf("add branches to build %d of %s: encode: %w", j.GetBuild(), j.GetCommit(), err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE results SET branches = ?, record = ? WHERE repo = ? AND commit_hash = ? AND build = ?`,
		strings.Join(stored.Job.Branches, ","), blob, j.GetRepo(), j.GetCommit(), j.GetBuild())
	if err != nil {
		return false, fmt.Errorf("add branches to build %d of %s in %s: %w", j.GetBuild(), j.GetCommit(), db.path(), err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("add branches to build %d of %s in %s: commit: %w", j.GetBuild(), j.GetCommit(), db.path(), err)
	}
	return true, nil
}

// ResultFilter selects results. Empty fields match everything.
type ResultFilter struct {
	// Repo matches the job's repo (URL or path) exactly.
	Repo string
	// Branch matches results whose commit was seen on this branch.
	Branch string
	// Status is a status name: passed, failed, timed_out, errored, cancelled.
	Status string
	// CommitPrefix matches commits starting with these hex digits.
	CommitPrefix string
	// Limit caps the number of results; 0 or less means no cap.
	Limit int
	// Offset skips this many results first, for pagination.
	Offset int
}

// Results lists the results that match f, newest first: by finished time,
// then by the order they were recorded.
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
	query := `SELECT record FROM results`
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

// ResultForCommit returns the result of the latest build of a commit given in
// full or as a unique prefix of at least 4 hex digits. It returns
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

	rows, err := tx.QueryContext(ctx,
		`SELECT DISTINCT commit_hash FROM results WHERE commit_hash >= ? AND commit_hash < ? LIMIT 3`, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("find result of %s in %s: %w", prefix, db.path(), err)
	}
	var commits []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, errors.Join(fmt.Errorf("find result of %s in %s: %w", prefix, db.path(), err), rows.Close())
		}
		commits = append(commits, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find result of %s in %s: %w", prefix, db.path(), err)
	}
	switch len(commits) {
	case 0:
		return nil, fmt.Errorf("no result for commit %s in %s: %w", prefix, db.dir, ErrNotFound)
	case 1:
	default:
		return nil, fmt.Errorf("commit prefix %s matches %s, ...: give more digits: %w",
			prefix, strings.Join(commits[:2], ", "), ErrAmbiguous)
	}
	recs, err := queryRecords(ctx, tx, func() *messages.Result { return &messages.Result{} },
		`SELECT record FROM results WHERE commit_hash = ? ORDER BY build DESC, finished_unix_ms DESC, id DESC LIMIT 1`,
		commits[0])
	if err != nil {
		return nil, fmt.Errorf("find result of %s in %s: %w", prefix, db.path(), err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("no result for commit %s in %s: %w", prefix, db.dir, ErrNotFound)
	}
	return recs[0], nil
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
