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
