package sim

import (
	"testing"
	"time"
)

// BenchmarkWorld60s runs one 60-virtual-second world (30 s of faults, 30 s
// of calm) with 3 runners per iteration and reports seeds and events per
// wall-clock second on one core.
func BenchmarkWorld60s(b *testing.B) {
	events := 0
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r := Run(Config{Seed: uint64(i), Runners: 3, Duration: 30 * time.Second, Settle: 30 * time.Second, Faults: AllFaults})
		events += r.Events
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "seeds/s")
	b.ReportMetric(float64(events)/secs, "events/s")
	b.ReportMetric(float64(events)/float64(b.N), "events/seed")
}
