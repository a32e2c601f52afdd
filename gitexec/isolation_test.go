package gitexec

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireBwrap fails the test (it does not skip it) where bubblewrap cannot
// make a sandbox: `make deps` installs it.
func requireBwrap(t *testing.T) {
	t.Helper()
	require.NoError(t, ProbeBwrap(nil), "the sandbox tests need bubblewrap: run `make deps`")
}

// sandboxModes are the executor modes that run steps under bwrap: with a
// wrapper configured (cold and warm), as the runner has one, and without.
// A sandboxed step starts bwrap directly in all three.
func sandboxModes(t *testing.T) []executorMode {
	t.Helper()
	requireBwrap(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	wrapperEnv := []string{envWrapper + "=1", raceNoExitDelay}
	cold := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: wrapperEnv, Isolation: IsolationBwrap}
	cold.Close()
	warm := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: wrapperEnv, Isolation: IsolationBwrap}
	t.Cleanup(warm.Close)
	return []executorMode{
		{name: "bwrap direct", exec: &Executor{Isolation: IsolationBwrap}},
		{name: "bwrap wrapper", exec: cold},
		{name: "bwrap warm wrapper", exec: warm},
	}
}

// wrapperModes are the modes a runner uses: through a wrapper, cold and
// warm, without and with the sandbox.
func wrapperModes(t *testing.T) []executorMode {
	t.Helper()
	var modes []executorMode
	for _, m := range append(executorModes(t), sandboxModes(t)...) {
		if len(m.exec.Wrapper) > 0 {
			modes = append(modes, m)
		}
	}
	return modes
}

// markerSeq makes markers unique within the test binary.
var markerSeq atomic.Int64

// newMarker is a sleep duration no other process on the machine has on
// its command line: `sleep MARKER` can be found from outside a PID
// namespace, where the pid a step sees means nothing.
func newMarker() string {
	return fmt.Sprintf("1000.%d%06d", os.Getpid(), markerSeq.Add(1))
}

// marked lists the live processes whose command line contains marker as
// a whole argument.
func marked(t *testing.T, marker string) []int {
	t.Helper()
	procs, err := readProcs()
	require.NoError(t, err)
	var found []int
	for _, p := range procs {
		if p.zombie || p.pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
		if err != nil {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if string(arg) == marker {
				found = append(found, p.pid)
				break
			}
		}
	}
	return found
}

// waitMarked polls until a live process carries marker and returns them all.
func waitMarked(t *testing.T, marker string) []int {
	t.Helper()
	var found []int
	require.Eventually(t, func() bool {
		found = marked(t, marker)
		return len(found) > 0
	}, 20*time.Second, 10*time.Millisecond, "no process with %s started", marker)
	return found
}

// descendantOf reports whether pid is below ancestor in the process tree.
func descendantOf(t *testing.T, pid, ancestor int) bool {
	t.Helper()
	procs, err := readProcs()
	require.NoError(t, err)
	parent := map[int]int{}
	for _, p := range procs {
		parent[p.pid] = p.ppid
	}
	for p := parent[pid]; p > 1; p = parent[p] {
		if p == ancestor {
			return true
		}
	}
	return false
}

// envOf reads the NAME=value lines that `env` printed.
func envOf(output string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(output, "\n") {
		name, value, ok := strings.Cut(line, "=")
		if ok && envName.MatchString(name) {
			env[name] = value
		}
	}
	return env
}

