package gitexec

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readTree returns the files under dir (without .git) and their contents.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel == ".git" {
			return nil
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[rel] = string(data)
		return nil
	})
	require.NoError(t, err)
	return files
}

func TestPrepareMovesOneWorktree(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", map[string]string{
		".gitignore": "build/\n*.pyc\n", "same.txt": "unchanged", "changed.txt": "v1", "gone.txt": "bye",
	})
	c2 := commitFiles(t, origin, "two", map[string]string{"changed.txt": "v2", "gone.txt": "", "new/file.txt": "hi"})
	w := NewWorkspace(t.TempDir(), "")

	dir, err := w.Prepare(ctx, origin, c1, 0)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{".gitignore": "build/\n*.pyc\n", "same.txt": "unchanged", "changed.txt": "v1", "gone.txt": "bye"}, readTree(t, dir))
	before, err := os.Stat(filepath.Join(dir, "same.txt"))
	require.NoError(t, err)

	// The first job leaves untracked, ignored and modified files behind.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "build", "deep"), 0o755))
	for name, content := range map[string]string{
		"build/deep/out.o": "x", "mod.pyc": "x", "untracked.txt": "x", "changed.txt": "local edit",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}

	dir2, err := w.Prepare(ctx, origin, c2, 0)
	require.NoError(t, err)
	assert.Equal(t, dir, dir2, "one worktree per slot")
	assert.Equal(t, map[string]string{".gitignore": "build/\n*.pyc\n", "same.txt": "unchanged", "changed.txt": "v2", "new/file.txt": "hi"}, readTree(t, dir))
	assert.Equal(t, c2, gitT(t, dir, "rev-parse", "HEAD"))
	assert.Empty(t, gitT(t, dir, "status", "--porcelain", "--ignored"))
	after, err := os.Stat(filepath.Join(dir, "same.txt"))
	require.NoError(t, err)
	assert.True(t, os.SameFile(before, after), "an unchanged file is not rewritten")

	// Back to the same commit after local edits restores it.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "changed.txt"), []byte("edit"), 0o644))
	_, err = w.Prepare(ctx, origin, c2, 0)
	require.NoError(t, err)
	assert.Equal(t, "v2", readTree(t, dir)["changed.txt"])
}

func TestPrepareFetchesNewCommits(t *testing.T) {
	// A local path borrows the origin's objects; a file:// URL is fetched
	// into a mirror. Both must see every new commit.
	for _, mode := range []struct {
		name string
		url  func(origin string) string
	}{
		{"local path", func(origin string) string { return origin }},
		{"url", func(origin string) string { return "file://" + origin }},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			origin := newRepo(t)
			url := mode.url(origin)
			c1 := commitFiles(t, origin, "one", map[string]string{"a": "1"})
			w := NewWorkspace(t.TempDir(), "")
			_, err := w.Prepare(ctx, url, c1, 0)
			require.NoError(t, err)

			c2 := commitFiles(t, origin, "two", map[string]string{"a": "2"})
			dir, err := w.Prepare(ctx, url, c2, 0)
			require.NoError(t, err)
			assert.Equal(t, "2", readTree(t, dir)["a"])

			// A commit on no branch any more (force-pushed away) is still found by id.
			gitT(t, origin, "reset", "--quiet", "--hard", c1)
			c3 := commitFiles(t, origin, "three", map[string]string{"a": "3"})
			gitT(t, origin, "reset", "--quiet", "--hard", c1)
			gitT(t, origin, "config", "uploadpack.allowAnySHA1InWant", "true")
			dir, err = w.Prepare(ctx, url, c3, 0)
			require.NoError(t, err)
			assert.Equal(t, "3", readTree(t, dir)["a"])

			_, err = w.Prepare(ctx, url, strings.Repeat("0", 40), 0)
			assert.ErrorContains(t, err, "is not in "+url)
		})
	}
}

