package sim

import (
	"strings"
	"testing"
)

// TestShellFaultsShowInTraces: in the default sweep's worlds the shells'
// own faults strike and are named in the trace: a crash between two
// effects of one step, a crash while a batch is written, a store that
// refuses a write, and the reporter struck between a result's insert and
// its file; and every world still passes.
func TestShellFaultsShowInTraces(t *testing.T) {
	want := []string{"between effect", "in the middle of a group-commit batch", "store refuses a write", "between its insert and its result file"}
	seen := map[string]bool{}
	for seed := uint64(1); seed <= 150 && len(seen) < len(want); seed++ {
		r := Run(Config{Seed: seed, Faults: AllFaults, Trace: true})
		if !r.OK() {
			t.Fatalf("seed %d: %v", seed, r.Violations)
		}
		for _, line := range r.Trace {
			for _, w := range want {
				if strings.Contains(line, w) {
					seen[w] = true
				}
			}
		}
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("no trace of 150 seeds says %q", w)
		}
	}
}
