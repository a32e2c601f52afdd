package sim

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestTraceSeed prints the trace of SIM_SEED (a debugging aid; skipped
// unless the variable is set), filtered by SIM_GREP.
func TestTraceSeed(t *testing.T) {
	s := os.Getenv("SIM_SEED")
	if s == "" {
		t.Skip("set SIM_SEED to print a seed's trace")
	}
	seed, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	faults := AllFaults
	if os.Getenv("SIM_LOSS") != "" {
		faults = append(append([]FaultKind{}, AllFaults...), FaultDispatcherLoss)
	}
	r := Run(Config{Seed: seed, Faults: faults, Trace: true})
	for _, l := range r.Trace {
		if g := os.Getenv("SIM_GREP"); g == "" || strings.Contains(l, g) || strings.Contains(l, "fault") || strings.Contains(l, "VIOLATION") {
			t.Log(l)
		}
	}
	r.Summary(os.Stderr)
}
