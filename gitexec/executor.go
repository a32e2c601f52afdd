package gitexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/voltci/volt/messages"
)

// Status is the outcome of a job: messages.Status, Volt's one status type
// (on the wire, in the store, the result file and the web), under the
// names this package has always given its values.
type Status = messages.Status

// The statuses of a job, as recorded in results.
const (
	// Passed means every step exited with status 0.
	Passed = messages.Status_STATUS_PASSED
	// Failed means a step exited with a non-zero status.
	Failed = messages.Status_STATUS_FAILED
	// TimedOut means a step or the whole job ran past its timeout and was killed.
	TimedOut = messages.Status_STATUS_TIMED_OUT
	// Errored means Volt could not run the job (for example a step could not start).
	Errored = messages.Status_STATUS_ERRORED
	// Cancelled means the job was stopped from outside (its context was cancelled).
	Cancelled = messages.Status_STATUS_CANCELLED
)

// Step is one shell command of a job.
type Step struct {
	// Name identifies the step in the output and the outcome.
	Name string
	// Run is the command, run with sh -c.
	Run string
	// Timeout limits the step; 0 means no limit beyond the job's.
	Timeout time.Duration
}

// Run describes a job for Executor.Execute.
type Run struct {
	// Dir is the directory the steps run in (the prepared worktree).
	Dir string
	// Env is the job's own variables (CI, VOLT_*, .volt.yml's env). Each
	// step's environment is a fixed base (PATH, HOME, TMPDIR, LANG, see
	// job.go), then the variables named in Executor.PassEnv, then Env; the
	// runner's own environment is never inherited.
	Env []string
	// Steps run in order; the first that fails ends the job.
	Steps []Step
	// Timeout limits the whole job; 0 means no limit.
	Timeout time.Duration
	// OutputCap is how many bytes of output are kept; the rest is read,
	// counted and discarded. 0 or less means no limit.
	OutputCap int64
	// Output receives the kept output: a header line per step, the steps'
	// stdout and stderr interleaved and, at the end, a truncation marker line
	// if output was dropped. nil discards it.
	Output io.Writer
}

// Outcome is the result of a job.
type Outcome struct {
	// Status says how the job ended.
	Status Status
	// FailedStep names the step that failed, timed out, was cancelled or could not start.
	FailedStep string
	// ExitCode is the failed step's exit status (128+signal if it was killed
	// by a signal), 0 if the job passed, -1 if no step exited on its own.
	ExitCode int
	// Reason explains a status other than Passed in a sentence.
	Reason string
	// Kept and Dropped count the output bytes delivered to Output and discarded.
	Kept, Dropped int64
}

// Executor runs jobs' steps as shell commands, each in its own process group,
// killed as a group when it times out, is cancelled, or ends.
//
// With a Wrapper and without a sandbox, the Executor keeps one wrapper
// started ahead of time (warm): a step hands it its directory, environment
// and command over a pipe instead of waiting for a new wrapper process to
// start, and the next one is started while the step runs. Close stops the
// warm wrapper. A sandboxed step starts bwrap directly: its PID namespace
// does the wrapper's work (see start in warm.go).
type Executor struct {
	// Wrapper is an argv prefix used to start each step that runs without
	// a sandbox, for example {"/usr/bin/volt", "exec-wrapper", "--"} (see
	// WrapperMain); it is started with a parent-death signal so that no
	// step outlives a killed runner. Empty means run sh -c directly.
	Wrapper []string
	// WrapperEnv is the environment of a wrapper process itself (its
	// steps get theirs over its control pipe); nil means an empty one.
	// Never put secrets here: a step running as the runner's user can read
	// its wrapper's environment.
	WrapperEnv []string
	// Isolation confines the steps: IsolationBwrap runs each in a
	// bubblewrap sandbox, IsolationNone (or "") as a plain process.
	// ResolveIsolation chooses for a runner.
	Isolation Isolation
	// Hide lists paths that a sandboxed step must not see: each is replaced
	// by an empty directory (or file) in the sandbox. The runner's work
	// directory belongs here (the step's worktree and job directory inside
	// it stay visible, and the worktree's mirror read-only), and its
	// credentials. Without a sandbox nothing is hidden.
	Hide []string
	// PassEnv names variables of the runner's environment that steps get
	// too (VOLT_* never).
	PassEnv []string
	// JobUser, if not nil, is the user steps run as (the runner must run
	// as root); the worktree and the job directory are given to it.
	JobUser *JobUser

	mu     sync.Mutex
	idle   []*warmWrapper // started, waiting for a step
	closed bool
}

// drainGrace is how long output is still read after a step's process group has
// been killed, for processes that left the group but hold the output pipe.
const drainGrace = 2 * time.Second

