package gitexec

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ErrNoBranch is returned (wrapped) by Repo.Tip when the branch does not exist,
// for example in a new repository before its first push.
var ErrNoBranch = errors.New("branch does not exist")

// Repo is a git repository watched by the observer: a local repository read in
// place, or a remote one kept as a bare mirror in a cache directory.
type Repo struct {
	url       string // absolute path or remote URL
	name      string
	gitDir    string // git directory (HEAD lives here)
	commonDir string // common git directory (refs and objects live here)
	remote    bool

	fetchMu sync.Mutex // one fetch into the mirror at a time
}

// OpenRepo checks that url is a reachable git repository and returns it. url is
// a local path to a bare or non-bare repository (made absolute) or a remote URL
// (one containing "://", or scp-like user@host:path). For a remote URL a bare
// mirror is kept under cacheDir and fetched on each Tip.
func OpenRepo(ctx context.Context, url, cacheDir string) (*Repo, error) {
	if url == "" {
		return nil, errors.New("no repository given: pass --repo with the path or URL of a git repository")
	}
	if strings.HasPrefix(url, "-") {
		return nil, fmt.Errorf("repository %s starts with '-': pass a path or URL (write ./%s for a local path)", quote(url), url)
	}
	if isRemoteURL(url) {
		return openRemote(ctx, url, cacheDir)
	}
	return openLocal(ctx, url)
}

// isRemoteURL reports whether url names a remote repository the way git reads
// it: a URL with a scheme, or scp-like [user@]host:path with no '/' before the ':'.
func isRemoteURL(url string) bool {
	if strings.Contains(url, "://") {
		return true
	}
	colon := strings.IndexByte(url, ':')
	return colon > 0 && !strings.Contains(url[:colon], "/")
}

func openLocal(ctx context.Context, path string) (*Repo, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", path, err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no git repository at %s: the directory does not exist: pass --repo with the path of a clone", abs)
		}
		return nil, fmt.Errorf("open repository %s: %w", abs, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("no git repository at %s: it is a file: pass --repo with the path of a clone", abs)
	}
	// The ceiling stops git from finding a repository above abs: a
	// subdirectory of a clone is not the repository to watch.
	out, err := gitCmd{
		dir:  abs,
		env:  []string{"GIT_CEILING_DIRECTORIES=" + filepath.Dir(abs)},
		args: []string{"rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir"},
	}.run(ctx)
	if err != nil {
		var exitErr *ExitError
		if errors.As(err, &exitErr) && strings.Contains(exitErr.Stderr, "not a git repository") {
			return nil, fmt.Errorf("no git repository at %s: run \"git init\" there or pass --repo with the path of a clone", abs)
		}
		return nil, fmt.Errorf("open repository %s: %w", abs, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return nil, fmt.Errorf("open repository %s: unexpected output of git rev-parse: %q", abs, out)
	}
	return &Repo{url: abs, name: repoName(abs), gitDir: lines[0], commonDir: lines[1]}, nil
}

func openRemote(ctx context.Context, url, cacheDir string) (*Repo, error) {
	if cacheDir == "" {
		return nil, fmt.Errorf("open repository %s: a remote repository needs a cache directory for its mirror", url)
	}
	mirror, err := filepath.Abs(filepath.Join(cacheDir, "mirrors", repoKey(url)+".git"))
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", url, err)
	}
	r := &Repo{url: url, name: repoName(url), gitDir: mirror, commonDir: mirror, remote: true}
	if isBareRepo(ctx, mirror) {
		if err := r.fetch(ctx); err != nil {
			return nil, err
		}
		return r, nil
	}
	if err := cloneBare(ctx, url, mirror); err != nil {
		return nil, err
	}
	return r, nil
}

// isBareRepo reports whether dir is a usable bare repository.
func isBareRepo(ctx context.Context, dir string) bool {
	out, err := git(ctx, dir, "rev-parse", "--is-bare-repository")
	return err == nil && strings.TrimSpace(string(out)) == "true"
}

