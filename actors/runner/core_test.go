package runner_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

var (
	dispAddr  = actors.NewAddr("127.0.0.1:8000", "dispatcher")
	otherAddr = actors.NewAddr("127.0.0.1:8123", "dispatcher")
)

const (
	runnerID    = "r1"
	incarnation = int64(3)
	epoch       = int64(4) // the dispatcher incarnation that accepts this runner
)

func ref(job int64, attempt int32) *messages.JobRef {
	return &messages.JobRef{JobId: job, Attempt: attempt}
}

// sends returns the messages of type T carried by Send effects to the dispatcher.
func sends[T proto.Message](fx []actors.Effect) []T {
	var out []T
	for _, e := range fx {
		if s, ok := e.(actors.Send); ok && s.To == dispAddr {
			if m, ok := s.Msg.(T); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// registers returns the RegisterRunner messages of Register effects to the dispatcher.
func registers(fx []actors.Effect) []*messages.RegisterRunner {
	var out []*messages.RegisterRunner
	for _, e := range fx {
		if r, ok := e.(actors.Register); ok && r.To == dispAddr {
			out = append(out, r.Msg.(*messages.RegisterRunner))
		}
	}
	return out
}

// world drives one runner core on a virtual clock.
type world struct {
	t      *testing.T
	c      *runner.Core
	now    time.Time
	fx     []actors.Effect // what Start returned
	regSeq uint64          // seq of the last registration sent, echoed by accepted()
}

func newWorld(t *testing.T, grace time.Duration) *world {
	c := runner.New(runner.Config{ID: runnerID, Incarnation: incarnation, Hostname: "build-1",
		Dispatcher: dispAddr, Grace: grace, Token: "tok"})
	w := &world{t: t, c: c, now: coretest.T0}
	w.fx = w.record(c.Start(coretest.T0))
	return w
}

// record notes the seq of any registration in fx.
func (w *world) record(fx []actors.Effect) []actors.Effect {
	for _, r := range registers(fx) {
		w.regSeq = r.Seq
	}
	return fx
}

// step delivers in from addr, as the identity a connection would prove for
// its rightful sender: the dispatcher's messages from the dispatcher, a
// status request from admin, the runner's own inputs from this process.
func (w *world) step(from actors.Addr, in any) []actors.Effect {
	return w.stepAs(actors.From{Addr: from, Who: rightful(in)}, in)
}

// stepAs delivers in from a sender of the test's choosing.
func (w *world) stepAs(from actors.From, in any) []actors.Effect {
	return w.record(w.c.Step(w.now, from, in))
}

func rightful(in any) actors.Identity {
	switch in.(type) {
	case *messages.RunJob, *messages.CancelJob, *messages.RunnerRegistered, *messages.HeartbeatAck, *messages.JobFinishedAck:
		return actors.Identity{Role: actors.RoleDispatcher, Name: "disp-host"}
	case *messages.StatusRequest:
		return actors.Identity{Role: actors.RoleAdmin, Name: "ops"}
	}
	return actors.Local
}
func (w *world) advance(d time.Duration) { w.now = w.now.Add(d) }
func (w *world) tick() []actors.Effect   { return w.step("", actors.Tick{}) }

func (w *world) accepted() *messages.RunnerRegistered {
	return &messages.RunnerRegistered{Accepted: true, RunnerId: runnerID, Incarnation: incarnation, Epoch: epoch, Seq: w.regSeq,
		SupportedVersions: messages.SupportedVersions, HeartbeatMs: 1000, DeadAfterMs: 3000, LeaseMs: 2000}
}

// register answers the registration and returns the effects.
func (w *world) register() []actors.Effect {
	w.t.Helper()
	fx := w.step(dispAddr, w.accepted())
	require.True(w.t, w.c.Registered())
	return fx
}

func (w *world) runJobMsg(job int64, attempt int32) *messages.RunJob {
	return &messages.RunJob{Job: &messages.Job{Id: job, Repo: "/srv/git/app.git", Commit: coretest.Commit(int(job)), Branches: []string{"main"}, Build: 1},
		Attempt: attempt, RunnerId: runnerID, Incarnation: incarnation, Epoch: epoch, TimeoutMs: 600_000,
		LogTicket: []byte(fmt.Sprintf("log ticket of job %d attempt %d", job, attempt))}
}

func (w *world) runJob(job int64, attempt int32) []actors.Effect {
	return w.step(dispAddr, w.runJobMsg(job, attempt))
}

func (w *world) ack(seq uint64, valid ...*messages.JobRef) []actors.Effect {
	return w.step(dispAddr, &messages.HeartbeatAck{RunnerId: runnerID, Incarnation: incarnation, Epoch: epoch, Seq: seq, Valid: valid})
}

func (w *world) done(job int64, attempt int32, status messages.Status) []actors.Effect {
	return w.step("", runner.JobDone{Ref: ref(job, attempt), Result: &messages.Result{Status: status, ExitCode: 1}})
}

// runUntil ticks every 50 ms until d has passed since now, acknowledging each
// heartbeat when ackHeartbeats, and returns every effect with its time.
func (w *world) runUntil(d time.Duration, ackHeartbeats bool, valid ...*messages.JobRef) []timed {
	var out []timed
	end := w.now.Add(d)
	for !w.now.After(end) {
		fx := w.tick()
		for _, e := range fx {
			out = append(out, timed{w.now, e})
		}
		if ackHeartbeats {
			for _, hb := range sends[*messages.Heartbeat](fx) {
				w.ack(hb.Seq, valid...)
			}
		}
		w.advance(50 * time.Millisecond)
	}
	w.now = end
	return out
}

type timed struct {
	at time.Time
	e  actors.Effect
}

func startJob(fx []actors.Effect) []*messages.RunJob {
	var out []*messages.RunJob
	for _, s := range coretest.EffectsOf[runner.StartJob](fx) {
		out = append(out, s.Run)
	}
	return out
}

// --- Registration ---

func TestStartRegistersWithDispatcher(t *testing.T) {
	w := newWorld(t, 10*time.Second)

	regs := registers(w.fx)
	require.Len(t, regs, 1)
	assert.Equal(t, runnerID, regs[0].RunnerId)
	assert.Equal(t, incarnation, regs[0].Incarnation)
	assert.Equal(t, messages.ProtocolVersion, regs[0].ProtocolVersion)
	assert.Equal(t, "tok", regs[0].Token)
	assert.Equal(t, "build-1", regs[0].Hostname)
	assert.Empty(t, regs[0].Running)
	assert.Empty(t, sends[*messages.Heartbeat](w.fx), "no heartbeat before registration")
	assert.False(t, w.c.Registered())
}

func TestRegisteredWatchesAndHeartbeatsAtTheDispatchersInterval(t *testing.T) {
	tests := []struct {
		name        string
		heartbeatMs int64
		want        []time.Duration
	}{
		{"every second", 1000, []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second}},
		{"every 700 ms", 700, []time.Duration{0, 700 * time.Millisecond, 1400 * time.Millisecond, 2100 * time.Millisecond, 2800 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, 10*time.Second)
			w.advance(20 * time.Millisecond)
			start := w.now
			reply := w.accepted()
			reply.HeartbeatMs = tt.heartbeatMs
			fx := w.step(dispAddr, reply)
			require.True(t, w.c.Registered())
			assert.Contains(t, fx, actors.Effect(actors.Watch{Addr: dispAddr}))
			for _, hb := range sends[*messages.Heartbeat](fx) {
				w.ack(hb.Seq)
			}

			var got []time.Duration
			var seqs []uint64
			if hbs := sends[*messages.Heartbeat](fx); len(hbs) == 1 {
				got = append(got, 0)
				seqs = append(seqs, hbs[0].Seq)
			}
			w.advance(50 * time.Millisecond)
			for _, e := range w.runUntil(3*time.Second-50*time.Millisecond, true) {
				if s, ok := e.e.(actors.Send); ok {
					if hb, ok := s.Msg.(*messages.Heartbeat); ok {
						got = append(got, e.at.Sub(start))
						seqs = append(seqs, hb.Seq)
						assert.Equal(t, runnerID, hb.RunnerId)
						assert.Equal(t, incarnation, hb.Incarnation)
					}
				}
			}
			assert.Equal(t, tt.want, got)
			for i := 1; i < len(seqs); i++ {
				assert.Greater(t, seqs[i], seqs[i-1], "heartbeat seqs count up")
			}
		})
	}
}

func TestRunnerRegisteredIgnoredUnlessItIsOurs(t *testing.T) {
	tests := []struct {
		name   string
		from   actors.Addr
		mutate func(*messages.RunnerRegistered)
	}{
		{"from another address", otherAddr, func(*messages.RunnerRegistered) {}},
		{"for another incarnation", dispAddr, func(m *messages.RunnerRegistered) { m.Incarnation = incarnation + 1 }},
		{"for another runner", dispAddr, func(m *messages.RunnerRegistered) { m.RunnerId = "r2" }},
		{"a refusal from another address", otherAddr, func(m *messages.RunnerRegistered) { m.Accepted = false; m.Reason = "go away" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, 10*time.Second)
			m := w.accepted()
			tt.mutate(m)

			fx := w.step(tt.from, m)

			assert.Empty(t, fx)
			assert.False(t, w.c.Registered())
			assert.EqualValues(t, 1, w.c.Stale())
			w.advance(100 * time.Millisecond)
			assert.Len(t, registers(w.tick()), 1, "still trying to register")
		})
	}
}

