package store

// Artifacts: the files jobs upload after their steps (their declared
// artifacts and test reports), kept per job id, attempt and path.
//
// They are kept in SQLite, in chunks, as logs are, rather than as files
// under the data directory: a chunk and the count of bytes it brings are
// one transaction (no half-written file after a kill -9, no rename dance),
// retention drops a build's artifacts in the transaction that drops its
// result, a reader (`volt artifacts --data-dir`, the web server) reads a
// consistent snapshot while the reporter writes, and a backup of volt.db
// holds everything. The cost is a larger database; --max-artifact-size
// bounds what one job adds.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/voltci/volt/messages"
)

// ArtifactFile is one file an attempt of a job uploaded.
type ArtifactFile struct {
	JobID   int64
	Attempt int32
	// Path is relative to the job's workspace, slash-separated.
	Path string
	// Kind is messages.KindArtifact or a test report's format.
	Kind string
	// Size is the bytes held: the whole file once Kept.
	Size int64
	// Kept is set once the size and SHA-256 the runner sent matched.
	Kept   bool
	SHA256 []byte
	// Mode is the permission bits to place it with (0755 or 0644).
	Mode uint32
}

// ArtifactHeld is what the store holds of one file and of its attempt.
type ArtifactHeld struct {
	// File is the file (zero Size and not Kept when none of it is held).
	File ArtifactFile
	// AttemptBytes and AttemptFiles count every file of the attempt.
	AttemptBytes int64
	AttemptFiles int
}

// JobArtifacts is the kept files of one job's attempt, with the job's place
// in its build.
type JobArtifacts struct {
	JobID int64
	// Name is the job's name (messages.Job.DisplayName).
	Name    string
	BuildID int64
	Index   int32
	Attempt int32
	Repo    string
	Commit  string
	Build   int32
	Files   []ArtifactFile
}

const artifactWhere = `job_id = ? AND attempt = ? AND path = ?`

