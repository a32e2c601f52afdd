package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"github.com/voltci/volt/messages"
)

// logKey names one attempt of one job of one build: the columns every log
// query matches.
type logKey struct {
	repo    string
	commit  string
	build   int32
	index   int32
	attempt int32
}

func keyOf(job *messages.Job, attempt int32) logKey {
	return logKey{repo: job.GetRepo(), commit: job.GetCommit(), build: job.GetBuild(), index: job.GetIndex(), attempt: attempt}
}

func (k logKey) String() string {
	return fmt.Sprintf("log of %s build %d job %d attempt %d in %s", k.commit, k.build, k.index, k.attempt, k.repo)
}

const keyWhere = `repo = ? AND commit_hash = ? AND build = ? AND job_index = ? AND attempt = ?`

func (k logKey) args(extra ...any) []any {
	return append([]any{k.repo, k.commit, k.build, k.index, k.attempt}, extra...)
}

// AppendLog stores data at offset in the log of one attempt of a job (of
// the job job names by its index in its build, each job having its own) and
// returns how many contiguous bytes from offset 0 are now held. It is
// idempotent: bytes already held are ignored (a chunk overlapping the held
// end keeps only its new tail), and a chunk beyond the contiguous end is kept
// until the gap before it is filled, so chunks may arrive duplicated and in
// any order.
//
// The contiguous length is kept in its own row and advanced in the same
// transaction, so each call touches only the chunks it makes contiguous.
func (db *DB) AppendLog(job *messages.Job, attempt int32, offset int64, data []byte) (have int64, err error) {
	if err := db.writable("append log"); err != nil {
		return 0, err
	}
	k := keyOf(job, attempt)
	if job == nil || k.repo == "" || k.commit == "" {
		return 0, errors.New("append log: chunk without a job: this is a bug in the caller")
	}
	if k.index < 0 || k.index >= job.JobsInBuild() {
		return 0, fmt.Errorf("append %s: index outside its build of %d jobs: this is a bug in the sender", k, job.JobsInBuild())
	}
	if offset < 0 {
		return 0, fmt.Errorf("append %s: negative offset %d: this is a bug in the sender", k, offset)
	}
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("append %s in %s: begin: %w", k, db.path(), err)
	}
	defer endTx(tx, &err)

	have, err = logHave(ctx, tx, k)
	if err != nil {
		return 0, fmt.Errorf("append %s in %s: %w", k, db.path(), err)
	}
	end := offset + int64(len(data))
	if len(data) == 0 || end <= have {
		return have, nil // nothing new; the deferred endTx rolls back
	}
	if offset < have {
		// Keep only the part not held yet.
		data = data[have-offset:]
		offset = have
	}
	// A chunk at an offset already stored beyond the held end replaces it only
	// when longer, so a resent chunk changes nothing.
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO log_chunks (repo, commit_hash, build, job_index, attempt, offset, size, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (repo, commit_hash, build, job_index, attempt, offset) DO UPDATE SET size = excluded.size, data = excluded.data
		WHERE excluded.size > log_chunks.size`,
		k.args(offset, len(data), data)...); err != nil {
		return 0, fmt.Errorf("append %s in %s: %w", k, db.path(), err)
	}
	if offset == have {
		if have, err = advance(ctx, tx, k, have); err != nil {
			return 0, fmt.Errorf("append %s in %s: %w", k, db.path(), err)
		}
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO logs (repo, commit_hash, build, job_index, attempt, have) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (repo, commit_hash, build, job_index, attempt) DO UPDATE SET have = excluded.have`,
		k.args(have)...); err != nil {
		return 0, fmt.Errorf("append %s in %s: %w", k, db.path(), err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("append %s in %s: commit: %w", k, db.path(), err)
	}
	return have, nil
}

// advance extends the contiguous end from have over stored chunks. The
// invariant kept between calls is that no chunk starts at or before have and
// ends after it, so only chunks starting in (previous end, new end] need a
// look, each once.
func advance(ctx context.Context, tx *sql.Tx, k logKey, have int64) (int64, error) {
	lo := have
	for {
		var end sql.NullInt64
		if err := tx.QueryRowContext(ctx,
			`SELECT MAX(offset + size) FROM log_chunks WHERE `+keyWhere+` AND offset >= ? AND offset <= ?`,
			k.args(lo, have)...).Scan(&end); err != nil {
			return 0, err
		}
		if !end.Valid || end.Int64 <= have {
			return have, nil
		}
		lo, have = have+1, end.Int64
	}
}