// Execute runs r's steps in order and reports how the job ended. It never
// returns before every process it started is dead or has left the step's
// process group and closed its output.
func (e *Executor) Execute(ctx context.Context, r Run) Outcome {
	output := r.Output
	if output == nil {
		output = io.Discard
	}
	out := &capWriter{w: output, limit: r.OutputCap}
	var jobDeadline time.Time
	if r.Timeout > 0 {
		jobDeadline = time.Now().Add(r.Timeout)
	}
	outcome := Outcome{Status: Passed}
	var j *job
	if len(r.Steps) == 0 {
		outcome = Outcome{Status: Errored, ExitCode: -1, Reason: "the job has no steps"}
	} else {
		var err error
		if j, err = e.prepareJob(r); err != nil {
			outcome = Outcome{Status: Errored, ExitCode: -1, Reason: fmt.Sprintf("prepare the job: %v", err)}
			r.Steps = nil
		} else {
			defer j.cleanup()
		}
	}
	for i, step := range r.Steps {
		if step.Name == "" {
			step.Name = fmt.Sprintf("step %d", i+1)
		}
		if ctx.Err() != nil {
			outcome = Outcome{Status: Cancelled, FailedStep: step.Name, ExitCode: -1, Reason: fmt.Sprintf("cancelled before step %s", step.Name)}
			break
		}
		if !jobDeadline.IsZero() && !time.Now().Before(jobDeadline) {
			outcome = Outcome{Status: TimedOut, FailedStep: step.Name, ExitCode: -1, Reason: fmt.Sprintf("job exceeded its timeout of %s before step %s", r.Timeout, step.Name)}
			break
		}
		outcome = e.runStep(ctx, r, j, step, jobDeadline, out)
		if outcome.Status != Passed {
			break
		}
	}
	outcome.Kept, outcome.Dropped = out.kept, out.dropped
	if out.dropped > 0 && out.err == nil {
		_, err := fmt.Fprintf(output, "\n[volt: output truncated: %d bytes dropped after the first %d bytes]\n", out.dropped, out.kept)
		if err != nil {
			out.err = err
		}
	}
	if out.err != nil {
		outcome.Reason = strings.TrimPrefix(outcome.Reason+"; ", "; ") + fmt.Sprintf("output after %d bytes lost: %v", out.kept, out.err)
	}
	return outcome
}

// runStep runs one step and classifies how it ended.
func (e *Executor) runStep(ctx context.Context, r Run, j *job, step Step, jobDeadline time.Time, out *capWriter) Outcome {
	fail := func(status Status, code int, format string, args ...any) Outcome {
		return Outcome{Status: status, FailedStep: step.Name, ExitCode: code, Reason: fmt.Sprintf(format, args...)}
	}
	header := strings.ReplaceAll(strings.TrimSpace(step.Run), "\n", "\n    ")
	if _, err := fmt.Fprintf(out, "--- step %s: %s\n", step.Name, header); err != nil {
		return fail(Errored, -1, "write output: %v", err)
	}

	deadline := jobDeadline
	timeoutOf := fmt.Sprintf("job exceeded its timeout of %s during step %s", r.Timeout, step.Name)
	if step.Timeout > 0 {
		if stepDeadline := time.Now().Add(step.Timeout); jobDeadline.IsZero() || stepDeadline.Before(jobDeadline) {
			deadline = stepDeadline
			timeoutOf = fmt.Sprintf("step %s exceeded its timeout of %s", step.Name, step.Timeout)
		}
	}
	stepCtx, cancel := context.WithCancel(ctx)
	if !deadline.IsZero() {
		cancel()
		stepCtx, cancel = context.WithDeadline(ctx, deadline)
	}
	defer cancel()

	run, startErr := e.start(j, j.command(step.Run))
	if startErr != nil {
		return fail(Errored, -1, "start step %s: %v", step.Name, startErr)
	}
	pr := run.out
	// Killed as a group on timeout or cancellation, as exec.CommandContext would.
	// An error here is seen again by the kill after Wait, which reports it.
	stopKill := context.AfterFunc(stepCtx, func() { killGroup(run.pid) }) //nolint:errcheck // see above
	defer stopKill()
	// The next step's wrapper starts while this one runs.
	e.Warm()

	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, pr)
		copied <- err
	}()
	ws, waitErr := run.wait()
	untouched := stopKill()
	// Nothing of a finished step survives it: neither its process group
	// (killed, or cleaned up by a wrapper kept for the next step), nor what
	// a wrapper that died without cleaning up left to this process (a
	// subreaper, if the runner called ReapOrphans).
	killErr := run.end(untouched)
	if err := sweepOrphans(); err != nil && (killErr == nil || errors.Is(killErr, os.ErrProcessDone)) {
		killErr = err
	}
	timer := time.NewTimer(drainGrace)
	var copyErr error
	select {
	case copyErr = <-copied:
	case <-timer.C:
		// A process that left the group still holds the pipe: stop reading.
		if err := pr.SetReadDeadline(time.Now()); err != nil {
			copyErr = err
		}
		if err := <-copied; copyErr == nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			copyErr = err
		}
	}
	timer.Stop()
	if err := pr.Close(); err != nil && copyErr == nil {
		copyErr = err
	}

	killed := waitErr != nil || !ws.Exited()
	switch {
	case ctx.Err() != nil && killed:
		return fail(Cancelled, -1, "cancelled during step %s", step.Name)
	case stepCtx.Err() != nil && killed:
		return fail(TimedOut, -1, "%s", timeoutOf)
	case waitErr != nil:
		return fail(Errored, -1, "wait for step %s: %v", step.Name, waitErr)
	case killErr != nil && !errors.Is(killErr, os.ErrProcessDone):
		return fail(Errored, -1, "kill the processes of step %s: %v", step.Name, killErr)
	case copyErr != nil:
		return fail(Errored, -1, "read the output of step %s: %v", step.Name, copyErr)
	case ws.Exited() && ws.ExitStatus() == 0:
		return Outcome{Status: Passed}
	case ws.Exited():
		return fail(Failed, ws.ExitStatus(), "step %s exited with status %d", step.Name, ws.ExitStatus())
	default:
		code := waitStatusCode(ws)
		return fail(Failed, code, "step %s was killed by a signal (exit status %d)", step.Name, code)
	}
}

// killGroup kills the process group pgid with SIGKILL. It returns
// os.ErrProcessDone if the group has no process left.
func killGroup(pgid int) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// shellPath is the absolute path of sh, so that a step's environment needs no PATH to start it.
func shellPath() string {
	if path, err := exec.LookPath("sh"); err == nil {
		return path
	}
	return "/bin/sh"
}
