package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/voltci/volt/internal/etcdtest"
)

// group is a dispatcher failover group on a real 3-member etcd, with a
// reporter, runners and an observer that are given every node.
type group struct {
	t        *testing.T
	repo     *repo
	etcd     *etcdtest.Cluster
	addrs    []string // the nodes' host:port
	nodes    []*proc
	nodeArgs [][]string
	repData  string
	reporter *proc
	runners  []*proc
	ids      []string
	observer *proc
}

// groupOpts says how to start a group.
type groupOpts struct {
	nodes, runners int
	ttl            string // --election-ttl; "" for the default (5 s)
	tls            bool   // mutual TLS to etcd
}

// servers is the --dispatcher-server value naming every node.
func (g *group) servers() string { return strings.Join(g.addrs, ",") }

// startGroup starts etcd, the dispatcher nodes, the reporter, the runners
// and the observer watching r, and waits until a node leads and the
// runners are registered with it.
func startGroup(t *testing.T, r *repo, o groupOpts) *group {
	t.Helper()
	dir := t.TempDir()
	g := &group{t: t, repo: r, etcd: etcdtest.Start(t, etcdtest.Options{Members: 3, TLS: o.tls}), repData: filepath.Join(dir, "rep")}
	for i := range o.nodes {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		args := []string{"dispatcher", "--listen", addr, "--etcd", strings.Join(g.etcd.Endpoints(), ",")}
		if o.ttl != "" {
			args = append(args, "--election-ttl", o.ttl)
		}
		if o.tls {
			ca, cert, key := g.etcd.TLSFiles()
			args = append(args, "--etcd-ca", ca, "--etcd-cert", cert, "--etcd-key", key)
		}
		g.addrs = append(g.addrs, addr)
		g.nodeArgs = append(g.nodeArgs, args)
		g.nodes = append(g.nodes, startVolt(t, fmt.Sprintf("dispatcher-%d", i), args...))
	}
	g.waitLeader(startTimeout, -1)
	g.reporter = startVolt(t, "reporter", "reporter", "--data-dir", g.repData, "--listen", "127.0.0.1:0", "--dispatcher-server", g.servers())
	for i := range o.runners {
		id := "runner-" + string(rune('a'+i))
		g.runners = append(g.runners, startVolt(t, id, "runner", "--id", id, "--work-dir", filepath.Join(dir, id),
			"--listen", "127.0.0.1:0", "--dispatcher-server", g.servers(), "--dispatcher-grace", "60s"))
		g.ids = append(g.ids, id)
	}
	g.observer = startVolt(t, "observer", "observer", "--repo", r.bare, "--poll", "500ms",
		"--data-dir", filepath.Join(dir, "obs"), "--dispatcher-server", g.servers(), "--dispatcher-grace", "60s")
	g.waitStatus(func(s string) bool {
		for _, id := range g.ids {
			if !strings.Contains(s, id+" ") {
				return false
			}
		}
		return !strings.Contains(s, "none registered") && !strings.Contains(s, "observers: 0")
	}, "the runners, the reporter and the observer did not register with the leader")
	return g
}

// status runs `volt status` against every node.
func (g *group) status() (string, bool) {
	g.t.Helper()
	r := runVolt(g.t, 20*time.Second, "status", "--dispatcher-server", g.servers())
	return r.stdout, r.code == 0
}

// waitStatus polls `volt status` until cond holds of its output.
func (g *group) waitStatus(cond func(string) bool, msg string) string {
	g.t.Helper()
	var last string
	eventuallyEvery(g.t, startTimeout, 100*time.Millisecond, func() bool {
		s, ok := g.status()
		last = s
		return ok && cond(s)
	}, "%s; last volt status:\n%s", msg, lazy(func() string { return last }))
	return last
}

var leaderLine = regexp.MustCompile(`(?m)^\s+(\S+:\d+)\s+leader\s+epoch (\d+)`)

