package dispatcher

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// Archive answers questions about builds no longer in the dispatcher's memory.
type Archive interface {
	// Archived maps each commit already built to the id of its newest build's job.
	Archived(repo string, commits []string) (map[string]int64, error)
	// LatestJob returns the newest build of a commit, nil if it was never built.
	LatestJob(repo, commit string) (*messages.Job, error)
}

// Store is what the dispatcher's shell needs of durable storage.
type Store interface {
	Queue
	Archive
}

// Actor is the dispatcher's Proto.Actor shell.
type Actor struct {
	actors.Shell
	cfg   Config
	store Store
	core  *Core
}

// NewActor returns the shell around a fresh core; Receive recovers the
// queue from store when the actor starts (or restarts after a panic).
func NewActor(cfg Config, store Store, env actors.Env) *Actor {
	return &Actor{Shell: actors.Shell{Env: env}, cfg: cfg, store: store}
}

// Receive implements actor.Actor.
func (a *Actor) Receive(ctx actor.Context) {
	now := time.Now()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		jobs, cursors, maxID, err := a.store.LoadQueue()
		if err != nil {
			panic(fmt.Errorf("load the dispatcher's queue: %w", err))
		}
		incs, err := a.store.LoadIncarnations()
		if err != nil {
			panic(fmt.Errorf("load runner incarnations: %w", err))
		}
		cfg := a.cfg
		cfg.Epoch = now.UnixNano() // a new incarnation after every (re)start
		a.core = New(cfg)
		a.run(ctx, a.core.Recover(now, Durable{Jobs: jobs, Cursors: cursors, MaxID: maxID, Incarnations: incs}))
		a.StartTimer(ctx, a.core.Deadline())
		return
	case *actor.Stopping, *actor.Restarting:
		a.Wait()
		return
	case *messages.RebuildRequest:
		prev, err := a.store.LatestJob(m.Repo, m.Commit)
		if err != nil {
			panic(fmt.Errorf("look up the commit to rebuild: %w", err))
		}
		a.run(ctx, a.core.Step(now, actors.AddrOf(ctx.Sender()), Rebuild{Msg: m, Prev: prev}))
		return
	case *messages.CommitObserved:
		archived, err := a.store.Archived(m.Repo, m.Commits)
		if err != nil {
			panic(fmt.Errorf("look up observed commits: %w", err))
		}
		a.run(ctx, a.core.Step(now, actors.AddrOf(ctx.Sender()), Observed{Msg: m, Archived: archived}))
		return
	}
	in, ok := actors.Input(ctx.Message())
	if !ok {
		return
	}
	a.run(ctx, a.core.Step(now, actors.AddrOf(ctx.Sender()), in))
}

func (a *Actor) run(ctx actor.Context, fx []actors.Effect) {
	for _, e := range fx {
		switch e := e.(type) {
		case Persist:
			// Nothing after a failed write may be sent: restart from the durable state.
			if len(e.Jobs) > 0 || len(e.Cursors) > 0 {
				if err := a.store.SaveJobs(e.Jobs, e.Cursors); err != nil {
					panic(fmt.Errorf("persist the queue: %w", err))
				}
			}
			if len(e.Incarnations) > 0 {
				if err := a.store.SaveIncarnations(e.Incarnations); err != nil {
					panic(fmt.Errorf("persist runner incarnations: %w", err))
				}
			}
		default:
			if !a.Do(ctx, e) {
				a.Unhandled(e)
			}
		}
	}
	a.AfterStep(ctx, a.core.Deadline())
}
