// Package runner is the runner role: it registers with the dispatcher (with
// its labels and slots), heartbeats, takes up to its slots' jobs at once,
// runs each through a JobExecutor (which brings a workspace of its own to
// the commit and runs the steps) and reports each outcome until the
// dispatcher acknowledges it.
//
// Core is the deterministic state machine; Actor is its Proto.Actor shell.
// It takes jobs, cancels and acknowledgements only from the dispatcher's
// proven identity (and address, epoch and its own id and incarnation); any
// other sender's changes nothing. The runner holds a lease on each job:
// without the dispatcher's acknowledgement of that job for the lease period
// it kills the job, so that with a working network a job never runs twice
// at once. A RunJob beyond the slots is ignored and never listed, and the
// dispatcher requeues it. When the dispatcher has been gone longer than the
// grace period the runner exits.
//
// runner must not import os/exec, net, gitexec, sim or cluster.
package runner
