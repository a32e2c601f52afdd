package e2e

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Deadlines: generous, because CI machines are shared and noisy.
const (
	startTimeout  = 20 * time.Second // a process is up and registered
	resultTimeout = 30 * time.Second // a pushed commit has its result file
)

// fourProc is the original four-shell workflow: a dispatcher, a reporter,
// runners and an observer, each a separate volt process.
type fourProc struct {
	t        *testing.T
	repo     *repo
	dispAddr string // 127.0.0.1:P
	dispData string
	repData  string
	disp     *proc
	reporter *proc
	runners  []*proc
	workDirs []string
	ids      []string
	observer *proc
}

// clusterOpts says how to start a fourProc.
type clusterOpts struct {
	runners int
	grace   string // --dispatcher-grace of the runners; "" for the default
	noObs   bool   // start no reporter and no observer
	// runnerArgs[i] are more flags for runner i (--labels, --slots).
	runnerArgs [][]string
}

// startCluster starts the dispatcher, the reporter, the runners and the
// observer watching r, and waits until the runners are registered.
func startCluster(t *testing.T, r *repo, o clusterOpts) *fourProc {
	t.Helper()
	dir := t.TempDir()
	c := &fourProc{
		t: t, repo: r,
		dispAddr: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		dispData: filepath.Join(dir, "disp"),
		repData:  filepath.Join(dir, "rep"),
	}
	c.startDispatcher()
	if !o.noObs {
		c.reporter = startVolt(t, "reporter", "reporter", "--data-dir", c.repData,
			"--listen", "127.0.0.1:0", "--dispatcher-server", c.dispAddr)
	}
	for i := range o.runners {
		id := "runner-" + string(rune('a'+i))
		wd := filepath.Join(dir, id)
		args := []string{"runner", "--id", id, "--work-dir", wd, "--listen", "127.0.0.1:0", "--dispatcher-server", c.dispAddr}
		if o.grace != "" {
			args = append(args, "--dispatcher-grace", o.grace)
		}
		if i < len(o.runnerArgs) {
			args = append(args, o.runnerArgs[i]...)
		}
		c.runners = append(c.runners, startVolt(t, id, args...))
		c.workDirs = append(c.workDirs, wd)
		c.ids = append(c.ids, id)
	}
	if !o.noObs {
		c.observer = startVolt(t, "observer", "observer", "--repo", r.bare, "--poll", "1s",
			"--data-dir", filepath.Join(dir, "obs"), "--dispatcher-server", c.dispAddr)
	}
	c.waitRunners(c.ids...)
	if !o.noObs {
		c.waitStatus(func(s string) bool {
			return !strings.Contains(s, "none registered") && !strings.Contains(s, "observers: 0")
		}, "the reporter and the observer did not register")
	}
	return c
}

// startDispatcher starts (or restarts) the dispatcher on c.dispAddr and
// c.dispData and waits until it accepts connections.
func (c *fourProc) startDispatcher() {
	c.t.Helper()
	c.disp = startVolt(c.t, "dispatcher", "dispatcher", "--listen", c.dispAddr, "--data-dir", c.dispData)
	eventually(c.t, startTimeout, func() bool {
		if c.disp.exited() {
			c.t.Fatalf("dispatcher exited with %d at start:\n%s", c.disp.code, tail(c.disp.log, 20))
		}
		conn, err := net.DialTimeout("tcp", c.dispAddr, time.Second)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}, "dispatcher not listening on %s", c.dispAddr)
}

// status runs `volt status` against the dispatcher; ok is false when it
// failed.
func (c *fourProc) status() (string, bool) {
	c.t.Helper()
	r := runVolt(c.t, 20*time.Second, "status", "--dispatcher-server", c.dispAddr)
	return r.stdout, r.code == 0
}

// waitStatus polls `volt status` until cond holds of its output.
func (c *fourProc) waitStatus(cond func(string) bool, msg string) string {
	c.t.Helper()
	var last string
	eventuallyEvery(c.t, startTimeout, 100*time.Millisecond, func() bool {
		s, ok := c.status()
		last = s
		return ok && cond(s)
	}, "%s; last volt status:\n%s", msg, lazy(func() string { return last }))
	return last
}

// waitRunners waits until `volt status` lists every runner id.
func (c *fourProc) waitRunners(ids ...string) string {
	c.t.Helper()
	return c.waitStatus(func(s string) bool {
		for _, id := range ids {
			if !strings.Contains(s, id+" ") {
				return false
			}
		}
		return true
	}, "runners "+strings.Join(ids, ", ")+" not registered")
}
