package adaptertest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/messages"
)

// fakeExec is a runner.JobExecutor that writes a line, then (when block)
// waits until the test closes release or ctx is cancelled. It is called from
// the shell's job goroutine: everything it keeps is behind mu.
type fakeExec struct {
	j       *journal
	s       *sched
	block   bool
	release chan struct{}

	mu          sync.Mutex
	calls       []*messages.RunJob
	inflight    int
	maxInflight int
	returned    int
	cancelled   int // returns that saw ctx cancelled
}

var _ runner.JobExecutor = (*fakeExec)(nil)

func (e *fakeExec) Execute(ctx context.Context, run *messages.RunJob, out io.Writer) *messages.Result {
	e.mu.Lock()
	e.calls = append(e.calls, run)
	e.inflight++
	e.maxInflight = max(e.maxInflight, e.inflight)
	e.mu.Unlock()
	e.j.add(event{kind: "exec", who: "exec", msg: run})
	e.s.kick()
	fmt.Fprintf(out, "running job %d attempt %d\n", run.Job.Id, run.Attempt)
	if e.block {
		select {
		case <-e.release:
		case <-ctx.Done():
		}
	}
	res := &messages.Result{Status: messages.Status_STATUS_PASSED}
	if ctx.Err() != nil {
		res.Status = messages.Status_STATUS_CANCELLED
	}
	e.j.add(event{kind: "execdone", who: "exec", msg: run})
	e.mu.Lock()
	e.inflight--
	e.returned++
	if ctx.Err() != nil {
		e.cancelled++
	}
	e.mu.Unlock()
	e.s.kick()
	return res
}

type execCounts struct{ calls, inflight, maxInflight, returned, cancelled int }

func (e *fakeExec) counts() execCounts {
	e.mu.Lock()
	defer e.mu.Unlock()
	return execCounts{len(e.calls), e.inflight, e.maxInflight, e.returned, e.cancelled}
}

// fakeDispatcher answers a runner the way the dispatcher does, with timers
// long enough never to lapse during a test, and counts the results.
type fakeDispatcher struct {
	epoch int64
	// assign sends a new attempt of job 1 whenever the runner registers
	// without listing the current one (it lost it), until a result is in.
	assign bool

	runner   *actor.PID
	attempt  int32
	done     bool
	recorded []*messages.Result
	finished map[int32]int      // JobFinished received per attempt of job 1
	outcomes []*messages.Result // every JobFinished's result, of any job
}

var job1 = &messages.Job{Id: 1, Repo: repoURL, RepoName: repoName, Commit: commit(1), Branches: []string{branch}, Build: 1}

func (d *fakeDispatcher) runJob(attempt int32) *messages.RunJob {
	return &messages.RunJob{Job: job1, Attempt: attempt, RunnerId: "r1", Incarnation: 1, TimeoutMs: 60_000, Epoch: d.epoch}
}

func (d *fakeDispatcher) react(ctx actor.Context, msg any) {
	const hour = int64(time.Hour / time.Millisecond)
	switch m := msg.(type) {
	case *messages.RegisterRunner:
		d.runner = ctx.Sender()
		ctx.Request(ctx.Sender(), &messages.RunnerRegistered{Accepted: true, SupportedVersions: messages.SupportedVersions,
			RunnerId: m.RunnerId, Incarnation: m.Incarnation, Seq: m.Seq, Epoch: d.epoch,
			HeartbeatMs: hour, LeaseMs: 2 * hour, DeadAfterMs: 3 * hour})
		holds := slices.ContainsFunc(m.Running, func(r *messages.JobRef) bool { return r.JobId == 1 && r.Attempt == d.attempt })
		if d.assign && !d.done && !holds {
			d.attempt++
			ctx.Request(ctx.Sender(), d.runJob(d.attempt))
		}
	case *messages.Heartbeat:
		ack := &messages.HeartbeatAck{RunnerId: m.RunnerId, Incarnation: m.Incarnation, Seq: m.Seq, Epoch: d.epoch}
		for _, r := range m.Running {
			if r.JobId == 1 && r.Attempt == d.attempt && !d.done {
				ack.Valid = append(ack.Valid, r)
			}
		}
		ctx.Request(ctx.Sender(), ack)
	case *messages.JobFinished:
		res := m.Result
		d.outcomes = append(d.outcomes, res)
		d.finished[res.Attempt]++
		if !d.done && res.Job.GetId() == 1 && res.Attempt == d.attempt {
			d.done = true
			d.recorded = append(d.recorded, res)
		}
		ctx.Request(ctx.Sender(), &messages.JobFinishedAck{Ref: &messages.JobRef{JobId: res.Job.GetId(), Attempt: res.Attempt}, Recorded: true})
	}
}