func TestJobEnvironmentIsClean(t *testing.T) {
	// The runner's own environment: none of it may reach a step.
	t.Setenv("GITEXEC_TEST_RUNNER_SECRET", "must-not-leak")
	t.Setenv("VOLT_TOKEN", "secret")
	t.Setenv("GITEXEC_TEST_PASSED", "passed-value")
	t.Setenv("LANG", "de_DE.UTF-8")
	runner := map[string]string{}
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		runner[name] = value
	}
	// What a step may see: the documented set, and what its shell adds.
	allowed := map[string]bool{"PATH": true, "HOME": true, "TMPDIR": true, "LANG": true, "CI": true, "VOLT": true,
		"VOLT_COMMIT": true, "FROM_VOLT_YML": true, "PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}
	for _, passEnv := range []bool{false, true} {
		for _, mode := range append(executorModes(t), sandboxModes(t)...) {
			t.Run(fmt.Sprintf("%s/pass-env %v", mode.name, passEnv), func(t *testing.T) {
				mode.exec.PassEnv = nil
				if passEnv {
					mode.exec.PassEnv = []string{"GITEXEC_TEST_PASSED", "GITEXEC_TEST_UNSET", "VOLT_TOKEN"}
				}
				dir := t.TempDir()
				var out syncBuffer
				o := mode.exec.Execute(context.Background(), Run{
					Dir: dir,
					Env: []string{"CI=true", "VOLT=true", "VOLT_COMMIT=abc", "FROM_VOLT_YML=1"},
					Steps: []Step{{Name: "env", Run: `env; echo "$HOME/x" > "$HOME/x" && echo "$TMPDIR/y" > "$TMPDIR/y" && echo home+tmp writable`},
						{Name: "again", Run: `cat "$HOME/x" "$TMPDIR/y"`}},
					Output: &out,
				})
				require.Equal(t, Passed, o.Status, "%s\n%s", o.Reason, out.String())
				env := envOf(out.String())
				for name, value := range env {
					if name == "GITEXEC_TEST_PASSED" && passEnv {
						continue
					}
					assert.True(t, allowed[name], "the step sees %s=%s", name, value)
				}
				for name, value := range runner {
					if !allowed[name] && !(passEnv && name == "GITEXEC_TEST_PASSED") {
						assert.NotContains(t, env, name, "the runner's %s=%s reached the step", name, value)
					}
				}
				assert.NotContains(t, out.String(), "must-not-leak")
				if passEnv {
					assert.Equal(t, "passed-value", env["GITEXEC_TEST_PASSED"])
				} else {
					assert.NotContains(t, env, "GITEXEC_TEST_PASSED")
				}
				assert.NotContains(t, env, "VOLT_TOKEN", "never passed, even when named")
				assert.NotContains(t, env, "GITEXEC_TEST_UNSET")
				assert.Equal(t, "C.UTF-8", env["LANG"])
				assert.Equal(t, os.Getenv("PATH"), env["PATH"])
				assert.Equal(t, "true", env["CI"])
				assert.Equal(t, "abc", env["VOLT_COMMIT"])
				// HOME and TMPDIR: beside the worktree, not in it (git clean
				// would see them), shared by the job's steps, gone after it.
				home, tmp := env["HOME"], env["TMPDIR"]
				jobDir := filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+jobDirSuffix)
				assert.Equal(t, filepath.Join(jobDir, "home"), home)
				assert.Equal(t, filepath.Join(jobDir, "tmp"), tmp)
				assert.Contains(t, out.String(), "home+tmp writable")
				assert.Contains(t, out.String(), home+"/x\n"+tmp+"/y\n", "the second step sees the first's files")
				assert.NoDirExists(t, jobDir)
				entries, err := os.ReadDir(dir)
				require.NoError(t, err)
				assert.Empty(t, entries, "nothing of HOME or TMPDIR in the worktree")
			})
		}
	}
}

func TestJobHomeIsEmptyAtStart(t *testing.T) {
	dir := t.TempDir()
	e := &Executor{}
	for i := range 2 {
		var out bytes.Buffer
		o := e.Execute(context.Background(), Run{Dir: dir, Steps: []Step{{Run: `ls -A "$HOME" "$TMPDIR"; f=left; touch "$HOME/$f-behind" "$TMPDIR/$f-behind"; chmod 0 "$TMPDIR"`}}, Output: &out})
		require.Equal(t, Passed, o.Status, o.Reason)
		assert.NotContains(t, out.String(), "left-behind", "run %d: the last job's files are gone", i)
	}
}

