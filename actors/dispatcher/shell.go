package dispatcher

import (
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// Effects is everything the dispatcher's core asks of its shell beyond the
// effects every core shares. Each of the dispatcher's effect types carries
// itself out with Apply on an Effects, so a new effect type does not
// compile until Shell, the one handler, carries it out too.
type Effects interface {
	Persist(Persist)
	SecretChange(SecretChange)
}

// Apply hands p to h.
func (p Persist) Apply(h Effects) { h.Persist(p) }

// Apply hands c to h.
func (c SecretChange) Apply(h Effects) { h.SecretChange(c) }

// effect is a dispatcher effect.
type effect interface{ Apply(Effects) }

var (
	_ effect = Persist{}
	_ effect = SecretChange{}
)

// Shell is the dispatcher's role in its host (actors/host), in production
// and in the simulator alike: it recovers the core from the store, hands
// the core what the store knows of observed commits, rebuilds and secrets,
// and makes its Persist effects durable by group commit (host.Journal): a
// batch gathers while the previous one is written, with each job, cursor
// and runner incarnation once.
type Shell struct {
	cfg   Config
	store Store
	h     *host.Host
	core  *Core
	// gathering is the batch gathering since the last hand-over; nil if none.
	gathering *gathered
	// spare is the last batch handed over, its indexes cleared for reuse
	// (its Batch went with it).
	spare *gathered
	// lead is the node's election when it leads a failover group (nil
	// for a single dispatcher); restarts counts the cores started under it.
	lead      Leadership
	restarts  int
	leadSince time.Time
	// lapsed: Admit found the lead's lease run out (logged once).
	lapsed bool
}

// gathered is a batch being gathered, with each job and cursor once.
type gathered struct {
	Batch
	jobs    map[int64]int  // job id -> index in Jobs
	cursors map[pair]int   // repo and branch -> index in Cursors
	incs    map[string]int // runner id -> index in Incarnations
}

// NewShell returns the dispatcher's role on store.
func NewShell(cfg Config, store Store) *Shell { return &Shell{cfg: cfg, store: store} }

// SetLeadership makes the shell the leader of a failover group under l,
// before its host starts: its epoch is FailoverEpoch of l's revision, every
// batch is fenced with l.Fence(), and once l is no longer Valid the shell
// admits nothing more (host.Gate), so a leader paused past its lease never
// acts on what queued up while it slept.
func (s *Shell) SetLeadership(l Leadership) { s.lead, s.restarts, s.lapsed = l, 0, false }

// Admit implements host.Gate. Once the lease has run out the shell
// admits nothing more, even if a late keepalive extends it again: its
// owner steps down and campaigns afresh (whatever it held back is lost,
// as in a crash).
func (s *Shell) Admit(now time.Time) bool {
	if s.lead == nil || plant.On(plant.StaleLeaderActs) || (!s.lapsed && s.lead.Valid(now)) {
		return true
	}
	if !s.lapsed {
		s.lapsed = true
		s.h.Log(actors.Note{Level: slog.LevelWarn, Msg: "leader lease ran out by this node's clock: acting no more until the election says who leads",
			Args: []any{"epoch", s.cfg.Epoch}})
	}
	return false
}

// Core is the core of the current incarnation.
func (s *Shell) Core() *Core { return s.core }

// Start implements host.Role: a new core with a new epoch, recovered from
// what is durable.
func (s *Shell) Start(h *host.Host, now time.Time) (host.Core, []actors.Effect) {
	s.h, s.gathering, s.spare = h, nil, nil
	jobs, cursors, maxID, err := s.store.LoadQueue()
	if err != nil {
		panic(fmt.Errorf("load the dispatcher's queue: %w", err))
	}
	incs, err := s.store.LoadIncarnations()
	if err != nil {
		panic(fmt.Errorf("load runner incarnations: %w", err))
	}
	cfg := s.cfg
	cfg.Epoch = now.UnixNano() // a new incarnation after every (re)start
	if s.lead != nil {
		cfg.Epoch = FailoverEpoch(s.lead.Fence().Revision, s.restarts)
		if s.restarts == 0 {
			s.leadSince = now
		}
		s.restarts++
		if plant.On(plant.StandbyLeadsBlind) {
			jobs, cursors, maxID, incs = nil, nil, 0, nil
		}
	}
	s.cfg.Epoch = cfg.Epoch
	s.core = New(cfg)
	return s.core, s.core.Recover(now, Durable{Jobs: jobs, Cursors: cursors, MaxID: maxID, Incarnations: incs})
}

// Input implements host.Role: what the store knows is added to observed
// commits, rebuilds and secret requests. A lookup that fails drops the
// message unanswered: its sender asks again.
func (s *Shell) Input(msg any, durable bool) (any, bool, bool) {
	switch m := msg.(type) {
	case *messages.CommitObserved:
		// Commits the core no longer holds were forwarded, so their jobs
		// are durable: the store may be asked before pending batches land.
		archived, err := s.store.ArchivedJobs(m.Repo, m.Commits)
		if err != nil {
			s.readFailed("look up observed commits", err)
			return nil, false, false
		}
		return Observed{Msg: m, Archived: archived}, false, true
	case *messages.RebuildRequest:
		if !durable {
			// The store is asked about the commit's builds: it must hold
			// every change made so far.
			return nil, true, true
		}
		prev, err := s.store.NewestBuild(m.Repo, m.Commit)
		if err != nil {
			s.readFailed("look up the commit to rebuild", err)
			return nil, false, false
		}
		return Rebuild{Msg: m, Prev: prev}, false, true
	case *messages.SecretRequest:
		return s.askSecrets(m), false, true
	}
	return msg, false, true
}

func (s *Shell) readFailed(what string, err error) {
	s.h.Log(actors.Note{Level: slog.LevelError, Msg: "store read failed: the message is dropped unanswered and its sender asks again",
		Args: []any{"op", what, "path", s.StorePath(), "error", err.Error()}})
}

// Do implements host.Role.
func (s *Shell) Do(e actors.Effect) bool { return host.Visit[Effects](s, e) }

// StorePath implements host.StorePath.
func (s *Shell) StorePath() string { return host.PathOf(s.store) }

// Gather implements host.Journal.
func (s *Shell) Gather(e actors.Effect) (write, added bool) {
	p, ok := e.(Persist)
	if !ok {
		return false, false
	}
	return true, s.add(p)
}

// Persist implements Effects: p joins the gathering batch.
func (s *Shell) Persist(p Persist) { s.add(p) }

// Take implements host.Journal.
func (s *Shell) Take() any {
	b := s.gathering
	s.gathering = nil
	if b == nil {
		if s.lead != nil && !plant.On(plant.UnfencedWrite) {
			return Batch{Fence: s.lead.Fence()}
		}
		return Batch{}
	}
	batch := b.Batch
	if s.lead != nil && !plant.On(plant.UnfencedWrite) {
		batch.Fence = s.lead.Fence()
	}
	b.Batch = Batch{}
	clear(b.jobs)
	clear(b.cursors)
	clear(b.incs)
	s.spare = b
	return batch
}

// Save implements host.Journal.
func (s *Shell) Save(b any) error { return s.store.Save(b.(Batch)) }

// IsWrite implements host.Bypass.
func (s *Shell) IsWrite(e actors.Effect) bool { _, ok := e.(Persist); return ok }

// PassInput implements host.Bypass: while the store is failing the core
// hears heartbeats and status requests only.
func (s *Shell) PassInput(msg any) bool {
	switch msg.(type) {
	case *messages.Heartbeat, *messages.StatusRequest:
		return true
	}
	return false
}

// Pass implements host.Bypass: while the store is failing, heartbeat
// acknowledgements (so that runners keep their leases through a long
// outage) and status replies (so that `volt status` shows the outage) of a
// step that wrote nothing go out at once.
func (s *Shell) Pass(e actors.Effect) bool {
	send, ok := e.(actors.Send)
	if !ok {
		return false
	}
	switch send.Msg.(type) {
	case *messages.HeartbeatAck:
		return true
	case *messages.StatusReply:
		return true
	}
	return false
}

// Outgoing implements host.Outbox: a status reply says whether the store
// is failing.
func (s *Shell) Outgoing(msg proto.Message) {
	r, ok := msg.(*messages.StatusReply)
	if !ok {
		return
	}
	if r.Counters != nil {
		s.h.StoreCounters(r.Counters)
	}
	if s.lead != nil {
		addr := s.h.Address()
		r.Node = &messages.DispatcherNode{Address: addr, State: "leader", Leader: addr,
			Epoch: s.lead.Fence().Revision, SinceUnixMs: s.leadSince.UnixMilli()}
	}
}

// add merges p into the gathering batch (later records of the same job,
// cursor or runner replace earlier ones) and reports whether it changed it.
func (s *Shell) add(p Persist) bool {
	if len(p.Jobs) == 0 && len(p.Cursors) == 0 && len(p.Incarnations) == 0 {
		return false
	}
	b := s.gathering
	if b == nil {
		b, s.spare = s.spare, nil
		if b == nil {
			b = &gathered{jobs: map[int64]int{}, cursors: map[pair]int{}, incs: map[string]int{}}
		}
		s.gathering = b
	}
	for _, j := range p.Jobs {
		if i, ok := b.jobs[j.GetJob().GetId()]; ok {
			b.Jobs[i] = j
			continue
		}
		b.jobs[j.GetJob().GetId()] = len(b.Jobs)
		b.Jobs = append(b.Jobs, j)
	}
	for _, c := range p.Cursors {
		k := pair{c.GetRepo(), c.GetBranch()}
		if i, ok := b.cursors[k]; ok {
			b.Cursors[i] = c
			continue
		}
		b.cursors[k] = len(b.Cursors)
		b.Cursors = append(b.Cursors, c)
	}
	for _, r := range p.Incarnations {
		if i, ok := b.incs[r.GetRunnerId()]; ok {
			if r.GetIncarnation() > b.Incarnations[i].GetIncarnation() {
				b.Incarnations[i] = r
			}
			continue
		}
		b.incs[r.GetRunnerId()] = len(b.Incarnations)
		b.Incarnations = append(b.Incarnations, r)
	}
	return true
}
