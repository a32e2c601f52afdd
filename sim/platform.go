package sim

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/actors/observer"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/actors/runner"
)

// platform is where a node's host runs in the simulator (host.Platform):
// one per incarnation, so that whatever a dead incarnation's host still
// does (the rest of a step after a crash point, an Exit) reaches nobody.
type platform struct {
	w   *World
	n   *node
	gen uint64
}

func (p *platform) alive() bool { return p.n.up && p.n.gen == p.gen }

func (p *platform) Now() time.Time  { return p.w.now }
func (p *platform) Address() string { return p.n.host }

func (p *platform) Send(to actors.Addr, msg proto.Message) {
	if p.alive() {
		p.w.send(p.n, to, msg)
	}
}

func (p *platform) Register(to actors.Addr, msg proto.Message) {
	if !p.alive() {
		return
	}
	if d, ok := p.w.byAddr[to]; ok && p.w.nodes[d].up {
		p.w.send(p.n, to, msg) // the port accepts connections
	}
}

func (p *platform) Watch(a actors.Addr) {
	if p.alive() && !slices.Contains(p.w.watchers[a], p.n.addr) {
		p.w.watchers[a] = append(p.w.watchers[a], p.n.addr)
	}
}

func (p *platform) Unwatch(a actors.Addr) {
	if p.alive() {
		p.w.watchers[a] = slices.DeleteFunc(p.w.watchers[a], func(x actors.Addr) bool { return x == p.n.addr })
	}
}

func (p *platform) Exit(_ int, reason string) {
	if !p.alive() {
		return
	}
	w, n := p.w, p.n
	w.trace(n, "exit", nil, reason)
	w.down(n)
	n.exited = true
	n.exitedAt = w.now
}

func (p *platform) Log(e actors.Note) {
	if e.Msg == host.Unhandled {
		panic(fmt.Sprintf("sim: %s %s", host.Unhandled, formatArgs(e.Args)))
	}
	if !p.alive() {
		return
	}
	detail := ""
	if p.w.cfg.Trace {
		detail = formatArgs(e.Args)
	}
	p.w.trace(p.n, "note", e.Msg, detail)
}

func (p *platform) ArmTimer(time.Time) {
	if p.alive() {
		p.w.scheduleTick(p.n)
	}
}

// Go runs work when it would end: a store write 2 ms later, a git read
// 1–20 ms later (more while git is slow). A node that crashes before then
// never runs it: a batch in flight is lost, as SQLite loses a transaction
// that has not committed.
func (p *platform) Go(work func() any) {
	if !p.alive() {
		return
	}
	w, n := p.w, p.n
	var delay time.Duration
	switch n.role {
	case roleObserver:
		delay = time.Duration(1+w.rng.IntN(20)) * time.Millisecond
		if w.slowGit > 0 {
			delay += time.Duration(w.rng.Int64N(int64(w.slowGit)))
		}
	default:
		// A store write takes 2 ms; no draw, so that the secret traffic
		// (whose steps write nothing but may wait behind a batch) shifts
		// no draw of the world's.
		delay = 2 * time.Millisecond
		if n.lead != nil && w.now.Before(w.el.slow) {
			delay = 50*time.Millisecond + time.Duration(w.rng.Int64N(int64(750*time.Millisecond)))
		}
		if n.role == roleDispatcher && w.batchCrash {
			// The crash strikes while the batch is being written.
			w.batchCrash = false
			w.traceWorld("crash in the middle of a group-commit batch")
			w.after(delay/2, event{kind: evRestart, node: n.idx, gen: n.gen, arg: crashNow})
		}
	}
	w.after(delay, event{kind: evWork, node: n.idx, gen: n.gen, msg: work})
	if n.lead != nil && w.pauseArmed > 0 && !n.hung {
		// A leader pause strikes with this write in flight (failover.go).
		w.traceWorld(fmt.Sprintf("%s freezes with a batch in flight", n.name))
		n.hung, n.hungSince = true, w.now
		w.after(w.pauseArmed, event{kind: evUnhang, node: n.idx, gen: n.gen})
		w.pauseArmed = 0
	}
}

func (p *platform) Self(in any) {
	if p.alive() {
		p.w.deliverLocal(p.n, in)
	}
}

// Stepped traces and checks each step of the core.
func (p *platform) Stepped(from actors.From, in any, fx []actors.Effect) {
	if !p.alive() {
		return
	}
	w, n := p.w, p.n
	f := n.forging
	detail := ""
	if w.cfg.Trace {
		detail = string(from.Addr)
		if f != nil {
			detail += " forged by " + identityLabel(from.Who)
		}
	}
	w.trace(n, "recv", in, detail)
	if n.role == roleReporter {
		w.check.logsAccepted(fx)
	}
	if n.role == roleDispatcher {
		w.check.heardStep(w, from, in, fx)
		if w.failover() {
			w.staleLeaderStep(n, in, fx)
		}
	}
	if n.role == roleRunner && w.failover() {
		w.check.runnerEpoch(n, from, in, fx)
	}
	if st := n.stale; st != nil {
		n.stale = nil
		w.check.staleStep(n, in, st.before, w.digest(n), fx)
	}
	if f != nil {
		w.check.forged(w, n, from, in, f.before, w.digest(n), fx)
		f.in, f.stepped = in, true
	}
}

// Carried checks a step once its effects are carried out (an effect that
// waited for a batch counts only once the batch is durable and it is sent).
func (p *platform) Carried(from actors.From, in any, fx []actors.Effect) {
	if p.alive() || len(fx) > 0 {
		p.w.check.step(p.w, p.n, from, in, fx)
	}
}

// Started points the node at its new core (at boot, and when its host
// restarts the role after a store fault).
func (p *platform) Started(c host.Core) {
	w, n := p.w, p.n
	switch c := c.(type) {
	case *dispatcher.Core:
		if n.disp != nil && n.disp != c && p.alive() {
			w.trace(n, "restart", nil, "from the durable state, after a store fault")
			n.epoch = w.now.UnixNano()
			w.check.dispatcherBooted()
		}
		n.disp = c
	case *observer.Core:
		n.obs = c
	case *reporter.Core:
		n.rep = c
	case *runner.Core:
		n.run = c
	}
}

// Crash draws a crash point between two effects of a step while a
// crash-point fault is on for the node. A step of secret traffic is never
// one, so that secrets change nothing else in a world (the draws and the
// crashes would).
func (p *platform) Crash(in any, i int, fx []actors.Effect) bool {
	w, n := p.w, p.n
	if !p.alive() || !w.now.Before(n.crashPoints) || isSecretInput(in) || w.rng.Float64() >= crashPointP {
		return false
	}
	w.traceWorld(fmt.Sprintf("crash of %s between effect %d and %d of %s", n.name, i, i+1, inputName(in)))
	w.crash(n, time.Duration(w.rng.Int64N(int64(2*time.Second))))
	return true
}

// crashPointP is the chance of a crash before each effect after the first
// of a step while a crash-point fault is on.
const crashPointP = 0.08

// crashNow, as an evRestart's arg, crashes the node (of that generation)
// instead of restarting it.
const crashNow = 1
