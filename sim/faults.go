package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// FaultKind names a kind of fault the simulator can inject.
type FaultKind string

// The fault kinds, as `volt sim --faults` spells them.
const (
	// FaultCrash kills a runner (idle or mid-job); its supervisor may restart it.
	FaultCrash FaultKind = "crash"
	// FaultHang freezes a runner (SIGSTOP): its connection stays open.
	FaultHang FaultKind = "hang"
	// FaultRestart kills a runner and restarts it at once as a new incarnation.
	FaultRestart FaultKind = "restart"
	// FaultReplace freezes a runner and starts a new incarnation of it
	// beside the frozen one, which wakes up later (a VM restored from a
	// snapshot, a runner started twice): the older incarnation must change
	// nothing.
	FaultReplace FaultKind = "replace"
	// FaultDispatcher kills the dispatcher and restarts it on the same store.
	FaultDispatcher FaultKind = "dispatcher"
	// FaultDispatcherLoss kills the dispatcher for good.
	FaultDispatcherLoss FaultKind = "dispatcher-loss"
	// FaultObserver kills the observer and restarts it.
	FaultObserver FaultKind = "observer"
	// FaultReporter kills the reporter and restarts it: results the
	// dispatcher forwarded meanwhile come again, and each recorded result's
	// file must be there at the end.
	FaultReporter FaultKind = "reporter"
	// FaultPartition cuts a runner off from the dispatcher, both ways or one way.
	FaultPartition FaultKind = "partition"
	// FaultDrop drops messages for a while.
	FaultDrop FaultKind = "drop"
	// FaultDup duplicates messages for a while.
	FaultDup FaultKind = "dup"
	// FaultDelay delays (and so reorders) messages for a while.
	FaultDelay FaultKind = "delay"
	// FaultSlowGit makes repository reads slow for a while.
	FaultSlowGit FaultKind = "slowgit"
	// FaultForcePush rewrites a branch.
	FaultForcePush FaultKind = "forcepush"
	// FaultPoison adds commits whose tests kill the runner that runs them.
	FaultPoison FaultKind = "poison"
	// FaultMalicious lets a malicious peer (a runner certificate of its own,
	// an observer or notify certificate, or none) send forged messages to
	// every role for a while: any type, any claimed sender, ids copied from
	// the world (see malicious.go), and forged secret requests and changes
	// to the dispatcher (secrets.go). It is drawn on its own stream: a world
	// that lists it has one to three bursts, and every other draw is the
	// same as without it.
	FaultMalicious FaultKind = "malicious"
	// FaultCrashPoint lets a role (the dispatcher, the reporter, the
	// observer or a runner) crash between two effects of one step for a
	// while; the reporter's next result file is struck between the insert
	// of its result and the file. The role restarts within 2 s.
	FaultCrashPoint FaultKind = "crashpoint"
	// FaultBatchCrash crashes the dispatcher while its next group-commit
	// batch is being written: the batch is lost.
	FaultBatchCrash FaultKind = "batchcrash"
	// FaultStoreFail makes the dispatcher's or the reporter's store refuse
	// every write for a while (a full disk): the role must retry, not stop.
	FaultStoreFail FaultKind = "storefail"
)

// AllFaults lists every kind except dispatcher-loss, which ends liveness
// checking and so is asked for explicitly.
var AllFaults = []FaultKind{FaultCrash, FaultHang, FaultRestart, FaultReplace, FaultDispatcher, FaultObserver, FaultReporter,
	FaultPartition, FaultDrop, FaultDup, FaultDelay, FaultSlowGit, FaultForcePush, FaultPoison,
	FaultCrashPoint, FaultBatchCrash, FaultStoreFail, FaultMalicious}

// ParseFaults reads a comma-separated list of fault kinds ("all" for AllFaults).
func ParseFaults(s string) ([]FaultKind, error) {
	if s == "" {
		return nil, nil
	}
	var out []FaultKind
	for _, f := range strings.Split(s, ",") {
		k := FaultKind(strings.TrimSpace(f))
		switch {
		case k == "all":
			out = append(out, AllFaults...)
		case k == FaultDispatcherLoss || slices.Contains(AllFaults, k) || slices.Contains(failoverOnly, k):
			out = append(out, k)
		default:
			return nil, fmt.Errorf("unknown fault %q: want a comma-separated list of %v, %s or all", k, AllFaults, FaultDispatcherLoss)
		}
	}
	return out, nil
}

// Fault is one scheduled fault.
type Fault struct {
	// At is the virtual time from the start of the run.
	At   time.Duration
	Kind FaultKind
	// Target is the runner it hits, for runner faults and partitions.
	Target int
	// Length is how long it lasts, or how long until the supervisor restarts
	// a crashed role; negative means the role stays down.
	Length time.Duration
	// OneWay makes a partition drop only the dispatcher's messages to the runner.
	OneWay bool
	// Aim points a hang, partition or replace, when it strikes, at a
	// runner holding a job, for as long as it takes to reach one of that
	// runner's deadlines, give or take a little (search.go).
	Aim bool
}