// leader is the node that leads by `volt status` and its epoch (-1 if none).
func (g *group) leader() (int, int64) {
	g.t.Helper()
	s, _ := g.status()
	m := leaderLine.FindStringSubmatch(s)
	if m == nil {
		return -1, 0
	}
	epoch, _ := strconv.ParseInt(m[2], 10, 64)
	for i, a := range g.addrs {
		if a == m[1] {
			return i, epoch
		}
	}
	return -1, 0
}

// waitLeader waits until a node other than not leads, and returns it.
func (g *group) waitLeader(timeout time.Duration, not int) (int, int64) {
	g.t.Helper()
	var i int
	var epoch int64
	eventuallyEvery(g.t, timeout, 50*time.Millisecond, func() bool {
		i, epoch = g.leader()
		return i >= 0 && i != not
	}, "no node leads (other than %d); last volt status:\n%s", not, lazy(func() string { s, _ := g.status(); return s }))
	return i, epoch
}

// TestFailoverKillLeaderUnderLoad kills -9 the leading dispatcher node
// while runners run jobs and commits keep coming: a standby leads, every
// commit ends with exactly one result, and the jobs that were running when
// the leader died finish with the attempt they started with.
func TestFailoverKillLeaderUnderLoad(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	g := startGroup(t, r, groupOpts{nodes: 3, runners: 2})
	first, epoch := g.waitLeader(startTimeout, -1)
	waitResult(t, g.repData, r.head(), resultTimeout).wantStatus(t, "passed")

	// A stream of commits, each a two-second job, so that both runners are
	// busy when the leader dies.
	var commits []string
	push := func(i int) {
		commits = append(commits, r.commitPush(fmt.Sprintf("change %d", i), map[string]string{
			"tests/test_slow.py": strings.Replace(slowTest, "time.sleep(3)", "time.sleep(2)", 1),
			"change.txt":         strconv.Itoa(i),
		}))
	}
	for i := range 4 {
		push(i)
		time.Sleep(300 * time.Millisecond)
	}
	eventually(t, resultTimeout, func() bool {
		busy := 0
		for _, rn := range g.runners {
			if len(descendants(rn.pid(), "unittest")) > 0 {
				busy++
			}
		}
		return busy == 2
	}, "the runners are not both running a job")

	g.nodes[first].kill9(t)
	killed := time.Now()
	next, epoch2 := g.waitLeader(20*time.Second, first)
	t.Logf("node %d led with epoch %d; after kill -9, node %d leads with epoch %d, %s later", first, epoch, next, epoch2, time.Since(killed).Round(time.Millisecond))
	if epoch2 <= epoch {
		t.Errorf("the new leader's epoch %d is not above the old one's %d", epoch2, epoch)
	}
	for i := 4; i < 8; i++ {
		push(i)
		time.Sleep(300 * time.Millisecond)
	}

	for _, c := range commits {
		rf := waitResult(t, g.repData, c, 90*time.Second)
		rf.wantStatus(t, "passed")
		if rf.header["attempt"] != "1" {
			t.Errorf("commit %s: attempt %s, want 1 (a running job is adopted by the new leader, not restarted):\n%s", c[:12], rf.header["attempt"], rf.raw)
		}
	}
	res := runVolt(t, 20*time.Second, "results", "--data-dir", g.repData)
	for _, c := range commits {
		if n := countLines(res.stdout, c[:12]); n != 1 {
			t.Errorf("volt results lists %s %d times, want once:\n%s", c[:12], n, res.stdout)
		}
	}
}

// TestFailoverSIGTERMHandsOver stops the leader with SIGTERM: it resigns
// once it has stopped assigning, a standby leads at once, and the next
// commit is built.
func TestFailoverSIGTERMHandsOver(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	g := startGroup(t, r, groupOpts{nodes: 2, runners: 1})
	first, _ := g.waitLeader(startTimeout, -1)
	waitResult(t, g.repData, r.head(), resultTimeout).wantStatus(t, "passed")

	g.nodes[first].signal(t, syscall.SIGTERM)
	stopped := time.Now()
	next, _ := g.waitLeader(10*time.Second, first)
	t.Logf("after SIGTERM to node %d, node %d leads %s later", first, next, time.Since(stopped).Round(time.Millisecond))
	if code := g.nodes[first].waitExit(t, 10*time.Second); code != 0 {
		t.Errorf("the resigned leader exited with %d, want 0", code)
	}
	sha := r.commitPush("after hand-over", map[string]string{"more.txt": "x"})
	waitResult(t, g.repData, sha, resultTimeout).wantStatus(t, "passed")
}

