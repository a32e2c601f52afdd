// Package bench holds Volt's end-to-end benchmarks: the measurement half of
// the performance targets in BENCHMARKS.md. It has no production code; its
// benchmarks (in *_test.go) build the volt binary once, start real Volt
// processes on 127.0.0.1 (ports picked by binding 127.0.0.1:0, never the
// default 8000/8001/8900 ports), drive them with real git repositories and
// report what they measure with testing.B.ReportMetric, in units benchstat
// reads (ms/push, builds/s, %CPU, MiB-RSS, ...).
//
// Each iteration of a benchmark is one measurement (one push, one kill, one
// sampling window); the built-in ns/op is suppressed because it would be the
// length of a whole iteration (commit, push, clean-up), not the measured
// interval. The default run of each benchmark is short (often one iteration);
// ask for more samples with -benchtime Nx and more runs with -count:
//
//	go test ./bench -run '^$' -bench . -count 5 | tee new.txt
//	go test ./bench -run '^$' -bench PushToResultPoll1s -benchtime 20x -count 5
//	benchstat new.txt
//
// Every benchmark also logs each sample ("sample" lines) and the phases it
// read from the processes' logs, so that a missed target can be located.
// Benchmarks start nothing unless -bench selects them: `go test ./...` (and so
// `make test`) only compiles this package.
package bench
