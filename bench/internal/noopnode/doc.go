// Command noopnode is a bench-only program: one process of the
// cross-process benchmarks of target 8 (bench/remote_test.go). It runs the
// real Volt actors over Proto.Actor remote with everything around them
// faked, or a bare Proto.Actor ping-pong for comparison:
//
//   - -mode dispatcher: the real dispatcher actor (actors/dispatcher) on a
//     remote node set up by cluster.Start, with a no-op in-memory store (the
//     store is out of the path), an in-process fake observer that feeds
//     CommitObserved and an in-process fake reporter that acknowledges
//     ResultRecorded and LogClosed. Sender and receiver middleware on the
//     dispatcher actor time every RunJob it sends and every JobFinished it
//     receives.
//   - -mode runner: the real runner actor (actors/runner) with a JobExecutor
//     that returns a passed result at once, registered with the dispatcher.
//   - -mode echo / -mode ping: a bare actor that answers every message, and
//     one that sends to each echo peer with one message outstanding.
//
// The dispatcher and ping modes take commands on standard input, one a line,
// and answer on standard output (see control in main.go). Standard input reaching
// its end, SIGINT or SIGTERM stop the process (and its CPU profile). It is
// built by the benchmark with `go build`; nothing else uses it.
//
// Like cmd/volt, it must not import testing.
package main
