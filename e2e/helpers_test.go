package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/voltci/volt/internal/voltbin"
)

// pollEvery is how often eventually looks at its condition.
const pollEvery = 25 * time.Millisecond

// eventually polls cond every pollEvery until it returns true, and fails the
// test with msg if it has not within timeout.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	eventuallyEvery(t, timeout, pollEvery, cond, msg, args...)
}

// eventuallyEvery is eventually with its own interval, for conditions that
// cost a process start (volt status).
func eventuallyEvery(t *testing.T, timeout, every time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, fmt.Sprintf(msg, args...))
		}
		time.Sleep(every)
	}
}

// lazy is a message argument computed when the message is printed.
type lazy func() string

func (l lazy) String() string { return l() }

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := voltbin.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// voltEnv is the environment of every volt process: this one's without a
// token, so that no developer's VOLT_TOKEN changes the tests.
func voltEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VOLT_TOKEN=") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is a long-running volt process started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	code int           // exit code, valid after done; -1 when killed by a signal
}

// startVolt starts `volt args...` with its working directory in a temporary
// directory (so that no default .volt lands in the source tree), stdout and
// stderr to <TempDir>/<name>.log. Cleanup stops it (SIGTERM, then SIGKILL) and,
// when the test failed, prints the tail of its log.
func startVolt(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startVoltVia(t, name, nil, args...)
}

// startVoltVia is startVolt with volt run through a prefix command that
// execs it (say `ip netns exec NS`), so the pid is still volt's.
func startVoltVia(t *testing.T, name string, prefix []string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	argv := append(append(append([]string(nil), prefix...), voltBin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = voltEnv()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		err := cmd.Wait()
		f.Close()
		p.code = cmd.ProcessState.ExitCode()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			p.code = -2
		}
	}()
	t.Logf("started %s (pid %d): volt %s", name, cmd.Process.Pid, strings.Join(args, " "))
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("--- last lines of %s (pid %d) log %s:\n%s", name, p.pid(), logPath, tail(logPath, 40))
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then sends SIGKILL and waits.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s to %s: %v", sig, p.name, err)
	}
}

// kill9 sends SIGKILL and waits for the process to be reaped.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	<-p.done
}

// waitExit waits up to timeout for the process to exit and returns its code.
func (p *proc) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("%s (pid %d) still running %s later", p.name, p.pid(), timeout)
		return 0
	}
}

// logText returns the process's log so far.
func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Size() > 0
}

// tail returns the last n lines of a file.
func tail(path string, n int) string { return voltbin.Tail(path, n) }

// result is the outcome of a short volt command.
type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// runVolt runs `volt args...` to completion, killing it after timeout (which
// fails the test). Long-running roles use startVolt.
func runVolt(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, voltBin, args...)
	cmd.Dir = filepath.Dir(voltBin) // short commands write nothing: no temp dir per call
	cmd.Env = voltEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("volt %s: still running after %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), timeout, r.stdout, r.stderr)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("volt %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ---- git ----

// repo is a bare repository master.git and a working clone of it.
type repo struct {
	t    *testing.T
	bare string
	work string
}

// basicTest is a passing unittest file; it also proves that the runner's
// workspace is clean: it fails if a file left by an earlier job is there.
const basicTest = `import os, unittest
LEFTOVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "leftover.txt")
class TestBasic(unittest.TestCase):
    def test_add(self):
        self.assertEqual(1 + 1, 2)
    def test_workspace_is_clean(self):
        self.assertFalse(os.path.exists(LEFTOVER), "a file from an earlier job survived")
        with open(LEFTOVER, "w") as f:
            f.write("left by a job\n")
`

// failingTest is a unittest file that fails.
const failingTest = `import unittest
class TestFail(unittest.TestCase):
    def test_wrong(self):
        self.assertEqual(2 + 2, 5, "deliberate failure")
`

// newRepo creates master.git (branch main) and a clone with files, committed
// and pushed.
func newRepo(t *testing.T, files map[string]string) *repo {
	t.Helper()
	dir := t.TempDir()
	r := &repo{t: t, bare: filepath.Join(dir, "master.git"), work: filepath.Join(dir, "work")}
	r.git(dir, "init", "-q", "--bare", "-b", "main", r.bare)
	r.git(dir, "clone", "-q", r.bare, r.work)
	r.git(r.work, "checkout", "-q", "-B", "main")
	r.write(files)
	r.commit("seed")
	r.push()
	return r
}

// git runs git in dir with a fixed identity and no user configuration.
func (r *repo) git(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// write writes files (path relative to the clone → content); an empty
// content removes the file.
func (r *repo) write(files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, name)
		if content == "" {
			r.git(r.work, "rm", "-q", "--", name)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
		r.git(r.work, "add", "--", name)
	}
}

// commit commits everything staged (or nothing) and returns the new sha.
func (r *repo) commit(msg string) string {
	r.t.Helper()
	r.git(r.work, "commit", "-q", "--allow-empty", "-m", msg)
	return r.git(r.work, "rev-parse", "HEAD")
}

func (r *repo) push() {
	r.t.Helper()
	r.git(r.work, "push", "-q", "origin", "main")
}

// commitPush writes files, commits and pushes; it returns the new sha.
func (r *repo) commitPush(msg string, files map[string]string) string {
	r.t.Helper()
	r.write(files)
	sha := r.commit(msg)
	r.push()
	return sha
}

func (r *repo) head() string {
	r.t.Helper()
	return r.git(r.work, "rev-parse", "HEAD")
}

// ---- result files ----

// resultFile is a parsed test_results/<commit> file.
type resultFile struct {
	header map[string]string
	// jobs maps each job of a pipeline build (the file's jobs: block) to
	// the rest of its line: "STATUS, attempt N, runner ID, DURATION".
	jobs   map[string]string
	output string
	raw    string
}

func resultPath(dataDir, commit string) string {
	return filepath.Join(dataDir, "test_results", commit)
}

// readResult parses a result file; ok is false when it does not exist yet.
func readResult(t *testing.T, dataDir, commit string) (resultFile, bool) {
	t.Helper()
	b, err := os.ReadFile(resultPath(dataDir, commit))
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(b) == 0) {
		return resultFile{}, false
	}
	if err != nil {
		t.Fatalf("read result of %s: %v", commit, err)
	}
	raw := string(b)
	head, body, found := strings.Cut(raw, "\n\n")
	if !found {
		t.Fatalf("result file of %s has no blank line after its header:\n%s", commit, raw)
	}
	rf := resultFile{header: map[string]string{}, jobs: map[string]string{}, output: body, raw: raw}
	for _, line := range strings.Split(head, "\n") {
		if rest, ok := strings.CutPrefix(line, "  "); ok {
			if i := strings.LastIndex(rest, ": "); i > 0 {
				rf.jobs[rest[:i]] = rest[i+2:]
				continue
			}
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			k, v, ok = strings.Cut(line, ":")
		}
		if !ok {
			t.Fatalf("result file of %s: header line %q is not key: value\n%s", commit, line, raw)
		}
		rf.header[k] = strings.TrimSpace(v)
	}
	for _, k := range []string{"status", "repo", "branches", "commit", "build", "attempt", "runner", "started", "finished", "duration"} {
		if _, ok := rf.header[k]; !ok {
			t.Errorf("result file of %s has no %q line:\n%s", commit, k, raw)
		}
	}
	if rf.header["commit"] != commit {
		t.Errorf("result file of %s says commit %q", commit, rf.header["commit"])
	}
	return rf, true
}