func TestPrepareBorrowsLocalObjects(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", map[string]string{"a": "1", "b": "b"})
	w := NewWorkspace(t.TempDir(), "")
	dir, err := w.Prepare(ctx, origin, c1, 0)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "1", "b": "b"}, readTree(t, dir))

	// The mirror borrows the origin's objects: it has no refs and stores no object.
	mirror := filepath.Join(w.workDir, "mirrors", borrowKey(origin)+".git")
	alt, err := os.ReadFile(filepath.Join(mirror, "objects", "info", "alternates"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(origin, ".git", "objects")+"\n", string(alt))
	assert.Empty(t, gitT(t, mirror, "for-each-ref"))
	assert.Equal(t, "count: 0", strings.Split(gitT(t, mirror, "count-objects", "-v"), "\n")[0])

	// A force push, then a gc that deletes the worktree's commit from the
	// origin: the next job still gets exactly its tree.
	gitT(t, origin, "checkout", "--quiet", "--orphan", "other")
	gitT(t, origin, "rm", "--quiet", "-rf", ".")
	c2 := commitFiles(t, origin, "unrelated", map[string]string{"c": "3"})
	gitT(t, origin, "branch", "--quiet", "-D", "main")
	gitT(t, origin, "reflog", "expire", "--expire=now", "--all")
	gitT(t, origin, "gc", "--quiet", "--prune=now")
	require.Error(t, exec.Command("git", "-C", origin, "cat-file", "-e", c1).Run(), "the origin still has %s", c1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk"), []byte("x"), 0o644))
	dir2, err := w.Prepare(ctx, origin, c2, 0)
	require.NoError(t, err)
	assert.Equal(t, dir, dir2)
	assert.Equal(t, map[string]string{"c": "3"}, readTree(t, dir))
	assert.Equal(t, c2, gitT(t, dir, "rev-parse", "HEAD"))

	// The gone commit is refused, not half checked out.
	_, err = w.Prepare(ctx, origin, c1, 0)
	assert.ErrorContains(t, err, "is not in "+origin)
}

func TestPrepareDoesNotFetchWhatTheMirrorHas(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", map[string]string{"a": "1"})
	c2 := commitFiles(t, origin, "two", map[string]string{"a": "2"})
	url := "file://" + origin
	w := NewWorkspace(t.TempDir(), "")
	_, err := w.Prepare(ctx, url, c2, 0)
	require.NoError(t, err)

	// With the origin gone, commits already in the mirror still check out.
	require.NoError(t, os.RemoveAll(origin))
	for _, c := range []string{c1, c2} {
		dir, err := w.Prepare(ctx, url, c, 0)
		require.NoError(t, err)
		assert.Equal(t, c, gitT(t, dir, "rev-parse", "HEAD"))
	}
}

func TestPrepareSlotsAndRepositories(t *testing.T) {
	ctx := context.Background()
	a := newRepo(t)
	ca := commitFiles(t, a, "a", map[string]string{"f": "a"})
	b := newRepo(t) // same name "origin", other URL
	cb := commitFiles(t, b, "b", map[string]string{"f": "b"})
	work := t.TempDir()
	w := NewWorkspace(work, "")

	var wg sync.WaitGroup
	dirs := make([]string, 4)
	errs := make([]error, 4)
	for i, job := range []struct {
		url, commit string
		slot        int
	}{{a, ca, 0}, {a, ca, 1}, {b, cb, 0}, {b, cb, 1}} {
		wg.Go(func() { dirs[i], errs[i] = w.Prepare(ctx, job.url, job.commit, job.slot) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "job %d", i)
	}
	assert.Equal(t, "a", readTree(t, dirs[0])["f"])
	assert.Equal(t, "a", readTree(t, dirs[1])["f"])
	assert.Equal(t, "b", readTree(t, dirs[2])["f"])
	assert.Equal(t, "b", readTree(t, dirs[3])["f"])
	assert.Len(t, map[string]bool{dirs[0]: true, dirs[1]: true, dirs[2]: true, dirs[3]: true}, 4)
	mirrors, err := os.ReadDir(filepath.Join(work, "mirrors"))
	require.NoError(t, err)
	assert.Len(t, mirrors, 2, "one mirror per repository")
}

func TestPrepareRepairsBrokenWorktree(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", map[string]string{"a": "1"})
	c2 := commitFiles(t, origin, "two", map[string]string{"a": "2"})
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"deleted directory", func(t *testing.T, dir string) { require.NoError(t, os.RemoveAll(dir)) }},
		{"deleted .git link", func(t *testing.T, dir string) { require.NoError(t, os.Remove(filepath.Join(dir, ".git"))) }},
		{"garbage .git link", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, ".git"), []byte("gitdir: /nonexistent\n"), 0o644))
		}},
		{"stale index lock", func(t *testing.T, dir string) {
			admin, err := worktreeAdminDir(dir)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(admin, "index.lock"), nil, 0o644))
		}},
		{"deleted mirror", func(t *testing.T, dir string) {
			admin, err := worktreeAdminDir(dir)
			require.NoError(t, err)
			require.NoError(t, os.RemoveAll(filepath.Dir(filepath.Dir(admin))))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWorkspace(t.TempDir(), "")
			dir, err := w.Prepare(ctx, origin, c1, 0)
			require.NoError(t, err)
			tt.damage(t, dir)
			dir2, err := w.Prepare(ctx, origin, c2, 0)
			require.NoError(t, err)
			assert.Equal(t, dir, dir2)
			assert.Equal(t, map[string]string{"a": "2"}, readTree(t, dir))
			assert.Equal(t, c2, gitT(t, dir, "rev-parse", "HEAD"))
		})
	}
}