func TestRegistrationRefusedExits(t *testing.T) {
	w := newWorld(t, 10*time.Second)

	fx := w.step(dispAddr, &messages.RunnerRegistered{RunnerId: runnerID, Incarnation: incarnation,
		Reason: "protocol version 2 is not supported: this dispatcher speaks [1]"})

	exits := coretest.EffectsOf[actors.Exit](fx)
	require.Len(t, exits, 1)
	assert.Equal(t, 1, exits[0].Code)
	assert.Contains(t, exits[0].Reason, "protocol version 2 is not supported")
	assert.Contains(t, exits[0].Reason, "127.0.0.1:8000")
	w.advance(time.Second)
	assert.Empty(t, w.tick(), "an exited core does nothing")
}

// --- RunJob ---

func TestRunJobAcceptedOnlyForThisIncarnation(t *testing.T) {
	tests := []struct {
		name   string
		from   actors.Addr
		mutate func(*messages.RunJob)
		start  bool
	}{
		{"for this runner and incarnation", dispAddr, func(*messages.RunJob) {}, true},
		{"for another incarnation", dispAddr, func(m *messages.RunJob) { m.Incarnation = incarnation - 1 }, false},
		{"from another dispatcher epoch", dispAddr, func(m *messages.RunJob) { m.Epoch = epoch - 1 }, false},
		{"for another runner", dispAddr, func(m *messages.RunJob) { m.RunnerId = "r2" }, false},
		{"from someone else", otherAddr, func(*messages.RunJob) {}, false},
		{"with a commit id git would read as an option", dispAddr, func(m *messages.RunJob) { m.Job.Commit = "--upload-pack=touch pwned" }, false},
		{"without a job", dispAddr, func(m *messages.RunJob) { m.Job = nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, 10*time.Second)
			w.register()
			m := w.runJobMsg(1, 1)
			tt.mutate(m)

			fx := w.step(tt.from, m)

			if tt.start {
				runs := startJob(fx)
				require.Len(t, runs, 1)
				assert.True(t, proto.Equal(m, runs[0]))
				assert.Equal(t, m.LogTicket, runs[0].LogTicket, "the log stream copies the ticket into every chunk")
				assert.True(t, w.c.Busy())
				return
			}
			assert.Empty(t, startJob(fx))
			assert.False(t, w.c.Busy())
			assert.EqualValues(t, 1, w.c.Stale()+w.c.Refused(), "counted as stale, or refused (another runner's)")
		})
	}
}

