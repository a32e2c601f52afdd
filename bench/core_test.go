package bench

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// coreRig drives the dispatcher's deterministic core directly (no actor, no
// Proto.Actor mailbox, no network): the upper bound of what the real
// dispatcher actor can do, not a measurement of it. Effects are carried out
// the way the actor does (actors/dispatcher/actor.go): with a store, every
// Persist is one SaveQueue transaction (as before group commit) before the
// effects after it, and every CommitObserved first asks the store which
// commits are archived; sends are only collected.
type coreRig struct {
	b    *testing.B
	core *dispatcher.Core
	db   *store.DB // nil: the store is out of the path
	now  time.Time
	rep  actors.Addr
	obs  actors.Addr
	runs []*messages.RunJob // assigned and not yet finished
	to   map[string]actors.Addr
	seq  uint64
	prev string
	n    int
	// bytesPerRunner is the heap retained per registered idle runner.
	bytesPerRunner float64
}

func newCoreRig(b *testing.B, runners int, durable bool) *coreRig {
	b.Helper()
	r := &coreRig{b: b, core: dispatcher.New(dispatcher.DefaultConfig()), now: time.Unix(1_800_000_000, 0),
		rep: "127.0.0.1:1/reporter", obs: "127.0.0.1:2/observer", to: map[string]actors.Addr{}}
	r.core.Recover(r.now, dispatcher.Durable{})
	r.apply(r.core.Step(r.now, reporterAt(r.rep), &messages.RegisterReporter{ReporterId: "rep", ProtocolVersion: messages.ProtocolVersion}))
	r.apply(r.core.Step(r.now, observerAt(r.obs), &messages.RegisterObserver{ObserverId: "obs", ProtocolVersion: messages.ProtocolVersion,
		Repos: []*messages.WatchedRepo{{Url: "/srv/git/project.git", Name: "project", Branches: []string{"main"}}}}))

	// The heap the core keeps per idle runner: strings are made here, as
	// unmarshalling would, and only the core keeps them.
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for i := range runners {
		addr := actors.Addr(fmt.Sprintf("10.0.%d.%d:8900/runner-%d-%d", i/250, i%250, i, 1795782596672807515+int64(i)))
		id := fmt.Sprintf("host-%05d/runner-1", i)
		r.apply(r.core.Step(r.now, runnerAt(addr, id), &messages.RegisterRunner{RunnerId: id,
			Incarnation: 1795782596672807515 + int64(i), ProtocolVersion: messages.ProtocolVersion,
			Hostname: fmt.Sprintf("host-%05d", i)}))
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	r.bytesPerRunner = (float64(m1.HeapAlloc) - float64(m0.HeapAlloc)) / float64(runners)
	runtime.KeepAlive(r.core)

	if durable {
		db, err := store.Open(b.TempDir())
		if err != nil {
			b.Fatalf("store.Open: %v", err)
		}
		b.Cleanup(func() { db.Close() })
		r.db = db
	}
	return r
}

// The senders as a connection proves them: each runner as itself, the
// observer and the reporter by role.
func runnerAt(a actors.Addr, id string) actors.From {
	return actors.From{Addr: a, Who: actors.Identity{Role: actors.RoleRunner, Name: id}}
}

func observerAt(a actors.Addr) actors.From {
	return actors.From{Addr: a, Who: actors.Identity{Role: actors.RoleObserver, Name: "obs"}}
}

func reporterAt(a actors.Addr) actors.From {
	return actors.From{Addr: a, Who: actors.Identity{Role: actors.RoleReporter, Name: "rep"}}
}

// apply carries out effects: persists (with a store), collects RunJobs.
func (r *coreRig) apply(fx []actors.Effect) {
	for _, e := range fx {
		switch e := e.(type) {
		case dispatcher.Persist:
			if r.db == nil {
				continue
			}
			if err := r.db.SaveQueue(e.Jobs, e.Cursors, e.Incarnations); err != nil {
				r.b.Fatalf("SaveQueue: %v", err)
			}
		case actors.Send:
			if run, ok := e.Msg.(*messages.RunJob); ok {
				r.runs = append(r.runs, run)
				r.to[run.RunnerId] = e.To
			}
		}
	}
}

// batch observes `size` new commits in one CommitObserved and runs every
// job to its acknowledged result: CommitObserved → RunJob → JobFinished →
// ResultRecorded → ResultRecordedAck.
func (r *coreRig) batch(size int) {
	commits := make([]string, size)
	for i := range commits {
		r.n++
		commits[i] = fmt.Sprintf("%040x", r.n)
	}
	r.seq++
	msg := &messages.CommitObserved{ObserverId: "obs", Seq: r.seq, Repo: "/srv/git/project.git", RepoName: "project",
		Branch: "main", Previous: r.prev, Commits: commits}
	r.prev = commits[len(commits)-1]
	var archived map[string]*messages.JobRecord
	if r.db != nil {
		var err error
		if archived, err = r.db.LatestJobs(msg.Repo, commits); err != nil {
			r.b.Fatalf("LatestJobs: %v", err)
		}
	}
	r.apply(r.core.Step(r.now, observerAt(r.obs), dispatcher.Observed{Msg: msg, Archived: archived}))
	for len(r.runs) > 0 {
		run := r.runs[0]
		r.runs = r.runs[1:]
		res := &messages.Result{Job: run.Job, Attempt: run.Attempt, RunnerId: run.RunnerId, Status: messages.Status_STATUS_PASSED,
			StartedUnixMs: r.now.UnixMilli(), FinishedUnixMs: r.now.UnixMilli()}
		r.apply(r.core.Step(r.now, runnerAt(r.to[run.RunnerId], run.RunnerId), &messages.JobFinished{RunnerId: run.RunnerId, Incarnation: run.Incarnation, Result: res}))
		r.apply(r.core.Step(r.now, reporterAt(r.rep), &messages.ResultRecordedAck{JobId: run.Job.Id, Repo: run.Job.Repo, Commit: run.Job.Commit, Build: run.Job.Build}))
	}
}

// BenchmarkDispatcherCore is the core-only part of target 7: no-op jobs
// through the dispatcher's deterministic core (actors/dispatcher.Core) with
// registered idle runners, the store out of the path (store=none) or every
// queue change made durable the way the actor does it today, one SQLite
// transaction per Persist effect (store=sqlite; no group commit exists to
// measure). It does NOT include the Proto.Actor dispatcher actor, its
// mailbox or any runner actor: it is an upper bound for the "real
// dispatcher actor" figure of the target.
//
// batch is the number of commits per CommitObserved (the observer sends a
// pushed backlog in one message). Metrics: jobs/s (target ≥ 250,000 without
// the store, ≥ 20,000 with SQLite), ns/job, allocs/job and B/job (heap
// allocated per job, the rig's messages included), B/idle-runner (heap the
// core keeps per registered idle runner; target ≤ 256).
func BenchmarkDispatcherCore(b *testing.B) {
	for _, tc := range []struct {
		runners, batch int
		durable        bool
	}{
		{10000, 1, false}, {10000, 100, false}, {4, 1, false}, {4, 100, false},
		{10000, 1, true}, {10000, 100, true},
	} {
		st := "none"
		if tc.durable {
			st = "sqlite"
		}
		b.Run(fmt.Sprintf("runners=%d/batch=%d/store=%s", tc.runners, tc.batch, st), func(b *testing.B) {
			r := newCoreRig(b, tc.runners, tc.durable)
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			c0 := cpuTime(b)
			for b.Loop() {
				r.batch(tc.batch)
			}
			c1 := cpuTime(b)
			runtime.ReadMemStats(&m1)
			jobs := float64(b.N * tc.batch)
			b.ReportMetric(jobs/b.Elapsed().Seconds(), "jobs/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/jobs, "ns/job")
			b.ReportMetric(float64(c1-c0)/jobs, "cpu-ns/job")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/jobs, "allocs/job")
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/jobs, "B/job")
			b.ReportMetric(0, "ns/op")
			if tc.runners >= 1000 {
				b.ReportMetric(r.bytesPerRunner, "B/idle-runner")
			}
		})
	}
}

