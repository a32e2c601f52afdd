package store_test

import (
	"bytes"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/store"
)

// plaintext is a value easy to find in a file's bytes.
const plaintext = "correct-horse-battery-staple-0123456789"

func newKey(t *testing.T) *store.SecretKey {
	t.Helper()
	k, err := store.CreateSecretKey(filepath.Join(t.TempDir(), store.SecretKeyFile))
	require.NoError(t, err)
	return k
}

func openValue(t *testing.T, db *store.DB, k *store.SecretKey, name, repo string) ([]byte, error) {
	t.Helper()
	ss, err := db.Secrets([]string{name})
	require.NoError(t, err)
	for _, s := range ss {
		if s.Repo == repo {
			return k.Open(s)
		}
	}
	t.Fatalf("no secret %s of %s", name, repo)
	return nil, nil
}

func TestSecretRoundTrip(t *testing.T) {
	db, k := newDB(t), newKey(t)
	now := time.UnixMilli(1_700_000_000_000)
	require.NoError(t, db.SetSecret(k, "DEPLOY_KEY", "app", []string{"main", "release/*"}, []byte(plaintext), now))
	require.NoError(t, db.SetSecret(k, "DEPLOY_KEY", "/srv/git/other.git", nil, []byte("other value"), now))
	require.NoError(t, db.SetSecret(k, "NPM_TOKEN", "app", nil, []byte{0, 1, 2, 0xff}, now))

	ss, err := db.Secrets([]string{"DEPLOY_KEY", "UNKNOWN"})
	require.NoError(t, err)
	require.Len(t, ss, 2)
	require.Equal(t, "/srv/git/other.git", ss[0].Repo, "sorted by name, then repository")
	require.Equal(t, []string{}, ss[0].Branches)
	require.Equal(t, "app", ss[1].Repo)
	require.Equal(t, []string{"main", "release/*"}, ss[1].Branches)
	require.Equal(t, now.UnixMilli(), ss[1].UpdatedUnixMs)
	v, err := k.Open(ss[1])
	require.NoError(t, err)
	require.Equal(t, plaintext, string(v))

	v, err = openValue(t, db, k, "NPM_TOKEN", "app")
	require.NoError(t, err)
	require.Equal(t, []byte{0, 1, 2, 0xff}, v, "any bytes")

	// Setting again replaces value and binding.
	require.NoError(t, db.SetSecret(k, "DEPLOY_KEY", "app", []string{"prod"}, []byte("rotated"), now.Add(time.Hour)))
	v, err = openValue(t, db, k, "DEPLOY_KEY", "app")
	require.NoError(t, err)
	require.Equal(t, "rotated", string(v))

	all, err := db.ListSecrets()
	require.NoError(t, err)
	var listed []string
	for _, s := range all {
		listed = append(listed, s.Name+"@"+s.Repo)
	}
	require.Equal(t, []string{"DEPLOY_KEY@/srv/git/other.git", "DEPLOY_KEY@app", "NPM_TOKEN@app"}, listed)

	found, err := db.DeleteSecret("DEPLOY_KEY", "app")
	require.NoError(t, err)
	require.True(t, found)
	found, err = db.DeleteSecret("DEPLOY_KEY", "app")
	require.NoError(t, err)
	require.False(t, found, "nothing left to delete")
	ss, err = db.Secrets([]string{"DEPLOY_KEY"})
	require.NoError(t, err)
	require.Len(t, ss, 1)
}

func TestSecretWithAnotherKeyDoesNotOpen(t *testing.T) {
	db, k := newDB(t), newKey(t)
	require.NoError(t, db.SetSecret(k, "DEPLOY_KEY", "app", nil, []byte(plaintext), time.Now()))
	other := newKey(t)
	require.NotEqual(t, k.ID(), other.ID())
	_, err := openValue(t, db, other, "DEPLOY_KEY", "app")
	require.ErrorIs(t, err, store.ErrSecretKey)
	require.ErrorContains(t, err, other.Path(), "says which key file was used")
	require.ErrorContains(t, err, "set the secret again")
}

