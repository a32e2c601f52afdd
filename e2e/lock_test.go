package e2e

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitListening waits until p listens on addr, failing if it exits first.
func waitListening(t *testing.T, p *proc, addr string) {
	t.Helper()
	eventually(t, startTimeout, func() bool {
		if p.exited() {
			t.Fatalf("%s exited with %d at start:\n%s", p.name, p.code, tail(p.log, 20))
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}, "%s not listening on %s", p.name, addr)
}

func loopback(t *testing.T) string { return "127.0.0.1:" + strconv.Itoa(freePort(t)) }

// TestDataDirLock: a second process on the data directory of a running one
// (another `volt up` on other ports, a `volt dispatcher`, a `volt reporter`)
// exits at once naming the directory, the holder's pid and what to do; the
// lock dies with its holder (kill -9 leaves nothing stale); a dispatcher and
// a reporter may still share a directory, as their defaults do.
func TestDataDirLock(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	data := filepath.Join(t.TempDir(), "data")
	addr := loopback(t)
	up := startVolt(t, "up", "up", "--repo", r.bare, "--runners", "0", "--data-dir", data, "--listen", addr, "--http", "")
	waitListening(t, up, addr)

	holder := "pid " + strconv.Itoa(up.pid()) + " (volt up)"
	tests := []struct {
		name string
		args []string
		lock string
	}{
		{"a second volt up", []string{"up", "--repo", r.bare, "--runners", "0", "--data-dir", data, "--listen", loopback(t), "--http", ""}, "dispatcher"},
		{"a dispatcher", []string{"dispatcher", "--data-dir", data, "--listen", loopback(t)}, "dispatcher"},
		{"a reporter", []string{"reporter", "--data-dir", data, "--listen", loopback(t), "--http", "", "--dispatcher-server", addr}, "reporter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runVolt(t, 20*time.Second, tc.args...)
			t.Logf("volt %s: exit %d after %s: %s", tc.args[0], res.code, res.elapsed.Round(time.Millisecond), strings.TrimSpace(res.stderr))
			if res.code != 1 {
				t.Errorf("exit %d, want 1", res.code)
			}
			for _, want := range []string{"data directory " + data + " is in use", filepath.Join(data, tc.lock+".lock"), "held by " + holder,
				"stop that process first, or pass another --data-dir"} {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr lacks %q", want)
				}
			}
			if res.elapsed > 5*time.Second {
				t.Errorf("took %s to refuse, want at once", res.elapsed)
			}
		})
	}
	if up.exited() {
		t.Fatalf("the first volt up exited (%d) while others were refused", up.code)
	}

	// kill -9 leaves no stale lock: a new volt up starts on the directory.
	up.kill9(t)
	addr = loopback(t)
	again := startVolt(t, "up-again", "up", "--repo", r.bare, "--runners", "0", "--data-dir", data, "--listen", addr, "--http", "")
	waitListening(t, again, addr)

	// A dispatcher and a reporter share one directory, as `volt dispatcher`
	// and `volt reporter` do with their defaults.
	shared, creds := filepath.Join(t.TempDir(), "shared"), filepath.Join(t.TempDir(), "creds")
	dispAddr, repAddr := loopback(t), loopback(t)
	disp := startVolt(t, "dispatcher", "dispatcher", "--data-dir", shared, "--listen", dispAddr, "--credentials", creds)
	waitListening(t, disp, dispAddr)
	rep := startVolt(t, "reporter", "reporter", "--data-dir", shared, "--listen", repAddr, "--http", "", "--dispatcher-server", dispAddr,
		"--credentials", creds)
	waitListening(t, rep, repAddr)
	if disp.exited() {
		t.Fatalf("the dispatcher exited (%d) when a reporter joined its directory", disp.code)
	}
}
