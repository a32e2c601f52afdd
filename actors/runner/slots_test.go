package runner_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

var threeLabels = []string{"arch=arm64", "gpu", "os=linux"}

// newSlotWorld is newWorld for a runner with slots and labels.
func newSlotWorld(t *testing.T, slots int) *world {
	c := runner.New(runner.Config{ID: runnerID, Incarnation: incarnation, Hostname: "build-1",
		Dispatcher: dispAddr, Grace: 10 * time.Second, Token: "tok", Labels: threeLabels, Slots: slots})
	w := &world{t: t, c: c, now: coretest.T0}
	w.fx = w.record(c.Start(coretest.T0))
	return w
}

// refs returns the attempts rs lists, as "job/attempt" strings.
func refs(rs []*messages.JobRef) []string {
	var out []string
	for _, r := range rs {
		out = append(out, ref2s(r))
	}
	return out
}

func ref2s(r *messages.JobRef) string { return fmt.Sprintf("%d/%d", r.JobId, r.Attempt) }

// heartbeat advances to the next heartbeat and returns it.
func (w *world) heartbeat() *messages.Heartbeat {
	w.t.Helper()
	for range 100 {
		w.advance(50 * time.Millisecond)
		if hbs := sends[*messages.Heartbeat](w.tick()); len(hbs) > 0 {
			return hbs[0]
		}
	}
	w.t.Fatal("no heartbeat in 5 s")
	return nil
}

func cancelled(fx []actors.Effect) []string {
	var out []string
	for _, c := range coretest.EffectsOf[runner.CancelRun](fx) {
		out = append(out, ref2s(c.Ref))
	}
	return out
}

func TestRegistersItsLabelsAndSlots(t *testing.T) {
	for _, tt := range []struct {
		slots int
		want  int32
	}{{0, 1}, {1, 1}, {4, 4}} {
		w := newSlotWorld(t, tt.slots)
		regs := registers(w.fx)
		require.Len(t, regs, 1)
		assert.Equal(t, threeLabels, regs[0].Labels)
		assert.Equal(t, tt.want, regs[0].Slots, "slots %d", tt.slots)
		assert.Equal(t, int(tt.want), w.c.Slots())

		w.register()
		w.step("", actors.PeerTerminated{Addr: dispAddr})
		regs = registers(w.tick())
		w.advance(time.Second)
		regs = append(regs, registers(w.tick())...)
		require.NotEmpty(t, regs, "registers again")
		assert.Equal(t, threeLabels, regs[0].Labels, "every registration carries them")
		assert.Equal(t, tt.want, regs[0].Slots)
	}
}

func TestThreeJobsInThreeSlots(t *testing.T) {
	w := newSlotWorld(t, 3)
	w.register()
	for id := int64(1); id <= 3; id++ {
		runs := startJob(w.runJob(id, 1))
		require.Len(t, runs, 1, "job %d starts in a slot of its own", id)
	}
	assert.Equal(t, 3, w.c.Running())
	hb := w.heartbeat()
	assert.Equal(t, []string{"1/1", "2/1", "3/1"}, refs(hb.Running), "a heartbeat lists every running attempt")
	st := w.c.Status(w.now).Runners[0]
	assert.Equal(t, "busy", st.State)
	assert.Equal(t, threeLabels, st.Labels)
	assert.EqualValues(t, 3, st.Slots)
	assert.EqualValues(t, 3, st.Running)

	// The dispatcher renews all three.
	assert.Empty(t, cancelled(w.ack(hb.Seq, ref(1, 1), ref(2, 1), ref(3, 1))))

	// Each finishes on its own; each outcome is sent and resent alone.
	w.advance(100 * time.Millisecond)
	fins := sends[*messages.JobFinished](w.done(2, 1, messages.Status_STATUS_FAILED))
	require.Len(t, fins, 1)
	assert.EqualValues(t, 2, fins[0].Result.Job.GetId())
	assert.Equal(t, 2, w.c.Running(), "a finished job leaves its slot")
	w.advance(500 * time.Millisecond)
	fins = sends[*messages.JobFinished](w.done(3, 1, messages.Status_STATUS_PASSED))
	require.Len(t, fins, 1)
	assert.EqualValues(t, 3, fins[0].Result.Job.GetId())

	var resent []string
	for _, e := range w.runUntil(1100*time.Millisecond, true, ref(1, 1)) {
		if s, ok := e.e.(actors.Send); ok {
			if f, ok := s.Msg.(*messages.JobFinished); ok {
				resent = append(resent, ref2s(&messages.JobRef{JobId: f.Result.Job.GetId(), Attempt: f.Result.Attempt}))
			}
		}
	}
	assert.Equal(t, []string{"2/1", "3/1"}, resent, "each unacknowledged outcome is resent, a second after it was last sent")

	w.step(dispAddr, &messages.JobFinishedAck{Ref: ref(2, 1), Recorded: true})
	hb = w.heartbeat()
	assert.Equal(t, []string{"1/1", "3/1"}, refs(hb.Running), "acknowledged: no longer listed")
	w.step(dispAddr, &messages.JobFinishedAck{Ref: ref(3, 1), Recorded: true})
	assert.Empty(t, startJob(w.runJob(2, 1)), "a late duplicate of a finished attempt is not run again")
	assert.True(t, w.c.Busy())
	assert.Equal(t, 1, w.c.Running())
}