// BenchmarkDispatcherCoreHeartbeat is one runner heartbeat through the core
// with 10,000 registered idle runners: 10,000 runners at the default 1 s
// heartbeat send 10,000 of these a second, so ns/heartbeat × 10,000 / 1e9 is
// the share of a core the dispatcher spends on heartbeats alone (the actor
// and the network excluded).
func BenchmarkDispatcherCoreHeartbeat(b *testing.B) {
	const runners = 10000
	r := newCoreRig(b, runners, false)
	// The addresses and ids the rig registered.
	type peer struct {
		addr actors.Addr
		id   string
		inc  int64
	}
	peers := make([]peer, runners)
	for i := range peers {
		peers[i] = peer{actors.Addr(fmt.Sprintf("10.0.%d.%d:8900/runner-%d-%d", i/250, i%250, i, 1795782596672807515+int64(i))),
			fmt.Sprintf("host-%05d/runner-1", i), 1795782596672807515 + int64(i)}
	}
	i := 0
	c0 := cpuTime(b)
	for b.Loop() {
		p := peers[i%runners]
		i++
		r.apply(r.core.Step(r.now, runnerAt(p.addr, p.id), &messages.Heartbeat{RunnerId: p.id, Incarnation: p.inc, Seq: uint64(i)}))
	}
	b.ReportMetric(float64(cpuTime(b)-c0)/float64(b.N), "cpu-ns/heartbeat")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/heartbeat")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the CPU time this process has used (user and system, every
// thread: the garbage collector's included). On a shared machine it is a
// steadier figure than the wall clock: time spent waiting for a CPU is not in
// it.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDispatcherCoreIdleTick is what an idle dispatcher with 10,000
// registered runners pays when its deadline timer fires (target 9): one
// Tick with nothing due, then Deadline for the next wake-up. Both look only
// at the fronts of the core's ordered lines, so the cost does not grow with
// the number of runners (compare runners=4).
func BenchmarkDispatcherCoreIdleTick(b *testing.B) {
	for _, runners := range []int{4, 10000} {
		b.Run(fmt.Sprintf("runners=%d", runners), func(b *testing.B) {
			r := newCoreRig(b, runners, false)
			var d time.Time
			for b.Loop() {
				r.apply(r.core.Step(r.now, actors.From{Who: actors.Local}, actors.Tick{}))
				d = r.core.Deadline()
			}
			if d.IsZero() {
				b.Fatal("no deadline with runners registered")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/tick")
			b.ReportMetric(0, "ns/op")
		})
	}
}
