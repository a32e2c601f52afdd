package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/bench/internal/nopstore"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/messages"
)

// The fake observer's one repository and branch.
const (
	repoURL  = "/bench/noop.git"
	repoName = "noop"
	branch   = "main"
)

// probe times, from inside the dispatcher actor, each RunJob it sends (sender
// middleware: when its Receive hands the message to Proto.Actor, before
// serialisation) and each JobFinished it receives (receiver middleware: when
// the mailbox delivers it, before the core sees it).
type probe struct {
	t     *tracer // also marks "run-sent" and "finished-received" per job
	mu    sync.Mutex
	sent  map[int64]time.Time
	rtts  []time.Duration
	first time.Time // first RunJob of the batch
	last  time.Time // last JobFinished of the batch
}

func (p *probe) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = map[int64]time.Time{}
	p.rtts = nil
	p.first, p.last = time.Time{}, time.Time{}
}

func (p *probe) send(next actor.SenderFunc) actor.SenderFunc {
	return func(c actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
		if run, ok := env.Message.(*messages.RunJob); ok {
			p.t.mark(run.Job.GetId(), "run-sent")
			now := time.Now()
			p.mu.Lock()
			p.sent[run.Job.GetId()] = now
			if p.first.IsZero() {
				p.first = now
			}
			p.mu.Unlock()
		}
		next(c, target, env)
	}
}

func (p *probe) receive(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		if m, ok := env.Message.(*messages.JobFinished); ok {
			now := time.Now()
			id := m.GetResult().GetJob().GetId()
			p.t.mark(id, "finished-received")
			p.mu.Lock()
			if at, ok := p.sent[id]; ok {
				p.rtts = append(p.rtts, now.Sub(at))
				delete(p.sent, id)
				p.last = now
			}
			p.mu.Unlock()
		}
		next(c, env)
	}
}

// batch is one "run" command: n jobs fed by the observer, at most window
// unfinished at once, chunk commits per CommitObserved.
type batch struct {
	n, window, chunk int
	fed, recorded    int
	done             chan struct{}
}

type startBatch struct{ b *batch }

// recorded tells the observer that the reporter got one more result.
type recorded struct{}

// observer is the fake observer: it registers, then announces new commits
// of one branch whenever its batch has room.
type observer struct {
	disp       *actor.PID
	registered chan struct{}
	logger     *slog.Logger
	seq        uint64
	prev       string
	commits    int
	b          *batch
}

func (o *observer) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Request(o.disp, &messages.RegisterObserver{ObserverId: "bench-observer", ProtocolVersion: messages.ProtocolVersion,
			Repos: []*messages.WatchedRepo{{Url: repoURL, Name: repoName, Branches: []string{branch}}}})
	case *messages.ObserverRegistered:
		if m.Accepted && o.registered != nil {
			close(o.registered)
			o.registered = nil
		}
	case *messages.CommitObservedAck:
		if m.Unknown {
			o.logger.Error("the dispatcher does not know the bench observer")
		}
	case startBatch:
		o.b = m.b
		o.feed(ctx)
	case recorded:
		if o.b == nil {
			return
		}
		o.b.recorded++
		if o.b.recorded >= o.b.n {
			close(o.b.done)
			o.b = nil
			return
		}
		o.feed(ctx)
	}
}

func (o *observer) feed(ctx actor.Context) {
	b := o.b
	for b.fed < b.n {
		k := min(b.chunk, b.n-b.fed)
		if b.fed-b.recorded+k > b.window {
			return
		}
		commits := make([]string, k)
		for i := range commits {
			o.commits++
			commits[i] = fmt.Sprintf("%040x", o.commits)
		}
		o.seq++
		ctx.Request(o.disp, &messages.CommitObserved{ObserverId: "bench-observer", Seq: o.seq, Repo: repoURL, RepoName: repoName,
			Branch: branch, Previous: o.prev, Commits: commits})
		o.prev = commits[k-1]
		b.fed += k
	}
}

// reporter is the fake reporter: it registers, acknowledges every
// ResultRecorded and LogClosed at once, and counts results for the observer.
type reporter struct {
	t          *tracer // marks "logclosed-received"
	disp       *actor.PID
	observer   *actor.PID
	registered chan struct{}
	logger     *slog.Logger
}

