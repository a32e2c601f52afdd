package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// migration is one numbered, forward-only schema change. Versions start at 1
// and have no gaps; a released migration is never edited, only followed by a
// new one.
type migration struct {
	version int
	sql     string
}

// migrations is the schema history, oldest first.
var migrations = []migration{
	{version: 1, sql: `
CREATE TABLE jobs (
	id          INTEGER PRIMARY KEY,
	repo        TEXT    NOT NULL,
	commit_hash TEXT    NOT NULL,
	build       INTEGER NOT NULL,
	state       TEXT    NOT NULL,
	forwarded   INTEGER NOT NULL,
	record      BLOB    NOT NULL,
	UNIQUE (repo, commit_hash, build)
);
CREATE INDEX jobs_open ON jobs (id) WHERE state <> 'done' OR forwarded = 0;

CREATE TABLE cursors (
	repo        TEXT NOT NULL,
	branch      TEXT NOT NULL,
	commit_hash TEXT NOT NULL,
	record      BLOB NOT NULL,
	PRIMARY KEY (repo, branch)
);

CREATE TABLE job_ids (
	singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
	max_id    INTEGER NOT NULL
);
INSERT INTO job_ids (singleton, max_id) VALUES (1, 0);
`},
	{version: 2, sql: `
CREATE TABLE results (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	repo             TEXT    NOT NULL,
	repo_name        TEXT    NOT NULL,
	commit_hash      TEXT    NOT NULL,
	build            INTEGER NOT NULL,
	status           TEXT    NOT NULL,
	branches         TEXT    NOT NULL,
	finished_unix_ms INTEGER NOT NULL,
	job_id           INTEGER NOT NULL,
	record           BLOB    NOT NULL,
	UNIQUE (repo, commit_hash, build)
);
CREATE INDEX results_finished ON results (finished_unix_ms DESC, id DESC);
CREATE INDEX results_repo_finished ON results (repo, finished_unix_ms DESC, id DESC);
CREATE INDEX results_status ON results (status, finished_unix_ms DESC, id DESC);
CREATE INDEX results_commit ON results (commit_hash);
`},
	{version: 3, sql: `
CREATE TABLE logs (
	repo        TEXT    NOT NULL,
	commit_hash TEXT    NOT NULL,
	build       INTEGER NOT NULL,
	attempt     INTEGER NOT NULL,
	have        INTEGER NOT NULL,
	PRIMARY KEY (repo, commit_hash, build, attempt)
);
CREATE TABLE log_chunks (
	repo        TEXT    NOT NULL,
	commit_hash TEXT    NOT NULL,
	build       INTEGER NOT NULL,
	attempt     INTEGER NOT NULL,
	offset      INTEGER NOT NULL,
	size        INTEGER NOT NULL,
	data        BLOB    NOT NULL,
	PRIMARY KEY (repo, commit_hash, build, attempt, offset)
);
`},
	{version: 4, sql: `
CREATE TABLE runner_incarnations (
	runner_id   TEXT    PRIMARY KEY,
	incarnation INTEGER NOT NULL
);
`},
	// 5: indexes for the web dashboard and the JSON API: a result by its
	// job, the branches of a repository (skip-scanned), results by the
	// repository's short name.
	{version: 5, sql: `
CREATE INDEX results_job ON results (job_id);
CREATE INDEX results_repo_branches ON results (repo, branches, finished_unix_ms DESC, id DESC);
CREATE INDEX results_name_finished ON results (repo_name, finished_unix_ms DESC, id DESC);
`},
	// 6: the dispatcher's secrets, each bound to a repository and branch
	// patterns (JSON), its value sealed with a key kept outside the
	// database (secrets.go).
	{version: 6, sql: `
CREATE TABLE secrets (
	name            TEXT    NOT NULL,
	repo            TEXT    NOT NULL,
	branches        TEXT    NOT NULL,
	key_id          TEXT    NOT NULL,
	sealed          BLOB    NOT NULL,
	updated_unix_ms INTEGER NOT NULL,
	PRIMARY KEY (name, repo)
);
`},
	// 7: a build has jobs (pipelines): a job is unique by (repo, commit,
	// build, job_index), and build_id finds a build's jobs (old rows are
	// builds of one job: build_id is their id, job_index 0).
	{version: 7, sql: `
CREATE TABLE jobs_v7 (
	id          INTEGER PRIMARY KEY,
	repo        TEXT    NOT NULL,
	commit_hash TEXT    NOT NULL,
	build       INTEGER NOT NULL,
	job_index   INTEGER NOT NULL DEFAULT 0,
	build_id    INTEGER NOT NULL,
	state       TEXT    NOT NULL,
	forwarded   INTEGER NOT NULL,
	record      BLOB    NOT NULL,
	UNIQUE (repo, commit_hash, build, job_index)
);
INSERT INTO jobs_v7 (id, repo, commit_hash, build, job_index, build_id, state, forwarded, record)
	SELECT id, repo, commit_hash, build, 0, id, state, forwarded, record FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v7 RENAME TO jobs;
CREATE INDEX jobs_open ON jobs (build_id) WHERE state <> 'done' OR forwarded = 0;
CREATE INDEX jobs_build ON jobs (build_id, job_index);
`},
	// 8: the reporter keeps one result and one log per job of a build
	// (pipelines). results become one row per job, unique by (repo,
	// commit, build, job_index), with the build's id and size and what the
	// aggregate needs (the job's name and allow_failure; the cell is in the
	// record); builds holds one row per build whose every job has a result,
	// with the aggregate (results.go), and takes over the listing indexes.
	// logs and log_chunks gain job_index in their keys. Old rows are
	// builds of one job: job_index 0, build_id their job id; a build keeps
	// its old row id, so cursors and the web's feed of new results go on.
	// SQLite changes a key only by rebuilding a table: each is copied into
	// its new shape, and the AUTOINCREMENT counter carried over so that no
	// id is handed out twice.
	{version: 8, sql: `
CREATE TABLE results_v8 (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	repo             TEXT    NOT NULL,
	repo_name        TEXT    NOT NULL,
	commit_hash      TEXT    NOT NULL,
	build            INTEGER NOT NULL,
	job_index        INTEGER NOT NULL DEFAULT 0,
	build_id         INTEGER NOT NULL,
	build_jobs       INTEGER NOT NULL DEFAULT 1,
	job_name         TEXT    NOT NULL DEFAULT 'build',
	allow_failure    INTEGER NOT NULL DEFAULT 0,
	status           TEXT    NOT NULL,
	branches         TEXT    NOT NULL,
	finished_unix_ms INTEGER NOT NULL,
	job_id           INTEGER NOT NULL,
	record           BLOB    NOT NULL,
	UNIQUE (repo, commit_hash, build, job_index)
);
INSERT INTO results_v8 (id, repo, repo_name, commit_hash, build, job_index, build_id, build_jobs, job_name, allow_failure,
		status, branches, finished_unix_ms, job_id, record)
	SELECT id, repo, repo_name, commit_hash, build, 0, job_id, 1, 'build', 0,
		status, branches, finished_unix_ms, job_id, record FROM results;
CREATE TABLE builds (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	repo             TEXT    NOT NULL,
	repo_name        TEXT    NOT NULL,
	commit_hash      TEXT    NOT NULL,
	build            INTEGER NOT NULL,
	build_id         INTEGER NOT NULL,
	build_jobs       INTEGER NOT NULL,
	status           TEXT    NOT NULL,
	branches         TEXT    NOT NULL,
	finished_unix_ms INTEGER NOT NULL,
	record           BLOB    NOT NULL,
	UNIQUE (repo, commit_hash, build)
);
INSERT INTO builds (id, repo, repo_name, commit_hash, build, build_id, build_jobs, status, branches, finished_unix_ms, record)
	SELECT id, repo, repo_name, commit_hash, build, job_id, 1, status, branches, finished_unix_ms, record FROM results;
DELETE FROM sqlite_sequence WHERE name IN ('results_v8', 'builds');
INSERT INTO sqlite_sequence (name, seq) SELECT 'results_v8', seq FROM sqlite_sequence WHERE name = 'results';
INSERT INTO sqlite_sequence (name, seq) SELECT 'builds', seq FROM sqlite_sequence WHERE name = 'results';
DROP TABLE results;
ALTER TABLE results_v8 RENAME TO results;
CREATE INDEX results_job ON results (job_id);
CREATE INDEX results_build ON results (build_id, job_index);
CREATE INDEX results_commit ON results (commit_hash);
CREATE INDEX builds_finished ON builds (finished_unix_ms DESC, id DESC);
CREATE INDEX builds_repo_finished ON builds (repo, finished_unix_ms DESC, id DESC);
CREATE INDEX builds_status ON builds (status, finished_unix_ms DESC, id DESC);
CREATE INDEX builds_commit ON builds (commit_hash);
CREATE INDEX builds_repo_branches ON builds (repo, branches, finished_unix_ms DESC, id DESC);
CREATE INDEX builds_name_finished ON builds (repo_name, finished_unix_ms DESC, id DESC);

CREATE TABLE logs_v8 (
	repo        TEXT    NOT NULL,
	commit_hash TEXT    NOT NULL,
	build       INTEGER NOT NULL,
	job_index   INTEGER NOT NULL DEFAULT 0,
	attempt     INTEGER NOT NULL,
	have        INTEGER NOT NULL,
	PRIMARY KEY (repo, commit_hash, build, job_index, attempt)
);
INSERT INTO logs_v8 (repo, commit_hash, build, job_index, attempt, have)
	SELECT repo, commit_hash, build, 0, attempt, have FROM logs;
DROP TABLE logs;
ALTER TABLE logs_v8 RENAME TO logs;
CREATE TABLE log_chunks_v8 (
	repo        TEXT    NOT NULL,
	commit_hash TEXT    NOT NULL,
	build       INTEGER NOT NULL,
	job_index   INTEGER NOT NULL DEFAULT 0,
	attempt     INTEGER NOT NULL,
	offset      INTEGER NOT NULL,
	size        INTEGER NOT NULL,
	data        BLOB    NOT NULL,
	PRIMARY KEY (repo, commit_hash, build, job_index, attempt, offset)
);
INSERT INTO log_chunks_v8 (repo, commit_hash, build, job_index, attempt, offset, size, data)
	SELECT repo, commit_hash, build, 0, attempt, offset, size, data FROM log_chunks;
DROP TABLE log_chunks;
ALTER TABLE log_chunks_v8 RENAME TO log_chunks;
`},
	// 9: the files jobs upload after their steps (artifacts and test
	// reports), per job id and attempt, in chunks as logs are
	// (artifacts.go). A file is kept (kept = 1) only once its size and
	// SHA-256 match what its runner said; the build's columns let
	// retention drop them with the build's result.
	{version: 9, sql: `
CREATE TABLE artifacts (
	job_id      INTEGER NOT NULL,
	attempt     INTEGER NOT NULL,
	path        TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	repo        TEXT    NOT NULL,
	commit_hash TEXT    NOT NULL,
	build       INTEGER NOT NULL,
	build_id    INTEGER NOT NULL,
	job_index   INTEGER NOT NULL,
	job_name    TEXT    NOT NULL,
	have        INTEGER NOT NULL,
	kept        INTEGER NOT NULL,
	sha256      BLOB,
	PRIMARY KEY (job_id, attempt, path)
);
CREATE INDEX artifacts_build ON artifacts (repo, commit_hash, build);
CREATE TABLE artifact_chunks (
	job_id  INTEGER NOT NULL,
	attempt INTEGER NOT NULL,
	path    TEXT    NOT NULL,
	offset  INTEGER NOT NULL,
	data    BLOB    NOT NULL,
	PRIMARY KEY (job_id, attempt, path, offset)
);
`},
	// 10: the test cases of each attempt of each job, read from the
	// reports jobs upload (tests.go). A case is unique by its job's build
	// and index, attempt, suite and name; tests_commit finds a commit's
	// runs, all or of one test (flaky detection, a build's tests,
	// retention), and tests_history one test's runs across commits,
	// newest first.
	{version: 10, sql: `
CREATE TABLE tests (
	id               INTEGER PRIMARY KEY,
	repo             TEXT    NOT NULL,
	repo_name        TEXT    NOT NULL,
	commit_hash      TEXT    NOT NULL,
	build            INTEGER NOT NULL,
	build_id         INTEGER NOT NULL,
	job_index        INTEGER NOT NULL,
	job_id           INTEGER NOT NULL,
	job_name         TEXT    NOT NULL,
	attempt          INTEGER NOT NULL,
	suite            TEXT    NOT NULL,
	name             TEXT    NOT NULL,
	status           TEXT    NOT NULL,
	duration_ms      INTEGER NOT NULL,
	message          TEXT    NOT NULL,
	finished_unix_ms INTEGER NOT NULL,
	UNIQUE (build_id, job_index, attempt, suite, name)
);
CREATE INDEX tests_commit ON tests (repo, commit_hash, name);
CREATE INDEX tests_history ON tests (repo_name, name, finished_unix_ms DESC, id DESC);
`},
	// 11: an artifact's permission bits (0755 for an executable, else
	// 0644), so that a binary a job builds runs where it is placed.
	{version: 11, sql: `
ALTER TABLE artifacts ADD COLUMN mode INTEGER NOT NULL DEFAULT 420;
`},
}

