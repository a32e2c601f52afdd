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

// Row is a complete build as one aggregate Result (see Build.Result) with
// its row id, which orders builds that finished in the same millisecond (in
// the order they completed) and serves as a pagination cursor. For a build
// of one job the Result is that job's result, as before pipelines.
type Row struct {
	ID     int64
	Result *messages.Result
}

// PageCursor is where a page of results ends: the next page holds the
// results strictly older than it, in the order (finished, id) descending.
type PageCursor struct {
	FinishedMS int64
	ID         int64
}

// Query selects a page of complete builds, newest first. Empty fields match
// everything. Every filter but Branch is answered from an index; Branch is
// checked on the rows the index walk yields, so a rare branch costs a longer
// walk.
type Query struct {
	// RepoName matches the short name Volt shows (the observer's --name, or
	// the last path element without .git).
	RepoName string
	// Repo matches the repository URL or path exactly.
	Repo string
	// Branch matches results whose commit was seen on this branch.
	Branch string
	// Status is a status name: passed, failed, timed_out, errored, cancelled,
	// skipped (a build's aggregate status).
	Status string
	// Limit caps the page; it must be 1 or more.
	Limit int
	// After, when set, starts the page after this cursor (keyset pagination).
	After *PageCursor
}

// ListResults returns one page of the complete builds matching q as
// aggregate Results (see Row), newest first, and the cursor of the next
// page (nil when this page is the last). A build shows once every job of
// it has a result; the dispatcher has the builds still running.
func (db *DB) ListResults(q Query) ([]Row, *PageCursor, error) {
	if q.Limit < 1 {
		return nil, nil, errors.New("list results: limit must be 1 or more: this is a bug in the caller")
	}
	var where []string
	var args []any
	if q.Repo != "" {
		where = append(where, `repo = ?`)
		args = append(args, q.Repo)
	}
	if q.RepoName != "" {
		where = append(where, `repo_name = ?`)
		args = append(args, q.RepoName)
	}
	if q.Branch != "" {
		where = append(where, `instr(',' || branches || ',', ?) > 0`)
		args = append(args, ","+q.Branch+",")
	}
	if q.Status != "" {
		st, err := messages.ParseStatus(q.Status)
		if err != nil {
			return nil, nil, fmt.Errorf("list results: %w", err)
		}
		where = append(where, `status = ?`)
		args = append(args, st.Name())
	}
	if q.After != nil {
		where = append(where, `(finished_unix_ms, id) < (?, ?)`)
		args = append(args, q.After.FinishedMS, q.After.ID)
	}
	query := `SELECT id, record FROM builds`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY finished_unix_ms DESC, id DESC LIMIT ?`
	args = append(args, q.Limit+1)
	rows, err := db.rows(context.Background(), query, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list results from %s: %w", db.path(), err)
	}
	var next *PageCursor
	if len(rows) > q.Limit {
		rows = rows[:q.Limit]
		last := rows[len(rows)-1]
		next = &PageCursor{FinishedMS: last.Result.GetFinishedUnixMs(), ID: last.ID}
	}
	return rows, next, nil
}

// ResultsAfter returns up to limit builds completed after row id, oldest
// first, each once, as aggregate Results: the web server's feed of new
// results for live pages and metrics.
func (db *DB) ResultsAfter(id int64, limit int) ([]Row, error) {
	rows, err := db.rows(context.Background(), `SELECT id, record FROM builds WHERE id > ? ORDER BY id LIMIT ?`, id, limit)
	if err != nil {
		return nil, fmt.Errorf("read new results from %s: %w", db.path(), err)
	}
	return rows, nil
}

// LastResultID is the row id of the newest complete build, 0 when none.
func (db *DB) LastResultID() (int64, error) {
	var id sql.NullInt64
	if err := db.sql.QueryRowContext(context.Background(), `SELECT MAX(id) FROM builds`).Scan(&id); err != nil {
		return 0, fmt.Errorf("read the newest result id from %s: %w", db.path(), err)
	}
	return id.Int64, nil
}

// ResultByJob returns the result recorded for job id (that job's own
// result, not its build's aggregate: for the one job of a single-list build
// they are the same), or ErrNotFound.
func (db *DB) ResultByJob(jobID int64) (*messages.Result, error) {
	rows, err := db.rows(context.Background(), `SELECT id, record FROM results WHERE job_id = ? ORDER BY id DESC LIMIT 1`, jobID)
	if err != nil {
		return nil, fmt.Errorf("read the result of job %d from %s: %w", jobID, db.path(), err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("result of job %d: %w", jobID, ErrNotFound)
	}
	return rows[0].Result, nil
}

// RepoRef names a repository that has complete builds.
type RepoRef struct {
	// Repo is the URL or path runners fetch from.
	Repo string
	// Name is the short name Volt shows.
	Name string
}

// Repos lists the repositories that have complete builds, by URL. It skips through
// the (repo, ...) index, so it costs one index probe per repository.
func (db *DB) Repos() ([]RepoRef, error) {
	ctx := context.Background()
	var out []RepoRef
	var last string
	for first := true; ; first = false {
		var repo sql.NullString
		q := `SELECT MIN(repo) FROM builds WHERE repo > ?`
		args := []any{last}
		if first {
			q, args = `SELECT MIN(repo) FROM builds`, nil
		}
		if err := db.sql.QueryRowContext(ctx, q, args...).Scan(&repo); err != nil {
			return nil, fmt.Errorf("list repositories in %s: %w", db.path(), err)
		}
		if !repo.Valid {
			return out, nil
		}
		var name string
		if err := db.sql.QueryRowContext(ctx,
			`SELECT repo_name FROM builds WHERE repo = ? ORDER BY finished_unix_ms DESC, id DESC LIMIT 1`, repo.String).Scan(&name); err != nil {
			return nil, fmt.Errorf("list repositories in %s: %w", db.path(), err)
		}
		out = append(out, RepoRef{Repo: repo.String, Name: name})
		last = repo.String
	}
}

// Branch is one branch of a repository with its newest builds.
type Branch struct {
	Name string
	// Results are the newest builds of commits seen on this branch, newest
	// first, as aggregate Results (see Row).
	Results []*messages.Result
}

// Branches returns the branches of repo that have complete builds, the
// most recently built first, at most maxBranches of them, each with its
// newest perBranch builds. It skips through the (repo, branches, finished) index: one probe
// per distinct branch list plus one short index walk for each.
func (db *DB) Branches(repo string, maxBranches, perBranch int) ([]Branch, error) {
	ctx := context.Background()
	var lists []string
	var last string
	for first := true; ; first = false {
		var b sql.NullString
		q := `SELECT MIN(branches) FROM builds WHERE repo = ? AND branches > ?`
		args := []any{repo, last}
		if first {
			q, args = `SELECT MIN(branches) FROM builds WHERE repo = ?`, []any{repo}
		}
		if err := db.sql.QueryRowContext(ctx, q, args...).Scan(&b); err != nil {
			return nil, fmt.Errorf("list branches of %s in %s: %w", repo, db.path(), err)
		}
		if !b.Valid {
			break
		}
		lists = append(lists, b.String)
		last = b.String
	}
	byName := map[string][]Row{}
	for _, l := range lists {
		rows, err := db.rows(ctx, `SELECT id, record FROM builds WHERE repo = ? AND branches = ?
			ORDER BY finished_unix_ms DESC, id DESC LIMIT ?`, repo, l, perBranch)
		if err != nil {
			return nil, fmt.Errorf("list results of %s in %s: %w", repo, db.path(), err)
		}
		for _, name := range strings.Split(l, ",") {
			if name == "" {
				continue
			}
			byName[name] = append(byName[name], rows...)
		}
	}
	newer := func(a, b Row) int {
		if c := -cmpInt(a.Result.GetFinishedUnixMs(), b.Result.GetFinishedUnixMs()); c != 0 {
			return c
		}
		return -cmpInt(a.ID, b.ID)
	}
	out := make([]Branch, 0, len(byName))
	heads := map[string]Row{}
	for name, rows := range byName {
		slices.SortFunc(rows, newer)
		if len(rows) > perBranch {
			rows = rows[:perBranch]
		}
		heads[name] = rows[0]
		b := Branch{Name: name}
		for _, r := range rows {
			b.Results = append(b.Results, r.Result)
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Branch) int {
		if c := newer(heads[a.Name], heads[b.Name]); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(out) > maxBranches {
		out = out[:maxBranches]
	}
	return out, nil
}

// LatestOnBranch returns the newest complete build (its aggregate Result)
// of the repository named name on branch, or ErrNotFound: what a status
// badge shows.
func (db *DB) LatestOnBranch(name, branch string) (*messages.Result, error) {
	rows, _, err := db.ListResults(Query{RepoName: name, Branch: branch, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no result on branch %s of %s: %w", branch, name, ErrNotFound)
	}
	return rows[0].Result, nil
}

// StatusCounts counts the complete builds by their aggregate status name.
func (db *DB) StatusCounts() (map[string]int64, error) {
	ctx := context.Background()
	out := map[string]int64{}
	for _, st := range []messages.Status{messages.Status_STATUS_PASSED, messages.Status_STATUS_FAILED,
		messages.Status_STATUS_TIMED_OUT, messages.Status_STATUS_ERRORED, messages.Status_STATUS_CANCELLED,
		messages.Status_STATUS_SKIPPED} {
		var n int64
		if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM builds WHERE status = ?`, st.Name()).Scan(&n); err != nil {
			return nil, fmt.Errorf("count results in %s: %w", db.path(), err)
		}
		out[st.Name()] = n
	}
	return out, nil
}