// TestSecretRowsAreBoundToTheirNameRepoAndBranches: a sealed value copied
// to another name or repository, or a binding widened in the database,
// does not open.
func TestSecretRowsAreBoundToTheirNameRepoAndBranches(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	k := newKey(t)
	require.NoError(t, db.SetSecret(k, "DEPLOY_KEY", "app", []string{"main"}, []byte(plaintext), time.Now()))

	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, store.FileName)+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { raw.Close() })
	for _, tc := range []struct{ name, stmt string }{
		{"moved to another repository", `INSERT INTO secrets SELECT name, 'evil', branches, key_id, sealed, updated_unix_ms FROM secrets WHERE repo = 'app'`},
		{"copied to another name", `INSERT INTO secrets SELECT 'OTHER', repo, branches, key_id, sealed, updated_unix_ms FROM secrets WHERE name = 'DEPLOY_KEY' AND repo = 'app'`},
		{"binding widened", `UPDATE secrets SET branches = '["*"]' WHERE name = 'DEPLOY_KEY' AND repo = 'app'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := raw.Exec(tc.stmt)
			require.NoError(t, err)
			all, err := db.ListSecrets()
			require.NoError(t, err)
			for _, s := range all {
				if s.Name == "DEPLOY_KEY" && s.Repo == "app" && len(s.Branches) == 1 && s.Branches[0] == "main" {
					continue // the original, unchanged row
				}
				_, err := k.Open(s)
				require.ErrorIs(t, err, store.ErrSecretKey, "%s of %s %v", s.Name, s.Repo, s.Branches)
			}
		})
	}
}

// TestSecretPlaintextNeverOnDisk: the database files hold no byte string
// of the value, after writes, a checkpoint and a delete.
func TestSecretPlaintextNeverOnDisk(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(dir)
	require.NoError(t, err)
	k := newKey(t)
	for i := range 20 {
		require.NoError(t, db.SetSecret(k, "DEPLOY_KEY", "app", []string{"main"}, []byte(plaintext), time.Now()))
		require.NoError(t, db.SetSecret(k, "K"+string(rune('A'+i)), "app", nil, []byte(plaintext), time.Now()))
	}
	check := func(when string) {
		t.Helper()
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.NotEmpty(t, ents)
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			require.NoError(t, err)
			require.False(t, bytes.Contains(b, []byte(plaintext)), "%s: %s holds the plaintext", when, e.Name())
			require.False(t, bytes.Contains(b, []byte(plaintext[:12])), "%s: %s holds part of the plaintext", when, e.Name())
		}
	}
	check("with the WAL")
	require.NoError(t, db.Close())
	check("after the checkpoint at close")
}

func TestSecretKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, store.SecretKeyFile)
	_, err := store.OpenSecretKey(path)
	require.ErrorIs(t, err, fs.ErrNotExist, "opening never creates")

	// Created once, 0600, the same key for every concurrent creator.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			k, err := store.CreateSecretKey(path)
			if err == nil {
				ids[i] = k.ID()
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
		require.NotEmpty(t, id)
	}
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.EqualValues(t, 32, st.Size())
	left, err := filepath.Glob(filepath.Join(dir, ".secrets.key-*"))
	require.NoError(t, err)
	require.Empty(t, left, "no temporary file left behind")
	k, err := store.OpenSecretKey(path)
	require.NoError(t, err)
	require.Equal(t, ids[0], k.ID())

	require.NoError(t, os.Chmod(path, 0o640))
	_, err = store.OpenSecretKey(path)
	require.ErrorContains(t, err, "chmod 600 "+path)

	require.NoError(t, os.WriteFile(path, []byte("short"), 0o600))
	require.NoError(t, os.Chmod(path, 0o600))
	_, err = store.OpenSecretKey(path)
	require.ErrorContains(t, err, "is not 32 bytes")
}