func logHave(ctx context.Context, q queryer, k logKey) (int64, error) {
	var have int64
	err := q.QueryRowContext(ctx, `SELECT have FROM logs WHERE `+keyWhere, k.args()...).Scan(&have)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return have, err
}

// LogHave returns how many contiguous bytes from offset 0 are held for one
// attempt of a job (0 for an attempt never seen).
func (db *DB) LogHave(job *messages.Job, attempt int32) (int64, error) {
	k := keyOf(job, attempt)
	have, err := logHave(context.Background(), db.sql, k)
	if err != nil {
		return 0, fmt.Errorf("read %s from %s: %w", k, db.path(), err)
	}
	return have, nil
}

// ReadLog returns the contiguous bytes held from offset 0 for one attempt of a
// job; empty for an attempt never seen. Use CopyLog for large logs.
func (db *DB) ReadLog(job *messages.Job, attempt int32) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := db.CopyLog(&buf, job, attempt); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CopyLog writes the contiguous bytes held from offset 0 for one attempt of a
// job to w, one stored chunk at a time, from one consistent snapshot, and
// returns the number of bytes written.
func (db *DB) CopyLog(w io.Writer, job *messages.Job, attempt int32) (n int64, err error) {
	k := keyOf(job, attempt)
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("read %s from %s: begin: %w", k, db.path(), err)
	}
	defer endTx(tx, &err)

	have, err := logHave(ctx, tx, k)
	if err != nil {
		return 0, fmt.Errorf("read %s from %s: %w", k, db.path(), err)
	}
	if have == 0 {
		return 0, nil // the deferred endTx ends the snapshot
	}
	rows, err := tx.QueryContext(ctx,
		`SELECT offset, data FROM log_chunks WHERE `+keyWhere+` AND offset < ? ORDER BY offset`, k.args(have)...)
	if err != nil {
		return 0, fmt.Errorf("read %s from %s: %w", k, db.path(), err)
	}
	defer func() {
		if cerr := rows.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("read %s from %s: %w", k, db.path(), cerr))
		}
	}()
	for rows.Next() {
		var offset int64
		var data []byte
		if err := rows.Scan(&offset, &data); err != nil {
			return n, fmt.Errorf("read %s from %s: %w", k, db.path(), err)
		}
		// Chunks stored beyond the held end may overlap; write each byte once.
		if offset+int64(len(data)) <= n {
			continue
		}
		if offset > n {
			return n, fmt.Errorf("read %s from %s: gap at byte %d below the held end %d: the store is inconsistent", k, db.path(), n, have)
		}
		part := data[n-offset:]
		if over := n + int64(len(part)) - have; over > 0 {
			part = part[:int64(len(part))-over]
		}
		m, err := w.Write(part)
		n += int64(m)
		if err != nil {
			return n, fmt.Errorf("read %s: write: %w", k, err)
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read %s from %s: %w", k, db.path(), err)
	}
	if err := tx.Commit(); err != nil {
		return n, fmt.Errorf("read %s from %s: %w", k, db.path(), err)
	}
	return n, nil
}

// DropLog forgets every byte held of one attempt's log (the reporter drops
// a log that a runner other than the one the result names wrote). The
// attempt may be written again afterwards.
func (db *DB) DropLog(job *messages.Job, attempt int32) error {
	if err := db.writable("drop log"); err != nil {
		return err
	}
	k := keyOf(job, attempt)
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("drop %s in %s: begin: %w", k, db.path(), err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, `DELETE FROM log_chunks WHERE `+keyWhere, k.args()...); err != nil {
		return fmt.Errorf("drop %s in %s: %w", k, db.path(), err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM logs WHERE `+keyWhere, k.args()...); err != nil {
		return fmt.Errorf("drop %s in %s: %w", k, db.path(), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("drop %s in %s: commit: %w", k, db.path(), err)
	}
	return nil
}