func TestSetsidChildIsGoneWhenTheJobEnds(t *testing.T) {
	for _, mode := range wrapperModes(t) {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			marker := newMarker()
			dir := t.TempDir()
			var out syncBuffer
			done := make(chan Outcome, 1)
			go func() {
				// The daemon keeps the output pipe too: the job ends only
				// if something kills it.
				done <- mode.run(context.Background(), Run{Dir: dir, Output: &out, Steps: []Step{{Name: "daemon", Run: fmt.Sprintf(
					`setsid sh -c 'echo $$ > daemon.pid; exec sleep %s' &
					while [ ! -e go ]; do sleep 0.01; done; echo step done`, marker)}}})
			}()
			daemon := waitMarked(t, marker)
			for _, pid := range daemon {
				assert.True(t, descendantOf(t, pid, os.Getpid()), "the job's process %d is below its runner", pid)
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, "go"), nil, 0o644))
			var o Outcome
			select {
			case o = <-done:
			case <-time.After(time.Minute):
				t.Fatal("the job did not end")
			}
			assert.Equal(t, Passed, o.Status, "%s\n%s", o.Reason, out.String())
			assert.Contains(t, out.String(), "step done")
			assert.FileExists(t, filepath.Join(dir, "daemon.pid"))
			waitDead(t, 5*time.Second, daemon...)
		})
	}
}

// startHelper starts the test binary as a runner that runs script as one
// job in dir, with the given isolation, warm or cold wrapper, and reaping orphans
// if reap (then it waits for its standard input to close before it exits).
func startHelper(t *testing.T, isolation Isolation, warm string, reap bool, dir, script string) (*exec.Cmd, *bufio.Reader, func()) {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	helper := exec.Command(exe)
	helper.Env = append(os.Environ(), envHelper+"=1", raceNoExitDelay, envHelperWarm+"="+warm,
		envHelperIsolation+"="+string(isolation), envHelperDir+"="+dir, "GITEXEC_TEST_RUN="+script)
	if reap {
		helper.Env = append(helper.Env, envHelperReap+"=1")
	}
	stdin, err := helper.StdinPipe()
	require.NoError(t, err)
	stdout, err := helper.StdoutPipe()
	require.NoError(t, err)
	var stderr syncBuffer
	helper.Stderr = &stderr
	require.NoError(t, helper.Start())
	t.Cleanup(func() {
		helper.Process.Kill() //nolint:errcheck // it may be dead already
		helper.Wait()         //nolint:errcheck // killed or ended: either is fine here
		if t.Failed() {
			t.Logf("helper's stderr:\n%s", stderr.String())
		}
	})
	return helper, bufio.NewReader(stdout), func() { stdin.Close() }
}

func TestSetsidChildIsGoneWhenTheRunnerIsKilled(t *testing.T) {
	for _, isolation := range []Isolation{IsolationNone, IsolationBwrap} {
		for _, warm := range []string{"cold", "warm"} {
			t.Run(string(isolation)+"/"+warm, func(t *testing.T) {
				if isolation == IsolationBwrap {
					requireBwrap(t)
				}
				t.Parallel()
				marker := newMarker()
				// A daemon that left the job's process group, and a
				// double-forked one whose parent is gone.
				helper, _, _ := startHelper(t, isolation, warm, false, t.TempDir(), fmt.Sprintf(
					`setsid sh -c 'exec sleep %s' & (sh -c 'exec sleep %s' &) ; sleep 300`, marker, marker))
				var daemons []int
				require.Eventually(t, func() bool {
					daemons = marked(t, marker)
					return len(daemons) == 2
				}, 20*time.Second, 10*time.Millisecond, "the job's two daemons did not start")
				for _, pid := range daemons {
					assert.True(t, descendantOf(t, pid, helper.Process.Pid), "the job's process %d is below its runner", pid)
				}
				require.NoError(t, helper.Process.Signal(syscall.SIGKILL))
				require.Error(t, helper.Wait())
				waitDead(t, 5*time.Second, daemons...)
			})
		}
	}
}

