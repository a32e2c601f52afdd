package e2e

import (
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stepsSpec is a .volt.yml whose second of three steps fails.
const stepsSpec = `steps:
  - name: first
    run: echo "first-step-ran commit=$VOLT_COMMIT ci=$CI branch=$VOLT_BRANCH"
  - name: second
    run: echo second-step-ran; exit 3
  - name: third
    run: echo third-step-ran
`

// badSpec is a .volt.yml that is not valid YAML (line 3).
const badSpec = "steps:\n  - name: x\n    run: [unclosed\n"

// TestUpEndToEnd runs every role in one `volt up` process: a passing commit
// is recorded, `volt notify` never fails, a failing step is named in the
// result, and a malformed .volt.yml ends errored with the line it is wrong at.
func TestUpEndToEnd(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	data := filepath.Join(t.TempDir(), "data")
	up := startVolt(t, "up", "up", "--repo", r.bare, "--poll", "1s", "--runners", "2", "--data-dir", data, "--listen", addr)
	eventually(t, startTimeout, func() bool {
		if up.exited() {
			t.Fatalf("volt up exited with %d at start", up.code)
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}, "volt up not listening on %s", addr)

	// The tip seen at start, then a new passing commit.
	waitResult(t, data, r.head(), resultTimeout).wantStatus(t, "passed")
	pass := r.commitPush("pass", nil)
	if res := runVolt(t, 20*time.Second, "notify", "--dispatcher-server", addr); res.code != 0 {
		t.Errorf("volt notify: exit %d, want 0\nstderr: %s", res.code, res.stderr)
	}
	waitResult(t, data, pass, resultTimeout).wantStatus(t, "passed")
	res := runVolt(t, 20*time.Second, "results", pass, "--data-dir", data)
	if res.code != 0 || !strings.Contains(res.stdout, "passed") {
		t.Errorf("volt results %s: exit %d, want 0 and passed\nstdout: %s\nstderr: %s", pass, res.code, res.stdout, res.stderr)
	}

	// Nothing listens: notify still exits 0, with a warning.
	nobody := "127.0.0.1:" + strconv.Itoa(freePort(t))
	res = runVolt(t, 20*time.Second, "notify", "--dispatcher-server", nobody)
	if res.code != 0 || !strings.Contains(strings.ToLower(res.stderr), "warning") {
		t.Errorf("volt notify with nothing at %s: exit %d, stderr %q; want 0 and a warning", nobody, res.code, res.stderr)
	}
	t.Logf("volt notify with nothing listening took %s", res.elapsed.Round(time.Millisecond))

	// Steps: the second fails, the third never runs.
	steps := r.commitPush("steps", map[string]string{".volt.yml": stepsSpec})
	rf := waitResult(t, data, steps, resultTimeout)
	rf.wantStatus(t, "failed")
	if rf.header["failed_step"] != "second" {
		t.Errorf("failed_step %q, want second:\n%s", rf.header["failed_step"], rf.raw)
	}
	for _, want := range []string{"first-step-ran commit=" + steps + " ci=true branch=main", "second-step-ran"} {
		if !strings.Contains(rf.output, want) {
			t.Errorf("output lacks %q:\n%s", want, rf.raw)
		}
	}
	if strings.Contains(rf.output, "third-step-ran") {
		t.Errorf("the step after the failing one ran:\n%s", rf.raw)
	}

	// A malformed .volt.yml: errored, naming the file and the line.
	bad := r.commitPush("bad yaml", map[string]string{".volt.yml": badSpec})
	rf = waitResult(t, data, bad, resultTimeout)
	rf.wantStatus(t, "errored")
	if !regexp.MustCompile(`\.volt\.yml line 3\b`).MatchString(rf.raw) {
		t.Errorf("errored result does not name .volt.yml line 3:\n%s", rf.raw)
	}

	if up.exited() {
		t.Fatalf("volt up exited with %d", up.code)
	}
}

// TestBadInput: wrong flags and unreachable peers end with a clear message
// and the contract's exit code, quickly.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	notRepo := filepath.Join(dir, "not-a-repo")
	nobody := "127.0.0.1:" + strconv.Itoa(freePort(t))
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantText string // in stdout or stderr
		within   time.Duration
	}{
		{
			name:     "up on a path that is not a repository",
			args:     []string{"up", "--repo", notRepo, "--data-dir", filepath.Join(dir, "up1"), "--listen", "127.0.0.1:0"},
			wantCode: 2, wantText: notRepo, within: 10 * time.Second,
		},
		{
			name: "runner with an unreachable dispatcher",
			args: []string{"runner", "--dispatcher-server", "127.0.0.1:1", "--dispatcher-grace", "1s",
				"--work-dir", filepath.Join(dir, "r"), "--listen", "127.0.0.1:0"},
			wantCode: 1, wantText: "127.0.0.1:1", within: 15 * time.Second,
		},
		{
			name:     "observer without --repo",
			args:     []string{"observer", "--dispatcher-server", nobody, "--data-dir", filepath.Join(dir, "obs")},
			wantCode: 2, wantText: "--repo", within: 10 * time.Second,
		},
		{
			name:     "up with a malformed --poll",
			args:     []string{"up", "--repo", r.bare, "--poll", "nonsense", "--data-dir", filepath.Join(dir, "up2"), "--listen", "127.0.0.1:0"},
			wantCode: 2, wantText: "nonsense", within: 10 * time.Second,
		},
		{
			// 10.1.1.1 must never be dialled: the credentials are checked
			// before any connection, and a runner may not make itself a CA
			// for a dispatcher on another machine.
			name: "runner off loopback without credentials",
			args: []string{"runner", "--listen", "0.0.0.0:0", "--dispatcher-server", "10.1.1.1:8000", "--work-dir", filepath.Join(dir, "r2"),
				"--credentials", filepath.Join(dir, "no-credentials")},
			wantCode: 2, wantText: "--join", within: 5 * time.Second,
		},
		{
			name:     "web UI off loopback without a token",
			args:     []string{"reporter", "--http", "0.0.0.0:0", "--dispatcher-server", nobody, "--data-dir", filepath.Join(dir, "rep")},
			wantCode: 2, wantText: "token", within: 5 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Twice the allowed time before killing, so that a slow exit is
			// reported as slow rather than as a hang.
			res := runVolt(t, 2*tt.within, tt.args...)
			out := res.stdout + res.stderr
			t.Logf("volt %s: exit %d after %s: %s", strings.Join(tt.args, " "), res.code, res.elapsed.Round(time.Millisecond), strings.TrimSpace(out))
			if res.code != tt.wantCode {
				t.Errorf("exit %d, want %d\n%s", res.code, tt.wantCode, out)
			}
			if !strings.Contains(out, tt.wantText) {
				t.Errorf("output does not mention %q:\n%s", tt.wantText, out)
			}
			if res.elapsed > tt.within {
				t.Errorf("took %s, want under %s", res.elapsed, tt.within)
			}
		})
	}
}

// TestNotifyTriggersBuild: with a poll interval far longer than the test,
// `volt notify` (what a post-receive hook runs) is what makes a pushed commit
// get built.
func TestNotifyTriggersBuild(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	data := filepath.Join(t.TempDir(), "data")
	startVolt(t, "up", "up", "--repo", r.bare, "--poll", "10m", "--runners", "1", "--data-dir", data, "--listen", addr)
	waitResult(t, data, r.head(), resultTimeout).wantStatus(t, "passed") // the tip seen at start

	sha := r.commitPush("notified", nil)
	start := time.Now()
	if res := runVolt(t, 20*time.Second, "notify", "--dispatcher-server", addr); res.code != 0 || res.stderr != "" {
		t.Errorf("volt notify: exit %d, stderr %q; want 0 and no warning", res.code, res.stderr)
	}
	waitResult(t, data, sha, resultTimeout).wantStatus(t, "passed")
	t.Logf("commit built %s after volt notify (poll interval 10m)", time.Since(start).Round(time.Millisecond))
}
