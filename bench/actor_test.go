package bench

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/bench/internal/nopstore"
	voltcluster "github.com/voltci/volt/cluster"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// Target 7 through the real dispatcher actor: one in-process Proto.Actor
// system (no remote) holding the dispatcher actor (actors/dispatcher.NewActor: the host.Actor around dispatcher.Shell,
// as cluster.Node.StartDispatcher spawns it), a fake observer that sends
// CommitObserved messages of obsBatch commits each, a fake reporter that
// acknowledges every ResultRecorded, and `runners` tiny runner actors that
// register, heartbeat every second (the timers of docs/contract.md) and answer each
// RunJob at once with a passed JobFinished.

const (
	benchRepo = "/srv/git/project.git"
	obsBatch  = 100 // commits per CommitObserved
)

// actorRig is the actor system, its actors and what the fakes observed.
type actorRig struct {
	sys     *actor.ActorSystem
	db      *store.DB // nil: store=none
	disp    *actor.PID
	obs     *actor.PID
	rep     *actor.PID
	runners []*actor.PID

	registered atomic.Int64 // runners accepted
	peersUp    atomic.Int64 // observer and reporter accepted
	acked      atomic.Int64 // distinct results the reporter acknowledged
	dups       atomic.Int64 // ResultRecorded of a job already reported (a resend)
	jobsQueued atomic.Int64 // job ids the observer was told about
	// reRegistered counts runners told they were unknown (declared dead
	// because a heartbeat was handled too late); stale counts results of
	// attempts that were superseded meanwhile.
	reRegistered, stale atomic.Int64
	errored             atomic.Int64 // results that are not passed
	progress            chan struct{}

	stopBeats chan struct{}
	beatsDone chan struct{}

	mu   sync.Mutex
	errs []string
}

func (r *actorRig) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 20 {
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
}

