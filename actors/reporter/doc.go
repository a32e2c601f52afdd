// Package reporter is the reporter role: it registers with the dispatcher,
// which then forwards it every final result and tells runners to stream
// their logs to it; it records results and logs durably (through the Store
// port), writes the test_results/<commit> files and acknowledges each result
// only once it is durable. Duplicates are ignored, so the dispatcher may
// retry freely.
//
// Core is the deterministic state machine (registration, liveness, and who
// may write which log); Actor is its Proto.Actor shell, which carries out
// Record, AppendLog and CloseLog against the Store. Results count only from
// the dispatcher's proven identity, logs only from a runner's; since a log
// chunk names no runner, the first runner to write an attempt's log claims
// it, and the log is kept only if the result names that runner.
//
// reporter must not import os/exec, net, gitexec, sim or cluster.
package reporter
