// Package runner is the runner role: it registers with the dispatcher,
// heartbeats, takes one job at a time, runs it through a JobExecutor (which
// brings the workspace to the commit and runs the steps) and reports the
// outcome until the dispatcher acknowledges it.
//
// Core is the deterministic state machine; Actor is its Proto.Actor shell.
// It takes jobs, cancels and acknowledgements only from the dispatcher's
// proven identity (and address, epoch and its own id and incarnation); any
// other sender's changes nothing. The runner holds a lease on its job: without the dispatcher's
// acknowledgement for the lease period it kills the job, so that with a
// working network the job never runs twice at once. When the dispatcher has
// been gone longer than the grace period the runner exits.
//
// runner must not import os/exec, net, gitexec, sim or cluster.
package runner
