package dispatcher

import (
	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/messages"
)

// Archive answers questions about builds no longer in the dispatcher's memory.
type Archive interface {
	// ArchivedJobs maps each of commits already built to the record of its
	// newest build (its job id, and the branches it was recorded on).
	ArchivedJobs(repo string, commits []string) (map[string]*messages.JobRecord, error)
	// NewestBuild returns the jobs of the newest build of a commit in index
	// order, none if it was never built.
	NewestBuild(repo, commit string) ([]*messages.Job, error)
}

// Store is what the dispatcher's shell needs of durable storage. A store
// that is also a SecretStore keeps secrets.
type Store interface {
	Queue
	Archive
}

// Drain asks the dispatcher actor to answer Drained once every change it
// has made so far is durable and every effect that waited for it has been
// carried out (see host.Drain).
type Drain = host.Drain

// Drained answers Drain.
type Drained = host.Drained

// NewActor returns the dispatcher's Proto.Actor actor: the shared host
// (actors/host) around the dispatcher's Shell. It recovers the queue from
// store when it starts (or restarts after a panic).
func NewActor(cfg Config, store Store, env actors.Env) *host.Actor {
	return host.NewActor(NewShell(cfg, store), env)
}
