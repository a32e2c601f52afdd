package gitexec

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenRepoLocal(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	commitFiles(t, origin, "one", map[string]string{"a.txt": "1"})
	bare := filepath.Join(t.TempDir(), "master.git")
	gitT(t, "", "clone", "--quiet", "--bare", origin, bare)
	linked := filepath.Join(t.TempDir(), "linked")
	gitT(t, origin, "worktree", "add", "--quiet", "-b", "other", linked)

	tests := []struct {
		name     string
		path     string
		wantName string
	}{
		{"non-bare", origin, "origin"},
		{"bare", bare, "master"},
		{"bare with trailing slash", bare + "/", "master"},
		{"dot git directory", filepath.Join(origin, ".git"), "origin"},
		{"linked worktree", linked, "linked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := OpenRepo(ctx, tt.path, "")
			require.NoError(t, err)
			assert.Equal(t, tt.wantName, r.Name())
			assert.True(t, filepath.IsAbs(r.URL()))
			tip, err := r.Tip(ctx, "main")
			require.NoError(t, err)
			assert.Equal(t, gitT(t, origin, "rev-parse", "main"), tip)
		})
	}
}

func TestOpenRepoRelativePathIsMadeAbsolute(t *testing.T) {
	origin := newRepo(t)
	t.Chdir(filepath.Dir(origin))
	r, err := OpenRepo(context.Background(), "origin", "")
	require.NoError(t, err)
	assert.Equal(t, origin, r.URL())
}

