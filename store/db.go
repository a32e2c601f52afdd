package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// FileName is the name of the database file inside a data directory.
const FileName = "volt.db"

// busyTimeoutMS is how long a statement waits for another connection's write
// lock before failing with SQLITE_BUSY.
const busyTimeoutMS = 10000

// ErrNotFound is returned when a job or result does not exist.
var ErrNotFound = errors.New("not found")

// ErrAmbiguous is returned by ResultForCommit when a commit prefix matches
// several commits.
var ErrAmbiguous = errors.New("ambiguous commit prefix")

// ErrInvalidCommit is returned when a commit id or prefix is not hex digits
// of a usable length (WriteResultFile also wants them lower case).
var ErrInvalidCommit = errors.New("invalid commit id")

// ErrDuplicateBuild is returned by SaveQueue (and SaveJobs) when a job would take the
// (repo, commit, build) of another job id.
var ErrDuplicateBuild = errors.New("build already has another job")

// ErrReadOnly is returned by a write on a DB from OpenReadOnly.
var ErrReadOnly = errors.New("store opened read-only")

// DB is an open Volt data directory. It is safe for concurrent use.
type DB struct {
	sql      *sql.DB
	dir      string
	readOnly bool
	queue    *queueStmts // nil when read-only
}

// Open opens <dataDir>/volt.db, creating the directory (0o755) and the
// database if missing, and migrates its schema to this binary's version. It
// fails when the database was written by a newer Volt.
//
// The database runs in WAL mode with synchronous=NORMAL: a commit is in the
// WAL before it returns, so it survives a kill -9 of the process (only a power
// loss or OS crash can lose the last few commits, never corrupt the file).
// Writers take the lock at BEGIN (BEGIN IMMEDIATE) and wait up to 10 s for
// one another, so concurrent writers queue instead of failing.
func Open(dataDir string) (*DB, error) {
	if dataDir == "" {
		return nil, errors.New("open store: empty data directory: pass --data-dir")
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w: check its permissions or pass another --data-dir", dataDir, err)
	}
	path := filepath.Join(dataDir, FileName)
	dsn, err := dsn(path, false)
	if err != nil {
		return nil, err
	}
	sqlDB, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := migrate(context.Background(), sqlDB, dataDir, migrations); err != nil {
		return nil, errors.Join(err, closeDB(sqlDB, path))
	}
	queue, err := prepareQueue(context.Background(), sqlDB)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open %s: %w", path, err), closeDB(sqlDB, path))
	}
	return &DB{sql: sqlDB, dir: dataDir, queue: queue}, nil
}

// OpenReadOnly opens an existing data directory for reading only, as
// `volt results` does while the reporter keeps writing. It fails when there is
// no volt.db in dataDir and when the schema is not exactly this binary's
// (older: let a writer upgrade it first; newer: upgrade volt).
func OpenReadOnly(dataDir string) (*DB, error) {
	path := filepath.Join(dataDir, FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no Volt data in %s: pass --data-dir with the directory the reporter (or volt up) uses: %w", dataDir, err)
	}
	dsn, err := dsn(path, true)
	if err != nil {
		return nil, err
	}
	sqlDB, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := checkVersion(sqlDB, dataDir); err != nil {
		return nil, errors.Join(err, closeDB(sqlDB, path))
	}
	return &DB{sql: sqlDB, dir: dataDir, readOnly: true}, nil
}

// checkVersion verifies that a read-only database has this binary's schema.
func checkVersion(sqlDB *sql.DB, dir string) error {
	ctx := context.Background()
	var tables int
	if err := sqlDB.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&tables); err != nil {
		return fmt.Errorf("open %s: %w", filepath.Join(dir, FileName), err)
	}
	have := 0
	if tables > 0 {
		v, err := currentVersion(ctx, sqlDB)
		if err != nil {
			return fmt.Errorf("open %s: %w", filepath.Join(dir, FileName), err)
		}
		have = v
	}
	known := schemaVersion()
	switch {
	case have > known:
		return newerSchemaError(dir, have, known)
	case have < known:
		return fmt.Errorf("data directory %s has schema %d, older than this binary's %d: start the reporter or `volt up` on it once to upgrade it", dir, have, known)
	}
	return nil
}

// dsn builds the modernc.org/sqlite data source name for path. The pragmas
// are applied to every connection the pool opens.
func dsn(path string, readOnly bool) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Set("mode", "ro")
		q.Add("_pragma", "query_only(1)")
	} else {
		// WAL + synchronous=NORMAL: committed transactions survive a crash of
		// the process (kill -9); see Open.
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String(), nil
}

func closeDB(sqlDB *sql.DB, path string) error {
	if err := sqlDB.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// Close closes the database. Calls after the first return nil.
func (db *DB) Close() error {
	var err error
	if db.queue != nil {
		err = db.queue.close()
	}
	return errors.Join(err, closeDB(db.sql, filepath.Join(db.dir, FileName)))
}

// Dir returns the data directory the DB was opened from.
func (db *DB) Dir() string { return db.dir }

// path is the database file, for error messages.
func (db *DB) path() string { return filepath.Join(db.dir, FileName) }

// writable fails on a read-only DB.
func (db *DB) writable(op string) error {
	if db.readOnly {
		return fmt.Errorf("%s in %s: %w: open it with store.Open", op, db.dir, ErrReadOnly)
	}
	return nil
}
