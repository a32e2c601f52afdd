package gitexec

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// DefaultPath is a job's PATH when the runner has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// A job's environment is built here, never inherited from the runner. Every
// step gets, in this order (a later entry replaces an earlier one of the
// same name):
//
//	PATH      the runner's PATH (DefaultPath if it has none): the tools the
//	          operator installed for jobs are found where the runner finds them
//	HOME      <job dir>/home, empty at the start of every job
//	TMPDIR    <job dir>/tmp, empty at the start of every job
//	LANG      C.UTF-8
//	the runner's variables named by Executor.PassEnv (--pass-env), if set
//	Run.Env   the job's own: CI=true, VOLT=true, VOLT_REPO, VOLT_BRANCH,
//	          VOLT_COMMIT, VOLT_BUILD and .volt.yml's env
//
// The job directory is beside the worktree, named after it:
// <parent>/.<worktree name>.volt-job (a workspace's repository keys never
// start with a dot, so it cannot be a worktree). It is created empty
// before the job's first step and removed after its last, so nothing a job
// leaves in its home or temporary directory reaches the next one.

// jobDirSuffix ends the name of a worktree's job directory.
const jobDirSuffix = ".volt-job"

// job is what the steps of one Execute share.
type job struct {
	dir     string              // the working directory, resolved
	jobDir  string              // home and tmp live here; "" when dir does not exist
	env     []string            // every step's environment
	cred    *syscall.Credential // the user steps run as; nil for the runner's
	sandbox *sandbox            // nil: no sandbox
	bwrap   string              // path of bwrap when sandboxed
}

// prepareJob makes the job directory and works out the environment and the
// sandbox of r's steps. A missing r.Dir is not an error here: each step
// reports it when it cannot start there.
func (e *Executor) prepareJob(r Run) (*job, error) {
	j := &job{dir: r.Dir}
	if e.JobUser != nil {
		j.cred = e.JobUser.Cred
	}
	if !isDir(r.Dir) {
		j.env = e.stepEnv("", "", r.Env)
		return j, nil
	}
	dir, err := filepath.Abs(r.Dir)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("resolve the job's directory: %w", err)
	}
	j.dir = dir
	j.jobDir = filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+jobDirSuffix)
	home, tmp := filepath.Join(j.jobDir, "home"), filepath.Join(j.jobDir, "tmp")
	if err := removeAll(j.jobDir); err != nil {
		return nil, fmt.Errorf("remove the last job's home: %w", err)
	}
	for _, d := range []string{j.jobDir, home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("create the job's home: %w", err)
		}
	}
	if j.cred != nil {
		// The job user writes in its worktree, home and temporary directory.
		if err := chownTree(dir, j.cred); err != nil {
			return nil, fmt.Errorf("give the worktree to job user %s: %w", e.JobUser.Name, err)
		}
		// git refuses a worktree whose metadata (in the runner's mirror)
		// belongs to another user, unless told it is safe.
		gitconfig := fmt.Sprintf("[safe]\n\tdirectory = %s\n", dir)
		if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(gitconfig), 0o600); err != nil {
			return nil, fmt.Errorf("create the job's home: %w", err)
		}
		if err := chownTree(j.jobDir, j.cred); err != nil {
			return nil, fmt.Errorf("give the job's home to job user %s: %w", e.JobUser.Name, err)
		}
	}
	j.env = e.stepEnv(home, tmp, r.Env)
	if e.Isolation == IsolationBwrap {
		if j.bwrap, err = exec.LookPath("bwrap"); err != nil {
			return nil, fmt.Errorf("bwrap not found (--isolation bwrap): install %s", BwrapPackage)
		}
		var hide []string
		for _, p := range resolvePaths(e.Hide) {
			// What the job user cannot reach is hidden from it already,
			// and bwrap, running as that user, could not mount over it.
			if reachable(p, j.cred) {
				hide = append(hide, p)
			}
		}
		j.sandbox = &sandbox{dir: dir, writable: []string{dir, j.jobDir}, readOnly: gitDirs(dir), hide: hide}
	}
	return j, nil
}

// cleanup removes the job directory. An error is not the job's: the next
// job in the same worktree removes the directory first.
func (j *job) cleanup() {
	if j.jobDir != "" {
		removeAll(j.jobDir) //nolint:errcheck // see above
	}
}

// command is the argv of a step that runs script.
func (j *job) command(script string) []string {
	command := []string{shellPath(), "-c", script}
	if j.sandbox != nil {
		return bwrapArgs(j.bwrap, *j.sandbox, command)
	}
	return command
}

// stepEnv is the environment of every step of a job (see the top of this
// file); home and tmp are left out when empty.
func (e *Executor) stepEnv(home, tmp string, jobEnv []string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = DefaultPath
	}
	env := []string{"PATH=" + path}
	if home != "" {
		env = append(env, "HOME="+home, "TMPDIR="+tmp)
	}
	env = append(env, "LANG=C.UTF-8")
	for _, name := range e.PassEnv {
		if validPassEnv(name) != nil {
			continue
		}
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return dedupEnv(append(env, jobEnv...))
}

// dedupEnv keeps the last entry of each name, at the place of the first.
func dedupEnv(env []string) []string {
	last := map[string]string{}
	var order []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, seen := last[name]; !seen {
			order = append(order, name)
		}
		last[name] = kv
	}
	out := make([]string, len(order))
	for i, name := range order {
		out[i] = last[name]
	}
	return out
}

// gitDirs are the git directories a worktree's git commands read: its
// mirror (the common directory its .git file leads to) and the object
// directories the mirror borrows from. A sandbox shows them read-only: a
// job must not write the runner's mirror (a hook or a configuration there
// would run outside the sandbox, in the runner's next git command).
func gitDirs(worktree string) []string {
	admin, ok, err := readGitLink(filepath.Join(worktree, ".git"))
	if err != nil || !ok || !filepath.IsAbs(admin) {
		return nil
	}
	common := admin
	if rel, err := os.ReadFile(filepath.Join(admin, "commondir")); err == nil {
		common = filepath.Clean(filepath.Join(admin, strings.TrimSpace(string(rel))))
	}
	dirs := []string{common}
	if f, err := os.Open(filepath.Join(common, "objects", "info", "alternates")); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if alt := strings.TrimSpace(sc.Text()); filepath.IsAbs(alt) {
				dirs = append(dirs, alt)
			}
		}
	}
	return resolvePaths(dirs)
}

// chownTree gives every file under root (root included, symbolic links not
// followed) to cred's user and group.
func chownTree(root string, cred *syscall.Credential) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.Uid), int(cred.Gid))
	})
}

// removeAll removes path like os.RemoveAll, also when a job left
// directories without write or search permission in it.
func removeAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	// Make every directory the runner owns writable again, then retry.
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error { //nolint:errcheck // the retry reports what is left
		if d != nil && d.IsDir() {
			os.Chmod(p, 0o700) //nolint:errcheck // the retry reports what is left
		}
		return nil
	})
	return os.RemoveAll(path)
}
