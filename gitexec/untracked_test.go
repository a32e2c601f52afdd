package gitexec

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMayHaveUntracked(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", map[string]string{
		".gitignore": "build/\n*.pyc\n", "top.txt": "t", "a/b/c/deep.txt": "d", "a/side.txt": "s",
		"a/" + strings.Repeat("long-name-", 24) + ".txt": "a long name",
	})
	tests := []struct {
		name   string
		damage func(t *testing.T, wt string)
	}{
		{"untracked file", func(t *testing.T, wt string) { write(t, wt, "new.txt") }},
		{"ignored file", func(t *testing.T, wt string) { write(t, wt, "x.pyc") }},
		{"ignored directory", func(t *testing.T, wt string) { write(t, wt, "build/out/bin") }},
		{"file in a tracked directory", func(t *testing.T, wt string) { write(t, wt, "a/b/new") }},
		{"empty directory", func(t *testing.T, wt string) { require.NoError(t, os.MkdirAll(filepath.Join(wt, "a/b/empty"), 0o755)) }},
		{"nested repository", func(t *testing.T, wt string) {
			require.NoError(t, os.MkdirAll(filepath.Join(wt, "a/nested"), 0o755))
			gitT(t, filepath.Join(wt, "a/nested"), "init", "--quiet")
		}},
		{"symbolic link", func(t *testing.T, wt string) { require.NoError(t, os.Symlink("top.txt", filepath.Join(wt, "a/link"))) }},
		{"file named like a tracked directory's prefix", func(t *testing.T, wt string) { write(t, wt, "a/b/c/deep.txt.orig") }},
	}
	for _, version := range []string{"2", "3", "4"} {
		t.Run("index v"+version, func(t *testing.T) {
			w := NewWorkspace(t.TempDir(), "")
			wt, err := w.Prepare(ctx, origin, c1, 0)
			require.NoError(t, err)
			gitT(t, wt, "update-index", "--index-version", version)
			admin, err := worktreeAdminDir(wt)
			require.NoError(t, err)
			index := filepath.Join(admin, "index")
			assert.False(t, mayHaveUntracked(wt, index), "a clean worktree")
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					tt.damage(t, wt)
					assert.NotEmpty(t, gitT(t, wt, "clean", "-ndffx"), "git sees it")
					assert.True(t, mayHaveUntracked(wt, index))
					// Prepare removes it, whether or not it looks first.
					_, err := w.Prepare(ctx, origin, c1, 0)
					require.NoError(t, err)
					assert.Empty(t, gitT(t, wt, "clean", "-ndffx"))
					assert.False(t, mayHaveUntracked(wt, index))
				})
			}
		})
	}
}

func TestMayHaveUntrackedDoubts(t *testing.T) {
	origin := newRepo(t)
	commitFiles(t, origin, "one", map[string]string{"a/x": "1", "b": "2"})
	index := filepath.Join(origin, ".git", "index")
	require.False(t, mayHaveUntracked(origin, index))
	tests := []struct {
		name  string
		setup func(t *testing.T)
	}{
		{"no index", func(t *testing.T) { require.NoError(t, os.Rename(index, index+".gone")) }},
		{"split index", func(t *testing.T) { gitT(t, origin, "update-index", "--split-index") }},
		{"skip-worktree", func(t *testing.T) { gitT(t, origin, "update-index", "--skip-worktree", "b") }},
		{"submodule", func(t *testing.T) {
			sub := newRepo(t)
			c := commitFiles(t, sub, "sub", map[string]string{"s": "s"})
			gitT(t, origin, "update-index", "--add", "--cacheinfo", "160000,"+c+",sub")
		}},
		{"truncated", func(t *testing.T) {
			data, err := os.ReadFile(index)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(index, data[:len(data)-30], 0o644))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(index)
			require.NoError(t, err)
			t.Cleanup(func() {
				require.NoError(t, os.WriteFile(index, data, 0o644))
				os.Remove(index + ".gone")
			})
			tt.setup(t)
			assert.True(t, mayHaveUntracked(origin, index))
		})
	}
}

func write(t *testing.T, dir, name string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte("x"), 0o644))
}

func FuzzParseIndex(f *testing.F) {
	origin := newRepo(f)
	commitFiles(f, origin, "one", map[string]string{"a/x": "1", "b": "2", "a/y/z": "3"})
	for _, v := range []string{"2", "3", "4"} {
		gitT(f, origin, "update-index", "--index-version", v)
		data, err := os.ReadFile(filepath.Join(origin, ".git", "index"))
		require.NoError(f, err)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		files, _, err := parseIndex(data)
		if err != nil {
			return
		}
		for name := range files {
			if name == "" || name[0] == '/' {
				t.Fatalf("bad path %q accepted", name)
			}
		}
	})
}

func TestGitVarint(t *testing.T) {
	tests := []struct {
		in    []byte
		want  uint64
		bytes int
	}{
		{[]byte{0x00}, 0, 1},
		{[]byte{0x7f, 0xff}, 127, 1},
		{[]byte{0x80, 0x00}, 128, 2},
		{[]byte{0xff, 0x7f}, 16511, 2},
		{[]byte{0x80}, 0, 0},
		{nil, 0, 0},
	}
	for _, tt := range tests {
		got, n := gitVarint(tt.in)
		assert.Equal(t, tt.want, got, "%x", tt.in)
		assert.Equal(t, tt.bytes, n, "%x", tt.in)
	}
}

func TestMayHaveUntrackedUnknownExtensions(t *testing.T) {
	// An extension whose signature starts with 'A'..'Z' is optional and
	// ignored; any other is required, and git refuses an index whose required
	// extension it does not know: so must mayHaveUntracked.
	origin := newRepo(t)
	commitFiles(t, origin, "one", map[string]string{"a/x": "1", "b": "2"})
	index := filepath.Join(origin, ".git", "index")
	data, err := os.ReadFile(index)
	require.NoError(t, err)
	withExtension := func(sig string) {
		body := append([]byte{}, data[:len(data)-sha1.Size]...)
		body = append(body, sig...)
		body = binary.BigEndian.AppendUint32(body, 3)
		body = append(body, "abc"...)
		sum := sha1.Sum(body)
		require.NoError(t, os.WriteFile(index, append(body, sum[:]...), 0o644))
	}
	require.False(t, mayHaveUntracked(origin, index))

	withExtension("ZZZZ")
	assert.False(t, mayHaveUntracked(origin, index))
	assert.Contains(t, gitT(t, origin, "ls-files"), "a/x", "git reads the index, ignoring the extension")

	for _, sig := range []string{"zzzz", "1ZZZ", "\x00ZZZ", "[ZZZ"} {
		withExtension(sig)
		assert.True(t, mayHaveUntracked(origin, index), "%q", sig)
		cmd := exec.Command("git", "ls-files")
		cmd.Dir = origin
		out, err := cmd.CombinedOutput()
		assert.Error(t, err, "git refuses %q: %s", sig, out)
	}
}
