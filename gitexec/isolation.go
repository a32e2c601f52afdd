package gitexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Isolation is how a job's steps are confined. Its methods make it a flag
// value (pflag.Value): `--isolation bwrap|none`.
type Isolation string

// The isolation modes.
const (
	// IsolationAuto is bwrap where it works, else none (ResolveIsolation).
	IsolationAuto Isolation = ""
	// IsolationBwrap runs each step in a bubblewrap sandbox: the system
	// read-only, the workspace read-write, hidden paths empty, a private
	// /tmp, /proc and /dev, its own PID namespace, no capabilities.
	IsolationBwrap Isolation = "bwrap"
	// IsolationNone runs steps as plain processes of the runner's user (or
	// the job user): they see every file that user may read.
	IsolationNone Isolation = "none"
)

// String implements pflag.Value.
func (i *Isolation) String() string { return string(*i) }

// Set implements pflag.Value.
func (i *Isolation) Set(s string) error {
	switch Isolation(s) {
	case IsolationBwrap, IsolationNone:
		*i = Isolation(s)
		return nil
	}
	return fmt.Errorf("%q: want bwrap or none", s)
}

// Type implements pflag.Value.
func (i *Isolation) Type() string { return "bwrap|none" }

// BwrapPackage is what to install where bwrap is missing.
const BwrapPackage = "bubblewrap (Debian and Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"

// probes caches ProbeBwrap's answer for each user.
var probes struct {
	mu   sync.Mutex
	done map[string]error
}

// probeTimeout bounds the bwrap probe.
const probeTimeout = 10 * time.Second

// ProbeBwrap checks that bubblewrap can run a step here, as cred's user if
// cred is not nil, by running `bwrap <the sandbox options of a step> true`
// once: an error says why not (bwrap missing; user namespaces disabled; a
// container that forbids mounts). The answer is kept for the life of the
// process.
func ProbeBwrap(cred *syscall.Credential) error {
	key := encodeCred(cred)
	probes.mu.Lock()
	defer probes.mu.Unlock()
	if err, ok := probes.done[key]; ok {
		return err
	}
	err := probeBwrap(cred)
	if probes.done == nil {
		probes.done = map[string]error{}
	}
	probes.done[key] = err
	return err
}

func probeBwrap(cred *syscall.Credential) error {
	path, err := exec.LookPath("bwrap")
	if err != nil {
		return fmt.Errorf("bwrap not found: install %s", BwrapPackage)
	}
	dir, err := os.MkdirTemp("", "volt-bwrap-probe-")
	if err != nil {
		return fmt.Errorf("probe bwrap: %w", err)
	}
	defer os.RemoveAll(dir)
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("probe bwrap: %w", err)
		}
	}
	hidden := filepath.Join(dir, "hidden")
	if err := os.Mkdir(hidden, 0o700); err != nil {
		return fmt.Errorf("probe bwrap: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	args := bwrapArgs(path, sandbox{dir: dir, writable: []string{dir}, hide: []string{hidden}}, []string{"true"})
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + DefaultPath}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := startTracked(cmd); err != nil {
		return fmt.Errorf("probe bwrap: %w", err)
	}
	if err := waitTracked(cmd); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("%s cannot make a sandbox here: %s (it needs unprivileged user namespaces, or root, and a kernel and container that allow mounts in them)", path, msg)
	}
	return nil
}

// ResolveIsolation turns the isolation asked for into the one to use, as
// cred's user (nil: the runner's): bwrap if asked for and it works (an
// error if it does not), none if asked for, and for IsolationAuto bwrap if
// it works, else none with fallback saying why bwrap does not work, for the
// caller to tell the operator loudly.
func ResolveIsolation(want Isolation, cred *syscall.Credential) (got Isolation, fallback, err error) {
	switch want {
	case IsolationNone:
		return IsolationNone, nil, nil
	case IsolationBwrap:
		if err := ProbeBwrap(cred); err != nil {
			return "", nil, fmt.Errorf("--isolation bwrap: %w", err)
		}
		return IsolationBwrap, nil, nil
	case IsolationAuto:
		if err := ProbeBwrap(cred); err != nil {
			return IsolationNone, err, nil
		}
		return IsolationBwrap, nil, nil
	}
	return "", nil, fmt.Errorf("isolation %q: want bwrap or none", want)
}

// sandbox is what a step's bwrap sandbox shows besides the read-only system.
type sandbox struct {
	dir      string   // the working directory
	writable []string // shown read-write (the worktree, the job's home)
	readOnly []string // shown read-only even inside a hidden path (the worktree's mirror)
	hide     []string // replaced by an empty directory (or file)
}

// mount is one bwrap mount option.
type mount struct {
	op       string // --tmpfs, --ro-bind, --bind
	src, dst string
}

// bwrapArgs is the argv that runs command in the sandbox s: the whole file
// system read-only, fresh /proc, /dev and /tmp, hidden paths empty, the
// writable ones read-write, a PID namespace of its own whose processes all
// die with bwrap (--die-with-parent: bwrap's parent is the runner), a
// new session (no terminal to inject input into), no capabilities (a
// runner running as root would otherwise hand them to the job, which could
// unmount what hides the credentials). The network is the host's. Mounts
// are applied shallowest first, so that a path shown inside a hidden one
// (the worktree inside the runner's work directory) is shown, and a path
// hidden inside a shown one stays hidden.
func bwrapArgs(bwrap string, s sandbox, command []string) []string {
	var mounts []mount
	for _, p := range s.hide {
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			continue // nothing there to hide
		case fi.IsDir():
			mounts = append(mounts, mount{"--tmpfs", "", p})
		default:
			mounts = append(mounts, mount{"--ro-bind", "/dev/null", p})
		}
	}
	for _, p := range s.readOnly {
		mounts = append(mounts, mount{"--ro-bind", p, p})
	}
	for _, p := range s.writable {
		mounts = append(mounts, mount{"--bind", p, p})
	}
	slices.SortStableFunc(mounts, func(a, b mount) int { return depth(a.dst) - depth(b.dst) })
	args := []string{bwrap,
		"--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-cgroup-try",
		"--cap-drop", "ALL",
		"--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
	}
	for _, m := range mounts {
		if m.op == "--tmpfs" {
			args = append(args, m.op, m.dst)
		} else {
			args = append(args, m.op, m.src, m.dst)
		}
	}
	if s.dir != "" {
		args = append(args, "--chdir", s.dir)
	}
	return append(append(args, "--"), command...)
}

