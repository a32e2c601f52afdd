package gitexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Workspace keeps a runner's checkouts: a persistent bare mirror of each
// repository and one worktree per runner slot, moved from commit to commit
// with a forced checkout and git clean, so that only changed files are written.
//
// The layout under the work directory is mirrors/<key>.git and
// slots/<slot>/<key>, where key is the repository's name and a short hash of
// its URL. A repository on a local path is not fetched: its mirror
// (key <name>-<hash>-local) borrows the repository's own objects through
// objects/info/alternates, unless the repository is shallow or a partial
// clone (its objects do not make a complete history), or the commit is not
// in it any more: then it is fetched like a remote one. A Workspace is safe
// for concurrent use by several slots.
//
// Borrowing has a limit: a job's git commands read the repository's objects
// while it runs, so a repository that deletes unreachable objects at once
// (`git gc --prune=now` after a force push) can remove objects a running job
// still needs, and that job's git commands fail. git's default grace period
// (gc.pruneExpire, two weeks) leaves them alone.
type Workspace struct {
	workDir  string
	fallback string

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// NewWorkspace returns a Workspace keeping its mirrors and worktrees under
// workDir. fallback, if non-empty, is a local clone to fetch missing commits
// from before the repository itself (the original runner's --repo flag).
func NewWorkspace(workDir, fallback string) *Workspace {
	return &Workspace{workDir: workDir, fallback: fallback, locks: map[string]*sync.Mutex{}}
}

// lock takes the mutex called name and returns its unlock function.
func (w *Workspace) lock(name string) func() {
	w.mu.Lock()
	m, ok := w.locks[name]
	if !ok {
		m = &sync.Mutex{}
		w.locks[name] = m
	}
	w.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// Prepare brings slot's worktree of repoURL to commit and returns its
// directory. The first use of a repository creates its mirror, the first use
// of a slot creates the worktree; after that only missing commits are
// fetched (a local repository's are borrowed, see Workspace) and the
// worktree is moved with `git checkout --force --detach` and, when anything
// untracked is left, `git clean -ffdx`, so nothing from an earlier job
// survives. A broken worktree (deleted directory, damaged metadata) is
// rebuilt. commit must be a full commit id (ValidateCommit).
func (w *Workspace) Prepare(ctx context.Context, repoURL, commit string, slot int) (string, error) {
	if err := ValidateCommit(commit); err != nil {
		return "", fmt.Errorf("prepare workspace: %w", err)
	}
	if slot < 0 {
		return "", fmt.Errorf("prepare workspace: slot %d is negative", slot)
	}
	url, err := w.sourceURL(repoURL)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(w.workDir, 0o755); err != nil {
		return "", fmt.Errorf("prepare workspace: create work directory: %w", err)
	}
	// git records resolved paths in worktree metadata: compare like with like.
	workDir, err := filepath.EvalSymlinks(w.workDir)
	if err == nil {
		workDir, err = filepath.Abs(workDir)
	}
	if err != nil {
		return "", fmt.Errorf("prepare workspace: %w", err)
	}
	key := repoKey(url)
	borrowed := false
	if objDir, ok := w.borrowable(url); ok {
		bkey := borrowKey(url)
		found, err := w.borrowCommit(ctx, bkey, filepath.Join(workDir, "mirrors", bkey+".git"), url, objDir, commit)
		if err != nil {
			return "", err
		}
		// Not found: gone from url (force-pushed away and pruned?). The
		// fetched mirror, if an earlier job made one, may still hold it.
		if found {
			key, borrowed = bkey, true
		}
	}
	mirror := filepath.Join(workDir, "mirrors", key+".git")
	wt := filepath.Join(workDir, "slots", strconv.Itoa(slot), key)

	defer w.lock("slot " + wt)()
	if !borrowed {
		if err := w.fetchCommit(ctx, key, mirror, url, commit); err != nil {
			return "", err
		}
	}
	repaired := false
	if !worktreeOK(wt, mirror) {
		if err := w.addWorktree(ctx, key, mirror, wt, commit); err != nil {
			return "", err
		}
		repaired = true
	}
	err = moveWorktree(ctx, mirror, wt, commit)
	if err != nil && !repaired {
		// A killed job or runner can leave a lock file or a damaged index: start over.
		if err := w.addWorktree(ctx, key, mirror, wt, commit); err != nil {
			return "", err
		}
		err = moveWorktree(ctx, mirror, wt, commit)
	}
	if err != nil {
		return "", fmt.Errorf("prepare %s at %s in %s: %w", url, commit, wt, err)
	}
	touch(mirror)
	return wt, nil
}

// sourceURL returns the URL to fetch repoURL from: remote URLs as they are,
// local paths made absolute.
func (w *Workspace) sourceURL(repoURL string) (string, error) {
	if repoURL == "" {
		if w.fallback == "" {
			return "", errors.New("prepare workspace: no repository URL: the dispatcher must send one, or start the runner with --repo")
		}
		repoURL = w.fallback
	}
	if strings.HasPrefix(repoURL, "-") {
		return "", fmt.Errorf("prepare workspace: repository %s starts with '-': pass a path or URL", quote(repoURL))
	}
	if isRemoteURL(repoURL) {
		return repoURL, nil
	}
	abs, err := filepath.Abs(repoURL)
	if err != nil {
		return "", fmt.Errorf("prepare workspace: %w", err)
	}
	return abs, nil
}

// borrowable reports whether the worktree of url can borrow its objects from
// url's own object directory instead of fetching them into a mirror, and
// returns that directory: url must be a local repository and the fallback
// clone, if any, url itself (a fallback is fetched from, and fetched objects
// must never depend on borrowed ones), and url must be neither shallow nor a
// partial clone: their commits lack parents or trees and blobs, which the
// mirror, with no shallow file and no promisor remote, would take for a
// corrupt repository.
func (w *Workspace) borrowable(url string) (string, bool) {
	if isRemoteURL(url) {
		return "", false
	}
	if w.fallback != "" {
		fallback, err := filepath.Abs(w.fallback)
		if err != nil || fallback != url {
			return "", false
		}
	}
	objDir, err := localObjectDir(url)
	// git reads alternates line by line and unquotes a line starting with '"'.
	if err != nil || strings.ContainsAny(objDir, "\n\r") || strings.HasPrefix(objDir, `"`) {
		return "", false
	}
	if incompleteHistory(filepath.Dir(objDir)) {
		return "", false
	}
	return objDir, true
}

// incompleteHistory reports whether the repository whose (common) git
// directory is gitDir may lack objects its commits point at: it is shallow
// (a shallow file) or a partial clone (extensions.partialClone, a promisor
// remote or a promisor pack). The configuration is not parsed: any mention
// of a partial clone counts, and so does an unreadable configuration.
func incompleteHistory(gitDir string) bool {
	if _, err := os.Lstat(filepath.Join(gitDir, "shallow")); !errors.Is(err, fs.ErrNotExist) {
		return true
	}
	config, err := os.ReadFile(filepath.Join(gitDir, "config"))
	if err != nil {
		return true
	}
	lower := bytes.ToLower(config)
	if bytes.Contains(lower, []byte("partialclone")) || bytes.Contains(lower, []byte("promisor")) {
		return true
	}
	promisors, _ := filepath.Glob(filepath.Join(gitDir, "objects", "pack", "*.promisor")) // only ErrBadPattern, impossible here
	return len(promisors) > 0
}

// borrowKey names the mirror of a local repository whose objects are
// borrowed: never the same as a fetched mirror's (repoKey), so that a
// mirror never mixes fetched objects with borrowed ones.
func borrowKey(url string) string { return repoKey(url) + "-local" }

// createMirror replaces whatever is at mirror with a new bare repository.
func createMirror(ctx context.Context, mirror, url string) error {
	if err := os.RemoveAll(mirror); err != nil {
		return fmt.Errorf("create mirror of %s: %w", url, err)
	}
	if err := os.MkdirAll(filepath.Dir(mirror), 0o755); err != nil {
		return fmt.Errorf("create mirror of %s: %w", url, err)
	}
	if _, err := (gitCmd{args: []string{"init", "--bare", "--quiet", "--", mirror}}).run(ctx); err != nil {
		return fmt.Errorf("create mirror of %s: %w", url, err)
	}
	return nil
}

// borrowCommit makes sure the mirror of the local repository url exists and
// borrows every object from url's object directory objDir
// (objects/info/alternates) instead of copying them: nothing is fetched. It
// reports whether the mirror sees commit; false means the commit is not in
// url (never pushed there, or force-pushed away and pruned), and the caller
// falls back to a fetched mirror. The mirror has no refs and no objects of
// its own, so when url is force-pushed and garbage-collected nothing in the
// mirror points at what was removed; only the worktree's previous commit can
// be gone, and Prepare then rebuilds the worktree.
func (w *Workspace) borrowCommit(ctx context.Context, key, mirror, url, objDir, commit string) (bool, error) {
	defer w.lock("mirror " + key)()
	if !looksLikeRepo(mirror) {
		if err := createMirror(ctx, mirror, url); err != nil {
			return false, err
		}
	}
	alternates := filepath.Join(mirror, "objects", "info", "alternates")
	if cur, err := os.ReadFile(alternates); err != nil || string(cur) != objDir+"\n" {
		if err := os.MkdirAll(filepath.Dir(alternates), 0o755); err != nil {
			return false, fmt.Errorf("borrow the objects of %s: %w", url, err)
		}
		if err := writeFileAtomic(alternates, []byte(objDir+"\n")); err != nil {
			return false, fmt.Errorf("borrow the objects of %s: %w", url, err)
		}
	}
	if haveObject(filepath.Join(mirror, "objects"), commit) {
		return true, nil
	}
	return hasCommit(ctx, mirror, commit)
}

// writeFileAtomic replaces path with data through a temporary file and a
// rename. The file is readable by everyone, as git's own files are: a job
// running as another user (--job-user) reads the mirror.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	err = tmp.Chmod(0o644)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return errors.Join(err, os.Remove(tmp.Name()))
	}
	return nil
}

