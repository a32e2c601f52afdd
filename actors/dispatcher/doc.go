// Package dispatcher is the dispatcher role: it owns the durable job queue,
// the pool of registered runners and their liveness, assigns queued jobs to
// idle runners, reassigns the job of a lost runner, caps attempts, and
// records exactly one final result per build, which it forwards to the
// reporter until acknowledged.
//
// Core is the deterministic state machine; Actor is its Proto.Actor shell.
// Each input is checked first against the identity its sender proved (a
// runner speaks only for itself, only the reporter acknowledges results,
// ...: see Core.permit); a refused one changes nothing, gets no answer and
// is counted. The attempt number fences results: a JobFinished from a
// superseded attempt or an older runner incarnation changes nothing and is
// counted.
//
// It also decides who gets the secrets a job's .volt.yml asks for
// (secrets.go): only the runner running the job's current attempt, and only
// secrets bound to the job's repository and one of its branches.
//
// dispatcher must not import os/exec, net, gitexec, sim or cluster.
package dispatcher
