package runner

import (
	"context"
	"io"

	"github.com/voltci/volt/messages"
)

// JobExecutor carries out one attempt: it brings the runner's workspace to
// the job's commit, runs the steps with their timeouts, writes the output to
// out and returns the outcome (status, reason, exit code, failed step,
// start and finish times, log sizes). It returns when every process of the
// attempt is gone; cancelling ctx kills them.
type JobExecutor interface {
	Execute(ctx context.Context, run *messages.RunJob, out io.Writer) *messages.Result
}

// Jobs starts and kills the attempts a runner runs: its executor port. The
// production one runs a JobExecutor in a goroutine of the host and streams
// the output to the reporter (actor.go); the simulator's is a fake.
type Jobs interface {
	// Start starts an attempt; its outcome comes back to the core as JobDone.
	Start(run *messages.RunJob)
	// Cancel kills the attempt ref if it runs (it still ends with JobDone).
	Cancel(ref *messages.JobRef, reason string)
	// Done is told that the attempt ref's JobDone arrived.
	Done(ref *messages.JobRef)
	// Stop kills every attempt: the runner stops.
	Stop()
}