func TestRunJobDuplicatesAndWhileBusy(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	w.register()
	require.Len(t, startJob(w.runJob(1, 1)), 1)

	assert.Empty(t, w.runJob(1, 1), "a duplicate RunJob does nothing")
	fx := w.runJob(2, 1)
	assert.Empty(t, startJob(fx), "one job at a time")
	assert.EqualValues(t, 1, w.c.Stale())

	// Finished and acknowledged: a late duplicate of attempt 1 is not run again.
	w.advance(time.Second)
	w.done(1, 1, messages.Status_STATUS_PASSED)
	w.step(dispAddr, &messages.JobFinishedAck{Ref: ref(1, 1), Recorded: true})
	require.False(t, w.c.Busy())
	assert.Empty(t, startJob(w.runJob(1, 1)), "a late duplicate of a finished attempt is not run again")
	assert.False(t, w.c.Busy())
	assert.Len(t, startJob(w.runJob(1, 2)), 1, "a new attempt of the same job runs")
}

// --- Outcomes ---

func TestJobDoneReportedAndResentUntilAcknowledged(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	w.register()
	w.runJob(7, 2)
	w.advance(300 * time.Millisecond)

	fx := w.done(7, 2, messages.Status_STATUS_FAILED)
	fins := sends[*messages.JobFinished](fx)
	require.Len(t, fins, 1)
	assert.Equal(t, runnerID, fins[0].RunnerId)
	assert.Equal(t, incarnation, fins[0].Incarnation)
	res := fins[0].Result
	assert.EqualValues(t, 2, res.Attempt, "the runner stamps its attempt")
	assert.Equal(t, runnerID, res.RunnerId)
	assert.EqualValues(t, 7, res.Job.GetId())
	assert.Equal(t, messages.Status_STATUS_FAILED, res.Status)

	var resent []time.Duration
	doneAt := w.now
	for _, e := range w.runUntil(2500*time.Millisecond, true) {
		if s, ok := e.e.(actors.Send); ok {
			if _, ok := s.Msg.(*messages.JobFinished); ok {
				resent = append(resent, e.at.Sub(doneAt))
			}
		}
	}
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second}, resent, "resent every second")

	assert.Empty(t, w.step(dispAddr, &messages.JobFinishedAck{Ref: ref(7, 1)}), "an ack for another attempt")
	assert.Empty(t, w.step(otherAddr, &messages.JobFinishedAck{Ref: ref(7, 2)}), "an ack from someone else")
	assert.True(t, w.c.Busy())

	w.step(dispAddr, &messages.JobFinishedAck{Ref: ref(7, 2), Recorded: true})
	assert.False(t, w.c.Busy(), "idle after the ack")
	for _, e := range w.runUntil(3*time.Second, true) {
		if s, ok := e.e.(actors.Send); ok {
			_, isFinished := s.Msg.(*messages.JobFinished)
			assert.False(t, isFinished, "no JobFinished after the ack")
			if hb, ok := s.Msg.(*messages.Heartbeat); ok {
				assert.Empty(t, hb.Running)
			}
		}
	}
	assert.Len(t, startJob(w.runJob(8, 1)), 1, "ready for the next job")
}

