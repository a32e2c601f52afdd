package gitexec

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadFile(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	without := commitFiles(t, dir, "no config", map[string]string{"README": "hi\n"})
	with := commitFiles(t, dir, "config", map[string]string{".volt.yml": "jobs:\n  a: {steps: [x]}\n", "sub/file.txt": "deep\n"})
	commitFiles(t, dir, "config to empty", map[string]string{".volt.yml": "placeholder"})
	require.NoError(t, os.Truncate(filepath.Join(dir, ".volt.yml"), 0))
	gitT(t, dir, "commit", "--quiet", "-am", "truncate")
	empty := gitT(t, dir, "rev-parse", "HEAD")
	big := commitFiles(t, dir, "big", map[string]string{".volt.yml": strings.Repeat("#", 1001)})
	require.NoError(t, os.Remove(filepath.Join(dir, ".volt.yml")))
	folder := commitFiles(t, dir, "folder", map[string]string{".volt.yml/x": "x"})
	require.NoError(t, os.RemoveAll(filepath.Join(dir, ".volt.yml")))
	require.NoError(t, os.Symlink("sub/file.txt", filepath.Join(dir, ".volt.yml")))
	gitT(t, dir, "add", "--all")
	gitT(t, dir, "commit", "--quiet", "-m", "link")
	link := gitT(t, dir, "rev-parse", "HEAD")

	r, err := OpenRepo(ctx, dir, t.TempDir())
	require.NoError(t, err)

	data, err := r.ReadFile(ctx, with, ".volt.yml", 1000)
	require.NoError(t, err)
	assert.Equal(t, "jobs:\n  a: {steps: [x]}\n", string(data))

	data, err = r.ReadFile(ctx, with, "sub/file.txt", 1000)
	require.NoError(t, err)
	assert.Equal(t, "deep\n", string(data), "a file in a folder")

	data, err = r.ReadFile(ctx, without, ".volt.yml", 1000)
	require.NoError(t, err, "no file is no error")
	assert.Nil(t, data)

	data, err = r.ReadFile(ctx, with, "sub", 1000)
	require.ErrorIs(t, err, ErrNotAFile, "a folder")
	assert.Nil(t, data)
	assert.Contains(t, err.Error(), "it is a folder")

	data, err = r.ReadFile(ctx, empty, ".volt.yml", 1000)
	require.NoError(t, err)
	assert.Empty(t, data)

	_, err = r.ReadFile(ctx, big, ".volt.yml", 1000)
	require.ErrorIs(t, err, ErrFileTooLarge)
	assert.Contains(t, err.Error(), "1001 bytes, more than 1000")
	data, err = r.ReadFile(ctx, big, ".volt.yml", 1001)
	require.NoError(t, err, "at the limit")
	assert.Len(t, data, 1001)

	_, err = r.ReadFile(ctx, folder, ".volt.yml", 1000)
	require.ErrorIs(t, err, ErrNotAFile)
	_, err = r.ReadFile(ctx, link, ".volt.yml", 1000)
	require.ErrorIs(t, err, ErrNotAFile)
	assert.Contains(t, err.Error(), "it is a symbolic link")

	// A commit the repository does not have is an error, not "no file".
	_, err = r.ReadFile(ctx, strings.Repeat("ab", 20), ".volt.yml", 1000)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrNotAFile)
}

func TestReadFileRefusesWhatGitCouldMisread(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	c := commitFiles(t, dir, "config", map[string]string{".volt.yml": "steps: [x]\n"})
	r, err := OpenRepo(ctx, dir, t.TempDir())
	require.NoError(t, err)
	for _, commit := range []string{"HEAD", "--output=/tmp/x", c[:12], strings.ToUpper(c), c + "^"} {
		_, err := r.ReadFile(ctx, commit, ".volt.yml", 1000)
		assert.Error(t, err, "commit %q", commit)
	}
	for _, name := range []string{"", "-x", "--output=/tmp/x", "/etc/passwd", "../x", "a//b", "./.volt.yml", "*.yml", ":(glob)x", "a/", "x\ny"} {
		_, err := r.ReadFile(ctx, c, name, 1000)
		assert.Error(t, err, "path %q", name)
	}
}
