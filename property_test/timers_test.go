//go:build plantedbugs

package property_test

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/sim"
)

// TestTimerBugsCaughtOften: each timer mix-up (a runner declared dead
// after the lease instead of dead-after; a lease timed from the last
// message received instead of the last acknowledged heartbeat) fails at
// least 5 % of 2,000 seeds of the default `volt sim` world, thanks to the
// search at the deadlines (sim/search.go), not one seed in a thousand.
func TestTimerBugsCaughtOften(t *testing.T) {
	if os.Getenv("VOLT_PLANT") != "" {
		t.Skip("a bug is planted for the whole run")
	}
	const seeds, want = 2000, 0.05
	for _, b := range []plant.Bug{plant.DeadAfterIsLease, plant.LeaseFromLastContact} {
		t.Run(b.String(), func(t *testing.T) {
			plant.Set(b)
			defer plant.Set(plant.None)
			var next, failed atomic.Uint64
			var wg sync.WaitGroup
			for range runtime.GOMAXPROCS(0) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						seed := next.Add(1)
						if seed > seeds {
							return
						}
						if r := sim.Run(sim.Config{Seed: seed, Faults: sim.AllFaults}); !r.OK() {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			rate := float64(failed.Load()) / seeds
			t.Logf("%q failed %d of %d default seeds (%.1f %%)", b, failed.Load(), seeds, 100*rate)
			if rate < want {
				t.Errorf("%q failed only %.1f %% of %d default seeds, want at least %.0f %%", b, 100*rate, seeds, 100*want)
			}
		})
	}
}
