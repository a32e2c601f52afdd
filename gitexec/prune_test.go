package gitexec

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPruneRemovesOnlyUnusedRepositories(t *testing.T) {
	ctx := context.Background()
	old, fresh := newRepo(t), newRepo(t)
	oldCommit := commitFiles(t, old, "one", map[string]string{"a.txt": "a"})
	freshCommit := commitFiles(t, fresh, "one", map[string]string{"b.txt": "b"})
	w := NewWorkspace(t.TempDir(), "")
	oldWT, err := w.Prepare(ctx, old, oldCommit, 0)
	require.NoError(t, err)
	freshWT, err := w.Prepare(ctx, fresh, freshCommit, 0)
	require.NoError(t, err)

	// The old repository was last built eight days ago.
	stamp := filepath.Join(w.workDir, "mirrors", borrowKey(old)+".git", usedStamp)
	eightDays := time.Now().Add(-8 * 24 * time.Hour)
	require.NoError(t, os.Chtimes(stamp, eightDays, eightDays))

	st, err := w.Prune(ctx, 7*24*time.Hour, time.Now())
	require.NoError(t, err)
	require.Equal(t, PruneStats{Mirrors: 1, Worktrees: 1}, st)
	require.NoDirExists(t, oldWT)
	require.DirExists(t, freshWT)

	// The pruned repository comes back when it is built again.
	again, err := w.Prepare(ctx, old, oldCommit, 0)
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(again, "a.txt"))
}

func TestSubjectsInOneCall(t *testing.T) {
	ctx := context.Background()
	dir := newRepo(t)
	a := commitFiles(t, dir, "first subject", map[string]string{"a": "1"})
	b := commitFiles(t, dir, "second <b>subject</b>\n\nbody", map[string]string{"b": "2"})
	r, err := OpenRepo(ctx, dir, t.TempDir())
	require.NoError(t, err)
	got, err := r.Subjects(ctx, []string{b, a})
	require.NoError(t, err)
	require.Equal(t, []string{"second <b>subject</b>", "first subject"}, got)
	_, err = r.Subjects(ctx, []string{"--upload-pack=touch pwned"})
	require.Error(t, err)
}