// fetchCommit makes sure the mirror exists and holds commit, fetching from the
// fallback clone first, then from url: its branches, then the commit itself.
// A commit the mirror already holds is found without starting git.
func (w *Workspace) fetchCommit(ctx context.Context, key, mirror, url, commit string) error {
	defer w.lock("mirror " + key)()
	if !looksLikeRepo(mirror) {
		if err := createMirror(ctx, mirror, url); err != nil {
			return err
		}
	}
	if haveObject(filepath.Join(mirror, "objects"), commit) {
		return nil
	}
	if len(commit) != 40 {
		// haveObject reads SHA-1 packs only: ask git before fetching.
		ok, err := hasCommit(ctx, mirror, commit)
		if err != nil || ok {
			return err
		}
	}
	type source struct{ url, refspec string }
	var sources []source
	if w.fallback != "" {
		fallback := w.fallback
		if !isRemoteURL(fallback) {
			if abs, err := filepath.Abs(fallback); err == nil {
				fallback = abs
			}
		}
		if fallback != url {
			sources = append(sources, source{fallback, "+refs/heads/*:refs/remotes/fallback/*"})
		}
	}
	// Last, ask for the commit itself: it may be on no branch any more.
	sources = append(sources, source{url, "+refs/heads/*:refs/heads/*"}, source{url, commit})
	var errs []error
	for _, s := range sources {
		_, err := git(ctx, mirror, "-c", "protocol.ext.allow=never", "fetch", "--quiet", "--no-tags", "--", s.url, s.refspec)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("fetch %s: %w", s.url, ctx.Err())
			}
			errs = append(errs, fmt.Errorf("fetch %s: %w", s.url, err))
			continue
		}
		if ok, err := hasCommit(ctx, mirror, commit); err != nil || ok {
			return err
		}
	}
	if len(errs) == len(sources) {
		return fmt.Errorf("get commit %s: %w", commit, errors.Join(errs...))
	}
	return fmt.Errorf("commit %s is not in %s: it is no longer there (force-pushed away and pruned?), or it was never pushed there: check that the runner uses the repository the observer watches", commit, url)
}