// cloneBare clones url into a new bare repository at dir, through a temporary
// directory so that an interrupted clone never leaves a half repository at dir.
func cloneBare(ctx context.Context, url, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("clone %s: %w", url, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".clone-*")
	if err != nil {
		return fmt.Errorf("clone %s: %w", url, err)
	}
	defer os.RemoveAll(tmp) //nolint:errcheck // best-effort cleanup of a temporary directory
	into := filepath.Join(tmp, "repo.git")
	if _, err := (gitCmd{args: []string{"-c", "protocol.ext.allow=never", "clone", "--bare", "--quiet", "--", url, into}}).run(ctx); err != nil {
		return fmt.Errorf("clone %s: %w: check the URL, the network and the credentials (git prompts are off: use an SSH key or a credential helper)", url, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clone %s: replace broken mirror: %w", url, err)
	}
	if err := os.Rename(into, dir); err != nil {
		return fmt.Errorf("clone %s: %w", url, err)
	}
	return nil
}

// fetchHeads updates the branches of the bare repository gitDir from url.
func fetchHeads(ctx context.Context, gitDir, url string) error {
	_, err := git(ctx, gitDir, "fetch", "--quiet", "--prune", "--no-tags", "--", url, "+refs/heads/*:refs/heads/*")
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	return nil
}

func (r *Repo) fetch(ctx context.Context) error {
	r.fetchMu.Lock()
	defer r.fetchMu.Unlock()
	return fetchHeads(ctx, r.gitDir, r.url)
}

// repoName is the last path element of url without ".git": "/srv/master.git"
// and "git@host:team/master.git" both give "master".
func repoName(url string) string {
	s := strings.TrimRight(url, "/")
	s = strings.TrimSuffix(s, "/.git")
	if i := strings.LastIndexAny(s, "/:"); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSuffix(s, ".git")
	if s == "" {
		return "repo"
	}
	return s
}

// repoKey names a repository's mirror: its name, made safe for a file name,
// and a short hash of the URL so that two repositories of one name differ.
func repoKey(url string) string {
	name := []byte(repoName(url))
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			name[i] = '_'
		}
	}
	if len(name) > 40 {
		name = name[:40]
	}
	sum := sha256.Sum256([]byte(url))
	return strings.TrimLeft(string(name), ".") + "-" + hex.EncodeToString(sum[:6])
}

// URL returns the absolute path or URL of the repository: what runners fetch from.
func (r *Repo) URL() string { return r.url }

// Name returns the last path element of the URL without ".git" ("master.git" -> "master").
func (r *Repo) Name() string { return r.name }

// DefaultBranch returns the branch the repository's HEAD names. For a remote
// repository it is the one its HEAD named when the mirror was cloned.
func (r *Repo) DefaultBranch(ctx context.Context) (string, error) {
	out, err := git(ctx, r.gitDir, "symbolic-ref", "--quiet", "HEAD")
	if err != nil {
		if exitCode(err) == 1 {
			return "", fmt.Errorf("default branch of %s: HEAD is detached: pass --branch with the branch to watch", r.url)
		}
		return "", fmt.Errorf("default branch of %s: %w", r.url, err)
	}
	ref := strings.TrimSpace(string(out))
	branch, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok || ValidateRef(branch) != nil {
		return "", fmt.Errorf("default branch of %s: HEAD names %s, not a branch: pass --branch with the branch to watch", r.url, quote(ref))
	}
	return branch, nil
}

// Tip returns the commit branch points to, or an error wrapping ErrNoBranch if
// the branch does not exist (yet). A local repository's refs are read from its
// files without running git; a remote repository's mirror is fetched first.
func (r *Repo) Tip(ctx context.Context, branch string) (string, error) {
	if err := ValidateRef(branch); err != nil {
		return "", err
	}
	if r.remote {
		if err := r.fetch(ctx); err != nil {
			return "", err
		}
	}
	id, err := readRef(r.commonDir, branch)
	if errors.Is(err, errRefFallback) {
		id, err = r.revParseBranch(ctx, branch)
	}
	if err != nil {
		return "", fmt.Errorf("tip of %s in %s: %w", branch, r.url, err)
	}
	return id, nil
}

