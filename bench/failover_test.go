package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/voltci/volt/actors/dispatcher"
	voltcluster "github.com/voltci/volt/cluster"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/internal/etcdtest"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/store/etcdstore"
)

// BenchmarkQueueStore is issue 13's store cost: the dispatcher's queue
// written to SQLite and to etcd (three members on this machine), in one
// run. Each op is one group-commit batch as the dispatcher writes it under
// load: jobs=1 (one job record changes: an assignment, a finish) and
// jobs=20 (a burst of queued commits). For etcd, the batch is fenced on an
// election key as a leader's is. Metrics: µs/batch, jobs/s, and for etcd
// requests/job and value-bytes/job (what each job's record costs on the
// wire: three keys per record, see store/etcdstore).
func BenchmarkQueueStore(b *testing.B) {
	for _, jobs := range []int{1, 20} {
		b.Run(fmt.Sprintf("store=sqlite/jobs=%d", jobs), func(b *testing.B) {
			db, err := store.Open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			benchSaves(b, voltcluster.QueueStore(db), jobs, dispatcher.Fence{}, nil)
		})
		b.Run(fmt.Sprintf("store=etcd3/jobs=%d", jobs), func(b *testing.B) {
			c := etcdtest.Start(b, etcdtest.Options{Members: 3})
			db, err := etcdstore.Open(context.Background(), etcdstore.Config{Endpoints: c.Endpoints()})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			resp, err := c.Client().Put(context.Background(), "/volt/election/bench", "node")
			if err != nil {
				b.Fatal(err)
			}
			fence := dispatcher.Fence{Key: "/volt/election/bench", Revision: resp.Header.Revision}
			benchSaves(b, voltcluster.EtcdQueue(db), jobs, fence, db)
		})
	}
}

func benchSaves(b *testing.B, q dispatcher.Queue, jobs int, fence dispatcher.Fence, etcd *etcdstore.DB) {
	var before etcdstore.Stats
	if etcd != nil {
		before = etcd.Stats()
	}
	id := int64(0)
	start := time.Now()
	n := 0
	for b.Loop() {
		var batch dispatcher.Batch
		batch.Fence = fence
		for range jobs {
			id++
			batch.Jobs = append(batch.Jobs, &messages.JobRecord{Job: &messages.Job{Id: id, Repo: "/srv/git/project.git", RepoName: "project",
				Commit: coretest.Commit(int(id)), Branches: []string{"main"}, Build: 1, Subject: "a commit subject of ordinary length"},
				State: messages.JobState_JOB_STATE_QUEUED})
		}
		batch.Cursors = []*messages.Cursor{{Repo: "/srv/git/project.git", Branch: "main", Commit: coretest.Commit(int(id))}}
		if err := q.Save(batch); err != nil {
			b.Fatal(err)
		}
		n++
	}
	wall := time.Since(start)
	b.ReportMetric(float64(wall.Microseconds())/float64(n), "µs/batch")
	b.ReportMetric(float64(n*jobs)/wall.Seconds(), "jobs/s")
	if etcd != nil {
		st := etcd.Stats()
		b.ReportMetric(float64(st.Txns-before.Txns)/float64(n*jobs), "requests/job")
		b.ReportMetric(float64(st.ValueBytes-before.ValueBytes)/float64(n*jobs), "value-bytes/job")
	}
}

// BenchmarkStoreThroughput is issue 13's end-to-end comparison, in one run:
// the four-process workflow (dispatcher, reporter, 4 runners, observer)
// with the dispatcher's queue in SQLite, then in etcd (a failover node
// leading alone over three members on this machine). Each iteration
// pushes 50 commits at once (the observer's default backlog cap) (`.volt.yml` runs `true`), notifies, and waits
// for every result file. Metrics: builds/s, and dispatch-ms: the median,
// over the commits, of "job started" on a runner minus "commit queued" at
// the dispatcher (the round trip through the durable queue: its write,
// the assignment's write, the RunJob).
func BenchmarkStoreThroughput(b *testing.B) {
	for _, mode := range []string{"sqlite", "etcd3"} {
		b.Run("store="+mode, func(b *testing.B) {
			dir := b.TempDir()
			r := newRepo(b, dir, map[string]string{".volt.yml": specTrue})
			var args []string
			if mode == "etcd3" {
				e := etcdtest.Start(b, etcdtest.Options{Members: 3})
				args = []string{"--etcd", strings.Join(e.Endpoints(), ",")}
			}
			c := startCluster(b, dir, r, 4, args...)
			s := newSamples()
			for b.Loop() {
				shas := r.commits(50)
				r.push()
				t0 := time.Now()
				notify(b, c.dispAddr)
				at, _ := c.results.waitFiles(b, shas, 3*time.Minute)
				var last time.Time
				for _, t := range at {
					if t.After(last) {
						last = t
					}
				}
				l := c.logs()
				var rt []float64
				for _, sha := range shas {
					q, ok1 := l.find(t0, "commit queued", "commit", sha)
					st, ok2 := l.find(t0, "job started", "commit", sha)
					if ok1 && ok2 {
						rt = append(rt, ms(st.Sub(q)))
					}
				}
				slices.Sort(rt)
				med := 0.0
				if len(rt) > 0 {
					med = rt[len(rt)/2]
				}
				s.record(b, "builds/s", float64(len(shas))/last.Sub(t0).Seconds(), "dispatch-ms", med)
				for _, sha := range shas {
					wantPassed(b, c.resultPath(sha))
				}
			}
			s.report(b)
		})
	}
}

