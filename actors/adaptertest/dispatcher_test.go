package adaptertest

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
)

const (
	repoURL  = "/srv/git/app.git"
	repoName = "app"
	branch   = "main"
	dispID   = "sup/dispatcher" // the dispatcher, child of the supervisor "sup"
)

func commit(n int) string { return fmt.Sprintf("%040x", n) }

var discard = slog.New(slog.DiscardHandler)

// dispConfig keeps real time out: no deadline of the core comes due while a
// test runs, so only the messages the schedule delivers matter.
func dispConfig() dispatcher.Config {
	cfg := dispatcher.DefaultConfig()
	cfg.Heartbeat, cfg.Lease, cfg.DeadAfter = time.Hour, 2*time.Hour, 3*time.Hour
	cfg.StartGrace, cfg.ResultRetry = time.Hour, time.Hour
	return cfg
}

// restartAll is the supervisor of the tests: OneForOne, restart on any panic.
func restartAll() actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(3, time.Minute, func(any) actor.Directive { return actor.RestartDirective })
}

// fakeRunner is a runner that answers a RunJob at once with a passed result
// and keeps that result until it is acknowledged, as the real one does.
type fakeRunner struct {
	id         string
	registered bool
	pending    *messages.JobFinished
}

// dispWorld is the real dispatcher shell, supervised, with fake peers.
type dispWorld struct {
	s       *sched
	sys     *actor.ActorSystem
	j       *journal
	store   *memStore
	sup     *actor.PID
	disp    *actor.PID
	runners []*actor.PID
	obs     *actor.PID
	rep     *actor.PID
	commits []string

	// The fake peers' state; touched only in their Receive, on the test goroutine.
	obsAcked  bool
	obsJobIDs []int64
	results   map[int64][]*messages.Result // at the reporter, by job id
}

func newDispWorld(t tb, s *sched, runners, commits int, fault func(int, []*messages.JobRecord) (bool, bool)) *dispWorld {
	t.Helper()
	return newDispWorldConfig(t, s, dispConfig(), runners, commits, fault)
}

func newDispWorldConfig(t tb, s *sched, cfg dispatcher.Config, runners, commits int, fault func(int, []*messages.JobRecord) (bool, bool)) *dispWorld {
	t.Helper()
	w := &dispWorld{s: s, sys: newSystem(), j: &journal{}, results: map[int64][]*messages.Result{}}
	for i := 1; i <= commits; i++ {
		w.commits = append(w.commits, commit(i))
	}
	w.store = newMemStore(w.j)
	w.store.fault = fault
	child := actor.PropsFromProducer(func() actor.Actor {
		a := dispatcher.NewActor(cfg, w.store, actors.Env{Logger: discard, StoreRetry: time.Nanosecond})
		a.Tick = time.Hour // the tests send the ticks
		a.WorkerOptions = []actor.PropsOption{actor.WithDispatcher(s)}
		return a
	}, actor.WithDispatcher(s), actor.WithSenderMiddleware(recordSends(w.j)), actor.WithReceiverMiddleware(recordLife(w.j)))
	sup, err := w.sys.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			if _, err := ctx.SpawnNamed(child, "dispatcher"); err != nil {
				panic(err)
			}
		}
	}, actor.WithDispatcher(s), actor.WithSupervisor(restartAll())), "sup")
	if err != nil {
		t.Fatalf("spawn the supervisor: %v", err)
	}
	w.sup, w.disp = sup, actor.NewPID(w.sys.Address(), dispID)
	s.drain(t) // the dispatcher is up (and has loaded its queue) before any peer speaks

	// The peers start together; the schedule decides who registers first.
	for i := 1; i <= runners; i++ {
		fr := &fakeRunner{id: fmt.Sprintf("r%d", i)}
		w.runners = append(w.runners, spawnPeer(t, w.sys, s, w.j, fr.id, w.runnerReact(fr)))
	}
	w.obs = spawnPeer(t, w.sys, s, w.j, "obs", w.observerReact())
	w.rep = spawnPeer(t, w.sys, s, w.j, "rep", w.reporterReact())
	return w
}