// rows runs a query selecting (id, record) from builds or results.
func (db *DB) rows(ctx context.Context, query string, args ...any) (out []Row, err error) {
	rs, err := db.sql.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, rs.Close()) }()
	for rs.Next() {
		var id int64
		var blob []byte
		if err := rs.Scan(&id, &blob); err != nil {
			return nil, err
		}
		r := &messages.Result{}
		if err := proto.Unmarshal(blob, r); err != nil {
			return nil, fmt.Errorf("decode result %d: %w", id, err)
		}
		out = append(out, Row{ID: id, Result: r})
	}
	return out, rs.Err()
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ReadLogFrom returns up to max contiguous bytes of one attempt's log
// starting at byte from (nothing when from is at or past the held end), for
// following a log while it grows.
func (db *DB) ReadLogFrom(job *messages.Job, attempt int32, from, max int64) (out []byte, err error) {
	k := keyOf(job, attempt)
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: begin: %w", k, db.path(), err)
	}
	defer endTx(tx, &err)
	have, err := logHave(ctx, tx, k)
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", k, db.path(), err)
	}
	end := min(have, from+max)
	if from < 0 || from >= end {
		return nil, nil
	}
	// Start at the last chunk that begins at or before from.
	rs, err := tx.QueryContext(ctx, `SELECT offset, data FROM log_chunks WHERE `+keyWhere+`
		AND offset >= COALESCE((SELECT MAX(offset) FROM log_chunks WHERE `+keyWhere+` AND offset <= ?), 0)
		AND offset < ? ORDER BY offset`, append(k.args(), k.args(from, end)...)...)
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", k, db.path(), err)
	}
	defer func() { err = errors.Join(err, rs.Close()) }()
	pos := from
	for rs.Next() && pos < end {
		var offset int64
		var data []byte
		if err := rs.Scan(&offset, &data); err != nil {
			return nil, fmt.Errorf("read %s from %s: %w", k, db.path(), err)
		}
		if offset+int64(len(data)) <= pos {
			continue
		}
		if offset > pos {
			return nil, fmt.Errorf("read %s from %s: gap at byte %d below the held end %d: the store is inconsistent", k, db.path(), pos, have)
		}
		part := data[pos-offset:]
		if over := pos + int64(len(part)) - end; over > 0 {
			part = part[:int64(len(part))-over]
		}
		out = append(out, part...)
		pos += int64(len(part))
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", k, db.path(), err)
	}
	return out, nil
}
