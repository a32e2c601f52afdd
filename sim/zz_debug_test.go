package sim

import (
	"testing"
	"time"
)

func TestDebugSchedule(t *testing.T) {
	r := Run(Config{Seed: 0x1fa1f78d, Runners: 3, Duration: 40 * time.Second, Settle: 40 * time.Second, Trace: true, Schedule: []Fault{
		{Kind: FaultSlowGit, At: time.Second, Length: time.Millisecond},
		{Kind: FaultObserver, At: time.Second, Length: time.Millisecond},
		{Kind: FaultDrop, At: time.Second, Length: time.Millisecond},
	}})
	for _, l := range r.Trace {
		t.Log(l)
	}
	t.Log(r.Violations)
}