func (r *actorRig) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func (r *actorRig) poke() {
	select {
	case r.progress <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds, failing the benchmark after timeout.
func (r *actorRig) waitFor(b *testing.B, what string, timeout time.Duration, cond func() bool) {
	b.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		if errs := r.failures(); len(errs) > 0 {
			b.Fatalf("while waiting for %s: %v", what, errs)
		}
		select {
		case <-r.progress:
		case <-deadline.C:
			b.Fatalf("timed out after %s waiting for %s (registered %d, acked %d, queued %d)", timeout, what,
				r.registered.Load(), r.acked.Load(), r.jobsQueued.Load())
		case <-time.After(50 * time.Millisecond): // re-check: errors do not poke
		}
	}
}

// beat asks a runner actor to send its heartbeat.
type beat struct{}

// feed asks the observer to send one CommitObserved of obsBatch new commits.
type feed struct{}

// benchRunner registers, heartbeats on beat, and finishes every RunJob at
// once; it checks what the dispatcher says against the protocol (ids,
// incarnation, epoch, the registration's seq echo).
type benchRunner struct {
	rig        *actorRig
	disp       *actor.PID
	id         string
	inc        int64
	seq        uint64
	regSeq     uint64
	epoch      int64
	registered bool
	once       bool // counted in rig.registered
}

func (r *benchRunner) register(ctx actor.Context) {
	r.seq++
	r.regSeq = r.seq
	ctx.Request(r.disp, &messages.RegisterRunner{RunnerId: r.id, Incarnation: r.inc,
		ProtocolVersion: messages.ProtocolVersion, Hostname: r.id, Seq: r.seq})
}

func (r *benchRunner) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		r.register(ctx)
	case *messages.RunnerRegistered:
		switch {
		case m.RunnerId != r.id || m.Incarnation != r.inc:
			r.rig.fail("runner %s: RunnerRegistered for %s/%d, registered as %d", r.id, m.RunnerId, m.Incarnation, r.inc)
		case m.Seq != r.regSeq:
			// The answer to an earlier registration: the last one decides.
		case !m.Accepted:
			r.rig.fail("runner %s refused: %s", r.id, m.Reason)
		case !r.registered:
			r.registered, r.epoch = true, m.Epoch
			if !r.once {
				r.once = true
				r.rig.registered.Add(1)
				r.rig.poke()
			}
		}
	case beat:
		if r.registered {
			r.seq++
			ctx.Request(r.disp, &messages.Heartbeat{RunnerId: r.id, Incarnation: r.inc, Seq: r.seq})
		}
	case *messages.HeartbeatAck:
		switch {
		case m.RunnerId != r.id || m.Incarnation != r.inc:
			r.rig.fail("runner %s: HeartbeatAck for %s/%d", r.id, m.RunnerId, m.Incarnation)
		case m.Unknown && r.registered:
			// Declared dead (a heartbeat came too late): register again,
			// as a real runner does.
			r.registered = false
			r.rig.reRegistered.Add(1)
			r.register(ctx)
		case !m.Unknown && m.Epoch != r.epoch:
			r.rig.fail("runner %s: HeartbeatAck of epoch %d, registered in %d", r.id, m.Epoch, r.epoch)
		}
	case *messages.RunJob:
		if m.RunnerId != r.id || m.Incarnation != r.inc || m.Epoch != r.epoch || m.Job == nil {
			r.rig.fail("runner %s/%d epoch %d: RunJob for %s/%d epoch %d", r.id, r.inc, r.epoch, m.RunnerId, m.Incarnation, m.Epoch)
			return
		}
		now := time.Now().UnixMilli()
		ctx.Request(r.disp, &messages.JobFinished{RunnerId: r.id, Incarnation: r.inc, Result: &messages.Result{
			Job: m.Job, Attempt: m.Attempt, RunnerId: r.id, Status: messages.Status_STATUS_PASSED,
			StartedUnixMs: now, FinishedUnixMs: now}})
	case *messages.JobFinishedAck:
		if !m.Recorded {
			r.rig.stale.Add(1) // a superseded attempt (counted; the dispatcher's counter must agree)
		}
	case *messages.CancelJob:
		r.rig.fail("runner %s: unexpected CancelJob %v: %s", r.id, m.Ref, m.Reason)
	}
}

// benchObserver registers and sends a CommitObserved per feed, each
// continuing from the previous one's tip.
type benchObserver struct {
	rig  *actorRig
	disp *actor.PID
	seq  uint64
	n    int
	prev string
	tips map[uint64]string
}

func (o *benchObserver) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		o.tips = map[uint64]string{}
		ctx.Request(o.disp, &messages.RegisterObserver{ObserverId: "obs", ProtocolVersion: messages.ProtocolVersion,
			Repos: []*messages.WatchedRepo{{Url: benchRepo, Name: "project", Branches: []string{"main"}}}})
	case *messages.ObserverRegistered:
		if !m.Accepted {
			o.rig.fail("observer refused: %s", m.Reason)
			return
		}
		o.rig.peersUp.Add(1)
		o.rig.poke()
	case feed:
		commits := make([]string, obsBatch)
		for i := range commits {
			o.n++
			commits[i] = fmt.Sprintf("%040x", o.n)
		}
		o.seq++
		o.tips[o.seq] = commits[len(commits)-1]
		ctx.Request(o.disp, &messages.CommitObserved{ObserverId: "obs", Seq: o.seq, Repo: benchRepo, RepoName: "project",
			Branch: "main", Previous: o.prev, Commits: commits})
		o.prev = commits[len(commits)-1]
	case *messages.CommitObservedAck:
		tip := o.tips[m.Seq]
		delete(o.tips, m.Seq)
		if m.Unknown || len(m.JobIds) != obsBatch || m.Cursor != tip {
			o.rig.fail("CommitObservedAck seq %d: unknown=%v, %d job ids, cursor %q (want %q)", m.Seq, m.Unknown, len(m.JobIds), m.Cursor, tip)
		}
		o.rig.jobsQueued.Add(int64(len(m.JobIds)))
	}
}

