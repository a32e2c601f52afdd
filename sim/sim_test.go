package sim

import (
	"os"
	"testing"
	"time"
)

func TestCalmRunPasses(t *testing.T) {
	r := Run(Config{Seed: 1, Trace: testing.Verbose()})
	if testing.Verbose() {
		for _, l := range r.Trace {
			t.Log(l)
		}
	}
	r.Summary(os.Stderr)
	if !r.OK() {
		t.Fatalf("violations: %v", r.Violations)
	}
	if r.Commits == 0 || r.Results != r.Commits {
		t.Fatalf("commits %d results %d", r.Commits, r.Results)
	}
	_ = time.Second
}

func TestSweepAllFaults(t *testing.T) {
	bad := 0
	for seed := uint64(1); seed <= 300; seed++ {
		r := Run(Config{Seed: seed, Faults: AllFaults})
		if !r.OK() {
			bad++
			if bad <= 8 {
				t.Errorf("seed %d: %v (faults %v)", seed, r.Violations[0], r.Faults)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d/300 seeds failed", bad)
	}
}
