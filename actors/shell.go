package actors

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Env is what a role's shell needs from its process.
type Env struct {
	// Logger receives Notes; it is tagged with the role.
	Logger *slog.Logger
	// Probe reports whether a host:port accepts connections. A registration
	// is sent only once it does, so that it is not parked behind Proto.Actor's
	// redial of a peer that is down. Nil means always.
	Probe func(address string) bool
	// Unstick, when set, is called with the peer's host:port after its probe
	// succeeded and just before a registration is sent to it: it drops a
	// connection to the peer that has not come up since it was last lost
	// (Proto.Actor parks messages 2 s behind a failed dial), so that the
	// registration dials afresh. Nil means nothing to drop.
	Unstick func(address string)
	// Clock is the time the shell hands its core; nil means time.Now. Tests
	// that schedule the actors deterministically freeze it, so that no
	// timer (a registration retry, a heartbeat) fires because the machine
	// was slow.
	Clock func() time.Time
	// OnExit ends the process; called once for an Exit effect.
	OnExit func(code int, reason string)
	// StoreRetry is the first backoff after a failed store write (it
	// doubles up to 5 s); zero means 100 ms. Tests shorten it.
	StoreRetry time.Duration
}

// Shell carries out the effects every core shares (Send, Register, Watch,
// Unwatch, Exit, Note) for a role's Proto.Actor actor, and owns the
// goroutines it starts for them. Each role actor embeds one.
type Shell struct {
	Env
	// Tick, when set, checks the core's deadlines on a fixed interval (tests
	// that deliver ticks themselves set it long). Zero wakes the actor
	// exactly at its core's next deadline, which every role uses.
	Tick time.Duration

	wg      sync.WaitGroup
	ticker  *time.Ticker
	done    chan struct{}
	timer   *time.Timer
	armedAt time.Time
}

// Now is the time by the shell's Clock.
func (e Env) Now() time.Time {
	if e.Clock != nil {
		return e.Clock()
	}
	return time.Now()
}

// PID turns an address into a Proto.Actor PID.
func PID(a Addr) *actor.PID {
	address, id := a.Split()
	return actor.NewPID(address, id)
}

// AddrOf is the Addr of a PID; empty for nil.
func AddrOf(p *actor.PID) Addr {
	if p == nil {
		return ""
	}
	return NewAddr(p.Address, p.Id)
}

// StartTicks sends Tick to the actor every interval until StopTicks.
func (s *Shell) StartTicks(ctx actor.Context, interval time.Duration) {
	s.StopTicks()
	s.ticker = time.NewTicker(interval)
	s.done = make(chan struct{})
	root, self, ticker, done := ctx.ActorSystem().Root, ctx.Self(), s.ticker, s.done
	s.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				root.Send(self, Tick{})
			}
		}
	})
}

// StopTicks stops the ticks started by StartTicks and the timer Rearm set.
func (s *Shell) StopTicks() {
	if s.ticker != nil {
		s.ticker.Stop()
		close(s.done)
		s.ticker = nil
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.armedAt = time.Time{}
}

// StartTimer begins the actor's ticks: on the fixed Tick interval, or at
// deadline, its core's first one. Call it when the actor starts.
func (s *Shell) StartTimer(ctx actor.Context, deadline time.Time) {
	if s.Tick > 0 {
		s.StartTicks(ctx, s.Tick)
		return
	}
	s.Rearm(ctx, deadline)
}

// AfterStep moves the deadline timer to the core's next deadline (nothing
// on a fixed interval). Call it after every message the core handled.
func (s *Shell) AfterStep(ctx actor.Context, deadline time.Time) {
	if s.Tick == 0 {
		s.Rearm(ctx, deadline)
	}
}

// Rearm makes the actor get a Tick at deadline, its core's next one (zero:
// none), instead of on a fixed interval: an idle role wakes only when it has
// something to do. Call it after every message the core handled.
func (s *Shell) Rearm(ctx actor.Context, deadline time.Time) {
	if deadline.IsZero() {
		if s.timer != nil {
			s.timer.Stop()
		}
		s.armedAt = time.Time{}
		return
	}
	if deadline.Equal(s.armedAt) {
		return
	}
	d := deadline.Sub(s.Now()) + time.Millisecond // cores compare strictly: wake just after
	if d < time.Millisecond {
		d = time.Millisecond
	}
	s.armedAt = deadline
	if s.timer == nil {
		root, self := ctx.ActorSystem().Root, ctx.Self()
		s.timer = time.AfterFunc(d, func() { root.Send(self, Tick{}) })
		return
	}
	s.timer.Reset(d)
}

// Go runs f in a goroutine owned by the shell; Wait waits for all of them.
func (s *Shell) Go(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// Wait stops ticks and waits for every goroutine the shell started.
func (s *Shell) Wait() {
	s.StopTicks()
	s.wg.Wait()
}

// Do carries out e if it is a shared effect and reports whether it was.
func (s *Shell) Do(ctx actor.Context, e Effect) bool {
	switch e := e.(type) {
	case Send:
		ctx.Request(PID(e.To), e.Msg)
	case Register:
		pid := PID(e.To)
		if s.Probe == nil || pid.Address == ctx.Self().Address {
			ctx.Request(pid, e.Msg)
			return true
		}
		root, self, probe, unstick := ctx.ActorSystem().Root, ctx.Self(), s.Probe, s.Unstick
		s.Go(func() {
			if !probe(pid.Address) {
				return
			}
			if unstick != nil {
				unstick(pid.Address)
			}
			root.RequestWithCustomSender(pid, e.Msg, self)
		})
	case Watch:
		ctx.Watch(PID(e.Addr))
	case Unwatch:
		ctx.Unwatch(PID(e.Addr))
	case Exit:
		if s.OnExit != nil {
			s.OnExit(e.Code, e.Reason)
		}
	case Note:
		s.Logger.Log(nil, e.Level, e.Msg, e.Args...)
	default:
		return false
	}
	return true
}

// Unhandled logs an effect no one carried out: a programming error.
func (s *Shell) Unhandled(e Effect) {
	s.Logger.Error("effect not carried out", "type", fmt.Sprintf("%T", e))
}

// Received is the input ctx holds for a core and who sent it (see Input).
// Proto.Actor's own Terminated becomes a PeerTerminated from the Local
// identity; everything else is from FromContext: a message stamped by the
// connection layer is from the identity the stamp names.
func Received(ctx actor.Context) (in any, from From, ok bool) {
	in, ok = Input(ctx.Message())
	if !ok {
		return nil, From{}, false
	}
	if _, term := in.(PeerTerminated); term {
		return in, From{Who: Local}, true
	}
	return in, FromContext(ctx), true
}

// Input translates Proto.Actor's system messages into core inputs; ok is
// false for the lifecycle messages a core does not see.
func Input(msg any) (in any, ok bool) {
	switch m := msg.(type) {
	case *actor.Terminated:
		return PeerTerminated{Addr: AddrOf(m.Who), Reason: m.Why.String()}, true
	case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting, actor.AutoReceiveMessage, actor.SystemMessage:
		return nil, false
	}
	return msg, true
}
