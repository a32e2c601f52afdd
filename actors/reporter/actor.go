package reporter

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// Actor is the reporter's Proto.Actor shell.
type Actor struct {
	actors.Shell
	cfg   Config
	store Store
	core  *Core

	recorded, duplicates int64
}

// NewActor returns the shell around a fresh core.
func NewActor(cfg Config, store Store, env actors.Env) *Actor {
	return &Actor{Shell: actors.Shell{Env: env}, cfg: cfg, store: store}
}

// Receive implements actor.Actor.
func (a *Actor) Receive(ctx actor.Context) {
	now := a.Now()
	switch ctx.Message().(type) {
	case *actor.Started:
		a.core = New(a.cfg)
		a.run(ctx, a.core.Start(now))
		a.StartTimer(ctx, a.core.Deadline())
		return
	case *actor.Stopping, *actor.Restarting:
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
		case Record:
			if e.DropLog {
				a.dropLog(e.Result)
			}
			inserted, err := a.store.RecordResult(e.Result)
			if err != nil {
				panic(fmt.Errorf("record result: %w", err)) // no ack: the dispatcher retries
			}
			if inserted {
				if err := a.store.WriteResultFile(e.Result); err != nil {
					panic(fmt.Errorf("write result file: %w", err))
				}
				a.recorded++
				a.Logger.Info("result recorded", "repo", e.Result.Job.RepoName, "commit", e.Result.Job.Commit,
					"build", e.Result.Job.Build, "status", e.Result.Status.Name())
			} else {
				a.duplicates++
			}
			j := e.Result.Job
			a.Do(ctx, actors.Send{To: e.ReplyTo, Msg: &messages.ResultRecordedAck{JobId: j.Id, Repo: j.Repo, Commit: j.Commit, Build: j.Build}})
		case AppendLog:
			c := e.Chunk
			if _, err := a.store.AppendLog(c.Job, c.Attempt, c.Offset, c.Data); err != nil {
				a.Logger.Error("log chunk not stored", "job", c.Job.Id, "writer", e.Writer.String(), "error", err)
			}
		case CloseLog:
			have, err := a.store.LogHave(e.Msg.Job, e.Msg.Attempt)
			if err != nil {
				a.Logger.Error("log size unknown", "job", e.Msg.Job.Id, "error", err)
			}
			a.Do(ctx, actors.Send{To: e.ReplyTo, Msg: &messages.LogAck{JobId: e.Msg.Job.Id, Attempt: e.Msg.Attempt, Have: have}})
		case Status:
			reg := int64(0)
			if a.core.Registered() {
				reg = 1
			}
			a.Do(ctx, actors.Send{To: e.ReplyTo, Msg: &messages.StatusReply{Role: "reporter", Address: ctx.Self().Address, Counters: map[string]int64{
				"registered": reg, "results_recorded": a.recorded, "duplicate_results_ignored": a.duplicates,
				"forged_refused": a.core.Refused()}}})
		default:
			if !a.Do(ctx, e) {
				a.Unhandled(e)
			}
		}
	}
}

// dropLog drops the stored log of r's attempt, which another runner than
// r's wrote, if the store can; otherwise it says loudly that it could not.
func (a *Actor) dropLog(r *messages.Result) {
	d, ok := a.store.(LogDropper)
	if !ok {
		a.Logger.Error("the log of this attempt was not written by the runner its result names, and this store cannot drop it: it is kept",
			"job", r.Job.Id, "attempt", r.Attempt, "runner", r.RunnerId)
		return
	}
	if err := d.DropLog(r.Job, r.Attempt); err != nil {
		panic(fmt.Errorf("drop the log of job %d attempt %d: %w", r.Job.Id, r.Attempt, err)) // no ack: the dispatcher retries
	}
}