func TestOpenRepoErrors(t *testing.T) {
	ctx := context.Background()
	notRepo := t.TempDir()
	origin := newRepo(t)
	sub := filepath.Join(origin, "sub")
	require.NoError(t, os.Mkdir(sub, 0o755))
	file := filepath.Join(notRepo, "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))

	tests := []struct {
		name    string
		url     string
		wantErr string
	}{
		{"not a repository", notRepo, "no git repository at " + notRepo + `: run "git init" there or pass --repo with the path of a clone`},
		{"subdirectory of a repository", sub, "no git repository at " + sub + `: run "git init" there`},
		{"missing", filepath.Join(notRepo, "gone"), "no git repository at " + filepath.Join(notRepo, "gone") + ": the directory does not exist: pass --repo"},
		{"file", file, "no git repository at " + file + ": it is a file"},
		{"empty", "", "no repository given: pass --repo"},
		{"option", "--upload-pack=touch pwned", "starts with '-'"},
		{"remote without cache", "https://example.invalid/x.git", "needs a cache directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := OpenRepo(ctx, tt.url, "")
			assert.Nil(t, r)
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestOpenRepoUnreachableRemote(t *testing.T) {
	missing := "file://" + filepath.Join(t.TempDir(), "nothing.git")
	_, err := OpenRepo(context.Background(), missing, t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "clone "+missing)
	assert.Contains(t, err.Error(), "check the URL")
}

func TestIsRemoteURL(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		{"https://github.com/a/b.git", true},
		{"file:///srv/repo.git", true},
		{"git@github.com:a/b.git", true},
		{"host:repo", true},
		{"/srv/repo.git", false},
		{"./a:b", false},
		{"repo", false},
		{"dir/with:colon", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			assert.Equal(t, tt.want, isRemoteURL(tt.url))
		})
	}
}

func TestRepoName(t *testing.T) {
	tests := map[string]string{
		"/srv/master.git":              "master",
		"/srv/master.git/":             "master",
		"/home/u/project/.git":         "project",
		"git@github.com:team/app.git":  "app",
		"https://example.com/team/app": "app",
		"host:app":                     "app",
		"/":                            "repo",
	}
	for url, want := range tests {
		t.Run(url, func(t *testing.T) {
			assert.Equal(t, want, repoName(url))
		})
	}
}

func TestDefaultBranch(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	commitFiles(t, origin, "one", nil)
	gitT(t, origin, "checkout", "--quiet", "-b", "trunk")
	r, err := OpenRepo(ctx, origin, "")
	require.NoError(t, err)
	got, err := r.DefaultBranch(ctx)
	require.NoError(t, err)
	assert.Equal(t, "trunk", got)

	gitT(t, origin, "checkout", "--quiet", "--detach")
	_, err = r.DefaultBranch(ctx)
	assert.ErrorContains(t, err, "HEAD is detached: pass --branch")
}

func TestTip(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", nil)
	r, err := OpenRepo(ctx, origin, "")
	require.NoError(t, err)

	tip, err := r.Tip(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, c1, tip, "loose ref")

	gitT(t, origin, "branch", "feature/x")
	gitT(t, origin, "pack-refs", "--all")
	c2 := commitFiles(t, origin, "two", nil)
	tip, err = r.Tip(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, c2, tip, "loose ref after pack-refs")
	tip, err = r.Tip(ctx, "feature/x")
	require.NoError(t, err)
	assert.Equal(t, c1, tip, "packed ref")

	gitT(t, origin, "symbolic-ref", "refs/heads/alias", "refs/heads/feature/x")
	tip, err = r.Tip(ctx, "alias")
	require.NoError(t, err)
	assert.Equal(t, c1, tip, "symbolic ref through git")

	_, err = r.Tip(ctx, "nope")
	assert.ErrorIs(t, err, ErrNoBranch)
	_, err = r.Tip(ctx, "--upload-pack=touch pwned")
	assert.ErrorContains(t, err, "invalid branch name")
}

func TestTipOfEmptyRepository(t *testing.T) {
	origin := newRepo(t)
	r, err := OpenRepo(context.Background(), origin, "")
	require.NoError(t, err)
	_, err = r.Tip(context.Background(), "main")
	assert.ErrorIs(t, err, ErrNoBranch)
}

func TestRemoteRepoMirror(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", nil)
	gitT(t, origin, "checkout", "--quiet", "-b", "trunk")
	cache := t.TempDir()
	url := "file://" + origin

	r, err := OpenRepo(ctx, url, cache)
	require.NoError(t, err)
	assert.Equal(t, url, r.URL())
	assert.Equal(t, "origin", r.Name())
	branch, err := r.DefaultBranch(ctx)
	require.NoError(t, err)
	assert.Equal(t, "trunk", branch)
	tip, err := r.Tip(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, c1, tip)

	// A new commit is fetched on the next Tip.
	gitT(t, origin, "checkout", "--quiet", "main")
	c2 := commitFiles(t, origin, "two", nil)
	tip, err = r.Tip(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, c2, tip)
	rng, err := r.Since(ctx, c1, c2, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{c2}, rng.Commits)
	subject, err := r.Subject(ctx, c2)
	require.NoError(t, err)
	assert.Equal(t, "two", subject)

	// A deleted branch is pruned from the mirror.
	gitT(t, origin, "branch", "--quiet", "-D", "trunk")
	_, err = r.Tip(ctx, "trunk")
	assert.ErrorIs(t, err, ErrNoBranch)

	// Reopening reuses the mirror.
	again, err := OpenRepo(ctx, url, cache)
	require.NoError(t, err)
	tip, err = again.Tip(ctx, "main")
	require.NoError(t, err)
	assert.Equal(t, c2, tip)
	mirrors, err := os.ReadDir(filepath.Join(cache, "mirrors"))
	require.NoError(t, err)
	assert.Len(t, mirrors, 1)
}

func TestSince(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "c1", nil)
	c2 := commitFiles(t, origin, "c2", nil)
	c3 := commitFiles(t, origin, "c3", nil)
	c4 := commitFiles(t, origin, "c4", nil)
	// A merge: side branch from c2 with s1, merged after c4.
	gitT(t, origin, "checkout", "--quiet", "-b", "side", c2)
	s1 := commitFiles(t, origin, "s1", nil)
	gitT(t, origin, "checkout", "--quiet", "main")
	gitT(t, origin, "merge", "--quiet", "--no-ff", "-m", "merge", "side")
	m := gitT(t, origin, "rev-parse", "HEAD")
	// A rewritten history: c2' replaces c2..c4.
	gitT(t, origin, "checkout", "--quiet", "-b", "rewritten", c1)
	c2b := commitFiles(t, origin, "c2 rewritten", nil)
	missing := strings.Repeat("0", 40)

	r, err := OpenRepo(ctx, origin, "")
	require.NoError(t, err)
	tests := []struct {
		name  string
		since string
		tip   string
		max   int
		want  Range
	}{
		{"first sight", "", c4, 10, Range{Tip: c4, Commits: []string{c4}}},
		{"no change", c4, c4, 10, Range{Tip: c4}},
		{"linear, oldest first", c1, c4, 10, Range{Tip: c4, Commits: []string{c2, c3, c4}}},
		{"capped keeps the newest", c1, c4, 2, Range{Tip: c4, Commits: []string{c3, c4}, Skipped: 1}},
		{"no cap", c1, c4, 0, Range{Tip: c4, Commits: []string{c2, c3, c4}}},
		{"force push", c4, c2b, 10, Range{Tip: c2b, Commits: []string{c2b}, Forced: true}},
		{"earlier tip gone", missing, c4, 10, Range{Tip: c4, Commits: []string{c4}, Forced: true}},
		{"reset backwards", c4, c2, 10, Range{Tip: c2, Commits: []string{c2}, Forced: true}},
		{"merged branch", s1, m, 10, Range{Tip: m, Commits: []string{c3, c4, m}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Since(ctx, tt.since, tt.tip, tt.max)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
		// Log agrees with Since, and adds the subjects.
		t.Run(tt.name+"/log", func(t *testing.T) {
			got, subjects, err := r.Log(ctx, tt.since, tt.tip, tt.max)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			want, err := r.Subjects(ctx, tt.want.Commits)
			require.NoError(t, err)
			assert.Equal(t, want, subjects)
		})
	}

	t.Run("merge includes the side branch, parents first", func(t *testing.T) {
		got, err := r.Since(ctx, c4, m, 10)
		require.NoError(t, err)
		assert.Equal(t, m, got.Tip)
		assert.ElementsMatch(t, []string{s1, m}, got.Commits)
		assert.Equal(t, m, got.Commits[len(got.Commits)-1])
		log, subjects, err := r.Log(ctx, c4, m, 10)
		require.NoError(t, err)
		assert.Equal(t, got, log)
		assert.Equal(t, []string{"s1", "merge"}, subjects)
	})
}

func TestHostileValuesNeverReachGit(t *testing.T) {
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", nil)
	work := t.TempDir()
	t.Chdir(work)
	r, err := OpenRepo(ctx, origin, "")
	require.NoError(t, err)
	const hostile = "--upload-pack=touch pwned"

	_, err = r.Since(ctx, hostile, c1, 10)
	assert.ErrorContains(t, err, "invalid commit id")
	_, err = r.Since(ctx, c1, hostile, 10)
	assert.ErrorContains(t, err, "invalid commit id")
	_, _, err = r.Log(ctx, hostile, c1, 10)
	assert.ErrorContains(t, err, "invalid commit id")
	_, _, err = r.Log(ctx, c1, hostile, 10)
	assert.ErrorContains(t, err, "invalid commit id")
	_, err = r.Subject(ctx, hostile)
	assert.ErrorContains(t, err, "invalid commit id")
	_, err = r.Tip(ctx, hostile)
	assert.ErrorContains(t, err, "invalid branch name")
	_, err = OpenRepo(ctx, hostile, work)
	assert.ErrorContains(t, err, "starts with '-'")
	_, err = OpenRepo(ctx, "ext::sh -c touch% pwned", work)
	assert.Error(t, err)
	w := NewWorkspace(filepath.Join(work, "ws"), "")
	_, err = w.Prepare(ctx, origin, hostile, 0)
	assert.ErrorContains(t, err, "invalid commit id")
	_, err = w.Prepare(ctx, hostile, c1, 0)
	assert.ErrorContains(t, err, "starts with '-'")
	_, err = w.Prepare(ctx, "ext::sh -c touch% pwned", c1, 0)
	assert.Error(t, err)

	noFileNamed(t, "pwned", work, origin)
}

func TestLogWithShowSignature(t *testing.T) {
	// log.showSignature=true in the user's configuration makes git log print
	// gpg's verdict on each signed commit; Log must not read it as commits.
	ctx := context.Background()
	origin := newRepo(t)
	c1 := commitFiles(t, origin, "one", nil)
	// A commit with a (bogus) signature: gpg has something to say about it.
	signed := fmt.Sprintf("tree %s\nparent %s\nauthor Volt Test <test@volt.invalid> 1700000000 +0000\n"+
		"committer Volt Test <test@volt.invalid> 1700000000 +0000\n"+
		"gpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEE\n -----END PGP SIGNATURE-----\n\nsigned\n",
		gitT(t, origin, "rev-parse", c1+"^{tree}"), c1)
	obj := filepath.Join(t.TempDir(), "commit")
	require.NoError(t, os.WriteFile(obj, []byte(signed), 0o644))
	c2 := gitT(t, origin, "hash-object", "-t", "commit", "-w", obj)
	gitT(t, origin, "update-ref", "refs/heads/main", c2)
	c3 := commitFiles(t, origin, "three", nil)

	config := filepath.Join(t.TempDir(), "gitconfig")
	require.NoError(t, os.WriteFile(config, []byte("[log]\n\tshowSignature = true\n"), 0o644))
	t.Setenv("GIT_CONFIG_GLOBAL", config)
	t.Setenv("GNUPGHOME", t.TempDir())
	r, err := OpenRepo(ctx, origin, "")
	require.NoError(t, err)
	want := Range{Tip: c3, Commits: []string{c2, c3}}
	got, subjects, err := r.Log(ctx, c1, c3, 10)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, []string{"signed", "three"}, subjects)

	// Output Log cannot parse, whatever the reason, falls back to Since and Subjects.
	real, err := exec.LookPath("git")
	require.NoError(t, err)
	bin := t.TempDir()
	script := "#!/bin/sh\nfor a; do if [ \"$a\" = log ]; then \"" + real + "\" \"$@\"; echo 'gpg: surprise'; exit; fi; done\nexec \"" + real + "\" \"$@\"\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "git"), []byte(script), 0o755))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	got, subjects, err = r.Log(ctx, c1, c3, 10)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, []string{"signed", "three"}, subjects)
}
