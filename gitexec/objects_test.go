package gitexec

import (
	"os"
	"os/exec"
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

func TestHaveObjectIgnoresIndexWithoutPack(t *testing.T) {
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", map[string]string{"a": "1"})
	gitT(t, origin, "gc", "--quiet", "--prune=now")
	objDir := filepath.Join(origin, ".git", "objects")
	require.True(t, haveObject(objDir, c1))
	packs, err := filepath.Glob(filepath.Join(objDir, "pack", "pack-*.pack"))
	require.NoError(t, err)
	require.Len(t, packs, 1)
	require.NoError(t, os.Rename(packs[0], packs[0]+".gone"))
	assert.False(t, haveObject(objDir, c1), "an index whose pack is gone")
	require.NoError(t, os.Mkdir(packs[0], 0o755))
	assert.False(t, haveObject(objDir, c1), "a directory is no pack")
}

func TestReadAlternatesAsGitDoes(t *testing.T) {
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", map[string]string{"a": "1"})
	objDir := filepath.Join(origin, ".git", "objects")
	// The borrower is reached through a symbolic link: git resolves a
	// relative alternate from the real directory.
	root := t.TempDir()
	real := filepath.Join(root, "a", "deep")
	require.NoError(t, os.MkdirAll(real, 0o755))
	gitT(t, "", "init", "--quiet", "--bare", filepath.Join(real, "b.git"))
	require.NoError(t, os.Symlink(real, filepath.Join(root, "link")))
	borrower := filepath.Join(root, "link", "b.git")
	rel, err := filepath.Rel(filepath.Join(real, "b.git", "objects"), objDir)
	require.NoError(t, err)

	for _, tt := range []struct {
		name, alternates string
		want             bool
	}{
		{"plain", objDir + "\n", true},
		{"no final newline", objDir, true},
		{"comment and empty lines", "# comment\n\n" + objDir + "\n", true},
		{"trailing slash", objDir + "/\n", true},
		{"carriage return is part of the path", objDir + "\r\n", false},
		{"leading space is part of the path", " " + objDir + "\n", false},
		{"trailing space is part of the path", objDir + " \n", false},
		{"commented out", "#" + objDir + "\n", false},
		{"relative to the real directory", rel + "\n", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(filepath.Join(borrower, "objects", "info", "alternates"), []byte(tt.alternates), 0o644))
			assert.Equal(t, tt.want, haveObject(filepath.Join(borrower, "objects"), c1))
			err := exec.Command("git", "--git-dir="+borrower, "cat-file", "-e", c1).Run()
			assert.Equal(t, tt.want, err == nil, "git agrees")
		})
	}
}