// revParseBranch asks git for the commit of a branch.
func (r *Repo) revParseBranch(ctx context.Context, branch string) (string, error) {
	out, err := git(ctx, r.gitDir, "rev-parse", "--verify", "--quiet", "--end-of-options", "refs/heads/"+branch+"^{commit}")
	if err != nil {
		if exitCode(err) == 1 {
			return "", ErrNoBranch
		}
		return "", err
	}
	id := strings.TrimSpace(string(out))
	if err := ValidateCommit(id); err != nil {
		return "", fmt.Errorf("git rev-parse: %w", err)
	}
	return id, nil
}

// Range is the result of Repo.Since: the new commits of a branch.
type Range struct {
	// Tip is the commit the branch points to now.
	Tip string
	// Commits are the commits to build, oldest first; the newest is Tip.
	Commits []string
	// Forced is true when the earlier tip is not an ancestor of Tip (a force push).
	Forced bool
	// Skipped counts the oldest new commits left out to respect the maximum.
	Skipped int
}

// Since lists the commits reachable from tip and not from since, oldest first
// (parents before children). since == "" means the branch is seen for the
// first time: Commits is [tip]. If since is not an ancestor of tip (a force
// push), Forced is set and Commits is [tip]. If there are more than max
// commits (max > 0), the newest max are kept and Skipped counts the rest.
func (r *Repo) Since(ctx context.Context, since, tip string, max int) (Range, error) {
	if err := ValidateCommit(tip); err != nil {
		return Range{}, fmt.Errorf("commits of %s: %w", r.url, err)
	}
	rng := Range{Tip: tip}
	if since == "" {
		rng.Commits = []string{tip}
		return rng, nil
	}
	if err := ValidateCommit(since); err != nil {
		return Range{}, fmt.Errorf("commits of %s: %w", r.url, err)
	}
	if since == tip {
		return rng, nil
	}
	forced, err := r.isForced(ctx, since, tip)
	if err != nil {
		return Range{}, fmt.Errorf("commits of %s from %s to %s: %w", r.url, since, tip, err)
	}
	if forced {
		rng.Forced = true
		rng.Commits = []string{tip}
		return rng, nil
	}
	out, err := git(ctx, r.gitDir, "rev-list", "--reverse", "--topo-order", "--end-of-options", tip, "^"+since, "--")
	if err != nil {
		return Range{}, fmt.Errorf("commits of %s from %s to %s: %w", r.url, since, tip, err)
	}
	commits := strings.Fields(string(out))
	for _, c := range commits {
		if err := ValidateCommit(c); err != nil {
			return Range{}, fmt.Errorf("commits of %s: git rev-list: %w", r.url, err)
		}
	}
	rng.Skipped = skipped(len(commits), max)
	rng.Commits = commits[rng.Skipped:]
	return rng, nil
}

// skipped is how many of n commits, oldest first, are left out to keep the
// newest max (max 0: none).
func skipped(n, max int) int {
	if max > 0 && n > max {
		return n - max
	}
	return 0
}

// isForced reports whether since is missing or not an ancestor of tip.
func (r *Repo) isForced(ctx context.Context, since, tip string) (bool, error) {
	ok, err := hasCommit(ctx, r.gitDir, since)
	if err != nil || !ok {
		return !ok, err
	}
	_, err = git(ctx, r.gitDir, "merge-base", "--is-ancestor", "--end-of-options", since, tip)
	if err == nil {
		return false, nil
	}
	if exitCode(err) == 1 {
		return true, nil
	}
	return false, err
}

// Subject returns the first line of commit's message.
func (r *Repo) Subject(ctx context.Context, commit string) (string, error) {
	subjects, err := r.Subjects(ctx, []string{commit})
	if err != nil {
		return "", err
	}
	return subjects[0], nil
}