// TestFailoverSoak fails the leader over again and again (kill -9 and
// SIGTERM in turn, the old leader started again as a standby) under a
// steady stream of commits: every commit ends with exactly one result.
// VOLT_FAILOVERS sets how many (`make soak` runs 30; `make test` 3).
func TestFailoverSoak(t *testing.T) {
	failovers := 3
	if v, err := strconv.Atoi(os.Getenv("VOLT_FAILOVERS")); err == nil && v > 0 {
		failovers = v
	}
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	g := startGroup(t, r, groupOpts{nodes: 3, runners: 2, ttl: "2s"})
	leader, epoch := g.waitLeader(startTimeout, -1)
	waitResult(t, g.repData, r.head(), resultTimeout).wantStatus(t, "passed")

	stop := make(chan struct{})
	pushed := make(chan []string)
	go func() {
		var shas []string
		for i := 0; ; i++ {
			select {
			case <-stop:
				pushed <- shas
				return
			case <-time.After(700 * time.Millisecond):
			}
			shas = append(shas, r.commitPush(fmt.Sprintf("soak %d", i), map[string]string{"soak.txt": strconv.Itoa(i)}))
		}
	}()
	var gaps []time.Duration
	for i := range failovers {
		time.Sleep(1500 * time.Millisecond)
		how := "kill -9"
		if i%2 == 1 {
			how = "SIGTERM"
			g.nodes[leader].signal(t, syscall.SIGTERM)
		} else {
			g.nodes[leader].kill9(t)
		}
		at := time.Now()
		next, e2 := g.waitLeader(30*time.Second, leader)
		gaps = append(gaps, time.Since(at))
		if e2 <= epoch {
			t.Errorf("failover %d: epoch %d after %d", i+1, e2, epoch)
		}
		t.Logf("failover %d (%s of node %d): node %d leads with epoch %d after %s", i+1, how, leader, next, e2, time.Since(at).Round(time.Millisecond))
		g.nodes[leader].waitExit(t, 15*time.Second)
		g.nodes[leader] = startVolt(t, fmt.Sprintf("dispatcher-%d-%d", leader, i), g.nodeArgs[leader]...)
		leader, epoch = next, e2
	}
	close(stop)
	shas := <-pushed
	for _, c := range shas {
		waitResult(t, g.repData, c, 2*time.Minute).wantStatus(t, "passed")
	}
	res := runVolt(t, 30*time.Second, "results", "--data-dir", g.repData, "--limit", "100000")
	for _, c := range shas {
		if n := countLines(res.stdout, c[:12]); n != 1 {
			t.Errorf("volt results lists %s %d times, want once", c[:12], n)
		}
	}
	t.Logf("%d failovers, %d commits, every one recorded once; gaps %v", failovers, len(shas), gaps)
}

