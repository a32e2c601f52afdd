package host

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
)

// Actor is the Proto.Actor platform: one actor per role, whose Receive
// hands each message to the host. Go runs work in a goroutine the actor's
// Shell owns and sends the result to the actor itself; for a Journal (the
// dispatcher's batches) it runs the work, one at a time, in a child actor,
// so that a stop or restart of the actor waits for a batch being written
// without blocking the actor's own Stopping (Proto.Actor stops the child
// first), and an answer from an earlier incarnation's child is dropped.
type Actor struct {
	actors.Shell
	role Role
	host *Host
	ctx  actor.Context // the context of the Receive under way
	// drainers asked (Drain) to hear once nothing waits for the store.
	drainers []*actor.PID
	// gen tells this incarnation's Go and Self answers from an earlier one's.
	gen uint64
	// WorkerOptions, when set, run Go's work in a child actor spawned with
	// them, one at a time, instead of in goroutines (tests give it their
	// deterministic actor.Dispatcher).
	WorkerOptions []actor.PropsOption
	worker        *actor.PID
}

// answer is what Go's work returned, or what Self was handed, tagged with
// the incarnation that asked.
type answer struct {
	gen uint64
	v   any
}

// work is a Go handed to the worker child.
type work struct {
	gen uint64
	f   func() any
}

type worker struct{}

func (worker) Receive(ctx actor.Context) {
	if w, ok := ctx.Message().(work); ok {
		ctx.Send(ctx.Parent(), answer{gen: w.gen, v: w.f()})
	}
}

// Drain asks a role's actor to answer Drained once every change it has
// made so far is durable and every effect that waited for it has been
// carried out. A node sends it before stopping the dispatcher gracefully,
// so that a stop does not drop what a batch in flight would have sent (a
// stop, like a crash, drops what is not yet durable).
type Drain struct{}

// Drained answers Drain.
type Drained struct{}

// NewActor returns the actor that runs role; a new host (and core) is
// built each time the actor starts or restarts.
func NewActor(role Role, env actors.Env) *Actor {
	return &Actor{Shell: actors.Shell{Env: env}, role: role}
}

// Host is the host the actor runs (nil before it started).
func (a *Actor) Host() *Host { return a.host }

// Receive implements actor.Actor.
func (a *Actor) Receive(ctx actor.Context) {
	a.ctx = ctx
	defer func() { a.ctx = nil }()
	switch ctx.Message().(type) {
	case *actor.Started:
		a.gen++
		if _, journal := a.role.(Journal); journal || a.WorkerOptions != nil {
			a.worker = ctx.SpawnPrefix(actor.PropsFromProducer(func() actor.Actor { return worker{} }, a.WorkerOptions...), "worker")
		}
		a.host = New(a, a.role)
		a.host.SetStoreRetry(a.StoreRetry)
		a.host.Start()
		if a.Tick > 0 {
			a.StartTicks(ctx, a.Tick)
		}
		return
	case *actor.Stopping, *actor.Restarting:
		if a.host != nil {
			a.host.Stop()
		}
		a.Wait()
		return
	case Drain:
		a.drainers = append(a.drainers, ctx.Sender())
		a.answerDrainers()
		return
	case answer:
		m := ctx.Message().(answer)
		if m.gen == a.gen && a.host != nil {
			a.host.Receive(actors.From{Who: actors.Local}, m.v)
			a.answerDrainers()
		}
		return
	}
	if a.host == nil || a.host.Stopped() {
		return
	}
	in, from, ok := actors.Received(ctx)
	if !ok {
		return
	}
	a.host.Receive(from, in)
	if len(a.drainers) > 0 {
		a.answerDrainers()
	}
}

func (a *Actor) answerDrainers() {
	if len(a.drainers) == 0 || a.host == nil || a.host.waiting() {
		return
	}
	for _, pid := range a.drainers {
		if pid != nil {
			a.ctx.Send(pid, Drained{})
		}
	}
	a.drainers = nil
}

// Platform.

func (a *Actor) Send(to actors.Addr, msg proto.Message) { a.ctx.Request(actors.PID(to), msg) }

func (a *Actor) Register(to actors.Addr, msg proto.Message) {
	a.Do(a.ctx, actors.Register{To: to, Msg: msg})
}

func (a *Actor) Address() string { return a.ctx.Self().Address }

func (a *Actor) Watch(addr actors.Addr)   { a.ctx.Watch(actors.PID(addr)) }
func (a *Actor) Unwatch(addr actors.Addr) { a.ctx.Unwatch(actors.PID(addr)) }

func (a *Actor) Exit(code int, reason string) {
	if a.OnExit != nil {
		a.OnExit(code, reason)
	}
}

func (a *Actor) Log(n actors.Note) { a.Logger.Log(nil, n.Level, n.Msg, n.Args...) }

// ArmTimer wakes the actor at deadline, unless it ticks on a fixed interval.
func (a *Actor) ArmTimer(deadline time.Time) {
	if a.Tick == 0 {
		a.Rearm(a.ctx, deadline)
	}
}

func (a *Actor) Go(f func() any) {
	gen := a.gen
	if a.worker != nil {
		a.ctx.Send(a.worker, work{gen: gen, f: f})
		return
	}
	// As before the host: a goroutine's answer reaches the actor as it
	// is (an older incarnation's included: the cores ignore what they
	// did not ask for).
	root, self := a.ctx.ActorSystem().Root, a.ctx.Self()
	a.Shell.Go(func() { root.Send(self, f()) })
}

func (a *Actor) Self(in any) { a.ctx.Send(a.ctx.Self(), answer{gen: a.gen, v: in}) }

func (a *Actor) Stepped(actors.From, any, []actors.Effect) {}

func (a *Actor) Crash(any, int, []actors.Effect) bool { return false }

func (a *Actor) Started(Core) {}

func (a *Actor) Carried(actors.From, any, []actors.Effect) {}

// Root is the actor system's root context (valid inside Receive).
func (a *Actor) Root() *actor.RootContext { return a.ctx.ActorSystem().Root }