func TestRunJobBeyondTheSlotsIsRefused(t *testing.T) {
	w := newSlotWorld(t, 3)
	w.register()
	for id := int64(1); id <= 3; id++ {
		require.Len(t, startJob(w.runJob(id, 1)), 1)
	}

	fx := w.runJob(4, 1)

	assert.Empty(t, startJob(fx), "a fourth job in three slots does not start")
	assert.Empty(t, sends[*messages.JobFinished](fx), "nor is it answered")
	notes := coretest.EffectsOf[actors.Note](fx)
	require.Len(t, notes, 1, "it is logged")
	assert.Contains(t, notes[0].Msg, "beyond the runner's slots")
	assert.EqualValues(t, 1, w.c.Stale())
	assert.Equal(t, 3, w.c.Running())
	hb := w.heartbeat()
	assert.Equal(t, []string{"1/1", "2/1", "3/1"}, refs(hb.Running), "never listed: the dispatcher requeues it")

	// A job being killed still holds its slot until its processes are gone.
	require.Equal(t, []string{"2/1"}, cancelled(w.step(dispAddr, &messages.CancelJob{Ref: ref(2, 1), Reason: "superseded"})))
	assert.Empty(t, startJob(w.runJob(4, 1)), "no slot while job 2 is being killed")
	w.done(2, 1, messages.Status_STATUS_CANCELLED)
	assert.Len(t, startJob(w.runJob(4, 1)), 1, "job 2's slot is free once its processes are gone")

	// An outcome awaiting its acknowledgement holds no slot.
	w.done(3, 1, messages.Status_STATUS_PASSED)
	assert.Len(t, startJob(w.runJob(5, 1)), 1)
	assert.Empty(t, startJob(w.runJob(6, 1)), "1, 4 and 5 run")
}

func TestRunJobForAnAttemptOfAJobStillRunningHereIsRefused(t *testing.T) {
	w := newSlotWorld(t, 3)
	w.register()
	require.Len(t, startJob(w.runJob(1, 1)), 1)
	w.step(dispAddr, &messages.CancelJob{Ref: ref(1, 1), Reason: "superseded"})

	assert.Empty(t, startJob(w.runJob(1, 2)), "attempt 1 is still being killed")
	assert.EqualValues(t, 1, w.c.Stale())

	w.done(1, 1, messages.Status_STATUS_CANCELLED)
	assert.Len(t, startJob(w.runJob(1, 2)), 1, "gone: the next attempt runs")
}

func TestOneOfThreeCancelled(t *testing.T) {
	w := newSlotWorld(t, 3)
	w.register()
	for id := int64(1); id <= 3; id++ {
		w.runJob(id, 1)
	}

	fx := w.step(dispAddr, &messages.CancelJob{Ref: ref(2, 1), Reason: "cancelled by ann", Report: true})

	assert.Equal(t, []string{"2/1"}, cancelled(fx), "only job 2 is killed")
	fins := sends[*messages.JobFinished](w.done(2, 1, messages.Status_STATUS_CANCELLED))
	require.Len(t, fins, 1, "a user's cancel is reported")
	assert.Equal(t, messages.Status_STATUS_CANCELLED, fins[0].Result.Status)
	hb := w.heartbeat()
	assert.Equal(t, []string{"1/1", "2/1", "3/1"}, refs(hb.Running), "job 2 until its outcome is acknowledged")
	assert.Empty(t, cancelled(w.ack(hb.Seq, ref(1, 1), ref(3, 1))), "the others run on; job 2's outcome has its own ack")
	assert.Equal(t, 2, w.c.Running())

	// An ack that drops one running attempt gives up that one only.
	hb = w.heartbeat()
	fx = w.ack(hb.Seq, ref(3, 1))
	assert.Equal(t, []string{"1/1"}, cancelled(fx))
	assert.Empty(t, sends[*messages.JobFinished](w.done(1, 1, messages.Status_STATUS_CANCELLED)), "an abandoned attempt is never reported")
	assert.Equal(t, 1, w.c.Running())
}

