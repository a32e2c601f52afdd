package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// slowTest is a unittest file that takes about three seconds.
const slowTest = `import time, unittest
class TestSlow(unittest.TestCase):
    def test_slow(self):
        time.sleep(3)
`

// hangSpec is a .volt.yml whose only step never ends by itself.
const hangSpec = `steps:
  - name: hang
    run: "sleep 300 & sleep 300"
`

// TestKillBusyRunner kills -9 the runner that is running a job: the job is
// run again on the other runner and recorded once, as attempt 2, and no
// process of the killed runner's job survives it.
func TestKillBusyRunner(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	c := startCluster(t, r, clusterOpts{runners: 2})
	waitResult(t, c.repData, r.head(), resultTimeout).wantStatus(t, "passed")

	sha := r.commitPush("slow", map[string]string{"tests/test_slow.py": slowTest})
	busy := -1
	var job []procInfo // every process below the busy runner, the job's included
	eventually(t, resultTimeout, func() bool {
		for i, rn := range c.runners {
			for _, p := range descendants(rn.pid(), "unittest") {
				if isPython(p) {
					busy, job = i, descendants(rn.pid(), "")
					return true
				}
			}
		}
		return false
	}, "no runner started the unittest suite of %s in python", sha)
	other := 1 - busy
	t.Logf("%s runs the job; its processes: %s", c.ids[busy], describe(job))

	c.runners[busy].kill9(t)
	killed := time.Now()
	eventually(t, 10*time.Second, func() bool { return len(survivors(job)) == 0 },
		"processes of the killed runner's job survive it: %s", lazy(func() string { return describe(survivors(job)) }))
	t.Logf("the killed runner's job processes were gone %s after kill -9", time.Since(killed).Round(time.Millisecond))
	eventually(t, resultTimeout, func() bool {
		return len(descendants(c.runners[other].pid(), "unittest")) > 0 || fileExists(resultPath(c.repData, sha))
	}, "the job did not move to %s", c.ids[other])
	t.Logf("the job restarted on %s %s after kill -9", c.ids[other], time.Since(killed).Round(time.Millisecond))

	rf := waitResult(t, c.repData, sha, resultTimeout)
	rf.wantStatus(t, "passed")
	if rf.header["attempt"] != "2" || rf.header["runner"] != c.ids[other] {
		t.Errorf("result says attempt %q on runner %q, want attempt 2 on %s:\n%s", rf.header["attempt"], rf.header["runner"], c.ids[other], rf.raw)
	}
	if !strings.Contains(rf.output, "test_slow") {
		t.Errorf("output lacks the slow test:\n%s", rf.raw)
	}
	// Exactly one result: the list shows the commit once.
	res := runVolt(t, 20*time.Second, "results", "--data-dir", c.repData)
	if n := countLines(res.stdout, sha[:12]); n != 1 {
		t.Errorf("volt results lists %s %d times, want once:\n%s", sha[:12], n, res.stdout)
	}
	st := c.waitRunners(c.ids[other])
	t.Logf("volt status after the kill:\n%s", st)
}

// TestDispatcherRestartWithinGrace kills -9 the dispatcher, pushes a commit
// while it is down and restarts it on the same data directory and port: the
// commit is tested, and the runners waited for it instead of exiting.
func TestDispatcherRestartWithinGrace(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	c := startCluster(t, r, clusterOpts{runners: 2, grace: "10s"})
	waitResult(t, c.repData, r.head(), resultTimeout).wantStatus(t, "passed")

	c.disp.kill9(t)
	sha := r.commitPush("during outage", nil)
	c.startDispatcher()

	waitResult(t, c.repData, sha, resultTimeout).wantStatus(t, "passed")
	for i, rn := range c.runners {
		if rn.exited() {
			t.Errorf("runner %s exited (code %d) during a dispatcher outage shorter than its grace", c.ids[i], rn.code)
		}
	}
	for _, p := range []*proc{c.reporter, c.observer} {
		if p.exited() {
			t.Errorf("%s exited (code %d) during a dispatcher outage", p.name, p.code)
		}
	}
	c.waitRunners(c.ids...)
}

// TestRunnersExitAfterGrace kills -9 the dispatcher for good: the runner
// exits with a non-zero code after its grace period and says which
// dispatcher it lost.
func TestRunnersExitAfterGrace(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	c := startCluster(t, r, clusterOpts{runners: 1, grace: "2s", noObs: true})
	rn := c.runners[0]
	before := len(rn.logText())

	c.disp.kill9(t)
	killed := time.Now()
	code := rn.waitExit(t, 2*time.Second+5*time.Second)
	t.Logf("runner exited with %d %s after the dispatcher was killed", code, time.Since(killed).Round(time.Millisecond))
	if code == 0 || code < 0 {
		t.Errorf("runner exit code %d, want a non-zero exit", code)
	}
	after := rn.logText()[before:]
	t.Logf("the runner wrote after the kill:\n%s", after)
	if !strings.Contains(after, c.dispAddr) {
		t.Errorf("what the runner wrote after losing the dispatcher does not name %s:\n%s", c.dispAddr, after)
	}
}

// TestRunnerSIGTERMLeavesNoChildren stops a runner with SIGTERM while its job
// hangs: the runner exits 0 at once and takes the job's processes with it.
func TestRunnerSIGTERMLeavesNoChildren(t *testing.T) {
	r := newRepo(t, map[string]string{".volt.yml": hangSpec})
	c := startCluster(t, r, clusterOpts{runners: 1})
	rn := c.runners[0]

	var sleeps []procInfo
	eventually(t, resultTimeout, func() bool {
		sleeps = descendants(rn.pid(), "sleep 300")
		return len(sleeps) >= 2
	}, "the job's two sleeps did not start under the runner (found %s)", lazy(func() string { return fmt.Sprint(len(sleeps)) }))
	job := descendants(rn.pid(), "")
	t.Logf("the runner's processes: %s", describe(job))

	rn.signal(t, syscall.SIGTERM)
	if code := rn.waitExit(t, 10*time.Second); code != 0 {
		t.Errorf("runner exit code %d after SIGTERM, want 0", code)
	}
	eventually(t, 5*time.Second, func() bool { return len(survivors(job)) == 0 },
		"processes of the runner's job survive its SIGTERM: %s", lazy(func() string { return describe(survivors(job)) }))
}

// describe lists processes for a log line.
func describe(ps []procInfo) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n  pid %d ppid %d state %s: %s", p.pid, p.ppid, p.state, p.cmdline)
	}
	return b.String()
}
