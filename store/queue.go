package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/messages"
)

// marshal is deterministic so that saving the same record twice writes the
// same bytes.
var marshal = proto.MarshalOptions{Deterministic: true}

// SaveJobs upserts job records (by job id) and cursors (by repo and branch)
// in one transaction: either all of them are saved or none is, so a cursor
// never lands without the jobs created from it. Each record is stored as its
// protobuf bytes plus the columns queries need.
//
// A job that would take the (repo, commit, build) of another job id fails the
// whole call with ErrDuplicateBuild.
func (db *DB) SaveJobs(jobs []*messages.JobRecord, cursors []*messages.Cursor) error {
	return db.SaveQueue(jobs, cursors, nil)
}

// SaveQueue makes one group of dispatcher queue changes durable in one
// transaction: job records (upserted by id), cursors (by repo and branch)
// and runner incarnations (an incarnation never goes backwards). Either all
// of it is saved or none. Later entries win over earlier ones for the same
// job or cursor, so a caller may pass a job's successive states in order;
// the dispatcher coalesces them first. The statements are prepared once per
// connection.
//
// A job that would take the (repo, commit, build) of another job id fails the
// whole call with ErrDuplicateBuild.
func (db *DB) SaveQueue(jobs []*messages.JobRecord, cursors []*messages.Cursor, incarnations []*messages.RunnerIncarnation) (err error) {
	if err := db.writable("save the queue"); err != nil {
		return err
	}
	for _, rec := range jobs {
		if err := validJobRecord(rec); err != nil {
			return err
		}
	}
	for _, c := range cursors {
		if c == nil || c.GetRepo() == "" || c.GetBranch() == "" {
			return fmt.Errorf("save cursor %v: a cursor needs a repo and a branch: this is a bug in the caller", c)
		}
	}
	for _, r := range incarnations {
		if r == nil || r.GetRunnerId() == "" {
			return fmt.Errorf("save runner incarnation %v: empty runner id: this is a bug in the caller", r)
		}
	}
	if len(jobs) == 0 && len(cursors) == 0 && len(incarnations) == 0 {
		return nil
	}

	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save the queue in %s: begin: %w", db.path(), err)
	}
	defer endTx(tx, &err)

	if len(jobs) > 0 {
		upsert := tx.StmtContext(ctx, db.queue.upsertJob)
		var maxID int64
		for _, rec := range jobs {
			if err := saveJob(ctx, tx, upsert, rec); err != nil {
				return err
			}
			maxID = max(maxID, rec.GetJob().GetId())
		}
		if _, err := tx.StmtContext(ctx, db.queue.maxID).ExecContext(ctx, maxID); err != nil {
			return fmt.Errorf("save jobs in %s: record max job id: %w", db.path(), err)
		}
	}
	if len(cursors) > 0 {
		upsert := tx.StmtContext(ctx, db.queue.upsertCursor)
		for _, c := range cursors {
			blob, err := marshal.Marshal(c)
			if err != nil {
				return fmt.Errorf("save cursor %s %s: encode: %w", c.GetRepo(), c.GetBranch(), err)
			}
			if _, err := upsert.ExecContext(ctx, c.GetRepo(), c.GetBranch(), c.GetCommit(), blob); err != nil {
				return fmt.Errorf("save cursor %s %s in %s: %w", c.GetRepo(), c.GetBranch(), db.path(), err)
			}
		}
	}
	if len(incarnations) > 0 {
		upsert := tx.StmtContext(ctx, db.queue.upsertIncarnation)
		for _, r := range incarnations {
			if _, err := upsert.ExecContext(ctx, r.GetRunnerId(), r.GetIncarnation()); err != nil {
				return fmt.Errorf("save incarnation of runner %s in %s: %w", r.GetRunnerId(), db.path(), err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save the queue in %s: commit: %w", db.path(), err)
	}
	return nil
}

// queueStmts are the dispatcher queue's writes, prepared once (database/sql
// then prepares each on a connection the first time it is used there and
// keeps it), so that a transaction does not parse its SQL again.
type queueStmts struct {
	upsertJob, maxID, upsertCursor, upsertIncarnation *sql.Stmt
}

func prepareQueue(ctx context.Context, sqlDB *sql.DB) (*queueStmts, error) {
	var q queueStmts
	for _, s := range []struct {
		to  **sql.Stmt
		sql string
	}{
		{&q.upsertJob, `
			INSERT INTO jobs (id, repo, commit_hash, build, job_index, build_id, state, forwarded, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				repo = excluded.repo, commit_hash = excluded.commit_hash, build = excluded.build,
				job_index = excluded.job_index, build_id = excluded.build_id,
				state = excluded.state, forwarded = excluded.forwarded, record = excluded.record`},
		{&q.maxID, `UPDATE job_ids SET max_id = MAX(max_id, ?) WHERE singleton = 1`},
		{&q.upsertCursor, `
			INSERT INTO cursors (repo, branch, commit_hash, record) VALUES (?, ?, ?, ?)
			ON CONFLICT (repo, branch) DO UPDATE SET commit_hash = excluded.commit_hash, record = excluded.record`},
		{&q.upsertIncarnation, `
			INSERT INTO runner_incarnations (runner_id, incarnation) VALUES (?, ?)
			ON CONFLICT (runner_id) DO UPDATE SET incarnation = MAX(incarnation, excluded.incarnation)`},
	} {
		stmt, err := sqlDB.PrepareContext(ctx, s.sql)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare %q: %w", strings.TrimSpace(s.sql)[:24], err), q.close())
		}
		*s.to = stmt
	}
	return &q, nil
}

func (q *queueStmts) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{q.upsertJob, q.maxID, q.upsertCursor, q.upsertIncarnation} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

func validJobRecord(rec *messages.JobRecord) error {
	j := rec.GetJob()
	switch {
	case rec == nil || j == nil:
		return errors.New("save job: record without a job: this is a bug in the caller")
	case j.GetId() <= 0:
		return fmt.Errorf("save job %d: job ids start at 1: this is a bug in the caller", j.GetId())
	case j.GetRepo() == "" || j.GetCommit() == "":
		return fmt.Errorf("save job %d: a job needs a repo and a commit: this is a bug in the caller", j.GetId())
	}
	return nil
}

// saveJob upserts rec with the prepared upsert. The table's UNIQUE (repo,
// commit_hash, build) refuses a second job id for the same build; only then
// is the other job looked up, to say which it is.
func saveJob(ctx context.Context, tx *sql.Tx, upsert *sql.Stmt, rec *messages.JobRecord) error {
	j := rec.GetJob()
	blob, err := marshal.Marshal(rec)
	if err != nil {
		return fmt.Errorf("save job %d: encode: %w", j.GetId(), err)
	}
	_, err = upsert.ExecContext(ctx, j.GetId(), j.GetRepo(), j.GetCommit(), j.GetBuild(), j.GetIndex(), j.BuildID(), rec.GetState().Name(), rec.GetForwarded(), blob)
	if err == nil {
		return nil
	}
	var other int64
	switch qerr := tx.QueryRowContext(ctx,
		`SELECT id FROM jobs WHERE repo = ? AND commit_hash = ? AND build = ? AND job_index = ? AND id <> ?`,
		j.GetRepo(), j.GetCommit(), j.GetBuild(), j.GetIndex(), j.GetId()).Scan(&other); {
	case qerr == nil:
		return fmt.Errorf("save job %d: job %d already is job %d of build %d of %s in %s: %w",
			j.GetId(), other, j.GetIndex(), j.GetBuild(), j.GetCommit(), j.GetRepo(), ErrDuplicateBuild)
	case !errors.Is(qerr, sql.ErrNoRows):
		return fmt.Errorf("save job %d: %w", j.GetId(), errors.Join(err, qerr))
	}
	return fmt.Errorf("save job %d: %w", j.GetId(), err)
}

// LoadQueue returns what a restarted dispatcher needs, read from one
// consistent snapshot: every job of every build that has a job not done or
// done but not yet forwarded to the reporter (the others' outcomes decide
// what its waiting jobs do), in id order; all cursors sorted by repo then
// branch; and the largest job id ever saved (0 if none), so new ids never
// reuse an old one.
func (db *DB) LoadQueue() (jobs []*messages.JobRecord, cursors []*messages.Cursor, maxID int64, err error) {
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, 0, fmt.Errorf("load queue from %s: begin: %w", db.path(), err)
	}
	defer endTx(tx, &err)

	jobs, err = queryRecords(ctx, tx, func() *messages.JobRecord { return &messages.JobRecord{} },
		`SELECT record FROM jobs WHERE build_id IN
			(SELECT build_id FROM jobs WHERE state <> 'done' OR forwarded = 0) ORDER BY id`)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("load queue from %s: jobs: %w", db.path(), err)
	}
	cursors, err = queryRecords(ctx, tx, func() *messages.Cursor { return &messages.Cursor{} },
		`SELECT record FROM cursors ORDER BY repo, branch`)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("load queue from %s: cursors: %w", db.path(), err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT max_id FROM job_ids WHERE singleton = 1`).Scan(&maxID); err != nil {
		return nil, nil, 0, fmt.Errorf("load queue from %s: max job id: %w", db.path(), err)
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, 0, fmt.Errorf("load queue from %s: %w", db.path(), err)
	}
	return jobs, cursors, maxID, nil
}

// rowsQueryer is a *sql.DB or *sql.Tx.
type rowsQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryRecords runs a query whose only column is protobuf bytes and decodes
// each row into a new message from newMsg.
func queryRecords[M proto.Message](ctx context.Context, q rowsQueryer, newMsg func() M, query string, args ...any) (out []M, err error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := rows.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return nil, err
		}
		m := newMsg()
		if err := proto.Unmarshal(blob, m); err != nil {
			return nil, fmt.Errorf("decode stored record: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// LatestBuild returns the highest build number recorded for (repo, commit)
// and that build's job id; 0, 0 when the commit has no job yet.
func (db *DB) LatestBuild(repo, commit string) (build int32, id int64, err error) {
	err = db.sql.QueryRowContext(context.Background(),
		`SELECT build, id FROM jobs WHERE repo = ? AND commit_hash = ? ORDER BY build DESC LIMIT 1`,
		repo, commit).Scan(&build, &id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, 0, nil
	case err != nil:
		return 0, 0, fmt.Errorf("latest build of %s in %s: %w", commit, repo, err)
	}
	return build, id, nil
}

// Job returns the record of job id, or ErrNotFound.
func (db *DB) Job(id int64) (*messages.JobRecord, error) {
	return db.oneJob(fmt.Sprintf("job %d", id), `SELECT record FROM jobs WHERE id = ?`, id)
}

// JobByCommit returns the record of one build of a commit, or ErrNotFound.
func (db *DB) JobByCommit(repo, commit string, build int32) (*messages.JobRecord, error) {
	return db.oneJob(fmt.Sprintf("build %d of %s in %s", build, commit, repo),
		`SELECT record FROM jobs WHERE repo = ? AND commit_hash = ? AND build = ?`, repo, commit, build)
}

func (db *DB) oneJob(what, query string, args ...any) (*messages.JobRecord, error) {
	recs, err := queryRecords(context.Background(), db.sql, func() *messages.JobRecord { return &messages.JobRecord{} }, query, args...)
	if err != nil {
		return nil, fmt.Errorf("load %s from %s: %w", what, db.path(), err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return recs[0], nil
}

// LoadIncarnations returns the newest accepted incarnation of every runner, by id.
func (db *DB) LoadIncarnations() (out []*messages.RunnerIncarnation, err error) {
	rows, err := db.sql.QueryContext(context.Background(), `SELECT runner_id, incarnation FROM runner_incarnations ORDER BY runner_id`)
	if err != nil {
		return nil, fmt.Errorf("load runner incarnations from %s: %w", db.path(), err)
	}
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	for rows.Next() {
		r := &messages.RunnerIncarnation{}
		if err := rows.Scan(&r.RunnerId, &r.Incarnation); err != nil {
			return nil, fmt.Errorf("load runner incarnations from %s: %w", db.path(), err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// LatestJobs maps each of commits that was ever built in repo to the record
// of its newest build's first job, in one query: what the dispatcher needs to add a
// branch to a build no longer in its memory (dispatcher.Observed's
// ArchivedJobs).
func (db *DB) LatestJobs(repo string, commits []string) (map[string]*messages.JobRecord, error) {
	out := map[string]*messages.JobRecord{}
	if len(commits) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(commits)+1)
	args = append(args, repo)
	for _, c := range commits {
		args = append(args, c)
	}
	q := `SELECT record FROM jobs WHERE repo = ? AND commit_hash IN (?` + strings.Repeat(",?", len(commits)-1) + `) ORDER BY build, job_index DESC`
	recs, err := queryRecords(context.Background(), db.sql, func() *messages.JobRecord { return &messages.JobRecord{} }, q, args...)
	if err != nil {
		return nil, fmt.Errorf("latest builds of %d commits in %s: %w", len(commits), repo, err)
	}
	for _, rec := range recs {
		out[rec.GetJob().GetCommit()] = rec // the newest build's first job wins
	}
	return out, nil
}

// NewestBuild returns the jobs of the newest build of (repo, commit) in
// index order, nil when the commit was never built: what a rebuild copies.
func (db *DB) NewestBuild(repo, commit string) ([]*messages.Job, error) {
	recs, err := queryRecords(context.Background(), db.sql, func() *messages.JobRecord { return &messages.JobRecord{} },
		`SELECT record FROM jobs WHERE repo = ? AND commit_hash = ? AND build =
			(SELECT MAX(build) FROM jobs WHERE repo = ? AND commit_hash = ?) ORDER BY job_index`,
		repo, commit, repo, commit)
	if err != nil {
		return nil, fmt.Errorf("newest build of %s in %s from %s: %w", commit, repo, db.path(), err)
	}
	jobs := make([]*messages.Job, len(recs))
	for i, r := range recs {
		jobs[i] = r.Job
	}
	return jobs, nil
}

// JobsAfter returns up to limit job records with ids above after, oldest
// first: every job the dispatcher ever recorded, page by page (`volt
// migrate --to-etcd` copies them).
func (db *DB) JobsAfter(after int64, limit int) ([]*messages.JobRecord, error) {
	recs, err := queryRecords(context.Background(), db.sql, func() *messages.JobRecord { return &messages.JobRecord{} },
		`SELECT record FROM jobs WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read jobs after %d from %s: %w", after, db.path(), err)
	}
	return recs, nil
}