// Subjects returns the subject lines of commits, in order, with one git
// process for all of them.
func (r *Repo) Subjects(ctx context.Context, commits []string) ([]string, error) {
	if len(commits) == 0 {
		return nil, nil
	}
	for _, c := range commits {
		if err := ValidateCommit(c); err != nil {
			return nil, err
		}
	}
	args := append([]string{"log", "--no-walk=unsorted", "--format=%H %s", "--end-of-options"}, commits...)
	out, err := git(ctx, r.gitDir, append(args, "--")...)
	if err != nil {
		return nil, fmt.Errorf("subjects of %d commits in %s: %w", len(commits), r.url, err)
	}
	byID := map[string]string{}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		id, subject, _ := strings.Cut(line, " ")
		byID[id] = subject
	}
	subjects := make([]string, len(commits))
	for i, c := range commits {
		subjects[i] = byID[c]
	}
	return subjects, nil
}

// Log is Since plus the subject line of each commit (nil when they cannot
// be read: they are for display only), with one git process in the usual
// case instead of four (cat-file, merge-base, rev-list, log): `git log
// --boundary tip ^since` lists the new commits and marks the excluded
// commits they grow from, and since is an ancestor of tip exactly when it
// is one of those. A failure (since is not in the repository, or output
// this code cannot parse) falls back to Since and Subjects.
func (r *Repo) Log(ctx context.Context, since, tip string, max int) (Range, []string, error) {
	// Invalid ids skip the one-process path: Since refuses them.
	if since != "" && since != tip && ValidateCommit(since) == nil && ValidateCommit(tip) == nil {
		// --no-show-signature: log.showSignature in the user's configuration
		// would add gpg's lines to the output.
		out, err := git(ctx, r.gitDir, "log", "--no-show-signature", "--boundary", "--topo-order", "--reverse", "--format=%m %H %s", "--end-of-options", tip, "^"+since, "--")
		if err == nil {
			if rng, subjects, err := r.parseLog(ctx, out, since, tip, max); err == nil {
				return rng, subjects, nil
			}
		}
		if ctx.Err() != nil {
			return Range{}, nil, fmt.Errorf("commits of %s from %s to %s: %w", r.url, since, tip, ctx.Err())
		}
	}
	// A first or unchanged tip, or the fallback.
	rng, err := r.Since(ctx, since, tip, max)
	if err != nil || len(rng.Commits) == 0 {
		return rng, nil, err
	}
	return rng, r.subjectsOrNil(ctx, rng.Commits), nil
}

// parseLog reads the output of Log's `git log --boundary` of tip ^since.
func (r *Repo) parseLog(ctx context.Context, out []byte, since, tip string, max int) (Range, []string, error) {
	rng := Range{Tip: tip}
	var commits, subjects []string
	grownFromSince := false
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		mark, rest, _ := strings.Cut(line, " ")
		id, subject, _ := strings.Cut(rest, " ")
		if err := ValidateCommit(id); err != nil {
			return Range{}, nil, fmt.Errorf("commits of %s: git log: %w", r.url, err)
		}
		switch mark {
		case "-":
			grownFromSince = grownFromSince || id == since
		case ">":
			commits = append(commits, id)
			subjects = append(subjects, subject)
		default:
			return Range{}, nil, fmt.Errorf("commits of %s: git log: unexpected line %q", r.url, line)
		}
	}
	if !grownFromSince {
		// A force push: build the tip only.
		rng.Forced = true
		rng.Commits = []string{tip}
		if n := len(commits); n > 0 && commits[n-1] == tip {
			return rng, subjects[n-1:], nil
		}
		return rng, r.subjectsOrNil(ctx, rng.Commits), nil
	}
	rng.Skipped = skipped(len(commits), max)
	rng.Commits = commits[rng.Skipped:]
	return rng, subjects[rng.Skipped:], nil
}

// subjectsOrNil is Subjects, or nil when they cannot be read (they are for display only).
func (r *Repo) subjectsOrNil(ctx context.Context, commits []string) []string {
	subjects, err := r.Subjects(ctx, commits)
	if err != nil {
		return nil
	}
	return subjects
}