func (w *dispWorld) runnerReact(fr *fakeRunner) func(actor.Context, any) {
	register := func(ctx actor.Context) {
		var running []*messages.JobRef
		if fr.pending != nil {
			running = append(running, &messages.JobRef{JobId: fr.pending.Result.Job.Id, Attempt: fr.pending.Result.Attempt})
		}
		ctx.Request(w.disp, &messages.RegisterRunner{RunnerId: fr.id, Incarnation: 1, ProtocolVersion: messages.ProtocolVersion,
			Hostname: fr.id, Running: running})
	}
	return func(ctx actor.Context, msg any) {
		switch m := msg.(type) {
		case *actor.Started:
			register(ctx)
		case poke:
			if !fr.registered {
				register(ctx)
				return
			}
			hb := &messages.Heartbeat{RunnerId: fr.id, Incarnation: 1}
			if fr.pending != nil {
				hb.Running = append(hb.Running, &messages.JobRef{JobId: fr.pending.Result.Job.Id, Attempt: fr.pending.Result.Attempt})
			}
			ctx.Request(w.disp, hb)
		case *messages.RunnerRegistered:
			if m.Accepted {
				fr.registered = true
				if fr.pending != nil {
					ctx.Request(w.disp, fr.pending)
				}
			}
		case *messages.HeartbeatAck:
			if m.Unknown {
				fr.registered = false
				register(ctx)
			}
		case *messages.RunJob:
			if fr.pending != nil {
				return // busy, as a real runner would say
			}
			fr.pending = &messages.JobFinished{RunnerId: fr.id, Incarnation: 1, Result: &messages.Result{
				Job: m.Job, Attempt: m.Attempt, RunnerId: fr.id, Status: messages.Status_STATUS_PASSED}}
			ctx.Request(w.disp, fr.pending)
		case *messages.JobFinishedAck:
			if p := fr.pending; p != nil && p.Result.Job.Id == m.Ref.JobId && p.Result.Attempt == m.Ref.Attempt {
				fr.pending = nil
			}
		case *messages.CancelJob:
			if p := fr.pending; p != nil && p.Result.Job.Id == m.Ref.JobId && p.Result.Attempt == m.Ref.Attempt {
				fr.pending = nil
			}
		}
	}
}

func (w *dispWorld) observerReact() func(actor.Context, any) {
	registered := false
	reg := &messages.RegisterObserver{ObserverId: "obs", ProtocolVersion: messages.ProtocolVersion,
		Repos: []*messages.WatchedRepo{{Url: repoURL, Name: repoName, Branches: []string{branch}}}}
	observed := &messages.CommitObserved{ObserverId: "obs", Seq: 1, Repo: repoURL, RepoName: repoName, Branch: branch, Commits: w.commits}
	return func(ctx actor.Context, msg any) {
		switch m := msg.(type) {
		case *actor.Started:
			ctx.Request(w.disp, reg)
		case poke:
			switch {
			case w.obsAcked:
			case registered:
				ctx.Request(w.disp, observed)
			default:
				ctx.Request(w.disp, reg)
			}
		case *messages.ObserverRegistered:
			if m.Accepted {
				registered = true
				if !w.obsAcked {
					ctx.Request(w.disp, observed)
				}
			}
		case *messages.CommitObservedAck:
			if m.Unknown {
				registered = false
				ctx.Request(w.disp, reg)
				return
			}
			w.obsAcked, w.obsJobIDs = true, m.JobIds
		}
	}
}

func (w *dispWorld) reporterReact() func(actor.Context, any) {
	return func(ctx actor.Context, msg any) {
		switch m := msg.(type) {
		case *actor.Started, poke:
			ctx.Request(w.disp, &messages.RegisterReporter{ReporterId: "rep", ProtocolVersion: messages.ProtocolVersion})
		case *messages.ResultRecorded:
			j := m.Result.Job
			w.results[j.Id] = append(w.results[j.Id], m.Result)
			ctx.Request(ctx.Sender(), &messages.ResultRecordedAck{JobId: j.Id, Repo: j.Repo, Commit: j.Commit, Build: j.Build})
		}
	}
}

// pokeAll does what the peers' timers would: resend, heartbeat, register
// again; and ticks the dispatcher.
func (w *dispWorld) pokeAll() {
	for _, pid := range append(slices.Clone(w.runners), w.obs, w.rep) {
		w.sys.Root.Send(pid, poke{})
	}
	w.sys.Root.Send(w.disp, actors.Tick{})
}

