package host

import (
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
)

// Core is a role's deterministic state machine.
type Core interface {
	Step(now time.Time, from actors.From, in any) []actors.Effect
	Deadline() time.Time
}

// Platform is where a host runs: a Proto.Actor actor, or a simulated node.
// Every method is called from the host's own goroutine (inside Receive).
type Platform interface {
	// Now is the time handed to the core.
	Now() time.Time
	// Address is the host:port the role is reached at (status replies).
	Address() string
	Send(to actors.Addr, msg proto.Message)
	Register(to actors.Addr, msg proto.Message)
	Watch(a actors.Addr)
	Unwatch(a actors.Addr)
	Exit(code int, reason string)
	Log(n actors.Note)
	// ArmTimer asks for an actors.Tick at deadline (zero: none); a later
	// call replaces an earlier one.
	ArmTimer(deadline time.Time)
	// Go runs work off the host (it may block: a store write, a git read)
	// and hands its return value back to Receive, as an input from Local.
	// Work that is still running when the host stops is dropped.
	Go(work func() any)
	// Self hands in back to Receive, as an input from Local, after every
	// input already waiting for the host.
	Self(in any)
	// Stepped is told of each step of the core, before its effects are
	// carried out (the simulator checks and traces it).
	Stepped(from actors.From, in any, fx []actors.Effect)
	// Carried is told of each step once its effects are carried out
	// (those that waited for a batch included), or of those carried out
	// before a crash point; never of a step whose effects a crash or a
	// restart dropped.
	Carried(from actors.From, in any, fx []actors.Effect)
	// Started is told of each new core: at Start, and when the host
	// restarts its role after its store failed (see store.go).
	Started(core Core)
	// Crash is asked before effect i (1 ≤ i < len(fx)) of the step on in:
	// true means the process died right there, and the host carries out
	// nothing more. Production never crashes on purpose.
	Crash(in any, i int, fx []actors.Effect) bool
}

// Role is what a host needs of the role it runs.
type Role interface {
	// Start builds a fresh core (at start and after every restart) and
	// returns it with its first effects.
	Start(h *Host, now time.Time) (Core, []actors.Effect)
	// Input turns what arrived into the core's input, reading the role's
	// store where the role needs to; ok false drops it (for example a
	// store read failed: the sender retries). A role that must read a
	// store holding every change made so far returns wait when durable is
	// false: the host holds the message and asks again once it is.
	Input(msg any, durable bool) (in any, wait, ok bool)
	// Do carries out one of the role's own effects (Handle of the role's
	// visitor) and reports whether e was one.
	Do(e actors.Effect) bool
}

// Outbox is a Role that sees each message before it is sent (the
// dispatcher adds its store's health to status replies).
type Outbox interface{ Outgoing(msg proto.Message) }

// Unhandled is the message of the ERROR a host logs for an effect neither
// it nor its role carries out: a role effect type without Apply (the
// visitor makes one with Apply fail to compile until its handler exists).
// The simulator fails on it.
const Unhandled = "effect not carried out: this is a bug"

// Gate is a Role that may stop acting on its own: the leader of a
// dispatcher failover group whose lease ran out by its own clock (a node
// that wakes up from a pause longer than its lease). While Admit is false
// the host drops every input, its own ticks and batch completions
// included, and carries out nothing more; its owner stops it.
type Gate interface{ Admit(now time.Time) bool }

// Stopper is a Role that has work to end when the host stops (job
// processes, git reads).
type Stopper interface{ Stop() }

// Host is one role's shell. It is not safe for concurrent use: its
// platform calls it from one goroutine at a time.
type Host struct {
	p       Platform
	role    Role
	j       Journal // nil: no group commit
	bypass  Bypass  // nil: nothing passes a failing batch
	outbox  Outbox  // nil: messages go out as the core made them
	gate    Gate    // nil: always admitted
	core    Core
	stopped bool
	commit  groupCommit
	store   storeHealth
}

// New returns a host for role on p; Start starts it.
func New(p Platform, role Role) *Host {
	h := &Host{p: p, role: role}
	h.j, _ = role.(Journal)
	h.bypass, _ = role.(Bypass)
	h.outbox, _ = role.(Outbox)
	h.gate, _ = role.(Gate)
	return h
}

// Start builds the core and carries out its first effects.
func (h *Host) Start() {
	core, fx := h.role.Start(h, h.p.Now())
	h.core = core
	h.p.Started(core)
	h.run(actors.From{Who: actors.Local}, nil, fx)
	h.p.ArmTimer(h.Deadline())
}

// Stop ends the host: nothing more is carried out, and what waits for a
// batch is dropped unsent, as a crash would drop it.
func (h *Host) Stop() {
	if h.stopped {
		return
	}
	h.stopped = true
	h.commit.drop()
	if s, ok := h.role.(Stopper); ok {
		s.Stop()
	}
}

// Now is the platform's time.
func (h *Host) Now() time.Time { return h.p.Now() }

// Address is where the role is reached.
func (h *Host) Address() string { return h.p.Address() }

// Send sends msg to to (a role's handler answers with it).
func (h *Host) Send(to actors.Addr, msg proto.Message) { h.p.Send(to, msg) }

// Log logs n (a role's handler reports with it).
func (h *Host) Log(n actors.Note) { h.p.Log(n) }

// Go runs work off the host and hands its result back to the core as an
// input from Local (a role's handler starts git reads and jobs with it).
func (h *Host) Go(work func() any) { h.p.Go(work) }

