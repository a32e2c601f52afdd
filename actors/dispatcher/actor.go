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

// Actor is the dispatcher's Proto.Actor shell. It makes the core's Persist
// effects durable by group commit (see groupcommit.go): a child actor writes
// one batch at a time while the next one gathers, and every effect after a
// Persist waits, in order, until that Persist's batch is durable.
type Actor struct {
	actors.Shell
	cfg   Config
	store Store
	core  *Core
	// WriterOptions are extra props options for the child actor that writes
	// the batches (tests give it their deterministic actor.Dispatcher).
	WriterOptions []actor.PropsOption

	commits groupCommit
	stopped bool // Stopping or Restarting seen: nothing more is carried out
	// drainers asked (Drain) to hear once everything is durable and sent.
	drainers []*actor.PID
}

// Drain asks the dispatcher actor to answer Drained once every change it
// has made so far is durable and every effect that waited for it has been
// carried out. A node sends it before stopping the dispatcher gracefully,
// so that a stop does not drop what a batch in flight would have sent (a
// stop, like a crash, drops what is not yet durable).
type Drain struct{}

// Drained answers Drain.
type Drained struct{}

// NewActor returns the shell around a fresh core; Receive recovers the
// queue from store when the actor starts (or restarts after a panic).
func NewActor(cfg Config, store Store, env actors.Env) *Actor {
	return &Actor{Shell: actors.Shell{Env: env}, cfg: cfg, store: store}
}

// Receive implements actor.Actor.
func (a *Actor) Receive(ctx actor.Context) {
	if a.stopped {
		return // a batch the writer finished while this incarnation stopped
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		now := a.Now()
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
		a.commits.start(ctx, a.store, a.WriterOptions)
		a.run(ctx, a.core.Recover(now, Durable{Jobs: jobs, Cursors: cursors, MaxID: maxID, Incarnations: incs}))
		a.StartTimer(ctx, a.core.Deadline())
		return
	case *actor.Stopping, *actor.Restarting:
		// What waits for a batch is dropped unsent, as a crash would drop
		// it: the restarted core recovers from what is durable. Proto.Actor
		// stops the writer (after the batch it is writing) before the actor
		// restarts or stops.
		a.stopped = true
		a.commits.drop()
		a.Wait()
		return
	case batchWritten:
		if !a.commits.mine(ctx.Sender()) {
			return // from a writer of an earlier incarnation
		}
		if m.err != nil {
			// Nothing after a failed write may be sent: restart from the durable state.
			panic(fmt.Errorf("persist the queue: %w", m.err))
		}
		a.commits.durable = m.n
		a.release(ctx)
		a.commits.writing = false
		a.commits.flush(ctx)
		a.answerDrainers(ctx)
		return
	case Drain:
		a.drainers = append(a.drainers, ctx.Sender())
		a.answerDrainers(ctx)
		return
	case flushBatch:
		a.commits.due(ctx, m.n)
		return
	case *actor.Terminated:
		if a.commits.mine(m.Who) {
			// The writer recovers its panics, so it only stops when this
			// actor does; a batch in flight is lost with it.
			panic(fmt.Errorf("the dispatcher's queue writer stopped"))
		}
	case *messages.RebuildRequest:
		from := actors.FromContext(ctx)
		if a.commits.waiting() {
			// The store is asked about the commit's builds: it must hold
			// every change made so far.
			a.commits.hold(held{rebuild: m, from: from})
		} else {
			a.rebuild(ctx, a.Now(), m, from)
		}
		return
	case *messages.CommitObserved:
		// Commits the core no longer holds were forwarded, so their jobs
		// are durable: the store may be asked before pending batches land.
		archived, err := a.store.Archived(m.Repo, m.Commits)
		if err != nil {
			panic(fmt.Errorf("look up observed commits: %w", err))
		}
		a.run(ctx, a.core.Step(a.Now(), actors.FromContext(ctx), Observed{Msg: m, Archived: archived}))
		return
	case *messages.SecretRequest:
		a.askSecrets(ctx, m) // secrets.go
		return
	}
	in, from, ok := actors.Received(ctx)
	if !ok {
		return
	}
	// The clock is read only for the core: the group commit's own messages
	// (one pair per batch) do not need it, and a read costs about 0.5 µs here.
	a.run(ctx, a.core.Step(a.Now(), from, in))
}

func (a *Actor) rebuild(ctx actor.Context, now time.Time, m *messages.RebuildRequest, from actors.From) {
	prev, err := a.store.LatestJob(m.Repo, m.Commit)
	if err != nil {
		panic(fmt.Errorf("look up the commit to rebuild: %w", err))
	}
	a.run(ctx, a.core.Step(now, from, Rebuild{Msg: m, Prev: prev}))
}

// answerDrainers answers every Drain once nothing waits for the store.
func (a *Actor) answerDrainers(ctx actor.Context) {
	if len(a.drainers) == 0 || a.commits.waiting() {
		return
	}
	for _, pid := range a.drainers {
		if pid != nil {
			ctx.Send(pid, Drained{})
		}
	}
	a.drainers = nil
}

// run adds Persist effects to the gathering batch and carries out the other
// effects, or holds them while an earlier Persist is not yet durable.
func (a *Actor) run(ctx actor.Context, fx []actors.Effect) {
	for _, e := range fx {
		if p, ok := e.(Persist); ok {
			a.commits.add(ctx, p)
			continue
		}
		if a.commits.waiting() {
			a.commits.hold(held{effect: e})
			continue
		}
		a.do(ctx, e)
	}
	a.AfterStep(ctx, a.core.Deadline())
}

func (a *Actor) do(ctx actor.Context, e actors.Effect) {
	if !a.Do(ctx, e) && !a.doSecretChange(ctx, e) {
		a.Unhandled(e)
	}
}

// release carries out, in order, the held effects whose batch is durable.
func (a *Actor) release(ctx actor.Context) {
	for {
		h, ok := a.commits.next()
		if !ok {
			return
		}
		if h.rebuild != nil {
			a.rebuild(ctx, a.Now(), h.rebuild, h.from)
			continue
		}
		a.do(ctx, h.effect)
	}
}
