package observer

import (
	"context"
	"fmt"
	"time"

	"github.com/voltci/volt/actors"
	vhost "github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/messages"
)

// Effects is everything the observer's core asks of its shell beyond the
// effects every core shares. Each of the observer's effect types carries
// itself out with Apply on an Effects, so a new effect type does not
// compile until Shell, the one handler, carries it out too.
type Effects interface {
	Poll(Poll)
}

// Apply hands e to h.
func (e Poll) Apply(h Effects) { h.Poll(e) }

type effect interface{ Apply(Effects) }

var _ effect = Poll{}

// Shell is the observer's role in its host (actors/host), in production
// and in the simulator alike: it reads the repositories off the host (Go)
// and feeds the answers back to the core as Polled.
type Shell struct {
	cfg    Config
	reader RepoReader
	h      *vhost.Host
	core   *Core
	// OnPoll, if set, is called after each read of a branch with the time
	// it took (for metrics). It runs off the host.
	OnPoll func(time.Duration)

	ctx    context.Context
	cancel context.CancelFunc
}

// NewShell returns the observer's role on reader.
func NewShell(cfg Config, reader RepoReader) *Shell { return &Shell{cfg: cfg, reader: reader} }

// Core is the core of the current incarnation.
func (s *Shell) Core() *Core { return s.core }

// Start implements host.Role.
func (s *Shell) Start(h *vhost.Host, now time.Time) (vhost.Core, []actors.Effect) {
	s.h = h
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.core = New(s.cfg)
	return s.core, s.core.Start(now)
}

// Input implements host.Role.
func (s *Shell) Input(msg any, _ bool) (any, bool, bool) { return msg, false, true }

// Do implements host.Role.
func (s *Shell) Do(e actors.Effect) bool { return vhost.Visit[Effects](s, e) }

// Stop implements host.Stopper: reads under way are cancelled.
func (s *Shell) Stop() {
	if s.cancel != nil {
		s.cancel()
	}
}

// Poll implements Effects.
func (s *Shell) Poll(e Poll) {
	reader, pctx, onPoll := s.reader, s.ctx, s.OnPoll
	s.h.Go(func() any {
		var start time.Time
		if onPoll != nil {
			start = time.Now()
		}
		polled := reader.Read(pctx, e.Repo, e.Branch, e.Since, e.Max)
		if polled.Err == "" {
			polled = withPipelines(pctx, reader, polled)
		}
		if onPoll != nil {
			onPoll(time.Since(start))
		}
		return polled
	})
}

// withPipelines reads the pipeline of each of p's commits. A read that
// fails fails the poll: its commits are looked at again next time.
func withPipelines(ctx context.Context, reader RepoReader, p Polled) Polled {
	p.Pipelines = make([]*messages.Pipeline, 0, len(p.Commits))
	for _, commit := range p.Commits {
		pl, err := reader.Pipeline(ctx, p.Repo, commit)
		if err != nil {
			return Polled{Repo: p.Repo, Branch: p.Branch, Err: fmt.Sprintf("pipeline of %s: %v", commit, err)}
		}
		p.Pipelines = append(p.Pipelines, pl)
	}
	return p
}

// Actor is the observer's Proto.Actor actor: the shared host around the
// observer's Shell.
type Actor struct {
	*vhost.Actor
	shell *Shell
}

// NewActor returns the observer's actor.
func NewActor(cfg Config, reader RepoReader, env actors.Env) *Actor {
	s := NewShell(cfg, reader)
	return &Actor{Actor: vhost.NewActor(s, env), shell: s}
}

// SetOnPoll sets the shell's OnPoll.
func (a *Actor) SetOnPoll(f func(time.Duration)) { a.shell.OnPoll = f }
