package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Search at the deadlines. A world whose faults are drawn (not given)
// varies, from a stream of its own:
//
//   - its timers, inside their legal ranges (as FoundationDB's BUGGIFY
//     does): the heartbeat, the lease (more than a heartbeat), dead-after
//     (more than the lease by at least a network delay and the time a
//     killed job takes to die), the observer's poll, the start grace, the
//     result retry, the runners' grace and the attempt cap;
//   - its fault kinds (swarm testing): each kind allowed is kept or left
//     out, so that a seed sees a few kinds often rather than every kind
//     rarely;
//   - and it aims some runner faults (hang, partition, replace) at a
//     runner holding a job, lasting until just before or just after the
//     lease or dead-after expires, counted from when the dispatcher last
//     heard from it (aim).

// killTime is how long a killed job's process group takes to die in the
// simulated executor (see the CancelRun effect in world.go).
const killTime = 5 * time.Millisecond

func newKnobRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x6b6e6f62, seed*0x9e3779b97f4a7c15+1))
}

// between draws a duration in [lo, hi), in whole milliseconds (runners
// learn the timers in milliseconds).
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	ms := lo.Milliseconds() + rng.Int64N(max(1, (hi-lo).Milliseconds()))
	return time.Duration(ms) * time.Millisecond
}

// varyTimers draws this world's timers inside their legal ranges: heartbeat
// < lease < dead-after − (network delay + kill time).
func (w *World) varyTimers(knobs *rand.Rand, grace bool) {
	c := &w.dispCfg
	// Ranges whose mean rates match the defaults', so that the world costs
	// what it did (a shorter heartbeat or poll means more events).
	c.Heartbeat = between(knobs, 800*time.Millisecond, 1300*time.Millisecond)
	c.Lease = c.Heartbeat + between(knobs, c.Heartbeat/2, 2*c.Heartbeat)
	// The gap between lease and dead-after: often barely legal, where the
	// timer mix-ups show.
	switch x := knobs.IntN(10); {
	case x < 4:
		c.DeadAfter = c.Lease + between(knobs, killTime+time.Millisecond, killTime+8*time.Millisecond)
	case x < 7:
		c.DeadAfter = c.Lease + between(knobs, 10*time.Millisecond, 300*time.Millisecond)
	default:
		c.DeadAfter = c.Lease + between(knobs, 300*time.Millisecond, 1500*time.Millisecond)
	}
	c.StartGrace = between(knobs, 2*c.Heartbeat+10*time.Millisecond, 2*c.Heartbeat+2*time.Second)
	c.ResultRetry = between(knobs, 500*time.Millisecond, 1500*time.Millisecond)
	c.MaxAttempts = 2 + knobs.IntN(3)
	w.poll = between(knobs, 700*time.Millisecond, 1500*time.Millisecond)
	if grace {
		// Not below the default: the supervisor does not restart a role
		// that gave up, and a dispatcher outage (up to 4 s) stretched by a
		// drop fault's lost registrations must not make one.
		w.cfg.RunnerGrace = between(knobs, 10*time.Second, 20*time.Second)
	}
}

// timers describes the world's timers for the summary.
func (w *World) timers() string {
	c := w.dispCfg
	return fmt.Sprintf("heartbeat %s, lease %s, dead-after %s, start grace %s, result retry %s, poll %s, grace %s, max attempts %d",
		c.Heartbeat, c.Lease, c.DeadAfter, c.StartGrace, c.ResultRetry, w.poll, w.cfg.RunnerGrace, c.MaxAttempts)
}

