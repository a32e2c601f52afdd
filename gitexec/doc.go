// Package gitexec is the only Volt code that runs external commands: git, for
// the observer's repository polling and the runner's mirrors and worktrees, and
// a job's test steps, each in its own process group with a timeout.
//
// A job is untrusted code. Its steps get a documented, clean environment
// (job.go), never the runner's. With IsolationBwrap each step runs in a
// bubblewrap sandbox that hides the runner's work directory and credentials
// and whose PID namespace dies with the step or the runner (isolation.go);
// without it a step runs through the exec wrapper (WrapperMain), a child
// subreaper that kills everything a step left behind; a runner that calls
// ReapOrphans also kills what a wrapper that died left behind (reap.go).
//
// Everything that reaches git is validated first (ValidateCommit, ValidateRef)
// and passed so that no value can be read as an option. Callers branch on
// ErrNoBranch and *ExitError.
//
// gitexec returns concrete types (Repo, Workspace, Executor) that satisfy the
// small interfaces declared by the packages that use them. It must not import
// Proto.Actor, github.com/voltci/volt/actors, github.com/voltci/volt/cluster or
// github.com/voltci/volt/sim.
package gitexec