// TestFailoverPausedLeaderStepsDown freezes the leader (SIGSTOP) past its
// lease: a standby leads; thawed, the old leader finds itself deposed and
// serves as a standby, and every commit is recorded once.
func TestFailoverPausedLeaderStepsDown(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	g := startGroup(t, r, groupOpts{nodes: 2, runners: 1, ttl: "2s"})
	first, _ := g.waitLeader(startTimeout, -1)
	waitResult(t, g.repData, r.head(), resultTimeout).wantStatus(t, "passed")

	g.nodes[first].signal(t, syscall.SIGSTOP)
	paused := time.Now()
	sha := r.commitPush("while the leader sleeps", map[string]string{"a.txt": "1"})
	next, _ := g.waitLeader(20*time.Second, first)
	t.Logf("node %d paused; node %d leads %s later", first, next, time.Since(paused).Round(time.Millisecond))
	time.Sleep(time.Second)
	g.nodes[first].signal(t, syscall.SIGCONT)
	waitResult(t, g.repData, sha, resultTimeout).wantStatus(t, "passed")
	g.waitStatus(func(s string) bool {
		return strings.Contains(s, g.addrs[first]+"  standby")
	}, "the thawed leader does not say it is a standby")
	eventually(t, 10*time.Second, func() bool {
		return strings.Contains(g.nodes[first].logText(), "no longer leads")
	}, "the thawed leader did not log that it stepped down")
	sha2 := r.commitPush("after the thaw", map[string]string{"b.txt": "2"})
	waitResult(t, g.repData, sha2, resultTimeout).wantStatus(t, "passed")
	res := runVolt(t, 20*time.Second, "results", "--data-dir", g.repData)
	for _, c := range []string{sha, sha2} {
		if n := countLines(res.stdout, c[:12]); n != 1 {
			t.Errorf("volt results lists %s %d times, want once:\n%s", c[:12], n, res.stdout)
		}
	}
}

// TestFailoverEtcdMemberLoss: with one etcd member lost the same leader
// stays and no job moves; with two lost (no quorum) the leader stops
// assigning, and when they come back the waiting commit is built.
func TestFailoverEtcdMemberLoss(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	g := startGroup(t, r, groupOpts{nodes: 2, runners: 1})
	first, epoch := g.waitLeader(startTimeout, -1)
	waitResult(t, g.repData, r.head(), resultTimeout).wantStatus(t, "passed")

	g.etcd.Kill(2)
	slow := r.commitPush("one member lost", map[string]string{"tests/test_slow.py": slowTest})
	rf := waitResult(t, g.repData, slow, resultTimeout)
	rf.wantStatus(t, "passed")
	if rf.header["attempt"] != "1" {
		t.Errorf("with one etcd member lost the job moved: attempt %s", rf.header["attempt"])
	}
	if now, e := g.leader(); now != first || e != epoch {
		t.Errorf("with one etcd member lost the leader changed: node %d epoch %d, was node %d epoch %d", now, e, first, epoch)
	}

	g.etcd.Kill(1)
	lost := time.Now()
	waiting := r.commitPush("no quorum", map[string]string{"c.txt": "3"})
	time.Sleep(8 * time.Second)
	if _, ok := readResult(t, g.repData, waiting); ok {
		t.Errorf("a commit was built while etcd had no quorum")
	}
	g.etcd.Restart(1)
	g.etcd.Restart(2)
	rf = waitResult(t, g.repData, waiting, 60*time.Second)
	rf.wantStatus(t, "passed")
	t.Logf("quorum lost for %s; the waiting commit was built after it came back", time.Since(lost).Round(time.Second))
}

// TestFailoverSecretsLiveInEtcd: a secret set through the group (the
// leader seals it into etcd) reaches a job after the leader is killed:
// the next leader reads it from etcd, with the same key file.
func TestFailoverSecretsLiveInEtcd(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	g := startGroup(t, r, groupOpts{nodes: 2, runners: 1, ttl: "2s"})
	first, _ := g.waitLeader(startTimeout, -1)
	waitResult(t, g.repData, r.head(), resultTimeout).wantStatus(t, "passed")
	res := runVoltStdin(t, 20*time.Second, deployKey+"\n", "secret", "set", "--dispatcher-server", g.servers(), "DEPLOY_KEY", "--repo", "master")
	if res.code != 0 {
		t.Fatalf("volt secret set: %d\n%s", res.code, res.stderr)
	}
	g.nodes[first].kill9(t)
	g.waitLeader(20*time.Second, first)
	list := runVolt(t, 20*time.Second, "secret", "list", "--dispatcher-server", g.servers())
	if !strings.Contains(list.stdout, "DEPLOY_KEY") {
		t.Fatalf("the new leader does not list the secret:\n%s\n%s", list.stdout, list.stderr)
	}
	sha := r.commitPush("deploy", map[string]string{".volt.yml": secretSpec})
	rf := waitResult(t, g.repData, sha, resultTimeout)
	rf.wantStatus(t, "passed")
	if !strings.Contains(rf.output, "length=27") || strings.Contains(rf.raw, deployKey) {
		t.Errorf("the job did not get the secret, or its value leaked:\n%s", rf.raw)
	}
}