func TestRunnerReapsWhatADeadWrapperLeft(t *testing.T) {
	// The step kills its own wrapper (a job running as the runner's user
	// can): what it started, a daemon in a session of its own and a
	// double-forked process, is reparented to the runner, a subreaper
	// (ReapOrphans), which kills it when the step ends. Without
	// ReapOrphans it would go to init and live on.
	marker, bystander := newMarker(), newMarker()
	t.Setenv(envHelperBystander, bystander)
	dir := t.TempDir()
	helper, stdout, done := startHelper(t, IsolationNone, "cold", true, dir, fmt.Sprintf(
		`setsid sh -c 'echo $$ > a.pid; exec sleep %s' &
		(sh -c 'echo $$ > b.pid; exec sleep %s' &)
		until [ -s a.pid ] && [ -s b.pid ]; do sleep 0.01; done
		kill -9 $PPID; sleep 300`, marker, marker))
	var outcome string
	for outcome == "" {
		line, err := stdout.ReadString('\n')
		require.NoError(t, err, "the helper ended before the job did")
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "outcome="); ok {
			outcome = rest
		}
	}
	assert.Equal(t, Failed.Name(), outcome, "the step was killed with its wrapper")
	// The helper (the runner) is still alive: nothing else can have killed them.
	require.True(t, alive(helper.Process.Pid))
	for _, name := range []string{"a.pid", "b.pid"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		require.NoError(t, err)
		assert.False(t, alive(pid), "%s: what the dead wrapper left is gone", name)
	}
	assert.Empty(t, marked(t, marker))
	assert.Len(t, marked(t, bystander), 1, "the runner's own child in its own session is left alone")
	done()
	require.NoError(t, helper.Wait())
}

// sandboxFixture is a runner's layout with things a job must not see.
type sandboxFixture struct {
	base     string // outside /tmp (the sandbox's /tmp is its own)
	workDir  string // the runner's work directory: hidden
	worktree string // inside workDir: shown
	creds    string // the credentials directory: hidden
	visible  string // a file nobody hides
}

func newSandboxFixture(t *testing.T) sandboxFixture {
	t.Helper()
	base, err := os.MkdirTemp("/var/tmp", "gitexec-sandbox-")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, removeAll(base)) })
	require.NoError(t, os.Chmod(base, 0o755))
	f := sandboxFixture{
		base:     base,
		workDir:  filepath.Join(base, "work"),
		worktree: filepath.Join(base, "work", "slots", "0", "repo"),
		creds:    filepath.Join(base, "creds"),
		visible:  filepath.Join(base, "visible.txt"),
	}
	require.NoError(t, os.MkdirAll(f.worktree, 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(f.workDir, "logs"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(f.workDir, "logs", "other-job.log"), []byte("OTHER JOB'S LOG"), 0o644))
	require.NoError(t, os.Mkdir(f.creds, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(f.creds, "node.key"), []byte("-----BEGIN PRIVATE KEY-----"), 0o600))
	require.NoError(t, os.WriteFile(f.visible, []byte("visible to jobs"), 0o644))
	return f
}

func TestSandboxHidesTheRunnersSecrets(t *testing.T) {
	f := newSandboxFixture(t)
	// A file in the runner's /tmp: the sandbox has a /tmp of its own.
	hostTmp, err := os.CreateTemp("", "gitexec-host-tmp-")
	require.NoError(t, err)
	require.NoError(t, hostTmp.Close())
	t.Cleanup(func() { os.Remove(hostTmp.Name()) })
	tests := []struct {
		name    string
		run     string
		want    Status
		wantOut string // in the output
		notOut  string // never in the output
	}{
		// First, that a step could read these places at all.
		{name: "an unhidden file is readable", run: "cat " + f.visible, want: Passed, wantOut: "visible to jobs"},
		{name: "the worktree is writable", run: "echo written > out.txt && cat out.txt", want: Passed, wantOut: "written"},
		{name: "the credentials cannot be read", run: "cat " + filepath.Join(f.creds, "node.key"), want: Failed, notOut: "PRIVATE KEY"},
		{name: "the credentials directory is empty", run: "ls -A " + f.creds + "; test -z \"$(ls -A " + f.creds + ")\"", want: Passed, notOut: "node.key"},
		{name: "the runner's work directory is hidden", run: "cat " + filepath.Join(f.workDir, "logs", "other-job.log"), want: Failed, notOut: "OTHER JOB"},
		{name: "the system is read-only", run: "touch " + filepath.Join(f.base, "new"), want: Failed},
		{name: "the runner's /tmp is not the job's", run: "test ! -e " + hostTmp.Name(), want: Passed},
		{name: "no capabilities", run: "grep CapEff /proc/self/status", want: Passed, wantOut: "CapEff:\t0000000000000000"},
		{name: "unmounting does not reveal", run: "umount " + f.creds + "; cat " + filepath.Join(f.creds, "node.key"), want: Failed, notOut: "PRIVATE KEY"},
		{name: "a PID namespace of its own", run: `test "$(cat /proc/1/comm)" = bwrap && ! test -e /proc/` + strconv.Itoa(os.Getpid()), want: Passed},
		{name: "the runner's environment is unreadable", run: "cat /proc/" + strconv.Itoa(os.Getpid()) + "/environ", want: Failed},
		{name: "/etc/shadow is hidden", run: "cat /etc/shadow", notOut: "root:"},
	}
	for _, mode := range sandboxModes(t) {
		mode.exec.Hide = append([]string{f.workDir, f.creds}, DefaultHidden()...)
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				var out syncBuffer
				o := mode.run(context.Background(), Run{Dir: f.worktree, Output: &out, Steps: []Step{{Name: "probe", Run: tt.run}}})
				if tt.want != 0 { // unspecified: any outcome
					assert.Equal(t, tt.want, o.Status, "%s\n%s", o.Reason, out.String())
				}
				if tt.wantOut != "" {
					assert.Contains(t, out.String(), tt.wantOut)
				}
				if tt.notOut != "" {
					assert.NotContains(t, out.String(), tt.notOut)
				}
			})
		}
	}
}

