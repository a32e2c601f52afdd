// Package observer is the observer role: it polls each watched branch, finds
// every commit since its cursor (oldest first, capped), tells the dispatcher,
// and advances its cursor only when the dispatcher acknowledges. With each
// commit goes its pipeline, its .volt.yml expanded (jobspec.ExpandPipeline),
// read through the RepoReader port off the core; a backlog whose pipelines
// would not fit in one message is sent in parts, oldest first. The
// dispatcher keeps the cursors durably, in the same transaction as the jobs
// they created, and hands them back when the observer registers, so a
// restart of either side neither skips nor repeats a commit.
//
// Core is the deterministic state machine; Actor is its Proto.Actor shell,
// which reads the repositories through the RepoReader port. Acknowledgements
// and poll requests count only from the dispatcher's proven identity.
//
// observer must not import os/exec, net, gitexec, sim or cluster.
package observer
