package property_test

import (
	"os"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/voltci/volt/sim"
)

const (
	runners  = 3
	duration = 40 * time.Second
	settle   = 40 * time.Second
)

// nearTimer draws a duration around the heartbeat (1 s), lease (2 s) or
// dead-after (3 s) timer, or anywhere up to max.
func nearTimer(t *rapid.T, label string, max time.Duration) time.Duration {
	if rapid.Bool().Draw(t, label+" near a timer") {
		mark := rapid.SampledFrom([]time.Duration{time.Second, 2 * time.Second, 3 * time.Second}).Draw(t, label+" timer")
		return mark + time.Duration(rapid.Int64Range(-int64(300*time.Millisecond), int64(300*time.Millisecond)).Draw(t, label+" offset"))
	}
	return time.Duration(rapid.Int64Range(int64(time.Millisecond), int64(max)).Draw(t, label))
}

func at(t *rapid.T) time.Duration {
	return time.Duration(rapid.Int64Range(int64(time.Second), int64(duration-time.Second)).Draw(t, "at"))
}

func target(t *rapid.T) int { return rapid.IntRange(0, runners-1).Draw(t, "runner") }

// drawSchedule lets rapid pick a fault schedule, one action per fault.
func drawSchedule(t *rapid.T, withLoss bool) []sim.Fault {
	var faults []sim.Fault
	add := func(f sim.Fault) { faults = append(faults, f) }
	actions := map[string]func(*rapid.T){
		"crash runner": func(t *rapid.T) {
			restart := nearTimer(t, "restart after", 10*time.Second)
			if rapid.IntRange(0, 4).Draw(t, "stays down") == 0 {
				restart = -1
			}
			add(sim.Fault{Kind: sim.FaultCrash, At: at(t), Target: target(t), Length: restart})
		},
		"restart runner": func(t *rapid.T) { add(sim.Fault{Kind: sim.FaultRestart, At: at(t), Target: target(t)}) },
		"replace runner": func(t *rapid.T) {
			add(sim.Fault{Kind: sim.FaultReplace, At: at(t), Target: target(t), Length: nearTimer(t, "frozen for", 8*time.Second)})
		},
		"hang runner": func(t *rapid.T) {
			add(sim.Fault{Kind: sim.FaultHang, At: at(t), Target: target(t), Length: nearTimer(t, "hang for", 8*time.Second)})
		},
		"partition": func(t *rapid.T) {
			add(sim.Fault{Kind: sim.FaultPartition, At: at(t), Target: target(t), Length: nearTimer(t, "partition for", 8*time.Second),
				OneWay: rapid.Bool().Draw(t, "one way")})
		},
		"crash dispatcher": func(t *rapid.T) {
			add(sim.Fault{Kind: sim.FaultDispatcher, At: at(t), Length: nearTimer(t, "dispatcher down for", 5*time.Second)})
		},
		"crash observer": func(t *rapid.T) {
			add(sim.Fault{Kind: sim.FaultObserver, At: at(t), Length: nearTimer(t, "observer down for", 5*time.Second)})
		},
		"drop": func(t *rapid.T) {
			add(sim.Fault{Kind: sim.FaultDrop, At: at(t), Length: nearTimer(t, "drop for", 8*time.Second)})
		},
		"duplicate": func(t *rapid.T) {
			add(sim.Fault{Kind: sim.FaultDup, At: at(t), Length: nearTimer(t, "dup for", 8*time.Second)})
		},
		"delay": func(t *rapid.T) {
			add(sim.Fault{Kind: sim.FaultDelay, At: at(t), Length: nearTimer(t, "delay for", 8*time.Second)})
		},
		"slow git": func(t *rapid.T) {
			add(sim.Fault{Kind: sim.FaultSlowGit, At: at(t), Length: nearTimer(t, "slow for", 8*time.Second)})
		},
		"force push": func(t *rapid.T) { add(sim.Fault{Kind: sim.FaultForcePush, At: at(t)}) },
		"poison":     func(t *rapid.T) { add(sim.Fault{Kind: sim.FaultPoison, At: at(t)}) },
		// Named to sort last: rapid orders actions by name, so the saved
		// failures still replay the schedules they were found with.
		"spoof messages": func(t *rapid.T) {
			add(sim.Fault{Kind: sim.FaultMalicious, At: at(t), Length: nearTimer(t, "forge for", 8*time.Second)})
		},
	}
	if withLoss {
		actions["lose dispatcher"] = func(t *rapid.T) {
			add(sim.Fault{Kind: sim.FaultDispatcherLoss, At: at(t), Length: -1})
		}
	}
	t.Repeat(actions)
	slices.SortStableFunc(faults, func(a, b sim.Fault) int { return int(a.At - b.At) })
	// Only the first loss matters: the dispatcher never comes back.
	lost := false
	faults = slices.DeleteFunc(faults, func(f sim.Fault) bool {
		if f.Kind != sim.FaultDispatcherLoss {
			return false
		}
		drop := lost
		lost = true
		return drop
	})
	return faults
}

// property runs one drawn world and fails on any broken invariant, with
// the schedule and the trace tail to explain it.
func property(withLoss bool) func(*rapid.T) {
	return func(t *rapid.T) {
		noise := rapid.Uint64().Draw(t, "noise seed")
		schedule := drawSchedule(t, withLoss)
		cfg := sim.Config{Seed: noise, Runners: runners, Duration: duration, Settle: settle, Schedule: schedule}
		r := sim.Run(cfg)
		if !r.OK() {
			if os.Getenv("VOLT_SIM_TRACE") != "" {
				cfg.Trace = true
				for _, line := range sim.Run(cfg).Trace {
					t.Log(line)
				}
			}
			for _, f := range schedule {
				t.Logf("fault: %s", f)
			}
			t.Fatalf("%d violations, first: %s (replay the trace: go test ./sim -run TestTraceSeed with this schedule)", len(r.Violations), r.Violations[0])
		}
	}
}

// TestFaultSchedules: with the dispatcher crashing and restarting but never
// lost, every safety invariant holds throughout and every liveness one
// after the faults heal.
func TestFaultSchedules(t *testing.T) { rapid.Check(t, property(false)) }

// TestDispatcherLoss: with the dispatcher lost for good, the safety
// invariants hold and every runner exits within its grace period.
func TestDispatcherLoss(t *testing.T) { rapid.Check(t, property(true)) }
