package adaptertest

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"pgregory.net/rapid"
)

// tb is what the helpers need of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// sched is a deterministic actor.Dispatcher: Schedule queues a mailbox run
// instead of starting a goroutine, and step runs one queued run, chosen by
// pick. A mailbox run drains its mailbox, so the choice is which actor
// processes its pending messages next.
type sched struct {
	pick func(n int) int
	// onTimeout, when set, reports the state when until gives up.
	onTimeout func()

	mu   sync.Mutex
	runs []func()
	wake chan struct{} // signalled by every Schedule, for runs scheduled by goroutines
	ran  int
}

var _ actor.Dispatcher = (*sched)(nil)

// seeded picks with a PCG seeded by seed.
func seeded(seed uint64) *sched {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return &sched{pick: rng.IntN, wake: make(chan struct{}, 1)}
}

// drawn lets rapid draw every choice, so that a failure shrinks to a
// minimal schedule.
func drawn(t *rapid.T) *sched {
	return &sched{pick: func(n int) int {
		if n == 1 {
			return 0
		}
		return rapid.IntRange(0, n-1).Draw(t, "run")
	}, wake: make(chan struct{}, 1)}
}

func (s *sched) Schedule(fn func()) {
	s.mu.Lock()
	s.runs = append(s.runs, fn)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sched) Throughput() int { return 300 }

// kick wakes until without scheduling anything: for fakes that goroutines
// call (an executor starting or returning).
func (s *sched) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// step runs one queued mailbox run; false when none is queued.
func (s *sched) step() bool {
	s.mu.Lock()
	if len(s.runs) == 0 {
		s.mu.Unlock()
		return false
	}
	i := s.pick(len(s.runs))
	fn := s.runs[i]
	s.runs = append(s.runs[:i], s.runs[i+1:]...)
	s.ran++
	s.mu.Unlock()
	fn()
	return true
}

// drain runs queued mailbox runs until none is left.
func (s *sched) drain(t tb) {
	t.Helper()
	for n := 0; s.step(); n++ {
		if n > 100_000 {
			t.Fatalf("the actors never went quiet")
		}
	}
}

// until drains, and while done is false waits for a run scheduled by a
// goroutine (a runner's job), up to a deadline.
func (s *sched) until(t tb, what string, done func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		s.drain(t)
		if done() {
			return
		}
		select {
		case <-s.wake:
		case <-deadline.C:
			if s.onTimeout != nil {
				s.onTimeout()
			}
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// frozenClock is the time the shells under test see: always the same, so
// that only the messages the schedule delivers move the cores.
func frozenClock() time.Time { return time.Unix(1_800_000_000, 0) }

// newSystem is a purely local actor system whose logs are discarded.
func newSystem() *actor.ActorSystem {
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
}

// stop stops the given actors, lets them finish and shuts the system down.
func stop(t tb, s *sched, sys *actor.ActorSystem, pids ...*actor.PID) {
	t.Helper()
	for _, pid := range pids {
		sys.Root.Stop(pid)
	}
	s.drain(t)
	sys.Shutdown()
}

// event is one line of a journal: what a store, a shell or a fake peer did,
// in the one order in which it happened.
type event struct {
	kind string // save, savefail, load, send, recv, exec, execdone, life
	who  string // the actor (PID id) or "store"
	peer string // send: the destination; recv: the sender
	msg  any
	err  error
}

func (e event) String() string {
	return fmt.Sprintf("%s %s %s %T", e.kind, e.who, e.peer, e.msg)
}

// journal records events from any goroutine.
type journal struct {
	mu sync.Mutex
	ev []event
}

func (j *journal) add(e event) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ev = append(j.ev, e)
	return len(j.ev) - 1
}

func (j *journal) events() []event {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]event(nil), j.ev...)
}

func (j *journal) dump(t tb) {
	t.Helper()
	for i, e := range j.events() {
		t.Logf("%3d %s", i, e)
	}
}

// recordSends journals every message an actor sends, at the moment it
// sends it (before delivery).
func recordSends(j *journal) actor.SenderMiddleware {
	return func(next actor.SenderFunc) actor.SenderFunc {
		return func(c actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
			j.add(event{kind: "send", who: c.Self().Id, peer: target.Id, msg: env.Message})
			next(c, target, env)
		}
	}
}

// recordLife journals the messages an actor receives: lifecycle messages
// as "life" once the actor has handled them, the others as "in" before it
// handles them (so that one it panics on is journaled too).
func recordLife(j *journal) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			switch env.Message.(type) {
			case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
				next(c, env)
				j.add(event{kind: "life", who: c.Self().Id, msg: env.Message})
			default:
				j.add(event{kind: "in", who: c.Self().Id, msg: env.Message})
				next(c, env)
			}
		}
	}
}

// peer is a fake role: it journals what it receives and reacts with react
// (which also sees *actor.Started and the test's pokes).
type peer struct {
	j     *journal
	react func(ctx actor.Context, msg any)
}

// poke asks a fake peer to do what its real role does on a timer (resend,
// heartbeat, register again).
type poke struct{}

func (p *peer) Receive(ctx actor.Context) {
	msg := ctx.Message()
	switch msg.(type) {
	case *actor.Started, poke:
	case *actor.Stopping, *actor.Stopped, *actor.Restarting, actor.SystemMessage, actor.AutoReceiveMessage:
		return
	default:
		from := ""
		if ctx.Sender() != nil {
			from = ctx.Sender().Id
		}
		p.j.add(event{kind: "recv", who: ctx.Self().Id, peer: from, msg: msg})
	}
	if p.react != nil {
		p.react(ctx, msg)
	}
}

// spawnPeer starts a fake peer named name on the deterministic dispatcher.
func spawnPeer(t tb, sys *actor.ActorSystem, s *sched, j *journal, name string, react func(actor.Context, any)) *actor.PID {
	t.Helper()
	pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &peer{j: j, react: react} },
		actor.WithDispatcher(s)), name)
	if err != nil {
		t.Fatalf("spawn %s: %v", name, err)
	}
	return pid
}

// received returns the messages of type T that actor who received, in order.
func received[T any](evs []event, who string) []T {
	var out []T
	for _, e := range evs {
		if m, ok := e.msg.(T); ok && e.kind == "recv" && e.who == who {
			out = append(out, m)
		}
	}
	return out
}