func TestJobDoneForAnotherAttemptIgnored(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	w.register()
	w.runJob(7, 2)
	assert.Empty(t, w.done(7, 1, messages.Status_STATUS_PASSED))
	assert.Empty(t, w.done(8, 2, messages.Status_STATUS_PASSED))
	assert.True(t, w.c.Busy())
}

// --- Lease ---

func TestLeaseLapseCancelsAndSuppressesTheOutcome(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	w.register() // acknowledges the registration sent at coretest.T0: the lease runs from there
	w.advance(100 * time.Millisecond)
	require.Len(t, startJob(w.runJob(1, 1)), 1)

	// Heartbeats go out but the dispatcher never answers.
	var cancels []time.Duration
	for _, e := range w.runUntil(2500*time.Millisecond, false) {
		if c, ok := e.e.(runner.CancelRun); ok {
			cancels = append(cancels, e.at.Sub(coretest.T0))
			assert.True(t, proto.Equal(ref(1, 1), c.Ref))
			assert.Contains(t, c.Reason, "lease")
		}
	}
	require.Len(t, cancels, 1)
	assert.Greater(t, cancels[0], 2*time.Second, "not before the lease")
	assert.LessOrEqual(t, cancels[0], 2*time.Second+50*time.Millisecond, "at the first tick after it")

	fx := w.done(1, 1, messages.Status_STATUS_CANCELLED)
	assert.Empty(t, sends[*messages.JobFinished](fx), "an abandoned attempt is never reported")
	assert.False(t, w.c.Busy())
}

func TestLeaseRenewedByAcksListingTheJob(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	w.register()
	w.runJob(1, 1)
	for _, e := range w.runUntil(10*time.Second, true, ref(1, 1)) {
		_, isCancel := e.e.(runner.CancelRun)
		assert.False(t, isCancel, "cancelled at %s", e.at.Sub(coretest.T0))
	}
	assert.True(t, w.c.Busy())
}