// runWorld is the real runner shell with a fake dispatcher and executor.
type runWorld struct {
	s      *sched
	sys    *actor.ActorSystem
	j      *journal
	exec   *fakeExec
	fd     *fakeDispatcher
	fdPID  *actor.PID
	runner *actor.PID
	top    *actor.PID // what to stop at the end: the runner or its supervisor
}

func newRunWorld(t tb, s *sched, slots int, block, assign, supervised bool, logger *slog.Logger) *runWorld {
	t.Helper()
	w := &runWorld{s: s, sys: newSystem(), j: &journal{}}
	w.exec = &fakeExec{j: w.j, s: s, block: block, release: make(chan struct{})}
	w.fd = &fakeDispatcher{epoch: 42, assign: assign, finished: map[int32]int{}}
	w.fdPID = spawnPeer(t, w.sys, s, w.j, "fdisp", w.fd.react)
	cfg := runner.Config{ID: "r1", Incarnation: 1, Hostname: "h1", Dispatcher: actors.AddrOf(w.fdPID), Grace: -1, Slots: slots}
	props := actor.PropsFromProducer(func() actor.Actor {
		// A frozen clock: the schedule, not the machine's speed, decides
		// what happens (a slow step must not make a registration retry due).
		a := runner.NewActor(cfg, w.exec, "", actors.Env{Logger: logger, Clock: frozenClock})
		a.Tick = time.Hour // the tests send the ticks
		return a
	}, actor.WithDispatcher(s), actor.WithSenderMiddleware(recordSends(w.j)), actor.WithReceiverMiddleware(recordLife(w.j)))
	var err error
	if supervised {
		w.top, err = w.sys.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*actor.Started); ok {
				if _, err := ctx.SpawnNamed(props, "runner"); err != nil {
					panic(err)
				}
			}
		}, actor.WithDispatcher(s), actor.WithSupervisor(restartAll())), "sup")
		w.runner = actor.NewPID(w.sys.Address(), "sup/runner")
	} else {
		w.top, err = w.sys.Root.SpawnNamed(props, "runner")
		w.runner = w.top
	}
	if err != nil {
		t.Fatalf("spawn the runner: %v", err)
	}
	return w
}

// jobDones counts the JobDone messages the runner has handled.
func (w *runWorld) jobDones() int {
	n := 0
	for _, e := range w.j.events() {
		if _, ok := e.msg.(runner.JobDone); ok && e.kind == "in" {
			n++
		}
	}
	return n
}

// quiet: no job goroutine is running or about to report.
func (w *runWorld) quiet() bool {
	c := w.exec.counts()
	return c.inflight == 0 && c.returned == c.calls && w.jobDones() == c.returned
}

func (w *runWorld) index(pred func(event) bool) int { return slices.IndexFunc(w.j.events(), pred) }

func (w *runWorld) stop(t tb) {
	t.Helper()
	stop(t, w.s, w.sys, w.top, w.fdPID)
	if c := w.exec.counts(); c.inflight != 0 {
		t.Fatalf("%d job(s) still running after the runner stopped", c.inflight)
	}
}

