package runner

import (
	"context"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// Actor is the runner's Proto.Actor shell: it runs each job in a goroutine
// it owns, streams the output to the reporter and feeds the outcome back to
// the core as JobDone.
type Actor struct {
	actors.Shell
	cfg  Config
	exec JobExecutor
	core *Core
	// LogDir keeps an attempt's output while it is streamed, for resends,
	// when it is too large to keep in memory.
	LogDir string
	// ChunkSize is the largest log chunk sent at once.
	ChunkSize int

	cancels map[int64]context.CancelFunc
}

// NewActor returns the shell around a fresh core.
func NewActor(cfg Config, exec JobExecutor, logDir string, env actors.Env) *Actor {
	return &Actor{Shell: actors.Shell{Env: env}, cfg: cfg, exec: exec, LogDir: logDir, ChunkSize: 64 << 10}
}

// Receive implements actor.Actor.
func (a *Actor) Receive(ctx actor.Context) {
	now := a.Now()
	switch ctx.Message().(type) {
	case *actor.Started:
		a.core = New(a.cfg)
		a.cancels = map[int64]context.CancelFunc{}
		a.run(ctx, a.core.Start(now))
		a.StartTimer(ctx, a.core.Deadline())
		return
	case *actor.Stopping, *actor.Restarting:
		for _, cancel := range a.cancels {
			cancel()
		}
		a.Wait() // no job process outlives the actor
		return
	}
	in, from, ok := actors.Received(ctx)
	if !ok {
		return
	}
	if done, isDone := in.(JobDone); isDone && from.Who.IsLocal() {
		delete(a.cancels, done.Ref.JobId)
	}
	a.run(ctx, a.core.Step(now, from, in))
	a.AfterStep(ctx, a.core.Deadline())
}

// Stop asks the runner to give its job back and exit (SIGINT/SIGTERM).
func Stop(root *actor.RootContext, pid *actor.PID, reason string) {
	root.Send(pid, Shutdown{Reason: reason})
}

func (a *Actor) run(ctx actor.Context, fx []actors.Effect) {
	for _, e := range fx {
		switch e := e.(type) {
		case StartJob:
			a.start(ctx, e.Run)
		case CancelRun:
			if cancel := a.cancels[e.Ref.JobId]; cancel != nil {
				cancel()
			}
		default:
			if !a.Do(ctx, e) {
				a.Unhandled(e)
			}
		}
	}
}

func (a *Actor) start(ctx actor.Context, run *messages.RunJob) {
	jobCtx, cancel := context.WithCancel(context.Background())
	a.cancels[run.Job.Id] = cancel
	root, self := ctx.ActorSystem().Root, ctx.Self()
	ref := &messages.JobRef{JobId: run.Job.Id, Attempt: run.Attempt}
	a.Go(func() {
		defer cancel()
		stream := newLogStream(root, run, a.LogDir, a.ChunkSize, a.Logger)
		res := a.exec.Execute(jobCtx, run, stream)
		stream.Close()
		root.Send(self, JobDone{Ref: ref, Result: res})
	})
}