func TestHeartbeatAckNotListingTheJob(t *testing.T) {
	tests := []struct {
		name   string
		seq    func(before, after uint64) uint64
		valid  []*messages.JobRef
		cancel bool
	}{
		{"newer seq without the job", func(_, after uint64) uint64 { return after }, nil, true},
		{"newer seq listing another attempt", func(_, after uint64) uint64 { return after }, []*messages.JobRef{ref(1, 2)}, true},
		{"newer seq listing the job", func(_, after uint64) uint64 { return after }, []*messages.JobRef{ref(1, 1)}, false},
		{"older seq without the job", func(before, _ uint64) uint64 { return before }, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, 10*time.Second)
			hbBefore := sends[*messages.Heartbeat](w.register())
			require.Len(t, hbBefore, 1)
			w.advance(100 * time.Millisecond)
			w.runJob(1, 1)
			w.advance(900 * time.Millisecond)
			hbAfter := sends[*messages.Heartbeat](w.tick())
			require.Len(t, hbAfter, 1)
			require.Len(t, hbAfter[0].Running, 1, "the heartbeat lists the job")

			fx := w.ack(tt.seq(hbBefore[0].Seq, hbAfter[0].Seq), tt.valid...)

			cancels := coretest.EffectsOf[runner.CancelRun](fx)
			if !tt.cancel {
				assert.Empty(t, cancels)
				return
			}
			require.Len(t, cancels, 1)
			assert.True(t, proto.Equal(ref(1, 1), cancels[0].Ref))
			assert.Empty(t, sends[*messages.JobFinished](w.done(1, 1, messages.Status_STATUS_CANCELLED)))
			assert.False(t, w.c.Busy())
		})
	}
}

func TestCancelJobFromDispatcher(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	w.register()
	w.runJob(1, 1)
	assert.Empty(t, w.step(dispAddr, &messages.CancelJob{Ref: ref(1, 2)}), "another attempt")
	assert.Empty(t, w.step(otherAddr, &messages.CancelJob{Ref: ref(1, 1)}), "someone else")
	fx := w.step(dispAddr, &messages.CancelJob{Ref: ref(1, 1), Reason: "superseded"})
	require.Len(t, coretest.EffectsOf[runner.CancelRun](fx), 1)
}

// --- Losing the dispatcher ---

func TestDispatcherLostRegistersWithBackoffThenExits(t *testing.T) {
	w := newWorld(t, 2*time.Second)
	w.register()
	w.advance(time.Second)
	lost := w.now

	fx := w.step("", actors.PeerTerminated{Addr: dispAddr, Reason: "connection closed"})
	require.Len(t, registers(fx), 1, "a registration attempt at once")
	assert.False(t, w.c.Registered())

	var attempts []time.Duration
	var exits []timed
	for _, e := range w.runUntil(3*time.Second, false) {
		if _, ok := e.e.(actors.Register); ok {
			attempts = append(attempts, e.at.Sub(lost))
		}
		if _, ok := e.e.(actors.Exit); ok {
			exits = append(exits, e)
		}
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{100 * ms, 300 * ms, 700 * ms, 1200 * ms, 1700 * ms}, attempts,
		"backoff doubles from 100 ms and is capped at 500 ms")
	require.Len(t, exits, 1)
	assert.Equal(t, 2*time.Second, exits[0].at.Sub(lost), "exit once the grace has passed")
	exit := exits[0].e.(actors.Exit)
	assert.Equal(t, 1, exit.Code)
	assert.Contains(t, exit.Reason, "127.0.0.1:8000")
	assert.NotContains(t, exit.Reason, "/dispatcher", "the host:port, not the actor id")
}

func TestDispatcherLostWithZeroGraceExitsAtOnce(t *testing.T) {
	w := newWorld(t, 0)
	require.Empty(t, coretest.EffectsOf[actors.Exit](w.fx), "grace counts from a lost dispatcher")
	w.register()
	w.runJob(1, 1)
	w.advance(time.Second)

	fx := w.step("", actors.PeerTerminated{Addr: dispAddr})

	exits := coretest.EffectsOf[actors.Exit](fx)
	require.Len(t, exits, 1)
	assert.Equal(t, 1, exits[0].Code)
	cancels := coretest.EffectsOf[runner.CancelRun](fx)
	require.Len(t, cancels, 1, "the running job is killed before exiting")
	assert.Empty(t, registers(fx))
}

func TestZeroGraceRunnerRegistersBeforeGivingUp(t *testing.T) {
	// Grace 0 ("at once") counts from a lost dispatcher: the first
	// registration still gets Link.StartWindow.
	w := newWorld(t, 0)
	assert.Len(t, registers(w.fx), 1, "the first registration is sent")
	assert.Empty(t, coretest.EffectsOf[actors.Exit](w.fx), "grace counts from a lost dispatcher, not from start")
}