func TestLeaseLapsesForEachJob(t *testing.T) {
	w := newSlotWorld(t, 3)
	w.register() // the lease runs from the registration, sent at coretest.T0
	w.advance(100 * time.Millisecond)
	w.runJob(1, 1)
	w.runJob(2, 1)
	w.advance(100 * time.Millisecond)
	w.runJob(3, 1)
	w.advance(100 * time.Millisecond)
	w.done(2, 1, messages.Status_STATUS_PASSED) // finished: nothing left to kill

	var got []string
	var at []time.Duration
	for _, e := range w.runUntil(3*time.Second, false) {
		if c, ok := e.e.(runner.CancelRun); ok {
			got = append(got, ref2s(c.Ref))
			at = append(at, e.at.Sub(coretest.T0))
			assert.Contains(t, c.Reason, "lease lapsed")
		}
	}
	assert.Equal(t, []string{"1/1", "3/1"}, got, "every running job is given up, once")
	for _, d := range at {
		assert.Greater(t, d, 2*time.Second, "not before the lease")
		assert.LessOrEqual(t, d, 2*time.Second+50*time.Millisecond, "at the first tick after it")
	}
	assert.Empty(t, sends[*messages.JobFinished](w.done(1, 1, messages.Status_STATUS_CANCELLED)))
	assert.Empty(t, sends[*messages.JobFinished](w.done(3, 1, messages.Status_STATUS_CANCELLED)))
	assert.Equal(t, 0, w.c.Running())
	assert.True(t, w.c.Busy(), "job 2's outcome still waits for its acknowledgement")
}

func TestReRegistrationClaimsEveryRunningJob(t *testing.T) {
	w := newSlotWorld(t, 3)
	w.register()
	for id := int64(1); id <= 3; id++ {
		w.runJob(id, 1)
	}
	w.advance(500 * time.Millisecond)

	fx := w.step("", actors.PeerTerminated{Addr: dispAddr})

	regs := registers(fx)
	require.Len(t, regs, 1)
	assert.Equal(t, []string{"1/1", "2/1", "3/1"}, refs(regs[0].Running), "the registration claims all three")
	assert.Empty(t, cancelled(fx))

	w.advance(200 * time.Millisecond)
	fx = w.register()
	hbs := sends[*messages.Heartbeat](fx)
	require.Len(t, hbs, 1)
	assert.Equal(t, []string{"1/1", "2/1", "3/1"}, refs(hbs[0].Running), "all three run on")
	assert.Empty(t, cancelled(fx))

	// The new dispatcher adopted 1 and 3; 2 went elsewhere.
	fx = w.ack(hbs[0].Seq, ref(1, 1), ref(3, 1))
	assert.Equal(t, []string{"2/1"}, cancelled(fx))
	assert.Equal(t, 3, w.c.Running(), "job 2 holds its slot until its processes are gone")
	w.done(2, 1, messages.Status_STATUS_CANCELLED)
	assert.Equal(t, 2, w.c.Running())
}

func TestShutdownReleasesEveryJob(t *testing.T) {
	w := newSlotWorld(t, 3)
	w.register()
	for id := int64(1); id <= 3; id++ {
		w.runJob(id, 1)
	}
	w.done(3, 1, messages.Status_STATUS_PASSED)

	fx := w.step("", runner.Shutdown{Reason: "SIGTERM"})

	assert.Equal(t, []string{"1/1", "2/1"}, cancelled(fx), "the running jobs are killed")
	stopping := sends[*messages.RunnerStopping](fx)
	require.Len(t, stopping, 1)
	assert.Equal(t, []string{"1/1", "2/1"}, refs(stopping[0].Released), "and given back; job 3 finished")
	require.Len(t, coretest.EffectsOf[actors.Exit](fx), 1)
	last, ok := fx[len(fx)-1].(actors.Exit)
	require.True(t, ok, "the exit comes last")
	assert.Equal(t, 0, last.Code)
}

func TestExitKillsEveryRunningJob(t *testing.T) {
	w := newSlotWorld(t, 2)
	w.register()
	w.runJob(1, 1)
	w.runJob(2, 1)

	fx := w.step("", actors.PeerTerminated{Addr: dispAddr})
	w.advance(11 * time.Second)
	fx = append(fx, w.tick()...)

	require.Len(t, coretest.EffectsOf[actors.Exit](fx), 1)
	assert.Equal(t, []string{"1/1", "2/1"}, cancelled(fx), "no job outlives the runner")
}

func TestStatusIdleWithSlots(t *testing.T) {
	w := newSlotWorld(t, 4)
	st := w.c.Status(w.now).Runners[0]
	assert.Equal(t, "idle", st.State)
	assert.EqualValues(t, 4, st.Slots)
	assert.EqualValues(t, 0, st.Running)
	assert.Nil(t, st.Job)
}