// TestRunnerShellRunsAndCancels: a RunJob starts one Execute; its end, a
// cancel, an abandonment or the actor's stop each end it as the contract
// says, under 50 schedules each.
func TestRunnerShellRunsAndCancels(t *testing.T) {
	ref := &messages.JobRef{JobId: 1, Attempt: 1}
	cases := []struct {
		name string
		// end ends the running job; the RunJob may still be queued.
		end func(w *runWorld)
		// status is the JobFinished the fake dispatcher must get (none: 0).
		status messages.Status
	}{
		{"finishes", func(w *runWorld) { close(w.exec.release) }, messages.Status_STATUS_PASSED},
		{"cancelled and reported", func(w *runWorld) {
			w.sys.Root.RequestWithCustomSender(w.runner, &messages.CancelJob{Ref: ref, Reason: "by a user", Report: true}, w.fdPID)
		}, messages.Status_STATUS_CANCELLED},
		{"abandoned", func(w *runWorld) {
			w.sys.Root.RequestWithCustomSender(w.runner, &messages.CancelJob{Ref: ref, Reason: "superseded"}, w.fdPID)
		}, 0},
		{"stopped", func(w *runWorld) { w.sys.Root.Poison(w.runner) }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(50) {
				s := seeded(seed)
				w := newRunWorld(t, s, 1, true, false, false, discard)
				s.drain(t)
				require.NotNil(t, w.fd.runner, "seed %d: the runner did not register", seed)

				// The RunJob, a duplicate, and (for odd seeds) the end all queued at once.
				w.fd.attempt = 1 // the fake dispatcher's state is touched only on this goroutine
				run := w.fd.runJob(1)
				w.sys.Root.RequestWithCustomSender(w.runner, run, w.fdPID)
				w.sys.Root.RequestWithCustomSender(w.runner, run, w.fdPID)
				if seed%2 == 1 {
					tc.end(w)
				} else {
					s.until(t, "Execute", func() bool { return w.exec.counts().calls == 1 })
					require.Equal(t, 1, w.exec.counts().inflight, "seed %d", seed)
					s.drain(t)
					require.Empty(t, w.fd.finished, "seed %d: a result before the job ended", seed)
					tc.end(w)
				}
				stopped := func() bool {
					return w.index(func(e event) bool { _, ok := e.msg.(*actor.Stopped); return ok && e.who == "runner" }) >= 0
				}
				s.until(t, "the job's end", func() bool {
					c := w.exec.counts()
					if tc.name == "stopped" {
						return c.returned == 1 && stopped()
					}
					return w.quiet() && c.returned == 1 && (tc.status == 0 || len(w.fd.recorded) == 1)
				})

				c := w.exec.counts()
				require.Equal(t, 1, c.calls, "seed %d: Execute calls", seed)
				require.Equal(t, 1, c.maxInflight, "seed %d", seed)
				if tc.status == 0 {
					require.Empty(t, w.fd.finished, "seed %d: JobFinished for a job that was not to be reported", seed)
				} else {
					require.Len(t, w.fd.recorded, 1, "seed %d", seed)
					res := w.fd.recorded[0]
					require.Equal(t, tc.status, res.Status, "seed %d", seed)
					require.Equal(t, int32(1), res.Attempt, "seed %d", seed)
					require.Equal(t, "r1", res.RunnerId, "seed %d", seed)
					require.Equal(t, int64(1), res.Job.GetId(), "seed %d", seed)
					require.Equal(t, map[int32]int{1: 1}, w.fd.finished, "seed %d", seed)
				}
				if tc.name == "finishes" {
					require.Zero(t, c.cancelled, "seed %d: a job that finished saw its context cancelled", seed)
				} else {
					require.Equal(t, 1, c.cancelled, "seed %d: the job's context was not cancelled", seed)
				}
				if tc.name == "stopped" {
					returned := w.index(func(e event) bool { return e.kind == "execdone" })
					stopping := w.index(func(e event) bool { _, ok := e.msg.(*actor.Stopping); return ok && e.who == "runner" })
					require.True(t, returned >= 0 && returned < stopping, "seed %d: Execute returned at %d, Stopping handled at %d", seed, returned, stopping)
				}
				w.stop(t)
			}
		})
	}
}

