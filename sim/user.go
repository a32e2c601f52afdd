package sim

import (
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// The simulated user: at random times of the fault phase an admin cancels
// a job that `volt status` shows queued or running, or rebuilds a commit
// the dashboard shows a result for, as `volt cancel` and `volt rebuild`
// would. Its draws come from a stream of its own, so that they shift no
// draw of the world's.

func newUserRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x75736572, seed+0x2545f4914f6cdd1d))
}

// drawUser schedules up to two cancels and one rebuild, in worlds whose
// faults are drawn.
func (w *World) drawUser() {
	if w.cfg.Duration < 10*time.Second || w.cfg.Schedule != nil {
		return // a given schedule (a scenario, a property test) runs as given
	}
	at := func() int64 {
		return int64(2*time.Second + time.Duration(w.user.Int64N(int64(w.cfg.Duration-4*time.Second))))
	}
	for range w.user.IntN(3) {
		w.push(event{at: at(), kind: evUser, msg: &messages.CancelRequest{Who: "ops"}})
	}
	if w.user.IntN(2) == 0 {
		w.push(event{at: at(), kind: evUser, msg: &messages.RebuildRequest{Who: "ops"}})
	}
}

// cancelAfterRestart schedules, half the time, a cancel just after the
// dispatcher restarts (restart from now), before its runners have
// registered again: the dispatcher must tell a runner that comes back
// holding a cancelled job.
func (w *World) cancelAfterRestart(restart time.Duration) {
	if w.cfg.Schedule != nil || restart < 0 || w.user.IntN(2) == 0 {
		return
	}
	at := w.now.Add(restart + time.Duration(w.user.Int64N(int64(400*time.Millisecond))))
	w.push(event{at: w.vt(at), kind: evUser, msg: &messages.CancelRequest{Who: "ops"}})
}

// userSends picks what the user's request is about, as they would, and
// sends it to the dispatcher; it sends nothing when there is nothing to
// pick.
func (w *World) userSends(msg any) {
	d := w.dispatcherNode()
	switch m := msg.(type) {
	case *messages.CancelRequest:
		if !d.up || d.disp == nil {
			return // volt status fails: the user tries nothing
		}
		var open []int64
		for _, j := range d.disp.Status().Jobs {
			if j.State != messages.JobState_JOB_STATE_DONE {
				open = append(open, j.Job.Id)
			}
		}
		if len(open) == 0 {
			return
		}
		slices.Sort(open)
		m.JobId = open[w.user.IntN(len(open))]
	case *messages.RebuildRequest:
		var done []string
		for k := range w.check.reported {
			done = append(done, k)
		}
		if len(done) == 0 {
			return
		}
		slices.Sort(done)
		r := w.check.reported[done[w.user.IntN(len(done))]]
		m.Repo, m.Commit = r.Job.Repo, r.Job.Commit
	}
	w.traceWorld("user: " + strings.ToLower(inputName(msg)))
	delay := 200*time.Microsecond + time.Duration(w.user.Int64N(int64(2*time.Millisecond)))
	w.push(event{at: w.vt(w.now) + int64(delay), kind: evDeliver, node: d.idx, gen: d.gen,
		from: actors.From{Addr: adminAddr, Who: adminWho}, msg: msg})
}
