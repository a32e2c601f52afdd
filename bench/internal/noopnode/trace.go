package main

import (
	"bufio"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/messages"
)

// tracer keeps the wall-clock time (Unix ns: the same clock in every process
// of the machine) of named points of each job, for a per-phase breakdown of
// a round trip; -trace FILE writes them at exit, "JOB POINT UNIXNANO" a line.
// A nil tracer records nothing.
type tracer struct {
	mu     sync.Mutex
	points []tracePoint
}

type tracePoint struct {
	job  int64
	name string
	at   int64
}

func (t *tracer) mark(job int64, name string) {
	if t == nil {
		return
	}
	now := time.Now().UnixNano()
	t.mu.Lock()
	t.points = append(t.points, tracePoint{job, name, now})
	t.mu.Unlock()
}

func (t *tracer) write(path string) error {
	if t == nil || path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	t.mu.Lock()
	for _, p := range t.points {
		fmt.Fprintf(w, "%d %s %d\n", p.job, p.name, p.at)
	}
	t.mu.Unlock()
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// tracedRunner wraps the runner actor: it marks RunJob ("run-received")
// and JobDone ("done-received") as its mailbox delivers them.
type tracedRunner struct {
	actor.Actor
	t *tracer
}

func (r tracedRunner) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.RunJob:
		r.t.mark(m.GetJob().GetId(), "run-received")
	case runner.JobDone:
		r.t.mark(m.Ref.GetJobId(), "done-received")
	}
	r.Actor.Receive(ctx)
}