func TestSandboxShowsTheMirrorReadOnly(t *testing.T) {
	requireBwrap(t)
	f := newSandboxFixture(t)
	origin := newRepo(t)
	commit := commitFiles(t, origin, "one", map[string]string{"a.txt": "a"})
	// A remote-looking URL would be fetched; a local path is borrowed
	// (objects/info/alternates): both kinds of mirror must work.
	ws := NewWorkspace(f.workDir, "")
	wt, err := ws.Prepare(context.Background(), origin, commit, 0)
	require.NoError(t, err)
	mirrors, err := filepath.Glob(filepath.Join(f.workDir, "mirrors", "*"))
	require.NoError(t, err)
	require.Len(t, mirrors, 1)
	e := &Executor{Isolation: IsolationBwrap, Hide: []string{f.workDir}}
	var out syncBuffer
	o := e.Execute(context.Background(), Run{Dir: wt, Output: &out, Steps: []Step{
		{Name: "log", Run: "git log -1 --format=commit=%H"},
		{Name: "status", Run: "git status --porcelain && echo status ok"},
		{Name: "no hooks", Run: "if touch " + filepath.Join(mirrors[0], "hooks", "post-checkout") + "; then exit 1; fi; echo mirror read-only"},
	}})
	require.Equal(t, Passed, o.Status, "%s\n%s", o.Reason, out.String())
	assert.Contains(t, out.String(), "commit="+commit)
	assert.Contains(t, out.String(), "status ok")
	assert.Contains(t, out.String(), "mirror read-only")
	assert.NoFileExists(t, filepath.Join(mirrors[0], "hooks", "post-checkout"))
	// The runner can still move the worktree afterwards.
	_, err = ws.Prepare(context.Background(), origin, commitFiles(t, origin, "two", map[string]string{"b.txt": "b"}), 0)
	require.NoError(t, err)
}