func TestReRegistrationWithinGraceCarriesTheRunningJob(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	w.register()
	w.runJob(1, 1)
	w.advance(500 * time.Millisecond)

	fx := w.step("", actors.PeerTerminated{Addr: dispAddr})
	regs := registers(fx)
	require.Len(t, regs, 1)
	require.Len(t, regs[0].Running, 1)
	assert.True(t, proto.Equal(ref(1, 1), regs[0].Running[0]))
	assert.Empty(t, coretest.EffectsOf[runner.CancelRun](fx))

	w.advance(200 * time.Millisecond)
	fx = w.register()
	hbs := sends[*messages.Heartbeat](fx)
	require.Len(t, hbs, 1)
	require.Len(t, hbs[0].Running, 1, "the job runs on")
	assert.Empty(t, coretest.EffectsOf[runner.CancelRun](fx))

	// The first ack after re-registration judges the job.
	assert.Empty(t, coretest.EffectsOf[runner.CancelRun](w.ack(hbs[0].Seq, ref(1, 1))))
	assert.True(t, w.c.Busy())
}

func TestDispatcherSilentIsLostAndUnknownRegistersAgain(t *testing.T) {
	t.Run("no acknowledgement for DeadAfter", func(t *testing.T) {
		w := newWorld(t, 10*time.Second)
		w.register()
		var regs int
		for _, e := range w.runUntil(3100*time.Millisecond, false) {
			if _, ok := e.e.(actors.Register); ok {
				regs++
			}
		}
		assert.False(t, w.c.Registered())
		assert.Equal(t, 1, regs, "registers again once the dispatcher has been silent for DeadAfter")
	})
	t.Run("heartbeat answered unknown", func(t *testing.T) {
		w := newWorld(t, 10*time.Second)
		w.register()
		w.runJob(1, 1)
		fx := w.step(dispAddr, &messages.HeartbeatAck{RunnerId: runnerID, Incarnation: incarnation, Seq: w.regSeq, Unknown: true})
		regs := registers(fx)
		require.Len(t, regs, 1)
		assert.Len(t, regs[0].Running, 1)
		assert.False(t, w.c.Registered())
	})
}

// --- Shutdown ---

func TestShutdownReleasesTheJobAndExits(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	w.register()
	w.runJob(1, 1)

	fx := w.step("", runner.Shutdown{Reason: "SIGTERM"})

	require.Len(t, fx, 3)
	cancel, ok := fx[0].(runner.CancelRun)
	require.True(t, ok, "first the job is killed: %T", fx[0])
	assert.True(t, proto.Equal(ref(1, 1), cancel.Ref))
	stopping := sends[*messages.RunnerStopping](fx[1:2])
	require.Len(t, stopping, 1, "then the dispatcher is told: %T", fx[1])
	assert.Equal(t, runnerID, stopping[0].RunnerId)
	assert.Equal(t, incarnation, stopping[0].Incarnation)
	require.Len(t, stopping[0].Released, 1)
	assert.True(t, proto.Equal(ref(1, 1), stopping[0].Released[0]))
	exit, ok := fx[2].(actors.Exit)
	require.True(t, ok, "then the process ends: %T", fx[2])
	assert.Equal(t, 0, exit.Code)

	assert.Empty(t, w.done(1, 1, messages.Status_STATUS_CANCELLED), "an exited core does nothing")
}

func TestShutdownWhileIdle(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	w.register()
	fx := w.step("", runner.Shutdown{Reason: "SIGINT"})
	assert.Empty(t, coretest.EffectsOf[runner.CancelRun](fx))
	stopping := sends[*messages.RunnerStopping](fx)
	require.Len(t, stopping, 1)
	assert.Empty(t, stopping[0].Released)
	require.Len(t, coretest.EffectsOf[actors.Exit](fx), 1)
	assert.Equal(t, 0, coretest.EffectsOf[actors.Exit](fx)[0].Code)
}