func (r *reporter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		ctx.Request(r.disp, &messages.RegisterReporter{ReporterId: "bench-reporter", ProtocolVersion: messages.ProtocolVersion})
	case *messages.ReporterRegistered:
		if m.Accepted && r.registered != nil {
			close(r.registered)
			r.registered = nil
		}
	case *messages.ResultRecorded:
		j := m.GetResult().GetJob()
		ctx.Request(ctx.Sender(), &messages.ResultRecordedAck{JobId: j.GetId(), Repo: j.GetRepo(), Commit: j.GetCommit(), Build: j.GetBuild()})
		if st := m.GetResult().GetStatus(); st != messages.Status_STATUS_PASSED {
			r.logger.Error("a no-op job did not pass", "job", j.GetId(), "status", st.String(), "reason", m.GetResult().GetReason())
		}
		ctx.Send(r.observer, recorded{})
	case *messages.LogClosed:
		r.t.mark(m.GetJob().GetId(), "logclosed-received")
		ctx.Request(ctx.Sender(), &messages.LogAck{JobId: m.GetJob().GetId(), Attempt: m.Attempt, Have: m.Size})
	}
}

// dispatcherNode is the dispatcher process: the real dispatcher actor, the
// fakes around it and the probe.
type dispatcherNode struct {
	node     *cluster.Node
	disp     *actor.PID
	observer *actor.PID
	probe    *probe
}

func startDispatcher(node *cluster.Node, logger *slog.Logger, t *tracer) (*dispatcherNode, error) {
	d := &dispatcherNode{node: node, probe: &probe{t: t}}
	d.probe.reset()
	env := node.Env("dispatcher") // as cluster sets up its roles
	cfg := dispatcher.DefaultConfig()
	props := actor.PropsFromProducer(func() actor.Actor { return dispatcher.NewActor(cfg, nopstore.Store{}, env) },
		actor.WithReceiverMiddleware(d.probe.receive), actor.WithSenderMiddleware(d.probe.send))
	pid, err := node.System.Root.SpawnNamed(props, cluster.DispatcherName)
	if err != nil {
		return nil, fmt.Errorf("start the dispatcher: %w", err)
	}
	d.disp = pid
	obsReady, repReady := make(chan struct{}), make(chan struct{})
	d.observer, err = node.System.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &observer{disp: pid, registered: obsReady, logger: logger.With("role", "observer")}
	}), cluster.ObserverName)
	if err != nil {
		return nil, err
	}
	if _, err := node.System.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		return &reporter{t: t, disp: pid, observer: d.observer, registered: repReady, logger: logger.With("role", "reporter")}
	}), cluster.ReporterName); err != nil {
		return nil, err
	}
	for _, ch := range []chan struct{}{obsReady, repReady} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			return nil, errors.New("the fake observer or reporter did not register within 10 s")
		}
	}
	return d, nil
}

// handle serves:
//
//	wait-runners N          -> "ok" once the dispatcher lists N runners
//	run N WINDOW CHUNK      -> "done ..." (see writeDone) once N jobs are recorded
func (d *dispatcherNode) handle(cmd []string, w io.Writer) error {
	switch {
	case cmd[0] == "wait-runners" && len(cmd) == 2:
		n, err := strconv.Atoi(cmd[1])
		if err != nil {
			return err
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			res, err := d.node.System.Root.RequestFuture(d.disp, &messages.StatusRequest{}, time.Second).Result()
			if st, ok := res.(*messages.StatusReply); err == nil && ok && len(st.Runners) >= n {
				fmt.Fprintln(w, "ok")
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("fewer than %d runners registered after 20 s", n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	case cmd[0] == "run" && len(cmd) == 4:
		var v [3]int
		for i := range v {
			x, err := strconv.Atoi(cmd[1+i])
			if err != nil || x < 1 {
				return fmt.Errorf("run N WINDOW CHUNK: %q is not a positive number", cmd[1+i])
			}
			v[i] = x
		}
		b := &batch{n: v[0], window: v[1], chunk: v[2], done: make(chan struct{})}
		d.probe.reset()
		d.node.System.Root.Send(d.observer, startBatch{b})
		select {
		case <-b.done:
		case <-time.After(10 * time.Minute):
			return errors.New("the batch did not finish within 10 minutes")
		}
		d.probe.mu.Lock()
		rtts, elapsed := d.probe.rtts, d.probe.last.Sub(d.probe.first)
		d.probe.mu.Unlock()
		writeDone(w, b.n, elapsed, rtts)
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd)
}
