package observer

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors"
)

// Actor is the observer's Proto.Actor shell: it reads the repositories in
// goroutines it owns and feeds the answers back to the core as Polled.
type Actor struct {
	actors.Shell
	cfg    Config
	reader RepoReader
	core   *Core
	// OnPoll, if set, is called after each read of a branch with the time
	// it took (for metrics). It runs in the reading goroutine.
	OnPoll func(time.Duration)

	ctx    context.Context
	cancel context.CancelFunc
}

// NewActor returns the shell around a fresh core.
func NewActor(cfg Config, reader RepoReader, env actors.Env) *Actor {
	return &Actor{Shell: actors.Shell{Env: env}, cfg: cfg, reader: reader}
}

// Receive implements actor.Actor.
func (a *Actor) Receive(ctx actor.Context) {
	now := a.Now()
	switch ctx.Message().(type) {
	case *actor.Started:
		a.ctx, a.cancel = context.WithCancel(context.Background())
		a.core = New(a.cfg)
		a.run(ctx, a.core.Start(now))
		a.StartTimer(ctx, a.core.Deadline())
		return
	case *actor.Stopping, *actor.Restarting:
		a.cancel()
		a.Wait()
		return
	}
	in, from, ok := actors.Received(ctx)
	if !ok {
		return
	}
	a.run(ctx, a.core.Step(now, from, in))
	a.AfterStep(ctx, a.core.Deadline())
}

func (a *Actor) run(ctx actor.Context, fx []actors.Effect) {
	for _, e := range fx {
		switch e := e.(type) {
		case Poll:
			root, self, reader, pctx, onPoll := ctx.ActorSystem().Root, ctx.Self(), a.reader, a.ctx, a.OnPoll
			a.Go(func() {
				start := time.Now()
				polled := reader.Read(pctx, e.Repo, e.Branch, e.Since, e.Max)
				if onPoll != nil {
					onPoll(time.Since(start))
				}
				root.Send(self, polled)
			})
		default:
			if !a.Do(ctx, e) {
				a.Unhandled(e)
			}
		}
	}
}