func TestHeartbeatAckFromAnotherEpochIgnored(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	w.register()
	w.runJob(1, 1)
	w.advance(time.Second)
	hbs := sends[*messages.Heartbeat](w.tick())
	require.Len(t, hbs, 1)

	fx := w.step(dispAddr, &messages.HeartbeatAck{RunnerId: runnerID, Incarnation: incarnation, Epoch: epoch + 1, Seq: hbs[0].Seq})

	assert.Empty(t, coretest.EffectsOf[runner.CancelRun](fx), "an ack from an earlier dispatcher does not judge the job")
	assert.EqualValues(t, 1, w.c.Stale())
	assert.True(t, w.c.Busy())
}

func TestUserCancelIsReportedAsCancelled(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	w.register()
	w.runJob(1, 1)
	fx := w.step(dispAddr, &messages.CancelJob{Ref: &messages.JobRef{JobId: 1, Attempt: 1}, Reason: "cancelled by ann", Report: true})
	require.Len(t, coretest.EffectsOf[runner.CancelRun](fx), 1, "the processes are killed")
	fx = w.step("", runner.JobDone{Ref: &messages.JobRef{JobId: 1, Attempt: 1}, Result: &messages.Result{Status: messages.Status_STATUS_CANCELLED}})
	finished := sends[*messages.JobFinished](fx)
	require.Len(t, finished, 1, "a user's cancel is reported, unlike a superseded attempt")
	assert.Equal(t, messages.Status_STATUS_CANCELLED, finished[0].Result.Status)
}

// --- Identity: the sender a connection proved, never the one a message claims ---

var (
	unauthenticated = actors.Identity{}
	mallory         = actors.Identity{Role: actors.RoleRunner, Name: "mallory"}
	itself          = actors.Identity{Role: actors.RoleRunner, Name: runnerID}
	anObserver      = actors.Identity{Role: actors.RoleObserver, Name: "obs-host"}
	aReporter       = actors.Identity{Role: actors.RoleReporter, Name: "rep-host"}
	anAdmin         = actors.Identity{Role: actors.RoleAdmin, Name: "ops"}
	aNotify         = actors.Identity{Role: actors.RoleNotify, Name: "git-host"}
	theDispatcher   = actors.Identity{Role: actors.RoleDispatcher, Name: "disp-host"}
)

