//go:build plantedbugs

package property_test

import (
	"os"
	"testing"

	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/sim"
)

// TestMain plants the bug VOLT_PLANT names (by its String) for the whole
// run, so that `VOLT_PLANT="lease ignored" go test -tags plantedbugs
// -run TestFaultSchedules` shows rapid shrinking a real failure.
func TestMain(m *testing.M) {
	if name := os.Getenv("VOLT_PLANT"); name != "" {
		for _, b := range plant.All() {
			if b.String() == name {
				plant.Set(b)
			}
		}
	}
	os.Exit(m.Run())
}

// plantedBudget is how many seeds each planted bug may take to be caught.
const plantedBudget = 4000

// TestPlantedBugsAreCaught plants each deliberate bug in turn and proves a
// sweep of simulated worlds catches it within the budget, and that the
// unmodified cores pass the same sweep.
func TestPlantedBugsAreCaught(t *testing.T) {
	if os.Getenv("VOLT_PLANT") != "" {
		t.Skip("a bug is planted for the whole run")
	}
	faults := append(append([]sim.FaultKind{}, sim.AllFaults...), sim.FaultDispatcherLoss)
	run := func(seed uint64) *sim.Report {
		f := sim.AllFaults
		if seed%4 == 0 {
			f = faults
		}
		return sim.Run(sim.Config{Seed: seed, Faults: f})
	}
	for _, b := range plant.All() {
		t.Run(b.String(), func(t *testing.T) {
			plant.Set(b)
			defer plant.Set(plant.None)
			if b == plant.RunnerAcceptsOlderEpoch {
				// Defence in depth: in the simulated world fencing and the
				// leader's own clock keep older epochs from answering, so
				// the runner's own rule is proven with an adversarial
				// network instead (epoch_test.go).
				for seed := uint64(1); seed <= plantedBudget; seed++ {
					if v := olderEpochWorld(seed); v != "" {
						t.Logf("caught at seed %d by %q: %s", seed, sim.InvNewerEpoch, v)
						return
					}
				}
				t.Fatalf("planted bug %q not caught in %d seeds", b, plantedBudget)
			}
			run := run
			if failoverBugs[b] {
				// A failover group's bugs show in failover worlds.
				run = func(seed uint64) *sim.Report {
					return sim.Run(sim.Config{Seed: seed, Dispatchers: 3, Faults: sim.AllFaults})
				}
			}
			for seed := uint64(1); seed <= plantedBudget; seed++ {
				if r := run(seed); !r.OK() {
					t.Logf("caught at seed %d by %q: %s", seed, r.Violations[0].Invariant, r.Violations[0].Detail)
					return
				}
			}
			t.Fatalf("planted bug %q not caught in %d seeds", b, plantedBudget)
		})
	}
	t.Run("unmodified", func(t *testing.T) {
		for seed := uint64(1); seed <= 500; seed++ {
			if r := run(seed); !r.OK() {
				t.Fatalf("seed %d: %s", seed, r.Violations[0])
			}
			if r := sim.Run(sim.Config{Seed: seed, Dispatchers: 3, Faults: sim.AllFaults}); !r.OK() {
				t.Fatalf("seed %d, three dispatcher nodes: %s", seed, r.Violations[0])
			}
		}
	})
}

// failoverBugs are the bugs planted in a failover group's code paths.
var failoverBugs = map[plant.Bug]bool{plant.UnfencedWrite: true, plant.StaleLeaderActs: true,
	plant.RunnerAcceptsOlderEpoch: true, plant.StandbyLeadsBlind: true}