// benchReporter acknowledges every ResultRecorded and checks that each job
// gets one result (a resend must repeat it), that it passed, and, with a
// store, that the result is durable when it arrives.
type benchReporter struct {
	rig  *actorRig
	disp *actor.PID
	seen []int32 // by job id: the attempt reported, 0 if none yet
}

func (p *benchReporter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Request(p.disp, &messages.RegisterReporter{ReporterId: "rep", ProtocolVersion: messages.ProtocolVersion})
	case *messages.ReporterRegistered:
		if !m.Accepted {
			p.rig.fail("reporter refused: %s", m.Reason)
			return
		}
		p.rig.peersUp.Add(1)
		p.rig.poke()
	case *messages.ResultRecorded:
		res := m.Result
		j := res.GetJob()
		if j == nil || j.Id <= 0 || res.Attempt < 1 {
			p.rig.fail("bad ResultRecorded %v", res)
			return
		}
		for int64(len(p.seen)) <= j.Id {
			p.seen = append(p.seen, make([]int32, len(p.seen)+1024)...)
		}
		first := p.seen[j.Id] == 0
		switch {
		case first:
			p.seen[j.Id] = res.Attempt
			if res.Status != messages.Status_STATUS_PASSED {
				// Only the dispatcher gives up on a job here (at the attempt
				// cap, after reassignments): counted, not a failure.
				p.rig.errored.Add(1)
			}
		case p.seen[j.Id] != res.Attempt:
			p.rig.fail("job %d reported as attempt %d and %d", j.Id, p.seen[j.Id], res.Attempt)
		}
		// Durable when sent: sample one result in 997 (a read costs tens of µs).
		if p.rig.db != nil && first && j.Id%997 == 0 {
			rec, err := p.rig.db.Job(j.Id)
			if err != nil || rec.State != messages.JobState_JOB_STATE_DONE || rec.Result.GetAttempt() != res.Attempt {
				p.rig.fail("job %d: ResultRecorded arrived before its result was durable (%v, %v)", j.Id, rec, err)
			}
		}
		ctx.Request(ctx.Sender(), &messages.ResultRecordedAck{JobId: j.Id, Repo: j.Repo, Commit: j.Commit, Build: j.Build})
		if first {
			p.rig.acked.Add(1)
			p.rig.poke()
		} else {
			p.rig.dups.Add(1)
		}
	}
}

// newActorRig starts the actor system, the dispatcher on a no-op store or a
// fresh SQLite store, the observer, the reporter and the runners, and
// waits until every one of them is registered.
func newActorRig(b *testing.B, runners int, durable bool) *actorRig {
	b.Helper()
	r := &actorRig{progress: make(chan struct{}, 1), stopBeats: make(chan struct{}), beatsDone: make(chan struct{})}
	discard := slog.New(slog.DiscardHandler)
	r.sys = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return discard }))
	var q dispatcher.Store = nopstore.Store{}
	if durable {
		db, err := store.Open(b.TempDir())
		if err != nil {
			b.Fatalf("store.Open: %v", err)
		}
		r.db, q = db, voltcluster.QueueStore(db) // the adapter the dispatcher runs with
	}
	// Notes go to a discarding logger: the log handler's cost is not the
	// dispatcher's (production logs each assignment and result at info).
	env := actors.Env{Logger: discard}
	disp, err := r.sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return dispatcher.NewActor(dispatcher.DefaultConfig(), q, env)
	}), "dispatcher")
	if err != nil {
		b.Fatalf("spawn the dispatcher: %v", err)
	}
	r.disp = disp
	b.Cleanup(r.stop)

	r.rep = r.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &benchReporter{rig: r, disp: disp} }))
	r.obs = r.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &benchObserver{rig: r, disp: disp} }))
	r.waitFor(b, "the observer and the reporter to register", time.Minute, func() bool { return r.peersUp.Load() == 2 })

	// Heartbeats start before the runners, so that the first registered
	// ones are not declared dead while the last register: every 10 ms, a
	// hundredth of the runners beat, each once a second.
	r.runners = make([]*actor.PID, runners)
	var spawned atomic.Int64
	go r.beats(&spawned)
	// They start in waves of 500, so that the registrations do not queue
	// in the dispatcher's mailbox ahead of the first ones' heartbeats.
	for i := range runners {
		id := fmt.Sprintf("host-%05d/runner-1", i)
		inc := 1795782596672807515 + int64(i)
		r.runners[i] = r.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
			return &benchRunner{rig: r, disp: disp, id: id, inc: inc}
		}))
		spawned.Store(int64(i + 1))
		if (i+1)%500 == 0 || i+1 == runners {
			r.waitFor(b, "the runners to register", 2*time.Minute, func() bool { return r.registered.Load() == int64(i+1) })
		}
	}
	return r
}