// BenchmarkFailover is the cost of a failover in lost seconds of
// assignment: three dispatcher nodes (election TTL 5 s, the default) over
// a three-member etcd, two runners, reporter and observer all given every
// node. Each iteration kills the leader (signal=KILL: kill -9; TERM: the
// graceful hand-over), pushes a commit at once and measures, from the
// signal: leads-ms, the next leader's "dispatcher node leads" log line;
// assigned-ms, the pushed commit's "job started" on a runner (assignment
// resumed); result-ms, its result file. The killed node is started again
// as a standby before the next iteration.
func BenchmarkFailover(b *testing.B) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		b.Run("signal="+strings.TrimPrefix(fmt.Sprint(sig), "signal "), func(b *testing.B) {
			benchFailover(b, sig)
		})
	}
}

func benchFailover(b *testing.B, sig syscall.Signal) {
	dir := b.TempDir()
	r := newRepo(b, dir, map[string]string{".volt.yml": specTrue})
	e := etcdtest.Start(b, etcdtest.Options{Members: 3})
	etcdArgs := []string{"--etcd", strings.Join(e.Endpoints(), ",")}
	var addrs []string
	var nodes []*proc
	start := func(i int) *proc {
		return startVolt(b, dir, fmt.Sprintf("dispatcher-%d", i), append([]string{"dispatcher", "--listen", addrs[i]}, etcdArgs...)...)
	}
	for i := range 3 {
		addrs = append(addrs, freeAddr(b))
		nodes = append(nodes, nil)
		nodes[i] = start(i)
		waitAccepts(b, nodes[i], addrs[i], 30*time.Second)
	}
	all := strings.Join(addrs, ",")
	c := &cluster{b: b, dir: dir, dispAddr: all, repData: filepath.Join(dir, "rep")}
	c.reporter = startVolt(b, dir, "reporter", "reporter", "--data-dir", c.repData, "--listen", "127.0.0.1:0", "--dispatcher-server", all)
	for i := range 2 {
		id := fmt.Sprintf("runner-%c", 'a'+i)
		c.ids = append(c.ids, id)
		c.runners = append(c.runners, startVolt(b, dir, id, "runner", "--id", id, "--work-dir", filepath.Join(dir, id),
			"--listen", "127.0.0.1:0", "--dispatcher-server", all, "--dispatcher-grace", "60s"))
	}
	c.observer = startVolt(b, dir, "observer", "observer", "--repo", r.bare, "--poll", "10m", "--data-dir", filepath.Join(dir, "obs"),
		"--dispatcher-server", all, "--dispatcher-grace", "60s", "--log-level", "debug")
	tip := r.head()
	poll(b, 60*time.Second, 10*time.Millisecond, func() bool {
		return resultStatus(filepath.Join(c.repData, "test_results", tip)) != ""
	}, "no result for the tip %s", tip)
	c.results = watchDir(b, filepath.Join(c.repData, "test_results"), false)
	leader := func() int {
		var last string
		var idx int
		poll(b, 30*time.Second, 50*time.Millisecond, func() bool {
			st, _ := status(b, all)
			last = st
			for i, a := range addrs {
				if strings.Contains(st, a+"  leader ") {
					idx = i
					return true
				}
			}
			return false
		}, "no node leads; last volt status:\n%s", lazy(func() string { return last }))
		return idx
	}
	s := newSamples()
	for b.Loop() {
		l := leader()
		sha := r.next()
		t0 := time.Now()
		if err := syscall.Kill(nodes[l].pid(), sig); err != nil {
			b.Fatal(err)
		}
		r.push()
		// Until a node leads again a notify is refused (it says so):
		// again, as a post-receive hook's retry would.
		poll(b, 30*time.Second, 20*time.Millisecond, func() bool {
			res := runVolt(b, 20*time.Second, "notify", "--dispatcher-server", all)
			return res.code == 0 && res.stderr == ""
		}, "no node took the notify")
		at, _ := c.results.waitFiles(b, []string{sha}, 2*time.Minute)
		var paths []string
		for i, n := range nodes {
			if i != l {
				paths = append(paths, n.log)
			}
		}
		leads, _ := readLogs(paths...).find(t0, "dispatcher node leads")
		var runnerLogs []string
		for _, rn := range c.runners {
			runnerLogs = append(runnerLogs, rn.log)
		}
		started, _ := readLogs(runnerLogs...).find(t0, "job started", "commit", sha)
		s.record(b, "leads-ms", sinceMs(leads, t0), "assigned-ms", sinceMs(started, t0), "result-ms", at[sha].Sub(t0))
		wantPassed(b, c.resultPath(sha))
		nodes[l].waitGone(b, 15*time.Second)
		nodes[l] = start(l)
		waitAccepts(b, nodes[l], addrs[l], 30*time.Second)
	}
	s.report(b)
}