// TestForgeriesChangeNothingAndGetNoAnswer: a message from an identity that
// may not send it (the wrong role, a runner certificate, even this runner's
// own, or none) changes nothing, not even the timers, starts no job and gets
// no answer, even from the dispatcher's address with every id right.
func TestForgeriesChangeNothingAndGetNoAnswer(t *testing.T) {
	idle := func(t *testing.T) *world {
		w := newWorld(t, 10*time.Second)
		w.register()
		return w
	}
	// finished holds job 1's outcome, sent and not yet acknowledged.
	finished := func(t *testing.T) *world {
		w := idle(t)
		require.Len(t, startJob(w.runJob(1, 1)), 1)
		w.advance(100 * time.Millisecond)
		w.done(1, 1, messages.Status_STATUS_PASSED)
		return w
	}
	runJob := func(w *world) any { return w.runJobMsg(7, 1) }
	cases := []struct {
		name  string
		setup func(*testing.T) *world
		who   actors.Identity
		addr  actors.Addr
		msg   func(*world) any
	}{
		{"RunJob unauthenticated", idle, unauthenticated, dispAddr, runJob},
		{"RunJob from another runner", idle, mallory, dispAddr, runJob},
		{"RunJob from this runner's own certificate", idle, itself, dispAddr, runJob},
		{"RunJob from an observer", idle, anObserver, dispAddr, runJob},
		{"RunJob from the reporter", idle, aReporter, dispAddr, runJob},
		{"RunJob from admin", idle, anAdmin, dispAddr, runJob},
		{"RunJob for another runner from the dispatcher", idle, theDispatcher, dispAddr, func(w *world) any {
			m := w.runJobMsg(7, 1)
			m.RunnerId = "r2"
			return m
		}},
		{"RunJob for another runner from this process", idle, actors.Local, dispAddr, func(w *world) any {
			m := w.runJobMsg(7, 1)
			m.RunnerId = "r2"
			return m
		}},
		{"cancel unauthenticated", finished, unauthenticated, dispAddr, func(*world) any {
			return &messages.CancelJob{Ref: ref(1, 1), Reason: "forged"}
		}},
		{"cancel from the reporter", finished, aReporter, dispAddr, func(*world) any {
			return &messages.CancelJob{Ref: ref(1, 1), Reason: "forged"}
		}},
		{"outcome acknowledged by another runner", finished, mallory, dispAddr, func(*world) any {
			return &messages.JobFinishedAck{Ref: ref(1, 1), Recorded: true}
		}},
		{"outcome acknowledged unauthenticated", finished, unauthenticated, dispAddr, func(*world) any {
			return &messages.JobFinishedAck{Ref: ref(1, 1), Recorded: true}
		}},
		{"heartbeat ack unauthenticated", finished, unauthenticated, dispAddr, func(w *world) any {
			return &messages.HeartbeatAck{RunnerId: runnerID, Incarnation: incarnation, Epoch: epoch, Seq: w.regSeq + 1, Valid: []*messages.JobRef{ref(1, 1)}}
		}},
		{"'unknown, register again' from another runner", idle, mallory, dispAddr, func(w *world) any {
			return &messages.HeartbeatAck{RunnerId: runnerID, Incarnation: incarnation, Seq: w.regSeq, Unknown: true}
		}},
		{"registration refused, from an observer", idle, anObserver, dispAddr, func(*world) any {
			return &messages.RunnerRegistered{RunnerId: runnerID, Incarnation: incarnation, Reason: "go away"}
		}},
		{"registration with another epoch, unauthenticated", func(t *testing.T) *world { return newWorld(t, 10*time.Second) },
			unauthenticated, dispAddr, func(w *world) any {
				m := w.accepted()
				m.Epoch = 666
				return m
			}},
		{"status unauthenticated", idle, unauthenticated, "evil:1/x", func(*world) any { return &messages.StatusRequest{} }},
		{"status from another runner", idle, mallory, "evil:1/x", func(*world) any { return &messages.StatusRequest{} }},
		{"status from an observer", idle, anObserver, "evil:1/x", func(*world) any { return &messages.StatusRequest{} }},
		{"status from a notify certificate", idle, aNotify, "evil:1/x", func(*world) any { return &messages.StatusRequest{} }},
		{"a message no one sends a runner, from the dispatcher", finished, theDispatcher, dispAddr, func(*world) any {
			return &messages.CommitObservedAck{Seq: 1}
		}},
		{"a tick from the network", finished, mallory, "", func(*world) any { return actors.Tick{} }},
		{"a job's end from the network", finished, theDispatcher, "", func(*world) any {
			return runner.JobDone{Ref: ref(1, 1), Result: &messages.Result{Status: messages.Status_STATUS_FAILED}}
		}},
		{"a shutdown from the network", idle, anAdmin, "", func(*world) any { return runner.Shutdown{Reason: "forged"} }},
		{"the dispatcher gone, said by no one", idle, unauthenticated, "", func(*world) any { return actors.PeerTerminated{Addr: dispAddr} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.setup(t)
			w.advance(1500 * time.Millisecond) // a heartbeat is due: a forged input must not send it either
			msg := tc.msg(w)
			before, refused, stale := w.c.Digest(), w.c.Refused(), w.c.Stale()

			fx := w.stepAs(actors.From{Addr: tc.addr, Who: tc.who}, msg)

			require.Len(t, fx, 1, "a note and nothing else: %v", fx)
			note, ok := fx[0].(actors.Note)
			require.True(t, ok, "%T", fx[0])
			assert.Equal(t, slog.LevelWarn, note.Level)
			assert.Contains(t, fmt.Sprint(note.Args...), actors.TypeName(msg), "the note names the message type")
			assert.Equal(t, before, w.c.Digest(), "no state changed")
			assert.Equal(t, refused+1, w.c.Refused(), "the refusal is counted")
			assert.Equal(t, stale, w.c.Stale())
		})
	}
}

// TestStatusForWhoMayAsk: admin, the dispatcher and the reporter read a
// runner's status.
func TestStatusForWhoMayAsk(t *testing.T) {
	for _, who := range []actors.Identity{anAdmin, theDispatcher, aReporter, actors.Local} {
		t.Run(who.String(), func(t *testing.T) {
			w := newWorld(t, 10*time.Second)
			fx := w.stepAs(actors.From{Addr: "ops:1/cli", Who: who}, &messages.StatusRequest{})
			replies := coretest.EffectsOf[actors.Send](fx)
			require.Len(t, replies, 1)
			assert.Equal(t, actors.Addr("ops:1/cli"), replies[0].To)
			assert.IsType(t, &messages.StatusReply{}, replies[0].Msg)
		})
	}
}