func (r *actorRig) beats(spawned *atomic.Int64) {
	defer close(r.beatsDone)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	// Paced by the clock, not by counting ticks: a Ticker drops ticks when
	// this goroutine runs late, and a runner must still beat once a second.
	start, sentBeats, next := time.Now(), int64(0), 0
	for {
		select {
		case <-r.stopBeats:
			return
		case <-t.C:
		}
		n := int(spawned.Load())
		if n == 0 {
			continue
		}
		due := int64(time.Since(start) * time.Duration(len(r.runners)) / time.Second)
		for ; sentBeats < due; sentBeats++ {
			if next >= n {
				next = 0
			}
			r.sys.Root.Send(r.runners[next], beat{})
			next++
		}
	}
}

func (r *actorRig) stop() {
	close(r.stopBeats)
	<-r.beatsDone
	// The dispatcher first, so that it does not see its peers go.
	if err := r.sys.Root.StopFuture(r.disp).Wait(); err != nil {
		r.fail("stop the dispatcher: %v", err)
	}
	for _, pid := range append([]*actor.PID{r.obs, r.rep}, r.runners...) {
		if pid != nil {
			r.sys.Root.Stop(pid)
		}
	}
	r.sys.Shutdown()
	if r.db != nil {
		if err := r.db.Close(); err != nil {
			r.fail("close the store: %v", err)
		}
	}
}

// status asks the dispatcher for its status, as `volt status` does.
func (r *actorRig) status(b *testing.B) *messages.StatusReply {
	b.Helper()
	res, err := r.sys.Root.RequestFuture(r.disp, &messages.StatusRequest{OpenOnly: true}, time.Minute).Result()
	if err != nil {
		b.Fatalf("status: %v", err)
	}
	s, ok := res.(*messages.StatusReply)
	if !ok {
		b.Fatalf("status: got %T", res)
	}
	return s
}