// settled: every commit has a job, every job's result is forwarded and
// acknowledged.
func (w *dispWorld) settled() bool {
	if !w.obsAcked || len(w.results) != len(w.commits) {
		return false
	}
	jobs := w.store.snapshot()
	for _, id := range w.obsJobIDs {
		if r := jobs[id]; r == nil || !r.Forwarded {
			return false
		}
	}
	return true
}

func (w *dispWorld) stop(t tb) {
	t.Helper()
	stop(t, w.s, w.sys, append([]*actor.PID{w.sup, w.obs, w.rep}, w.runners...)...)
}

// checkJournal checks what must hold in every run, failed writes or not:
//   - a RunJob is sent (and arrives) only after the job's assignment is
//     durable, a ResultRecorded only after the result is;
//   - after a failed write the dispatcher sends nothing but heartbeat
//     acknowledgements until the write succeeds and it has started afresh
//     from its queue (loaded again);
//   - each peer receives from the dispatcher exactly what it sent, in order.
func checkJournal(t tb, evs []event) {
	t.Helper()
	durable := func(before int, job int64, ok func(*messages.JobRecord) bool) bool {
		for _, e := range evs[:before] {
			if recs, isJobs := e.msg.([]*messages.JobRecord); isJobs && e.kind == "save" {
				for _, r := range recs {
					if r.Job.Id == job && ok(r) {
						return true
					}
				}
			}
		}
		return false
	}
	running := func(m *messages.RunJob) func(*messages.JobRecord) bool {
		return func(r *messages.JobRecord) bool {
			return r.State == messages.JobState_JOB_STATE_RUNNING && r.Attempt == m.Attempt && r.RunnerId == m.RunnerId
		}
	}
	done := func(m *messages.ResultRecorded) func(*messages.JobRecord) bool {
		return func(r *messages.JobRecord) bool {
			return r.State == messages.JobState_JOB_STATE_DONE && r.Result.GetAttempt() == m.Result.Attempt
		}
	}
	failed := false
	sent := map[string][]any{}
	got := map[string][]any{}
	for i, e := range evs {
		switch {
		case e.kind == "savefail":
			failed = true
		case e.kind == "load":
			failed = false
		case e.kind == "send" && e.who == dispID && e.peer != dispID && !strings.HasPrefix(e.peer, dispID+"/"):
			// (Its group commit's messages to itself and to its writer, a
			// child, are not messages to a peer.)
			if _, ack := e.msg.(*messages.HeartbeatAck); failed && !ack {
				t.Fatalf("event %d: %s sent after a failed write, before a restart", i, e)
			}
			sent[e.peer] = append(sent[e.peer], e.msg)
		case e.kind == "recv" && e.peer == dispID:
			got[e.who] = append(got[e.who], e.msg)
		}
		switch m := e.msg.(type) {
		case *messages.RunJob:
			if (e.kind == "send" || e.kind == "recv") && !durable(i, m.Job.Id, running(m)) {
				t.Fatalf("event %d: %s of job %d attempt %d before its assignment was durable", i, e, m.Job.Id, m.Attempt)
			}
		case *messages.ResultRecorded:
			if (e.kind == "send" || e.kind == "recv") && !durable(i, m.Result.Job.Id, done(m)) {
				t.Fatalf("event %d: %s of job %d before its result was durable", i, e, m.Result.Job.Id)
			}
		}
	}
	for peer, msgs := range sent {
		if len(got[peer]) != len(msgs) {
			t.Fatalf("%s: the dispatcher sent %d messages, it received %d", peer, len(msgs), len(got[peer]))
		}
		for k := range msgs {
			if msgs[k] != got[peer][k] {
				t.Fatalf("%s: message %d sent as %T, received as %T", peer, k, msgs[k], got[peer][k])
			}
		}
	}
	for peer := range got {
		if _, ok := sent[peer]; !ok {
			t.Fatalf("%s received messages from the dispatcher that it never sent", peer)
		}
	}
}