// TestFailoverMutualTLSToEtcdWithTheClusterCA: etcd serves with a
// certificate `volt ca issue` made and trusts only the cluster CA; the
// dispatcher nodes present certificates of that CA (--etcd-ca/-cert/-key)
// and build; a node without one is refused at start with a clear error.
func TestFailoverMutualTLSToEtcdWithTheClusterCA(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "ca")
	for _, args := range [][]string{
		{"ca", "init", "--credentials", creds},
		{"ca", "issue", "--credentials", creds, "--role", "dispatcher", "--name", "etcd", "--out", filepath.Join(creds, "etcd")},
		{"ca", "issue", "--credentials", creds, "--role", "dispatcher", "--name", "etcd-client", "--out", filepath.Join(creds, "client")},
	} {
		if res := runVolt(t, 20*time.Second, args...); res.code != 0 {
			t.Fatalf("volt %s: %d\n%s", strings.Join(args, " "), res.code, res.stderr)
		}
	}
	srv := filepath.Join(creds, "etcd")
	e := etcdtest.Start(t, etcdtest.Options{Members: 3, TLS: true, ServerTLS: [3]string{
		filepath.Join(srv, "ca.crt"), filepath.Join(srv, "dispatcher.crt"), filepath.Join(srv, "dispatcher.key")}})
	cli := filepath.Join(creds, "client")
	tlsArgs := []string{"--etcd-ca", filepath.Join(cli, "ca.crt"), "--etcd-cert", filepath.Join(cli, "dispatcher.crt"), "--etcd-key", filepath.Join(cli, "dispatcher.key")}
	endpoints := strings.Join(e.Endpoints(), ",")

	// Without a client certificate: refused, and it says what to check.
	bad := runVolt(t, 30*time.Second, "dispatcher", "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--etcd", endpoints)
	if bad.code == 0 || !strings.Contains(bad.stderr, "--etcd-ca/--etcd-cert/--etcd-key") {
		t.Fatalf("a node without a client certificate: exit %d\n%s", bad.code, bad.stderr)
	}

	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startNodeUntil(t, "dispatcher", nil, "dispatcher node leads", append([]string{"dispatcher", "--listen", addr, "--etcd", endpoints}, tlsArgs...)...)
	dir := t.TempDir()
	rep := filepath.Join(dir, "rep")
	startVolt(t, "reporter", "reporter", "--data-dir", rep, "--listen", "127.0.0.1:0", "--dispatcher-server", addr)
	startVolt(t, "runner", "runner", "--id", "runner-a", "--work-dir", filepath.Join(dir, "w"), "--listen", "127.0.0.1:0", "--dispatcher-server", addr)
	startVolt(t, "observer", "observer", "--repo", r.bare, "--poll", "500ms", "--data-dir", filepath.Join(dir, "obs"), "--dispatcher-server", addr)
	waitResult(t, rep, r.head(), resultTimeout).wantStatus(t, "passed")
}

// startNodeUntil starts a dispatcher node (through prefix, say `ip netns
// exec NS`) and waits until its log says want; a node that exits first
// (etcd, started just before, does not answer yet) is started again.
func startNodeUntil(t *testing.T, name string, prefix []string, want string, args ...string) *proc {
	t.Helper()
	var p *proc
	eventually(t, 30*time.Second, func() bool {
		p = startVoltVia(t, name, prefix, args...)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) && !p.exited() {
			if strings.Contains(p.logText(), want) {
				return true
			}
			time.Sleep(50 * time.Millisecond)
		}
		return false
	}, "%s did not log %q", name, want)
	return p
}