// schemaVersion is the newest schema this binary knows.
func schemaVersion() int { return migrations[len(migrations)-1].version }

// errNewerSchema marks a database written by a newer Volt.
var errNewerSchema = errors.New("newer schema")

// migrate brings the database of data directory dir up to the last of ms. It
// runs in one IMMEDIATE transaction (the DSN sets _txlock), so two processes
// opening the same data directory at once apply each migration exactly once,
// and a failed migration leaves the schema as it was.
func migrate(ctx context.Context, db *sql.DB, dir string, ms []migration) (err error) {
	path := dir
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate %s: begin: %w", path, err)
	}
	defer endTx(tx, &err)

	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", path, err)
	}
	current, err := currentVersion(ctx, tx)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", path, err)
	}
	known := ms[len(ms)-1].version
	if current > known {
		return newerSchemaError(dir, current, known)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migrate %s to schema %d: %w", path, m.version, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			m.version, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			return fmt.Errorf("migrate %s to schema %d: record version: %w", path, m.version, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate %s: commit: %w", path, err)
	}
	return nil
}

// queryer is what currentVersion needs from a *sql.DB or *sql.Tx.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// currentVersion returns the highest applied migration, 0 for an empty database.
func currentVersion(ctx context.Context, q queryer) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func newerSchemaError(dir string, have, known int) error {
	return fmt.Errorf("data directory %s was written by a newer Volt (schema %d, this binary knows %d): upgrade volt: %w",
		dir, have, known, errNewerSchema)
}

// endTx rolls back tx unless it was committed, and adds a failed rollback to
// *err. Use it as `defer endTx(tx, &err)` with a named error result.
func endTx(tx *sql.Tx, err *error) {
	if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
		*err = errors.Join(*err, fmt.Errorf("roll back: %w", rbErr))
	}
}