func TestJobUser(t *testing.T) {
	if os.Geteuid() != 0 {
		// Only root can switch users: the runner refuses to start.
		_, err := LookupJobUser("nobody")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "only root can start steps as another user")
		return
	}
	_, err := LookupJobUser("root")
	assert.ErrorContains(t, err, "is root")
	_, err = LookupJobUser("no-such-user-volt")
	assert.ErrorContains(t, err, "create the user")
	ju, err := LookupJobUser("nobody")
	require.NoError(t, err)
	nobody, err := user.Lookup("nobody")
	require.NoError(t, err)
	require.NoError(t, ProbeBwrap(ju.Cred), "bwrap as the job user needs unprivileged user namespaces")
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, isolation := range []Isolation{IsolationNone, IsolationBwrap} {
		t.Run(string(isolation), func(t *testing.T) {
			f := newSandboxFixture(t)
			origin := newRepo(t)
			require.NoError(t, os.Chmod(filepath.Dir(origin), 0o755))
			require.NoError(t, os.Chmod(filepath.Dir(filepath.Dir(origin)), 0o755))
			commit := commitFiles(t, origin, "one", map[string]string{"a.txt": "a"})
			ws := NewWorkspace(f.workDir, "")
			wt, err := ws.Prepare(context.Background(), origin, commit, 0)
			require.NoError(t, err)
			e := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: []string{envWrapper + "=1", raceNoExitDelay},
				Isolation: isolation, JobUser: ju, Hide: []string{f.workDir, f.creds}}
			defer e.Close()
			var out syncBuffer
			o := e.Execute(context.Background(), Run{Dir: wt, Output: &out, Steps: []Step{
				{Name: "who", Run: "echo uid=$(id -u)"},
				{Name: "write", Run: `echo x > built.txt && mkdir -p sub && echo y > "$HOME/h" && echo z > "$TMPDIR/t" && echo wrote`},
				{Name: "git", Run: "git log -1 --format=commit=%H"},
				{Name: "creds", Run: "if cat " + filepath.Join(f.creds, "node.key") + "; then exit 1; fi; echo creds unreadable"},
			}})
			require.Equal(t, Passed, o.Status, "%s\n%s", o.Reason, out.String())
			assert.Contains(t, out.String(), "uid="+nobody.Uid+"\n")
			assert.Contains(t, out.String(), "wrote")
			assert.Contains(t, out.String(), "commit="+commit)
			assert.Contains(t, out.String(), "creds unreadable")
			// The runner (root) moves the worktree the job user wrote in.
			_, err = ws.Prepare(context.Background(), origin, commitFiles(t, origin, "two", map[string]string{"b.txt": "b"}), 0)
			require.NoError(t, err)
			assert.NoFileExists(t, filepath.Join(wt, "built.txt"))
		})
	}
}

func TestBwrapArgs(t *testing.T) {
	s := sandbox{
		dir:      "/w/slots/0/r",
		writable: []string{"/w/slots/0/r", "/w/slots/0/.r.volt-job"},
		readOnly: []string{"/w/mirrors/r.git"},
		hide:     []string{"/w/slots/0/r/secret", "/w", "/nonexistent/volt", "/etc/hostname"},
	}
	// Only paths that exist are hidden: make them.
	root := t.TempDir()
	for i, p := range s.hide {
		if strings.HasPrefix(p, "/w") {
			s.hide[i] = root + p
			require.NoError(t, os.MkdirAll(s.hide[i], 0o755))
		}
	}
	for i, p := range s.writable {
		s.writable[i] = root + p
	}
	s.readOnly[0] = root + s.readOnly[0]
	s.dir = root + s.dir
	got := strings.Join(bwrapArgs("/usr/bin/bwrap", s, []string{"/bin/sh", "-c", "true"}), " ")
	got = strings.ReplaceAll(got, root, "")
	want := "/usr/bin/bwrap --die-with-parent --new-session --unshare-pid --unshare-ipc --unshare-cgroup-try --cap-drop ALL" +
		" --ro-bind / / --proc /proc --dev /dev --tmpfs /tmp" +
		" --ro-bind /dev/null /etc/hostname" + // a file is hidden by /dev/null
		" --tmpfs /w" + // shallowest first: the work directory hidden, then
		" --ro-bind /w/mirrors/r.git /w/mirrors/r.git" + // the mirror shown read-only
		" --bind /w/slots/0/r /w/slots/0/r --bind /w/slots/0/.r.volt-job /w/slots/0/.r.volt-job" + // the job's own
		" --tmpfs /w/slots/0/r/secret" + // hidden inside the worktree: after it
		" --chdir /w/slots/0/r -- /bin/sh -c true"
	assert.Equal(t, want, got)
}

func TestIsolationFlag(t *testing.T) {
	var i Isolation
	assert.Equal(t, "", i.String())
	require.NoError(t, i.Set("none"))
	assert.Equal(t, IsolationNone, i)
	require.NoError(t, i.Set("bwrap"))
	assert.Equal(t, IsolationBwrap, i)
	assert.ErrorContains(t, i.Set("docker"), "want bwrap or none")
	got, fallback, err := ResolveIsolation(IsolationNone, nil)
	assert.Equal(t, IsolationNone, got)
	assert.NoError(t, fallback)
	assert.NoError(t, err)
}