// Core is the core the host runs (nil before Start).
func (h *Host) Core() Core { return h.core }

// Stopped reports whether the host has stopped (Stop, Exit or a crash point).
func (h *Host) Stopped() bool { return h.stopped }

// Deadline is when the host wants its next Tick: the core's deadline, or
// a store retry that comes first.
func (h *Host) Deadline() time.Time {
	d := h.core.Deadline()
	if r := h.store.retryAt; h.store.pending != nil && (d.IsZero() || r.Before(d)) {
		return r
	}
	return d
}

// Receive hands one input to the host: a message for the core, or the
// answer to the host's own work (Go, Self).
func (h *Host) Receive(from actors.From, msg any) {
	if h.stopped || (h.gate != nil && !h.gate.Admit(h.p.Now())) {
		return
	}
	switch m := msg.(type) {
	case flushBatch:
		h.due(m.n)
		return
	case batchWritten:
		h.written(m)
		h.p.ArmTimer(h.Deadline())
		return
	case actors.Tick:
		h.retryDue()
	}
	if h.store.failing && h.j != nil {
		// The role takes no new work while its store fails: only what its
		// Bypass passes reaches the core, the rest is dropped unanswered
		// (its sender asks again), and no deadline fires (see store.go).
		if _, tick := msg.(actors.Tick); tick {
			h.p.ArmTimer(h.Deadline())
			return
		}
		if h.bypass == nil || !h.bypass.PassInput(msg) {
			return
		}
	}
	in, wait, ok := h.role.Input(msg, !h.waiting())
	if !ok {
		return
	}
	if wait {
		h.commit.hold(held{msg: msg, from: from, input: true})
		return
	}
	h.step(from, in)
}

// step feeds in to the core and carries out the effects.
func (h *Host) step(from actors.From, in any) {
	fx := h.core.Step(h.p.Now(), from, in)
	h.p.Stepped(from, in, fx)
	h.run(from, in, fx)
	if !h.stopped {
		h.p.ArmTimer(h.Deadline())
	}
}

// run carries out fx in order: writes join the gathering batch, every
// other effect waits behind an earlier write that is not yet durable. The
// platform hears (Carried) of the step once all its effects are carried
// out, or of those carried out before a crash point.
func (h *Host) run(from actors.From, in any, fx []actors.Effect) {
	bypass := h.store.failing && h.bypass != nil && !h.writes(fx)
	firstHeld := -1
	for i, e := range fx {
		if i > 0 && h.p.Crash(in, i, fx) {
			h.stopped = true
			if firstHeld >= 0 {
				i = firstHeld
			}
			h.p.Carried(from, in, h.withoutWrites(fx[:i]))
			return
		}
		if h.j != nil {
			if write, added := h.j.Gather(e); write {
				if added {
					h.gathered()
				}
				continue
			}
		}
		if h.waiting() && !(bypass && h.bypass.Pass(e)) {
			h.commit.hold(held{effect: e})
			if firstHeld < 0 {
				firstHeld = i
			}
			continue
		}
		h.do(e)
		if h.stopped {
			return
		}
	}
	if firstHeld < 0 {
		h.p.Carried(from, in, fx)
		return
	}
	// The step is carried out when its last held effect is.
	h.commit.held.back().done = &carried{from: from, in: in, fx: fx}
}

// withoutWrites is fx without its writes, which a crash loses with the
// gathering batch.
func (h *Host) withoutWrites(fx []actors.Effect) []actors.Effect {
	if h.bypass == nil || !h.writes(fx) {
		return fx
	}
	out := make([]actors.Effect, 0, len(fx))
	for _, e := range fx {
		if !h.bypass.IsWrite(e) {
			out = append(out, e)
		}
	}
	return out
}

// writes reports whether fx holds a write.
func (h *Host) writes(fx []actors.Effect) bool {
	for _, e := range fx {
		if h.bypass.IsWrite(e) {
			return true
		}
	}
	return false
}

// Visit carries out e through h if e is one of the role's own effects,
// each of which has Apply(H) (the visitor a role's Effects interface
// defines), and reports whether it was: a role's Do is Visit.
func Visit[H any](h H, e actors.Effect) bool {
	x, ok := e.(interface{ Apply(H) })
	if ok {
		x.Apply(h)
	}
	return ok
}

// PathOf names where a role's store keeps its data, for the ERROR a failing
// write logs: its Path, if it has one.
func PathOf(store any) string {
	if p, ok := store.(interface{ Path() string }); ok {
		return p.Path()
	}
	return ""
}

// do carries out one effect now.
func (h *Host) do(e actors.Effect) {
	switch e := e.(type) {
	case actors.Send:
		if h.outbox != nil {
			h.outbox.Outgoing(e.Msg)
		}
		h.p.Send(e.To, e.Msg)
	case actors.Register:
		h.p.Register(e.To, e.Msg)
	case actors.Watch:
		h.p.Watch(e.Addr)
	case actors.Unwatch:
		h.p.Unwatch(e.Addr)
	case actors.Note:
		h.p.Log(e)
	case actors.Exit:
		h.p.Exit(e.Code, e.Reason)
	default:
		if !h.role.Do(e) {
			h.p.Log(actors.Note{Level: slog.LevelError, Msg: Unhandled, Args: []any{"effect", fmt.Sprintf("%T", e)}})
		}
	}
}