// depth counts a clean absolute path's elements: "/" 0, "/a" 1, "/a/b" 2.
func depth(p string) int {
	p = filepath.Clean(p)
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// resolvePaths makes each path absolute and resolves its symbolic links
// (mounts apply to the target); a path that does not exist is kept as it
// is (there is nothing to resolve yet).
func resolvePaths(paths []string) []string {
	var out []string
	for _, p := range paths {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		out = append(out, p)
	}
	return out
}

// homeSecrets are paths under a home directory where credentials usually
// live; DefaultHidden hides those of the runner's user.
var homeSecrets = []string{
	".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".netrc", ".git-credentials",
	".pgpass", ".config/gcloud", ".config/gh", ".config/volt",
}

// hostSockets are the control sockets of container engines: a read-only
// mount does not stop a process from connecting to a socket, and each of
// these hands out root on the host.
var hostSockets = []string{"/run/docker.sock", "/var/run/docker.sock", "/run/containerd/containerd.sock", "/run/podman/podman.sock"}

// DefaultHidden is what a sandboxed step never sees besides what the runner
// names: the credentials in the runner's user's home directory (.ssh,
// .gnupg, .aws, .kube, .docker, .netrc, .git-credentials, .config/volt and
// the like), /etc/shadow and /etc/gshadow, and the container engines'
// sockets (docker, containerd, podman). Paths that do not exist are left
// out when the sandbox is built.
func DefaultHidden() []string {
	hidden := append([]string{"/etc/shadow", "/etc/gshadow"}, hostSockets...)
	if home, err := os.UserHomeDir(); err == nil && home != "" && home != "/" {
		for _, p := range homeSecrets {
			hidden = append(hidden, filepath.Join(home, p))
		}
	}
	return hidden
}

// JobUser is the user a job's steps run as (--job-user).
type JobUser struct {
	Name string
	Cred *syscall.Credential
}

// LookupJobUser finds the user (a name or a numeric uid) that steps are to
// run as. Switching users needs root: it is an error when this process does
// not run as root.
func LookupJobUser(name string) (*JobUser, error) {
	u, err := user.Lookup(name)
	if _, numErr := strconv.Atoi(name); err != nil && numErr == nil {
		u, err = user.LookupId(name)
	}
	if err != nil {
		return nil, fmt.Errorf("job user %s: %w: create the user, or name another", name, err)
	}
	if uid := os.Geteuid(); uid != 0 {
		return nil, fmt.Errorf("job user %s: the runner runs as uid %d, and only root can start steps as another user: start the runner as root, or leave --job-user out", name, uid)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("job user %s: %w", name, err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	groups, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("job user %s: its groups: %w", name, err)
	}
	for _, g := range groups {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("job user %s: group %s: %w", name, g, err)
		}
		cred.Groups = append(cred.Groups, uint32(n))
	}
	if cred.Uid == 0 {
		return nil, fmt.Errorf("job user %s is root: name an unprivileged user, or leave --job-user out", name)
	}
	return &JobUser{Name: u.Username, Cred: cred}, nil
}

// reachable reports whether cred's user can reach path: search permission
// on every directory above it (by mode bits; ACLs are not read).
func reachable(path string, cred *syscall.Credential) bool {
	if cred == nil || cred.Uid == 0 {
		return true
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		perm := fi.Mode().Perm()
		var bit os.FileMode = 0o001
		switch {
		case st.Uid == cred.Uid:
			bit = 0o100
		case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
			bit = 0o010
		}
		if perm&bit == 0 {
			return false
		}
		if dir == "/" || dir == "." {
			return true
		}
	}
}

// envName is a valid environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// EnvNames is a list of environment variable names, a flag value
// (pflag.Value) that takes repeated flags and comma-separated lists:
// `--pass-env GOPROXY --pass-env HTTP_PROXY,HTTPS_PROXY`.
type EnvNames []string

// String implements pflag.Value.
func (n *EnvNames) String() string { return strings.Join(*n, ",") }

// Set implements pflag.Value.
func (n *EnvNames) Set(s string) error {
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if err := validPassEnv(name); err != nil {
			return err
		}
		if !slices.Contains(*n, name) {
			*n = append(*n, name)
		}
	}
	return nil
}

// Type implements pflag.Value.
func (n *EnvNames) Type() string { return "NAME[,NAME...]" }

// validPassEnv says whether a runner variable may be passed to jobs: any
// valid name but Volt's own (VOLT_*, such as VOLT_TOKEN).
func validPassEnv(name string) error {
	if !envName.MatchString(name) {
		return fmt.Errorf("%q is not an environment variable name: use letters, digits and _, not starting with a digit", name)
	}
	if strings.HasPrefix(name, "VOLT_") || name == "VOLT" {
		return fmt.Errorf("%s: Volt's own variables are never passed to jobs", name)
	}
	return nil
}