func TestResolveIsolationUsesBwrapWhereItWorks(t *testing.T) {
	requireBwrap(t)
	for _, want := range []Isolation{IsolationAuto, IsolationBwrap} {
		got, fallback, err := ResolveIsolation(want, nil)
		require.NoError(t, err)
		assert.NoError(t, fallback)
		assert.Equal(t, IsolationBwrap, got)
	}
}

func TestEnvNamesFlag(t *testing.T) {
	var n EnvNames
	require.NoError(t, n.Set("GOPROXY"))
	require.NoError(t, n.Set("HTTP_PROXY, HTTPS_PROXY,GOPROXY"))
	assert.Equal(t, EnvNames{"GOPROXY", "HTTP_PROXY", "HTTPS_PROXY"}, n)
	assert.Equal(t, "GOPROXY,HTTP_PROXY,HTTPS_PROXY", n.String())
	assert.ErrorContains(t, n.Set("VOLT_TOKEN"), "never passed")
	assert.ErrorContains(t, n.Set("1X"), "not an environment variable name")
	assert.ErrorContains(t, n.Set("A=B"), "not an environment variable name")
}

func TestDedupEnv(t *testing.T) {
	assert.Equal(t, []string{"A=3", "B=2", "C"}, dedupEnv([]string{"A=1", "B=2", "A=3", "C"}))
}

func TestSandboxTimeoutAndCancelKillEverything(t *testing.T) {
	for _, mode := range sandboxModes(t) {
		for _, how := range []string{"timeout", "cancel"} {
			t.Run(mode.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				marker := newMarker()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				step := Step{Name: "hang", Run: fmt.Sprintf(`sleep %s & setsid sleep %s & sleep %s`, marker, marker, marker)}
				if how == "timeout" {
					step.Timeout = time.Second
				}
				done := make(chan Outcome, 1)
				go func() {
					done <- mode.run(ctx, Run{Dir: t.TempDir(), Steps: []Step{step, {Name: "after", Run: "true"}}})
				}()
				var sleeps []int
				require.Eventually(t, func() bool {
					sleeps = marked(t, marker)
					return len(sleeps) == 3
				}, 20*time.Second, 10*time.Millisecond, "the step's three sleeps did not start")
				if how == "cancel" {
					cancel()
				}
				var o Outcome
				select {
				case o = <-done:
				case <-time.After(time.Minute):
					t.Fatal("the job did not end")
				}
				waitDead(t, 5*time.Second, sleeps...)
				want := Outcome{Status: TimedOut, FailedStep: "hang", ExitCode: -1, Reason: "step hang exceeded its timeout of 1s"}
				if how == "cancel" {
					want = Outcome{Status: Cancelled, FailedStep: "hang", ExitCode: -1, Reason: "cancelled during step hang"}
				}
				o.Kept, o.Dropped = 0, 0
				assert.Equal(t, want, o)
			})
		}
	}
}

func TestSandboxHidesASocket(t *testing.T) {
	// A read-only mount does not stop a connect(2): a socket such as
	// docker's is hidden like a file.
	requireBwrap(t)
	f := newSandboxFixture(t)
	sock := filepath.Join(f.base, "engine.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	defer l.Close()
	e := &Executor{Isolation: IsolationBwrap, Hide: []string{sock}}
	var out syncBuffer
	o := e.Execute(context.Background(), Run{Dir: f.worktree, Output: &out, Steps: []Step{{Run: "test -S " + sock + " && echo socket visible; test ! -S " + sock}}})
	assert.Equal(t, Passed, o.Status, "%s\n%s", o.Reason, out.String())
	assert.NotContains(t, out.String(), "socket visible\n")
	e.Hide = nil
	out = syncBuffer{}
	o = e.Execute(context.Background(), Run{Dir: f.worktree, Output: &out, Steps: []Step{{Run: "test -S " + sock + " && echo socket visible"}}})
	assert.Equal(t, Passed, o.Status, "without hiding, the step sees it: %s\n%s", o.Reason, out.String())
}