// AppendArtifact stores data at offset in one file an attempt of job
// uploads and returns the contiguous bytes held. Chunks are taken in
// order: a chunk beyond the held end is not stored (the sender resends
// from the end it is told), bytes already held are ignored. A kept file
// takes no more bytes.
func (db *DB) AppendArtifact(job *messages.Job, attempt int32, path, kind string, offset int64, data []byte) (have int64, err error) {
	if err := db.writable("append artifact"); err != nil {
		return 0, err
	}
	if job == nil || job.GetRepo() == "" || job.GetCommit() == "" || path == "" {
		return 0, errors.New("append artifact: chunk without a job or path: this is a bug in the caller")
	}
	what := fmt.Sprintf("artifact %s of job %d attempt %d in %s", path, job.Id, attempt, db.path())
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("append %s: begin: %w", what, err)
	}
	defer endTx(tx, &err)
	var kept bool
	err = tx.QueryRowContext(ctx, `SELECT have, kept FROM artifacts WHERE `+artifactWhere, job.Id, attempt, path).Scan(&have, &kept)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		have = 0
		if _, err := tx.ExecContext(ctx, `INSERT INTO artifacts
			(job_id, attempt, path, kind, repo, commit_hash, build, build_id, job_index, job_name, have, kept) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0)`,
			job.Id, attempt, path, kind, job.Repo, job.Commit, job.Build, job.BuildID(), job.GetIndex(), job.DisplayName()); err != nil {
			return 0, fmt.Errorf("append %s: %w", what, err)
		}
	case err != nil:
		return 0, fmt.Errorf("append %s: %w", what, err)
	}
	end := offset + int64(len(data))
	if kept || offset > have || end <= have {
		return have, tx.Commit()
	}
	data = data[have-offset:]
	if _, err := tx.ExecContext(ctx, `INSERT INTO artifact_chunks (job_id, attempt, path, offset, data) VALUES (?, ?, ?, ?, ?)`,
		job.Id, attempt, path, have, data); err != nil {
		return 0, fmt.Errorf("append %s: %w", what, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE artifacts SET have = ? WHERE `+artifactWhere, end, job.Id, attempt, path); err != nil {
		return 0, fmt.Errorf("append %s: %w", what, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("append %s: commit: %w", what, err)
	}
	return end, nil
}

// HeldArtifact says what is held of one file of an attempt and of the
// whole attempt.
func (db *DB) HeldArtifact(jobID int64, attempt int32, path string) (ArtifactHeld, error) {
	ctx := context.Background()
	h := ArtifactHeld{File: ArtifactFile{JobID: jobID, Attempt: attempt, Path: path}}
	err := db.sql.QueryRowContext(ctx, `SELECT kind, have, kept, sha256 FROM artifacts WHERE `+artifactWhere, jobID, attempt, path).
		Scan(&h.File.Kind, &h.File.Size, &h.File.Kept, &h.File.SHA256)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("read artifact %s of job %d attempt %d from %s: %w", path, jobID, attempt, db.path(), err)
	}
	if err := db.sql.QueryRowContext(ctx, `SELECT COALESCE(SUM(have), 0), COUNT(*) FROM artifacts WHERE job_id = ? AND attempt = ?`, jobID, attempt).
		Scan(&h.AttemptBytes, &h.AttemptFiles); err != nil {
		return h, fmt.Errorf("read the artifacts of job %d attempt %d from %s: %w", jobID, attempt, db.path(), err)
	}
	return h, nil
}

// CloseArtifact keeps one file of an attempt, with permission bits mode
// (see messages.ArtifactMode), when the store holds exactly size bytes of
// it whose SHA-256 is sum, and reports whether it is kept
// (a kept file stays kept). Held bytes whose size or checksum do not
// match are dropped, so that the sender can upload the file again from
// its start; fewer bytes than size are left as they are.
func (db *DB) CloseArtifact(jobID int64, attempt int32, path string, size int64, sum []byte, mode uint32) (kept bool, err error) {
	if err := db.writable("close artifact"); err != nil {
		return false, err
	}
	what := fmt.Sprintf("artifact %s of job %d attempt %d in %s", path, jobID, attempt, db.path())
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("close %s: begin: %w", what, err)
	}
	defer endTx(tx, &err)
	var have int64
	var stored []byte
	err = tx.QueryRowContext(ctx, `SELECT have, kept, sha256 FROM artifacts WHERE `+artifactWhere, jobID, attempt, path).Scan(&have, &kept, &stored)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("close %s: %w", what, err)
	case kept:
		return have == size && bytes.Equal(stored, sum), nil
	case have < size:
		return false, nil
	}
	h := sha256.New()
	if _, err := copyChunks(ctx, tx, h, jobID, attempt, path, 0, have); err != nil {
		return false, fmt.Errorf("close %s: %w", what, err)
	}
	if have == size && bytes.Equal(h.Sum(nil), sum) {
		if _, err := tx.ExecContext(ctx, `UPDATE artifacts SET kept = 1, sha256 = ?, mode = ? WHERE `+artifactWhere, sum, messages.ArtifactMode(mode), jobID, attempt, path); err != nil {
			return false, fmt.Errorf("close %s: %w", what, err)
		}
		kept = true
	} else {
		if _, err := tx.ExecContext(ctx, `DELETE FROM artifact_chunks WHERE `+artifactWhere, jobID, attempt, path); err != nil {
			return false, fmt.Errorf("close %s: %w", what, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE artifacts SET have = 0 WHERE `+artifactWhere, jobID, attempt, path); err != nil {
			return false, fmt.Errorf("close %s: %w", what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("close %s: commit: %w", what, err)
	}
	return kept, nil
}

// Artifacts lists the kept files of one attempt of a job, by path.
func (db *DB) Artifacts(jobID int64, attempt int32) (files []ArtifactFile, err error) {
	rows, err := db.sql.QueryContext(context.Background(),
		`SELECT path, kind, have, sha256, mode FROM artifacts WHERE job_id = ? AND attempt = ? AND kept = 1 ORDER BY path`, jobID, attempt)
	if err != nil {
		return nil, fmt.Errorf("list the artifacts of job %d attempt %d in %s: %w", jobID, attempt, db.path(), err)
	}
	defer func() { err = errors.Join(err, rows.Close()) }()
	for rows.Next() {
		f := ArtifactFile{JobID: jobID, Attempt: attempt, Kept: true}
		if err := rows.Scan(&f.Path, &f.Kind, &f.Size, &f.SHA256, &f.Mode); err != nil {
			return nil, fmt.Errorf("list the artifacts of job %d attempt %d in %s: %w", jobID, attempt, db.path(), err)
		}
		files = append(files, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the artifacts of job %d attempt %d in %s: %w", jobID, attempt, db.path(), err)
	}
	return files, nil
}

// ReadArtifact returns up to n bytes of a kept file from offset (fewer at
// its end); ErrNotFound when the attempt has no such kept file.
func (db *DB) ReadArtifact(jobID int64, attempt int32, path string, offset int64, n int) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := db.copyArtifact(&buf, jobID, attempt, path, offset, int64(n)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CopyArtifact writes a kept file to w and returns its size; ErrNotFound
// when the attempt has no such kept file.
func (db *DB) CopyArtifact(w io.Writer, jobID int64, attempt int32, path string) (int64, error) {
	return db.copyArtifact(w, jobID, attempt, path, 0, -1)
}

// copyArtifact writes up to n bytes (n < 0: all) of a kept file from
// offset to w, from one snapshot.
func (db *DB) copyArtifact(w io.Writer, jobID int64, attempt int32, path string, offset, n int64) (written int64, err error) {
	what := fmt.Sprintf("artifact %s of job %d attempt %d", path, jobID, attempt)
	ctx := context.Background()
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("read %s from %s: begin: %w", what, db.path(), err)
	}
	defer endTx(tx, &err)
	var size int64
	err = tx.QueryRowContext(ctx, `SELECT have FROM artifacts WHERE `+artifactWhere+` AND kept = 1`, jobID, attempt, path).Scan(&size)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, fmt.Errorf("%s: %w", what, ErrNotFound)
	case err != nil:
		return 0, fmt.Errorf("read %s from %s: %w", what, db.path(), err)
	}
	end := size
	if n >= 0 {
		end = min(size, max(offset, 0)+n)
	}
	if offset < 0 || offset > size {
		return 0, fmt.Errorf("read %s from %s: offset %d outside its %d bytes", what, db.path(), offset, size)
	}
	written, err = copyChunks(ctx, tx, w, jobID, attempt, path, offset, end)
	if err != nil {
		return written, fmt.Errorf("read %s from %s: %w", what, db.path(), err)
	}
	return written, tx.Commit()
}

// copyChunks writes bytes [from, to) of a file's chunks to w.
func copyChunks(ctx context.Context, q interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}, w io.Writer, jobID int64, attempt int32, path string, from, to int64) (n int64, err error) {
	if from >= to {
		return 0, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT offset, data FROM artifact_chunks WHERE `+artifactWhere+`
		AND offset < ? AND offset + length(data) > ? ORDER BY offset`, jobID, attempt, path, to, from)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, rows.Close()) }()
	at := from
	for rows.Next() {
		var off int64
		var data []byte
		if err := rows.Scan(&off, &data); err != nil {
			return n, err
		}
		if off > at {
			return n, fmt.Errorf("gap at byte %d: the store is inconsistent", at)
		}
		part := data[at-off:]
		part = part[:min(int64(len(part)), to-at)]
		m, err := w.Write(part)
		n += int64(m)
		at += int64(m)
		if err != nil {
			return n, fmt.Errorf("write: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	if at != to {
		return n, fmt.Errorf("only %d of %d bytes held: the store is inconsistent", at-from, to-from)
	}
	return n, nil
}

// JobArtifacts returns the kept files of job jobID's final attempt: the
// attempt of its recorded result, or, before the result is recorded, its
// newest attempt with kept files. ErrNotFound when it has none.
func (db *DB) JobArtifacts(jobID int64) (*JobArtifacts, error) {
	ctx := context.Background()
	j := &JobArtifacts{JobID: jobID}
	attempt := int32(0)
	if r, err := db.ResultByJob(jobID); err == nil && r.GetJob().GetId() == jobID {
		attempt = r.Attempt
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	q := `SELECT attempt, build_id, job_index, job_name, repo, commit_hash, build FROM artifacts WHERE job_id = ? AND kept = 1 ORDER BY attempt DESC LIMIT 1`
	args := []any{jobID}
	if attempt > 0 {
		q = `SELECT attempt, build_id, job_index, job_name, repo, commit_hash, build FROM artifacts WHERE job_id = ? AND attempt = ? AND kept = 1 LIMIT 1`
		args = append(args, attempt)
	}
	err := db.sql.QueryRowContext(ctx, q, args...).Scan(&j.Attempt, &j.BuildID, &j.Index, &j.Name, &j.Repo, &j.Commit, &j.Build)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("artifacts of job %d: %w", jobID, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("read the artifacts of job %d from %s: %w", jobID, db.path(), err)
	}
	if j.Files, err = db.Artifacts(jobID, j.Attempt); err != nil {
		return nil, err
	}
	return j, nil
}

// CommitArtifacts returns the artifacts of every job of the newest build of
// the commit prefix names (at least 4 hex digits) that has any, by job
// index; ErrAmbiguous when the prefix names several commits, ErrNotFound
// when none has artifacts.
func (db *DB) CommitArtifacts(prefix string) ([]*JobArtifacts, error) {
	lo, hi, err := prefixRange(prefix, 4)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	rows, err := db.sql.QueryContext(ctx, `SELECT DISTINCT commit_hash, build_id, job_id FROM artifacts
		WHERE commit_hash >= ? AND commit_hash < ? AND kept = 1 ORDER BY build_id DESC, job_id`, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("find the artifacts of %s in %s: %w", prefix, db.path(), err)
	}
	type row struct {
		commit       string
		build, jobID int64
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.commit, &r.build, &r.jobID); err != nil {
			return nil, errors.Join(fmt.Errorf("find the artifacts of %s in %s: %w", prefix, db.path(), err), rows.Close())
		}
		all = append(all, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("find the artifacts of %s in %s: %w", prefix, db.path(), err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("artifacts of %s: %w", prefix, ErrNotFound)
	}
	var out []*JobArtifacts
	for _, r := range all {
		if r.commit != all[0].commit {
			return nil, fmt.Errorf("commit prefix %s: %w", prefix, ErrAmbiguous)
		}
		if r.build != all[0].build {
			continue
		}
		j, err := db.JobArtifacts(r.jobID)
		switch {
		case errors.Is(err, ErrNotFound):
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b *JobArtifacts) int { return int(a.Index - b.Index) })
	return out, nil
}

// pruneArtifacts deletes every artifact of one build (Prune calls it in the
// transaction that deletes the build's result).
func pruneArtifacts(exec func(string, ...any) (int64, error), repo, commit string, build int32) error {
	if _, err := exec(`DELETE FROM artifact_chunks WHERE job_id IN
		(SELECT job_id FROM artifacts WHERE repo = ? AND commit_hash = ? AND build = ?)`, repo, commit, build); err != nil {
		return err
	}
	_, err := exec(`DELETE FROM artifacts WHERE repo = ? AND commit_hash = ? AND build = ?`, repo, commit, build)
	return err
}