// TestRunnerShellRunsJobsAtOnce: a runner with three slots runs three
// RunJobs in three Executes at once and ignores a fourth; cancelling one
// ends that one only, under 30 schedules.
func TestRunnerShellRunsJobsAtOnce(t *testing.T) {
	for seed := range uint64(30) {
		s := seeded(seed)
		w := newRunWorld(t, s, 3, true, false, false, discard)
		s.drain(t)
		require.NotNil(t, w.fd.runner, "seed %d: the runner did not register", seed)

		for id := int64(1); id <= 4; id++ {
			job := &messages.Job{Id: id, Repo: repoURL, RepoName: repoName, Commit: commit(int(id)), Branches: []string{branch}, Build: 1}
			w.sys.Root.RequestWithCustomSender(w.runner, &messages.RunJob{Job: job, Attempt: 1, RunnerId: "r1", Incarnation: 1,
				TimeoutMs: 60_000, Epoch: w.fd.epoch}, w.fdPID)
		}
		s.until(t, "three Executes", func() bool { return w.exec.counts().inflight == 3 })
		s.drain(t)
		c := w.exec.counts()
		require.Equal(t, 3, c.calls, "seed %d: the fourth job is beyond the slots", seed)
		var ids []int64
		w.exec.mu.Lock()
		for _, run := range w.exec.calls {
			ids = append(ids, run.Job.Id)
		}
		w.exec.mu.Unlock()
		slices.Sort(ids)
		require.Equal(t, []int64{1, 2, 3}, ids, "seed %d", seed)

		w.sys.Root.RequestWithCustomSender(w.runner, &messages.CancelJob{Ref: &messages.JobRef{JobId: 2, Attempt: 1}, Reason: "by a user", Report: true}, w.fdPID)
		s.until(t, "job 2's outcome", func() bool { return len(w.fd.outcomes) == 1 })
		require.Equal(t, int64(2), w.fd.outcomes[0].Job.GetId(), "seed %d", seed)
		require.Equal(t, messages.Status_STATUS_CANCELLED, w.fd.outcomes[0].Status, "seed %d", seed)
		c = w.exec.counts()
		require.Equal(t, 2, c.inflight, "seed %d: jobs 1 and 3 run on", seed)
		require.Equal(t, 1, c.cancelled, "seed %d", seed)

		close(w.exec.release)
		s.until(t, "every outcome", func() bool { return len(w.fd.outcomes) == 3 && w.quiet() })
		for _, res := range w.fd.outcomes[1:] {
			require.Equal(t, messages.Status_STATUS_PASSED, res.Status, "seed %d: job %d", seed, res.Job.GetId())
		}
		require.Equal(t, 3, w.exec.counts().maxInflight, "seed %d", seed)
		w.stop(t)
	}
}

// panicAt is a slog.Handler that panics on its n-th record: a port of the
// shell that fails while the shell carries out a Note, between other effects.
type panicAt struct {
	mu    sync.Mutex
	n     int
	seen  int
	fired bool
}

func (h *panicAt) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicAt) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *panicAt) WithGroup(string) slog.Handler            { return h }
func (h *panicAt) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen++
	if h.seen == h.n {
		h.fired = true
		panic(fmt.Sprintf("log handler failed on %q", r.Message))
	}
	return nil
}

func (h *panicAt) didFire() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fired
}

// TestRunnerShellCrashRestarts: the shell panics while carrying out its
// n-th Note (rapid draws n and the schedule). The supervisor restarts it;
// afterwards the fake dispatcher records exactly one result, never gets two
// JobFinished for one attempt, and no two Executes ever overlap.
func TestRunnerShellCrashRestarts(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		h := &panicAt{n: rapid.IntRange(1, 10).Draw(rt, "panicAt")}
		s := drawn(rt)
		w := newRunWorld(rt, s, 1, false, true, true, slog.New(h))
		defer w.stop(rt)
		s.onTimeout = func() { w.j.dump(rt); rt.Logf("%+v, %d JobDone", w.exec.counts(), w.jobDones()) }
		s.until(rt, "one recorded result", func() bool { return w.fd.done && w.quiet() })

		restarts := 0
		for _, e := range w.j.events() {
			if _, ok := e.msg.(*actor.Restarting); ok && e.who == "sup/runner" {
				restarts++
			}
		}
		if fired := h.didFire(); (restarts == 1) != fired || restarts > 1 {
			w.j.dump(rt)
			rt.Fatalf("the handler panicked: %v; restarts: %d", fired, restarts)
		}
		if len(w.fd.recorded) != 1 || w.fd.recorded[0].Status != messages.Status_STATUS_PASSED {
			rt.Fatalf("recorded %v", w.fd.recorded)
		}
		for attempt, n := range w.fd.finished {
			if n != 1 {
				rt.Fatalf("attempt %d reported %d times", attempt, n)
			}
		}
		c := w.exec.counts()
		if c.maxInflight != 1 {
			rt.Fatalf("%d Executes at once", c.maxInflight)
		}
		ran := map[int32]int{}
		w.exec.mu.Lock()
		for _, run := range w.exec.calls {
			ran[run.Attempt]++
		}
		w.exec.mu.Unlock()
		for attempt, n := range ran {
			if n != 1 {
				rt.Fatalf("attempt %d executed %d times", attempt, n)
			}
		}
		for attempt := range w.fd.finished {
			if ran[attempt] != 1 {
				rt.Fatalf("attempt %d reported without being executed", attempt)
			}
		}
	})
}