func TestPrepareUsesFallbackFirst(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", map[string]string{"a": "1"})
	clone := filepath.Join(t.TempDir(), "clone")
	gitT(t, "", "clone", "--quiet", origin, clone)

	// The repository URL is unreachable; the fallback clone has the commit.
	w := NewWorkspace(t.TempDir(), clone)
	dir, err := w.Prepare(ctx, filepath.Join(t.TempDir(), "unreachable"), c1, 0)
	require.NoError(t, err)
	assert.Equal(t, "1", readTree(t, dir)["a"])

	// No URL at all: the fallback is the repository.
	dir, err = w.Prepare(ctx, "", c1, 1)
	require.NoError(t, err)
	assert.Equal(t, "1", readTree(t, dir)["a"])

	_, err = NewWorkspace(t.TempDir(), "").Prepare(ctx, "", c1, 0)
	assert.ErrorContains(t, err, "no repository URL")
}

func TestPrepareRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", nil)
	work := t.TempDir()
	w := NewWorkspace(work, "")
	tests := []struct {
		name    string
		url     string
		commit  string
		slot    int
		wantErr string
	}{
		{"hostile commit", origin, "--upload-pack=touch pwned", 0, "invalid commit id"},
		{"short commit", origin, c1[:7], 0, "invalid commit id"},
		{"negative slot", origin, c1, -1, "slot -1 is negative"},
		{"hostile url", "--upload-pack=touch pwned", c1, 0, "starts with '-'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := w.Prepare(ctx, tt.url, tt.commit, tt.slot)
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
	noFileNamed(t, "pwned", work, origin)
}

func TestPrepareFetchesFromIncompleteLocalRepositories(t *testing.T) {
	// A shallow clone or a partial clone lacks objects its commits point at:
	// its objects are fetched into a mirror, never borrowed. (Fetching from a
	// partial clone works only while it has every object its branches need:
	// git upload-pack does not fetch missing ones from its promisor. Here it
	// has, its origin having a single commit.)
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		commits int
		clone   []string
	}{
		{"shallow", 2, []string{"--depth=1"}},
		{"partial", 1, []string{"--filter=blob:none"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			origin := newRepo(t)
			gitT(t, origin, "config", "uploadpack.allowFilter", "true")
			var tip string
			for i := range tt.commits {
				tip = commitFiles(t, origin, "commit", map[string]string{"a": strconv.Itoa(i), "b": "b"})
			}
			src := filepath.Join(t.TempDir(), "src")
			gitT(t, "", append(append([]string{"clone", "--quiet"}, tt.clone...), "file://"+origin, src)...)
			require.True(t, incompleteHistory(filepath.Join(src, ".git")))
			w := NewWorkspace(t.TempDir(), "")
			dir, err := w.Prepare(ctx, src, tip, 0)
			require.NoError(t, err)
			assert.Equal(t, map[string]string{"a": strconv.Itoa(tt.commits - 1), "b": "b"}, readTree(t, dir))
			assert.Equal(t, filepath.Join(w.workDir, "slots", "0", repoKey(src)), dir)
			assert.NoDirExists(t, filepath.Join(w.workDir, "mirrors", borrowKey(src)+".git"))
			_, err = os.Stat(filepath.Join(w.workDir, "mirrors", repoKey(src)+".git", "objects", "info", "alternates"))
			assert.ErrorIs(t, err, os.ErrNotExist, "nothing borrowed")
			assert.False(t, incompleteHistory(filepath.Join(origin, ".git")))
		})
	}
}

