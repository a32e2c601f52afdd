package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/messages"
)

// noopExecutor is a runner.JobExecutor that runs nothing: every attempt
// passes at once, with no output.
type noopExecutor struct{ t *tracer }

func (e noopExecutor) Execute(_ context.Context, run *messages.RunJob, _ io.Writer) *messages.Result {
	e.t.mark(run.GetJob().GetId(), "execute")
	now := time.Now().UnixMilli()
	return &messages.Result{Job: run.Job, Attempt: run.Attempt, RunnerId: run.RunnerId, Status: messages.Status_STATUS_PASSED,
		StartedUnixMs: now, FinishedUnixMs: now}
}

// startRunner starts the real runner actor the way cluster.StartRunner does
// (an actor id per incarnation, aliased to the plain name), with the no-op
// executor in place of git and processes. stop asks it to give its job back
// and exit, as SIGTERM does to `volt runner`.
//
// With a tracer, the actor is wrapped to mark when its mailbox delivers each
// RunJob and JobDone, and the executor marks when it is called.
func startRunner(node *cluster.Node, logger *slog.Logger, id, dispServer, logDir string, t *tracer) (stop func(), err error) {
	disp, err := cluster.Resolve(dispServer)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	cfg := runner.Config{ID: id, Incarnation: time.Now().UnixNano(), Hostname: host,
		Dispatcher: actors.NewAddr(disp, cluster.DispatcherName), Grace: 10 * time.Second}
	env := node.Env("runner") // as cluster sets up its roles
	pid, err := node.Spawn(fmt.Sprintf("%s-%d", cluster.RunnerName, cfg.Incarnation), func() actor.Actor {
		a := runner.NewActor(cfg, noopExecutor{t}, logDir, env)
		if t != nil {
			return tracedRunner{a, t}
		}
		return a
	})
	if err != nil {
		return nil, err
	}
	if proc, ok := node.System.ProcessRegistry.Get(pid); ok {
		node.System.ProcessRegistry.Add(proc, cluster.RunnerName)
	}
	return func() { runner.Stop(node.System.Root, pid, "bench: stopping") }, nil
}
