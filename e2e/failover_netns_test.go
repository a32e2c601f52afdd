package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voltci/volt/internal/etcdtest"
)

// TestFailoverPartitionFromEtcd cuts the leading dispatcher node off from
// etcd with network namespaces the test makes: node 1 in namespace A;
// etcd (three members), node 2, the reporter, a runner and the observer
// in namespace B, joined by a veth pair. The link goes down: node 1 stops
// leading within its TTL, node 2 leads, the commit pushed meanwhile is
// built once. The link comes back: node 1 is a standby, and nothing of
// its own is recorded.
func TestFailoverPartitionFromEtcd(t *testing.T) {
	a, b := twoNamespaces(t)
	inA, inB := []string{"ip", "netns", "exec", a.name}, []string{"ip", "netns", "exec", b.name}
	e := etcdtest.Start(t, etcdtest.Options{Members: 3, Host: b.addr, Prefix: inB})
	endpoints := strings.Join(e.Endpoints(), ",")
	node1, node2 := a.addr+":8000", b.addr+":8000"
	servers := node1 + "," + node2
	startNode := func(name string, via []string, addr string) *proc {
		return startNodeUntil(t, name, via, "dispatcher node ready", "dispatcher", "--listen", addr, "--etcd", endpoints, "--election-ttl", "2s")
	}
	leads := func(p *proc) int { return strings.Count(p.logText(), "dispatcher node leads") }
	n1 := startNode("dispatcher-1", inA, node1)
	eventually(t, 20*time.Second, func() bool { return leads(n1) == 1 }, "node 1 does not lead:\n%s", lazy(func() string { return tail(n1.log, 20) }))
	n2 := startNode("dispatcher-2", inB, node2)

	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	dir := t.TempDir()
	rep := filepath.Join(dir, "rep")
	startVoltVia(t, "reporter", inB, "reporter", "--data-dir", rep, "--listen", b.addr+":0", "--dispatcher-server", servers, "--http", "")
	startVoltVia(t, "runner", inB, "runner", "--id", "runner-a", "--work-dir", filepath.Join(dir, "w"), "--listen", b.addr+":0",
		"--dispatcher-server", servers, "--dispatcher-grace", "60s")
	startVoltVia(t, "observer", inB, "observer", "--repo", r.bare, "--poll", "500ms", "--data-dir", filepath.Join(dir, "obs"), "--listen", b.addr+":0",
		"--dispatcher-server", servers, "--dispatcher-grace", "60s")
	waitResult(t, rep, r.head(), 60*time.Second).wantStatus(t, "passed")

	ip(t, "-n", a.name, "link", "set", a.link, "down")
	cut := time.Now()
	sha := r.commitPush("while node 1 is cut off", map[string]string{"a.txt": "1"})
	eventually(t, 20*time.Second, func() bool { return leads(n2) == 1 }, "node 2 does not lead after the cut")
	t.Logf("node 2 leads %s after the cut", time.Since(cut).Round(time.Millisecond))
	eventually(t, 10*time.Second, func() bool { return strings.Contains(n1.logText(), "no longer leads") },
		"node 1 did not stop leading:\n%s", lazy(func() string { return tail(n1.log, 20) }))
	t.Logf("node 1 stopped leading %s after the cut", time.Since(cut).Round(time.Millisecond))
	waitResult(t, rep, sha, 60*time.Second).wantStatus(t, "passed")

	ip(t, "-n", a.name, "link", "set", a.link, "up")
	sha2 := r.commitPush("after the heal", map[string]string{"b.txt": "2"})
	waitResult(t, rep, sha2, 60*time.Second).wantStatus(t, "passed")
	time.Sleep(3 * time.Second) // node 1's session is back: it campaigns, behind node 2
	if n := leads(n1); n != 1 {
		t.Errorf("node 1 led %d times; after the heal it must be a standby", n)
	}
	res := runVolt(t, 20*time.Second, "results", "--data-dir", rep)
	for _, c := range []string{r.head(), sha, sha2} {
		if n := countLines(res.stdout, c[:12]); n != 1 {
			t.Errorf("volt results lists %s %d times, want once:\n%s", c[:12], n, res.stdout)
		}
	}
}