// swarm keeps each allowed fault kind with probability one half (at
// least one), in AllFaults order so that the choice of one kind does not
// depend on which others are allowed. The malicious peer, drawn on its own
// stream, is always kept.
func swarm(knobs *rand.Rand, allowed []FaultKind) []FaultKind {
	if len(allowed) == 0 {
		return nil
	}
	var kept []FaultKind
	kinds := append(slices.Clone(AllFaults), FaultDispatcherLoss)
	if slices.ContainsFunc(allowed, func(k FaultKind) bool { return slices.Contains(failoverOnly, k) }) {
		kinds = append(kinds, failoverOnly...) // a failover world (failover.go)
	}
	for _, k := range kinds {
		in := knobs.IntN(2) == 0
		if slices.Contains(allowed, k) && (in || k == FaultMalicious) {
			kept = append(kept, k)
		}
	}
	if len(slices.DeleteFunc(slices.Clone(kept), func(k FaultKind) bool { return k == FaultMalicious })) == 0 {
		others := slices.DeleteFunc(slices.Clone(allowed), func(k FaultKind) bool { return k == FaultMalicious })
		if len(others) > 0 {
			kept = append(kept, others[knobs.IntN(len(others))])
		}
	}
	return kept
}

// arm holds back an aimed partition, seven times in eight, until a runner starts
// a job: cut off just after a RunJob, a runner whose lease were timed from
// that message instead of its last acknowledged heartbeat would keep the
// job for up to a heartbeat too long (strikeArmed).
func (w *World) arm(f Fault) bool {
	if f.Kind != FaultPartition || w.knobs.IntN(8) == 0 {
		return false
	}
	w.armed = append(w.armed, f)
	return true
}

// strikeArmed cuts n off both ways, now that it has started a job that
// will outlast dead-after (and another runner is idle), until just after
// the dispatcher must declare it dead.
func (w *World) strikeArmed(n *node) {
	if len(w.armed) == 0 || n.hung || n.zombie || w.now.Sub(w.start) >= w.cfg.Duration {
		return
	}
	// Strike when the job will outlast dead-after (the simulator knows how
	// long it runs) and another runner is idle, to take it at once.
	if p := n.oneProc(); p == nil || !w.outlasts(p.job.GetCommit(), w.dispCfg.DeadAfter+w.dispCfg.Heartbeat) {
		return
	}
	if !slices.ContainsFunc(w.runners(), func(o *node) bool { return o != n && o.up && !o.hung && !o.zombie && len(o.procs) == 0 }) {
		return
	}
	f := w.armed[0]
	w.armed = w.armed[1:]
	var pool []*node
	for _, r := range w.runners() {
		if !r.zombie {
			pool = append(pool, r)
		}
	}
	since := time.Duration(0)
	if at, ok := w.check.lastHeard(n); ok {
		since = w.now.Sub(at)
	}
	f.At, f.Aim, f.OneWay, f.Target = w.now.Sub(w.start), false, false, slices.Index(pool, n)
	f.Length = w.dispCfg.DeadAfter - since + time.Duration(w.knobs.Int64N(int64(w.dispCfg.Heartbeat)))
	w.inject(f)
}

// outlasts reports whether commit's job runs longer than d.
func (w *World) outlasts(commit string, d time.Duration) bool {
	info := w.repo.commits[commit]
	return info != nil && (info.hangs || time.Duration(info.durationMs)*time.Millisecond > d)
}

// aim points f at a runner that holds a job (if one does) and makes it
// last until just before or after a deadline of that runner's, counted
// from when the dispatcher last heard from it.
func (w *World) aim(f *Fault, pool []*node) *node {
	var busy []*node
	for _, n := range pool {
		if n.up && !n.hung && len(n.procs) > 0 {
			busy = append(busy, n)
		}
	}
	if len(busy) == 0 {
		return nil
	}
	r := busy[w.knobs.IntN(len(busy))]
	marks := []time.Duration{w.dispCfg.Lease, w.dispCfg.DeadAfter, w.dispCfg.DeadAfter + w.dispCfg.Heartbeat, w.dispCfg.Heartbeat}
	mark := marks[w.knobs.IntN(len(marks))]
	off := time.Duration(w.knobs.Int64N(int64(20*time.Millisecond))) - 5*time.Millisecond
	if w.knobs.IntN(4) == 0 {
		off = time.Duration(w.knobs.Int64N(int64(600*time.Millisecond))) - 300*time.Millisecond
	}
	since := time.Duration(0)
	if at, ok := w.check.lastHeard(r); ok {
		since = w.now.Sub(at)
	}
	f.Length = max(time.Millisecond, mark-since+off)
	if f.Kind == FaultPartition {
		f.OneWay = w.knobs.IntN(4) == 0
	}
	return r
}
