package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func appliedVersions(t *testing.T, dir string) []int {
	t.Helper()
	raw, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	require.NoError(t, err)
	defer func() { require.NoError(t, raw.Close()) }()
	rows, err := raw.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	require.NoError(t, err)
	var vs []int
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		vs = append(vs, v)
	}
	require.NoError(t, rows.Err())
	return vs
}

func allVersions() []int {
	var vs []int
	for _, m := range migrations {
		vs = append(vs, m.version)
	}
	return vs
}

func TestMigrationsAreNumberedWithoutGaps(t *testing.T) {
	for i, m := range migrations {
		assert.Equal(t, i+1, m.version, "migration %d", i)
	}
}

func TestOpenMigrates(t *testing.T) {
	tests := []struct {
		name string
		// sub is a path below the temporary directory that does not exist yet.
		sub string
		// prepare leaves dir in some earlier state before Open.
		prepare func(t *testing.T, dir string)
	}{
		{name: "empty directory", prepare: func(*testing.T, string) {}},
		{name: "missing directory", sub: "a/b", prepare: func(*testing.T, string) {}},
		{name: "re-open at current schema", prepare: func(t *testing.T, dir string) {
			db, err := Open(dir)
			require.NoError(t, err)
			require.NoError(t, db.Close())
		}},
		{name: "older schema", prepare: func(t *testing.T, dir string) {
			raw, err := sql.Open("sqlite", dsnFor(t, dir))
			require.NoError(t, err)
			require.NoError(t, migrate(context.Background(), raw, dir, migrations[:1]))
			_, err = raw.Exec(`INSERT INTO jobs (id, repo, commit_hash, build, state, forwarded, record) VALUES (7, 'r', 'abcd', 1, 'queued', 0, x'')`)
			require.NoError(t, err)
			require.NoError(t, raw.Close())
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.sub != "" {
				dir = filepath.Join(dir, tc.sub)
			}
			tc.prepare(t, dir)
			db, err := Open(dir)
			require.NoError(t, err)
			assert.Equal(t, dir, db.Dir())
			var mode string
			require.NoError(t, db.sql.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
			assert.Equal(t, "wal", mode)
			var fk, syncMode int
			require.NoError(t, db.sql.QueryRow(`PRAGMA foreign_keys`).Scan(&fk))
			require.NoError(t, db.sql.QueryRow(`PRAGMA synchronous`).Scan(&syncMode))
			assert.Equal(t, 1, fk)
			assert.Equal(t, 1, syncMode, "synchronous=NORMAL")
			require.NoError(t, db.Close())
			assert.Equal(t, allVersions(), appliedVersions(t, dir))
		})
	}
}

func TestOlderSchemaKeepsData(t *testing.T) {
	dir := t.TempDir()
	raw, err := sql.Open("sqlite", dsnFor(t, dir))
	require.NoError(t, err)
	require.NoError(t, migrate(context.Background(), raw, dir, migrations[:1]))
	_, err = raw.Exec(`UPDATE job_ids SET max_id = 41`)
	require.NoError(t, err)
	require.NoError(t, raw.Close())

	db, err := Open(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	_, _, maxID, err := db.LoadQueue()
	require.NoError(t, err)
	assert.Equal(t, int64(41), maxID)
}

func TestNewerSchemaIsRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	require.NoError(t, err)
	newer := schemaVersion() + 5
	_, err = db.sql.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 'later')`, newer)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	tests := []struct {
		name string
		open func(string) (*DB, error)
	}{
		{name: "read-write", open: Open},
		{name: "read-only", open: OpenReadOnly},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := tc.open(dir)
			require.Error(t, err)
			assert.Nil(t, db)
			assert.ErrorIs(t, err, errNewerSchema)
			assert.Contains(t, err.Error(), "data directory "+dir+" was written by a newer Volt (schema "+
				strconv.Itoa(newer)+", this binary knows "+strconv.Itoa(schemaVersion())+"): upgrade volt")
		})
	}
}

func TestOpenReadOnlyOlderSchemaIsRefused(t *testing.T) {
	dir := t.TempDir()
	raw, err := sql.Open("sqlite", dsnFor(t, dir))
	require.NoError(t, err)
	require.NoError(t, migrate(context.Background(), raw, dir, migrations[:1]))
	require.NoError(t, raw.Close())

	_, err = OpenReadOnly(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "older than this binary")
}

func dsnFor(t *testing.T, dir string) string {
	t.Helper()
	d, err := dsn(filepath.Join(dir, FileName), false)
	require.NoError(t, err)
	return d
}
