package gitexec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHaveObject(t *testing.T) {
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", map[string]string{"a": "1"})
	objDir := filepath.Join(origin, ".git", "objects")
	missing := strings.Repeat("ab", 20)

	// Loose objects.
	assert.True(t, haveObject(objDir, c1))
	assert.False(t, haveObject(objDir, missing))

	// Packed objects (and no loose ones left).
	c2 := commitFiles(t, origin, "two", map[string]string{"b": "2"})
	gitT(t, origin, "gc", "--quiet", "--prune=now")
	_, err := os.Stat(filepath.Join(objDir, c1[:2], c1[2:]))
	require.ErrorIs(t, err, os.ErrNotExist)
	for _, c := range []string{c1, c2, gitT(t, origin, "rev-parse", "HEAD:b")} {
		assert.True(t, haveObject(objDir, c), c)
	}
	assert.False(t, haveObject(objDir, missing))
	// Every first byte of the fan-out table, present or not.
	for _, id := range []string{strings.Repeat("0", 40), strings.Repeat("f", 40)} {
		assert.False(t, haveObject(objDir, id))
	}

	// Through an alternate, relative or absolute.
	borrower := filepath.Join(t.TempDir(), "b.git")
	gitT(t, "", "init", "--quiet", "--bare", borrower)
	alt := filepath.Join(borrower, "objects", "info", "alternates")
	assert.False(t, haveObject(filepath.Join(borrower, "objects"), c1))
	require.NoError(t, os.WriteFile(alt, []byte("# comment\n"+objDir+"\n"), 0o644))
	assert.True(t, haveObject(filepath.Join(borrower, "objects"), c1))
	rel, err := filepath.Rel(filepath.Join(borrower, "objects"), objDir)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(alt, []byte(rel+"\n"), 0o644))
	assert.True(t, haveObject(filepath.Join(borrower, "objects"), c2))

	// A cycle of alternates ends.
	require.NoError(t, os.WriteFile(filepath.Join(objDir, "info", "alternates"), []byte(filepath.Join(borrower, "objects")+"\n"), 0o644))
	assert.False(t, haveObject(filepath.Join(borrower, "objects"), missing))

	// Not SHA-1 hex: never "found" (the caller asks git).
	assert.False(t, haveObject(objDir, strings.Repeat("a", 64)))
	assert.False(t, haveObject(objDir, "../../../etc/passwd"))
}

func TestLocalObjectDir(t *testing.T) {
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", map[string]string{"a": "1"})
	bare := filepath.Join(t.TempDir(), "bare.git")
	gitT(t, "", "clone", "--quiet", "--bare", origin, bare)
	linked := filepath.Join(t.TempDir(), "linked")
	gitT(t, origin, "worktree", "add", "--quiet", "--detach", linked, c1)
	notRepo := t.TempDir()

	tests := []struct {
		name, path, want string
	}{
		{"working tree", origin, filepath.Join(origin, ".git", "objects")},
		{"bare", bare, filepath.Join(bare, "objects")},
		{"linked worktree", linked, filepath.Join(origin, ".git", "objects")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := localObjectDir(tt.path)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.True(t, haveObject(got, c1))
		})
	}
	_, err := localObjectDir(notRepo)
	assert.ErrorIs(t, err, errNotLocalRepo)
	_, err = localObjectDir(filepath.Join(notRepo, "missing"))
	assert.ErrorIs(t, err, errNotLocalRepo)
}
