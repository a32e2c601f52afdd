package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
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

// ---- waiting ----

// poll calls cond every `every` until it returns true; it fails the benchmark
// with msg if cond has not held within timeout. It returns the time cond first
// held.
func poll(tb testing.TB, timeout, every time.Duration, cond func() bool, msg string, args ...any) time.Time {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if cond() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %s", timeout, fmt.Sprintf(msg, args...))
		}
		<-tick.C
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	port, err := voltbin.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// freeAddr is "127.0.0.1:<free port>".
func freeAddr(tb testing.TB) string { return "127.0.0.1:" + strconv.Itoa(freePort(tb)) }

// accepts reports whether something accepts TCP connections at addr.
func accepts(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// voltEnv is the environment of every volt process: this one's without a
// token, so that no developer's VOLT_TOKEN changes the benchmarks.
func voltEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VOLT_TOKEN=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// ---- volt processes ----

// proc is a long-running volt process started by a benchmark.
type proc struct {
	name string
	args []string
	cmd  *exec.Cmd // volt, or perf recording volt
	vpid int       // volt's pid
	log  string
	done chan struct{} // closed when cmd has exited
}

// startVolt starts `volt args...` in dir (its working directory, so that no
// default .volt lands anywhere else), stdout and stderr appended to
// dir/<name>.log. Cleanup stops it by pid: SIGTERM, then SIGKILL. With
// $VOLT_BENCH_LOGS set, the log is copied there at the end.
func startVolt(tb testing.TB, dir, name string, args ...string) *proc {
	tb.Helper()
	return startVoltProfiled(tb, dir, name, false, args...)
}

// startVoltProfiled is startVolt; when profile is true and $VOLT_BENCH_PERF
// names a directory, volt runs under `perf record -g` (its children
// included), which writes <dir>/<benchmark>.<name>.perf.data when volt exits.
func startVoltProfiled(tb testing.TB, dir, name string, profile bool, args ...string) *proc {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	perfDir := os.Getenv("VOLT_BENCH_PERF")
	var cmd *exec.Cmd
	if profile && perfDir != "" {
		out := filepath.Join(perfDir, strings.NewReplacer("/", "_", "=", "-").Replace(tb.Name())+"."+name+".perf.data")
		cmd = exec.Command("perf", append([]string{"record", "-q", "-g", "-F", "999", "-o", out, "--", voltBin}, args...)...)
		tb.Logf("perf record of %s: %s", name, out)
	} else {
		cmd = exec.Command(voltBin, args...)
	}
	cmd.Dir = dir
	cmd.Env = voltEnv()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, args: args, cmd: cmd, vpid: cmd.Process.Pid, log: logPath, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		_ = cmd.Wait()
		f.Close()
	}()
	if cmd.Path != voltBin {
		// volt is perf's child: find it.
		poll(tb, 10*time.Second, time.Millisecond, func() bool {
			for pid, st := range allProcs() {
				if st.ppid == cmd.Process.Pid && st.comm == "volt" {
					p.vpid = pid
					return true
				}
			}
			return false
		}, "perf did not start volt")
	}
	tb.Cleanup(func() {
		grace := 5 * time.Second
		if cmd.Path != voltBin {
			grace = time.Minute // perf writes its data after volt exits
		}
		p.stop(grace)
		if tb.Failed() {
			tb.Logf("--- last lines of %s (pid %d) log %s:\n%s", name, p.pid(), logPath, tail(logPath, 30))
		}
		if keep := os.Getenv("VOLT_BENCH_LOGS"); keep != "" {
			to := filepath.Join(keep, strings.NewReplacer("/", "_", "=", "-").Replace(tb.Name()))
			if b, err := os.ReadFile(logPath); err == nil && os.MkdirAll(to, 0o755) == nil {
				_ = os.WriteFile(filepath.Join(to, name+".log"), b, 0o644)
			}
		}
	})
	return p
}

// pid is volt's pid.
func (p *proc) pid() int { return p.vpid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends volt SIGTERM (and SIGCONT, in case it is frozen), waits up to
// grace, then sends SIGKILL (to volt and to perf, if any) and waits.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	_ = syscall.Kill(p.pid(), syscall.SIGCONT)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(p.pid(), syscall.SIGKILL)
		if p.cmd.Process.Pid != p.pid() {
			select {
			case <-p.done:
			case <-time.After(grace):
				_ = p.cmd.Process.Kill()
			}
		}
		<-p.done
	}
}

// kill9 sends SIGKILL; it does not wait.
func (p *proc) kill9(tb testing.TB) {
	tb.Helper()
	if err := syscall.Kill(p.pid(), syscall.SIGKILL); err != nil {
		tb.Fatalf("kill -9 %s: %v", p.name, err)
	}
}

// waitGone waits until the process has been reaped.
func (p *proc) waitGone(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		tb.Fatalf("%s (pid %d) still running %s later", p.name, p.pid(), timeout)
	}
}

// logText returns the process's log so far.
func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string { return voltbin.Tail(path, n) }

// cmdResult is the outcome of a short command.
type cmdResult struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// runCmd runs name args... in dir to completion, killing it after timeout
// (which fails the benchmark).
func runCmd(tb testing.TB, timeout time.Duration, dir string, env []string, name string, args ...string) cmdResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := cmdResult{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		tb.Fatalf("%s %s: still running after %s\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), timeout, r.stdout, r.stderr)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		tb.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return r
}

// runVolt runs a short `volt args...` (notify, status, results).
func runVolt(tb testing.TB, timeout time.Duration, args ...string) cmdResult {
	tb.Helper()
	return runCmd(tb, timeout, filepath.Dir(voltBin), voltEnv(), voltBin, args...)
}

// notify runs `volt notify` against addr and fails on a warning.
func notify(tb testing.TB, addr string) time.Duration {
	tb.Helper()
	r := runVolt(tb, 20*time.Second, "notify", "--dispatcher-server", addr)
	if r.code != 0 || r.stderr != "" {
		tb.Fatalf("volt notify: exit %d, stderr %q", r.code, r.stderr)
	}
	return r.elapsed
}

// status runs `volt status` against addr; ok is false when it failed.
func status(tb testing.TB, addr string) (string, bool) {
	tb.Helper()
	r := runVolt(tb, 20*time.Second, "status", "--dispatcher-server", addr)
	return r.stdout, r.code == 0
}

// listsRunners reports whether a `volt status` output lists every runner id.
func listsRunners(st string, ids ...string) bool {
	for _, id := range ids {
		if !strings.Contains(st, "\n"+id+" ") {
			return false
		}
	}
	return true
}

// idleRunners reports whether a `volt status` output lists every runner id
// as idle.
func idleRunners(st string, ids ...string) bool {
	for _, id := range ids {
		found := false
		for _, line := range strings.Split(st, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == id && f[1] == "idle" {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// waitAccepts waits until addr accepts TCP connections and returns when.
func waitAccepts(tb testing.TB, p *proc, addr string, timeout time.Duration) time.Time {
	tb.Helper()
	return poll(tb, timeout, time.Millisecond, func() bool {
		if p.exited() {
			tb.Fatalf("%s exited at start:\n%s", p.name, tail(p.log, 20))
		}
		return accepts(addr)
	}, "%s not listening on %s", p.name, addr)
}