// outcome summarises a settled run independently of which runner ran what.
func (w *dispWorld) outcome(evs []event) string {
	jobs := w.store.snapshot()
	s := ""
	for _, id := range sortedIDs(jobs) {
		r := jobs[id]
		s += fmt.Sprintf("job %d %s: %s attempt %d forwarded %v; ", id, r.Job.Commit[36:], r.Result.GetStatus(), r.Attempt, r.Forwarded)
	}
	for _, id := range sortedIDs(w.results) {
		s += fmt.Sprintf("reported %d x%d; ", id, len(w.results[id]))
	}
	runJobs := 0
	for _, pid := range w.runners {
		runJobs += len(received[*messages.RunJob](evs, pid.Id))
	}
	return s + fmt.Sprintf("RunJobs %d", runJobs)
}

// TestDispatcherShellDeliversEffects: registrations, a CommitObserved, runs
// and results, under 200 schedules: the same outcome each time, one RunJob
// and one ResultRecorded per job, each sent only once durable.
func TestDispatcherShellDeliversEffects(t *testing.T) {
	var want string
	for seed := range uint64(200) {
		s := seeded(seed)
		w := newDispWorld(t, s, 2, 3, nil)
		s.drain(t) // no pokes: nothing is lost, so nothing needs resending
		evs := w.j.events()
		if !w.settled() {
			w.j.dump(t)
			t.Fatalf("seed %d: not settled without any resend", seed)
		}
		checkJournal(t, evs)

		runs := map[int64]int{}
		for _, pid := range w.runners {
			for _, m := range received[*messages.RunJob](evs, pid.Id) {
				runs[m.Job.Id]++
			}
		}
		for _, id := range w.obsJobIDs {
			require.Equal(t, 1, runs[id], "seed %d: RunJobs of job %d", seed, id)
			require.Len(t, w.results[id], 1, "seed %d: ResultRecorded of job %d", seed, id)
			require.Equal(t, messages.Status_STATUS_PASSED, w.results[id][0].Status, "seed %d", seed)
		}
		loads := 0
		for _, e := range evs {
			if e.kind == "load" {
				loads++
			}
		}
		require.Equal(t, 1, loads, "seed %d: the dispatcher restarted", seed)

		got := w.outcome(evs)
		if seed == 0 {
			want = got
		}
		require.Equal(t, want, got, "seed %d: the outcome depends on the schedule", seed)
		w.stop(t)
	}
}

// settle drains and pokes until the world settles.
func (w *dispWorld) settle(t tb) {
	t.Helper()
	w.s.drain(t)
	for round := 0; !w.settled(); round++ {
		if round == 10 {
			w.j.dump(t)
			t.Fatalf("not settled after %d rounds of resends", round)
		}
		w.pokeAll()
		w.s.drain(t)
	}
}

// checkRecovered checks a run with one failed write: the dispatcher
// retried it, started afresh (without a restart of its actor: a failed
// write is no crash), reloaded, and every job still ran and was reported once
// durable; no job ran more often than the attempt cap allows.
func checkRecovered(t tb, w *dispWorld) {
	t.Helper()
	evs := w.j.events()
	checkJournal(t, evs)
	fails, loads, restarts := 0, 0, 0
	for _, e := range evs {
		switch {
		case e.kind == "savefail":
			fails++
		case e.kind == "load":
			loads++
		case e.kind == "life" && e.who == dispID:
			if _, ok := e.msg.(*actor.Restarting); ok {
				restarts++
			}
		}
	}
	if restarts != 0 || loads != 1+fails {
		w.j.dump(t)
		t.Fatalf("%d failed writes, %d restarts, %d loads", fails, restarts, loads)
	}
	jobs := w.store.snapshot()
	if len(jobs) != len(w.commits) {
		t.Fatalf("%d jobs for %d commits", len(jobs), len(w.commits))
	}
	runs := map[int64][]*messages.RunJob{}
	for _, pid := range w.runners {
		for _, m := range received[*messages.RunJob](evs, pid.Id) {
			runs[m.Job.Id] = append(runs[m.Job.Id], m)
		}
	}
	for id, r := range jobs {
		if r.State != messages.JobState_JOB_STATE_DONE || !r.Forwarded || r.Result.GetStatus() != messages.Status_STATUS_PASSED {
			t.Fatalf("job %d ended %s forwarded=%v status %s", id, r.State, r.Forwarded, r.Result.GetStatus())
		}
		if n := len(runs[id]); n == 0 || n > dispConfig().MaxAttempts {
			t.Fatalf("job %d was sent %d times", id, n)
		}
		if last := runs[id][len(runs[id])-1]; last.Attempt != r.Result.Attempt {
			t.Fatalf("job %d: result of attempt %d, last RunJob attempt %d", id, r.Result.Attempt, last.Attempt)
		}
		for _, res := range w.results[id] {
			if res.Attempt != r.Result.Attempt || res.RunnerId != r.Result.RunnerId {
				t.Fatalf("job %d reported as attempt %d by %s, recorded as attempt %d by %s", id, res.Attempt, res.RunnerId, r.Result.Attempt, r.Result.RunnerId)
			}
		}
	}
}