// worktreeOK reports whether wt is a worktree of mirror whose metadata is intact.
func worktreeOK(wt, mirror string) bool {
	adminDir, err := worktreeAdminDir(wt)
	if err != nil || filepath.Dir(adminDir) != filepath.Join(mirror, "worktrees") {
		return false
	}
	back, err := os.ReadFile(filepath.Join(adminDir, "gitdir"))
	return err == nil && filepath.Clean(strings.TrimSpace(string(back))) == filepath.Join(wt, ".git")
}

// worktreeAdminDir reads the worktree's .git file: the path of its metadata
// directory inside the mirror.
func worktreeAdminDir(wt string) (string, error) {
	dir, ok, err := readGitLink(filepath.Join(wt, ".git"))
	if err != nil {
		return "", err
	}
	if !ok || !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%s: not a worktree link", filepath.Join(wt, ".git"))
	}
	return filepath.Clean(dir), nil
}

// addWorktree (re)creates wt as a detached worktree of mirror at commit,
// without checking files out: moveWorktree does that.
func (w *Workspace) addWorktree(ctx context.Context, key, mirror, wt, commit string) error {
	defer w.lock("mirror " + key)()
	if err := os.RemoveAll(wt); err != nil {
		return fmt.Errorf("remove broken worktree %s: %w", wt, err)
	}
	if _, err := git(ctx, mirror, "worktree", "prune"); err != nil {
		return fmt.Errorf("prune worktrees of %s: %w", mirror, err)
	}
	if err := os.MkdirAll(filepath.Dir(wt), 0o755); err != nil {
		return fmt.Errorf("create worktree %s: %w", wt, err)
	}
	if _, err := git(ctx, mirror, "worktree", "add", "--quiet", "--force", "--detach", "--no-checkout", "--", wt, commit); err != nil {
		return fmt.Errorf("create worktree %s: %w", wt, err)
	}
	return nil
}

// moveWorktree checks commit out in wt, discarding every change, and deletes
// every untracked and ignored file (git clean, unless the index and the
// directories show there is none).
func moveWorktree(ctx context.Context, mirror, wt, commit string) error {
	adminDir, err := worktreeAdminDir(wt)
	if err != nil {
		return err
	}
	// Name the repository explicitly: a worktree without its .git link must
	// never make git find (and clean) a repository above it.
	cmd := func(args ...string) gitCmd {
		return gitCmd{dir: wt, args: append([]string{"--git-dir=" + adminDir, "--work-tree=" + wt}, args...)}
	}
	if _, err := cmd("checkout", "--quiet", "--force", "--detach", commit, "--").run(ctx); err != nil {
		return err
	}
	// Most jobs leave no file behind: then git clean, which reads the index
	// and every directory too, has nothing to do and is not started.
	// mayHaveUntracked reads SHA-1 indexes only.
	if len(commit) == 40 && !mayHaveUntracked(wt, filepath.Join(adminDir, "index")) {
		return nil
	}
	if _, err := cmd("clean", "-ffdxq").run(ctx); err != nil {
		return err
	}
	return nil
}