// waitResult waits for the result file of commit and returns it.
func waitResult(t *testing.T, dataDir, commit string, timeout time.Duration) resultFile {
	t.Helper()
	var rf resultFile
	eventually(t, timeout, func() bool {
		var ok bool
		rf, ok = readResult(t, dataDir, commit)
		return ok
	}, "no %s", resultPath(dataDir, commit))
	return rf
}

// wantStatus fails the test unless the result has the status.
func (rf resultFile) wantStatus(t *testing.T, status string) {
	t.Helper()
	if got := rf.header["status"]; got != status {
		t.Fatalf("status %q, want %q; result file:\n%s", got, status, rf.raw)
	}
}

// ---- processes in /proc ----

// procInfo is one process as /proc shows it.
type procInfo struct {
	pid, ppid int
	state     string
	start     string // start time in clock ticks: with pid, identifies the process
	cmdline   string
}

// processes reads /proc.
func processes() map[int]procInfo {
	ents, _ := os.ReadDir("/proc")
	ps := make(map[int]procInfo, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			ps[pid] = p
		}
	}
	return ps
}

// readProc reads one process; ok is false when it is gone.
func readProc(pid int) (procInfo, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, false
	}
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procInfo{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return procInfo{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return procInfo{pid: pid, ppid: ppid, state: f[0], start: f[19],
		cmdline: strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))}, true
}

// descendants returns the processes below root whose command line contains
// substr.
func descendants(root int, substr string) []procInfo {
	ps := processes()
	var found []procInfo
	for pid, p := range ps {
		if !strings.Contains(p.cmdline, substr) {
			continue
		}
		for a, seen := p.ppid, 0; a > 1 && seen < 64; a, seen = ps[a].ppid, seen+1 {
			if a == root {
				found = append(found, ps[pid])
				break
			}
		}
	}
	return found
}

// alive reports whether the process p still exists (and is not a zombie).
func alive(p procInfo) bool {
	now, ok := readProc(p.pid)
	return ok && now.start == p.start && now.state != "Z" && now.state != "X"
}

// survivors returns the processes of ps still alive and every live
// process descended from one of them (started after ps was taken).
func survivors(ps []procInfo) []procInfo {
	var left []procInfo
	roots := map[int]bool{}
	for _, p := range ps {
		if alive(p) {
			left = append(left, p)
			roots[p.pid] = true
		}
	}
	if len(roots) == 0 {
		return nil
	}
	all := processes()
	for pid, p := range all {
		if roots[pid] || p.state == "Z" {
			continue
		}
		for a, seen := p.ppid, 0; a > 1 && seen < 64; a, seen = all[a].ppid, seen+1 {
			if roots[a] {
				left = append(left, p)
				break
			}
		}
	}
	return left
}

// isPython reports whether the process runs a python interpreter (and not,
// say, a pyenv shim script that will start one).
func isPython(p procInfo) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid))
	return err == nil && strings.HasPrefix(filepath.Base(exe), "python")
}

// countLines counts the lines of s that contain substr.
func countLines(s, substr string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			n++
		}
	}
	return n
}