func (f Fault) String() string {
	s := fmt.Sprintf("%s at %s", f.Kind, f.At)
	switch f.Kind {
	case FaultCrash, FaultHang, FaultRestart, FaultReplace, FaultPartition:
		s += fmt.Sprintf(" runner %d", f.Target+1)
	}
	if f.OneWay {
		s += " one-way"
	}
	if f.Aim {
		s += " aimed"
	}
	if f.Length != 0 {
		s += fmt.Sprintf(" for %s", f.Length)
	}
	return s
}

// around draws a duration near one of the timers where the bugs live
// (heartbeat 1 s, lease 2 s, dead-after 3 s), or anywhere up to max.
func around(rng *rand.Rand, max time.Duration) time.Duration {
	marks := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	if rng.IntN(3) > 0 {
		m := marks[rng.IntN(len(marks))]
		return m + time.Duration(rng.Int64N(int64(600*time.Millisecond))) - 300*time.Millisecond
	}
	return time.Duration(rng.Int64N(int64(max))) + time.Millisecond
}

// drawSchedule picks about one fault per 8 virtual seconds from kinds, and
// the malicious peer's bursts, if kinds lists it, from mal: so rng draws
// the same faults whether or not it does.
func drawSchedule(rng, mal *rand.Rand, kinds []FaultKind, runners int, d time.Duration, aimed bool) []Fault {
	if d < 10*time.Second {
		return nil
	}
	var out []Fault
	others := slices.DeleteFunc(slices.Clone(kinds), func(k FaultKind) bool { return k == FaultMalicious })
	if len(others) < len(kinds) {
		out = drawMalice(mal, d)
	}
	byTime := func(a, b Fault) int { return int(a.At - b.At) }
	if len(others) == 0 {
		slices.SortStableFunc(out, byTime)
		return out
	}
	kinds = others
	n := 1 + rng.IntN(int(d/(8*time.Second))+1)
	lost := false
	for i := 0; i < n; i++ {
		f := Fault{Kind: kinds[rng.IntN(len(kinds))], Target: rng.IntN(runners),
			At: 2*time.Second + time.Duration(rng.Int64N(int64(d-4*time.Second)))}
		switch f.Kind {
		case FaultCrash:
			f.Length = around(rng, 10*time.Second)
			if rng.IntN(5) == 0 {
				f.Length = -1
			}
		case FaultRestart:
			f.Length = 0
		case FaultHang, FaultPartition, FaultReplace:
			f.Length = around(rng, 8*time.Second)
			f.OneWay = f.Kind == FaultPartition && rng.IntN(3) == 0
			f.Aim = aimed && rng.IntN(5) > 0
		case FaultDispatcher, FaultObserver, FaultReporter:
			f.Length = time.Duration(rng.Int64N(int64(4 * time.Second)))
		case FaultDispatcherLoss:
			if lost {
				continue
			}
			lost = true
			f.Length = -1
		case FaultCrashPoint:
			f.Target = rng.IntN(4 * runners)
			f.Length = around(rng, 10*time.Second)
		case FaultStoreFail:
			f.Length = around(rng, 10*time.Second)
		case FaultDrop, FaultDup, FaultDelay, FaultSlowGit:
			f.Length = time.Second + time.Duration(rng.Int64N(int64(8*time.Second)))
		case FaultLeaderPause:
			// Mostly past the lease (the leader wakes up deposed), now
			// and then within it (it wakes up still leading).
			f.Length = time.Second + time.Duration(rng.Int64N(int64(4*electionTTL)))
		case FaultLeaderResign:
			f.Length = time.Duration(rng.Int64N(int64(4 * time.Second)))
		case FaultStoreOutage:
			f.Length = time.Second + time.Duration(rng.Int64N(int64(2*electionTTL)))
		case FaultStoreSlow:
			f.Length = time.Second + time.Duration(rng.Int64N(int64(8*time.Second)))
		}
		out = append(out, f)
	}
	if aimed && slices.Contains(kinds, FaultPartition) {
		// One more partition, aimed (search.go), in every world that keeps
		// partitions: the lease and dead-after are where runners and the
		// dispatcher must agree.
		out = append(out, Fault{Kind: FaultPartition, Aim: true, Target: rng.IntN(runners), Length: time.Second,
			At: 2*time.Second + time.Duration(rng.Int64N(int64(d-4*time.Second)))})
	}
	slices.SortStableFunc(out, byTime)
	return out
}