// TestDispatcherRetriesAFailedWrite: the write that makes an assignment
// durable fails. The RunJob never goes out; the shell writes the batch
// again after its backoff, starts afresh from the queue it reloads, and
// the runner gets the job once it has registered again.
func TestDispatcherRetriesAFailedWrite(t *testing.T) {
	for seed := range uint64(200) {
		s := seeded(seed)
		w := newDispWorld(t, s, 1, 1, func(_ int, jobs []*messages.JobRecord) (bool, bool) {
			return slices.ContainsFunc(jobs, func(r *messages.JobRecord) bool { return r.State == messages.JobState_JOB_STATE_RUNNING }), false
		})
		s.drain(t)
		evs := w.j.events()
		require.Empty(t, received[*messages.RunJob](evs, "r1"), "seed %d: a RunJob went out although its assignment failed to persist", seed)
		w.settle(t)
		checkRecovered(t, w)
		evs = w.j.events()
		isLoad := func(e event) bool { return e.kind == "load" }
		first := slices.IndexFunc(evs, isLoad)
		reload := first + 1 + slices.IndexFunc(evs[first+1:], isLoad)
		reg := slices.IndexFunc(evs[reload:], func(e event) bool { _, ok := e.msg.(*messages.RunnerRegistered); return ok && e.kind == "recv" })
		run := slices.IndexFunc(evs[reload:], func(e event) bool { _, ok := e.msg.(*messages.RunJob); return ok && e.kind == "recv" })
		if reg < 0 || run < reg {
			w.j.dump(t)
			t.Fatalf("seed %d: after the restart the runner registered at %d and got its job at %d", seed, reg, run)
		}
		w.stop(t)
	}
}

// TestDispatcherSurvivesAnyFailedWrite: rapid draws which write fails,
// whether the store returns an error or panics, and the whole schedule.
func TestDispatcherSurvivesAnyFailedWrite(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		failAt := rapid.IntRange(1, 12).Draw(rt, "failAt")
		panics := rapid.Bool().Draw(rt, "panics")
		s := drawn(rt)
		w := newDispWorld(rt, s, 2, 3, func(n int, _ []*messages.JobRecord) (bool, bool) { return n == failAt, panics })
		defer w.stop(rt)
		w.settle(rt)
		checkRecovered(rt, w)
	})
}

// TestPersistShowsLaterState: when a runner is idle, a CommitObserved's
// Persist of the new job is carried out after the same Step has assigned
// the job. It once held the core's live record, so the job was first written
// as RUNNING, attempt 1, before the assignment's own Persist; if that second
// write failed, the restarted dispatcher recovered an attempt that never ran
// and counted it (with MaxAttempts 1 the build ended ERRORED without a run).
// Persist now carries snapshots.
func TestPersistShowsLaterState(t *testing.T) {
	cfg := dispConfig()
	cfg.MaxAttempts = 1
	for seed := range uint64(50) {
		s := seeded(seed)
		// Fail a write of a RUNNING job that is already durable as RUNNING:
		// the assignment's write that follows the aliased one.
		var w *dispWorld
		w = newDispWorldConfig(t, s, cfg, 1, 1, func(_ int, jobs []*messages.JobRecord) (bool, bool) {
			for _, r := range jobs {
				if prev := w.store.jobs[r.Job.Id]; prev != nil && prev.State == messages.JobState_JOB_STATE_RUNNING && r.State == messages.JobState_JOB_STATE_RUNNING {
					return true, false
				}
			}
			return false, false
		})
		w.settle(t)
		for id, r := range w.store.snapshot() {
			require.Equal(t, messages.Status_STATUS_PASSED, r.Result.GetStatus(), "seed %d: job %d: %s", seed, id, r.Result.GetReason())
		}
		w.stop(t)
	}
}