func TestPrepareFallsBackWhenTheBorrowedCommitIsGone(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", map[string]string{"a": "1"})
	w := NewWorkspace(t.TempDir(), "")
	dir, err := w.Prepare(ctx, origin, c1, 0)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(w.workDir, "slots", "0", borrowKey(origin)), dir)

	// A commit the origin never had: the fetched mirror is tried too (it
	// fetches the origin's branches, c1 among them), then the error says
	// what may have happened.
	_, err = w.Prepare(ctx, origin, strings.Repeat("1", 40), 0)
	require.ErrorContains(t, err, "is not in "+origin)
	assert.ErrorContains(t, err, "force-pushed away and pruned?")

	// c1 is force-pushed away and pruned from the origin: the fetched
	// mirror still has it.
	gitT(t, origin, "checkout", "--quiet", "--orphan", "other")
	gitT(t, origin, "rm", "--quiet", "-rf", ".")
	c2 := commitFiles(t, origin, "unrelated", map[string]string{"c": "3"})
	gitT(t, origin, "branch", "--quiet", "-D", "main")
	gitT(t, origin, "reflog", "expire", "--expire=now", "--all")
	gitT(t, origin, "gc", "--quiet", "--prune=now")
	require.Error(t, exec.Command("git", "-C", origin, "cat-file", "-e", c1).Run(), "the origin still has %s", c1)
	dir, err = w.Prepare(ctx, origin, c1, 0)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(w.workDir, "slots", "0", repoKey(origin)), dir)
	assert.Equal(t, map[string]string{"a": "1"}, readTree(t, dir))
	assert.Equal(t, c1, gitT(t, dir, "rev-parse", "HEAD"))

	// New commits are borrowed again.
	dir, err = w.Prepare(ctx, origin, c2, 0)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(w.workDir, "slots", "0", borrowKey(origin)), dir)
	assert.Equal(t, map[string]string{"c": "3"}, readTree(t, dir))

	// Gone from the origin and never fetched: the job errs, saying why.
	other := NewWorkspace(t.TempDir(), "")
	_, err = other.Prepare(ctx, origin, c1, 0)
	require.ErrorContains(t, err, "is not in "+origin)
	assert.ErrorContains(t, err, "no longer there (force-pushed away and pruned?)")
}

// TestPrepareConcurrentFetchesIntoOneMirror: jobs of one runner in four
// slots at once, each at a commit the mirror lacks, fetch into the one
// mirror of a repository that is not borrowed: each slot ends at its own
// commit and the mirror stays sound.
func TestPrepareConcurrentFetchesIntoOneMirror(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	url := "file://" + origin
	c0 := commitFiles(t, origin, "zero", map[string]string{"f": "0"})
	work := t.TempDir()
	w := NewWorkspace(work, "")
	_, err := w.Prepare(ctx, url, c0, 0) // the mirror exists, with c0 only
	require.NoError(t, err)
	commits := make([]string, 4)
	for i := range commits {
		commits[i] = commitFiles(t, origin, "c"+strconv.Itoa(i), map[string]string{"f": strconv.Itoa(i + 1)})
	}

	dirs := make([]string, len(commits))
	errs := make([]error, len(commits))
	var wg sync.WaitGroup
	for slot, c := range commits {
		wg.Go(func() { dirs[slot], errs[slot] = w.Prepare(ctx, url, c, slot) })
	}
	wg.Wait()

	for slot := range commits {
		require.NoError(t, errs[slot], "slot %d", slot)
		assert.Equal(t, filepath.Join(work, "slots", strconv.Itoa(slot), repoKey(url)), dirs[slot])
		assert.Equal(t, commits[slot], gitT(t, dirs[slot], "rev-parse", "HEAD"), "slot %d", slot)
		assert.Equal(t, strconv.Itoa(slot+1), readTree(t, dirs[slot])["f"], "slot %d", slot)
	}
	mirrors, err := os.ReadDir(filepath.Join(work, "mirrors"))
	require.NoError(t, err)
	require.Len(t, mirrors, 1, "one mirror for the repository")
	gitT(t, filepath.Join(work, "mirrors", mirrors[0].Name()), "fsck", "--no-progress")
}