// BenchmarkDispatcherActor is target 7 measured through the real dispatcher
// actor (actors/dispatcher.NewActor: the host.Actor around dispatcher.Shell, its Proto.Actor mailbox and shell) in one
// process, with `runners` registered runner actors that heartbeat every
// second and finish each job at once. The store is a no-op (store=none) or
// a real SQLite store.DB (store=sqlite), in which case every queue change
// is durable before anyone hears of it.
//
// One iteration is one CommitObserved of 100 new commits. At most 4,000
// jobs are unfinished at a time (40 CommitObserved in flight): enough that
// the dispatcher never waits for work, few enough that its mailbox stays
// well under its heartbeat deadlines (with 10,000 runners all busy at once,
// 10,000 JobFinished arrive together). jobs/s counts
// results the reporter acknowledged, from the first CommitObserved until
// every job has its result; the run fails if a job is lost, reported twice
// with different outcomes, reassigned, a runner is declared lost, or (with
// SQLite) a sampled result is not durable when the reporter gets it.
// Runners declared dead, jobs reassigned and results that are not passed
// (the attempt cap) are reported as metrics: they are what an overloaded
// dispatcher does when it handles heartbeats seconds late, not losses.
//
//	go test ./bench -run '^$' -bench DispatcherActor -count 5
func BenchmarkDispatcherActor(b *testing.B) {
	for _, tc := range []struct {
		runners int
		durable bool
	}{{10000, false}, {4, false}, {10000, true}, {4, true}} {
		st := "none"
		if tc.durable {
			st = "sqlite"
		}
		b.Run(fmt.Sprintf("runners=%d/store=%s", tc.runners, st), func(b *testing.B) {
			r := newActorRig(b, tc.runners, tc.durable)
			s0 := r.status(b)
			const window = 4000
			var sent int64
			start := time.Now()
			for b.Loop() {
				r.sys.Root.Send(r.obs, feed{})
				sent += obsBatch
				r.waitFor(b, "results", time.Minute, func() bool { return sent-r.acked.Load() <= window })
			}
			r.waitFor(b, "the last results", time.Minute, func() bool { return r.acked.Load() == sent })
			elapsed := time.Since(start)

			// Every job was queued once and recorded once, and every
			// acknowledgement reached the dispatcher.
			r.waitFor(b, "the observer's acks", time.Minute, func() bool { return r.jobsQueued.Load() == sent })
			var s *messages.StatusReply
			r.waitFor(b, "the dispatcher to take every acknowledgement", time.Minute, func() bool {
				s = r.status(b)
				return s.Counters[dispatcher.CounterResultsAcked]-s0.Counters[dispatcher.CounterResultsAcked] == sent
			})
			diff := func(c string) int64 { return s.Counters[c] - s0.Counters[c] }
			b.ReportMetric(float64(sent)/elapsed.Seconds(), "jobs/s")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(sent), "ns/job")
			// Not failures, but signs of an overloaded dispatcher: results
			// sent again, runners declared dead (a heartbeat handled more
			// than 3 s late), jobs reassigned from them.
			b.ReportMetric(float64(r.dups.Load()), "resends")
			b.ReportMetric(float64(diff(dispatcher.CounterRunnersLost)), "runners-lost")
			b.ReportMetric(float64(diff(dispatcher.CounterReassigned)), "reassigned")
			b.ReportMetric(float64(r.errored.Load()), "errored")
			b.ReportMetric(0, "ns/op")
			if got := diff(dispatcher.CounterRecorded); got != sent {
				b.Errorf("%s = %d, want %d", dispatcher.CounterRecorded, got, sent)
			}
			if got, want := diff(dispatcher.CounterStale), r.stale.Load(); got != want {
				b.Errorf("%s = %d, the runners were told %d", dispatcher.CounterStale, got, want)
			}
			if got := diff(dispatcher.CounterRejected); got != 0 {
				b.Errorf("%s = %d, want 0", dispatcher.CounterRejected, got)
			}
			if len(s.Jobs) != 0 || s.Counters["queued"] != 0 {
				b.Errorf("%d jobs still open, %d queued", len(s.Jobs), s.Counters["queued"])
			}
			if r.db != nil {
				// Durable: every job done and forwarded, none left to recover.
				var open []*messages.JobRecord
				var maxID int64
				r.waitFor(b, "the store to hold every acknowledgement", time.Minute, func() bool {
					var err error
					open, _, maxID, err = r.db.LoadQueue()
					if err != nil {
						b.Fatalf("LoadQueue: %v", err)
					}
					return len(open) == 0
				})
				if maxID != sent {
					b.Errorf("store: largest job id %d, want %d", maxID, sent)
				}
			}
			if errs := r.failures(); len(errs) > 0 {
				b.Fatalf("%d failures: %v", len(errs), errs)
			}
		})
	}
}
