package reporter

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// Effects is everything the reporter's core asks of its shell beyond the
// effects every core shares. Each of the reporter's effect types carries
// itself out with Apply on an Effects, so a new effect type does not
// compile until Shell, the one handler, carries it out too.
type Effects interface {
	Record(Record)
	AppendLog(AppendLog)
	CloseLog(CloseLog)
	Status(Status)
}

// Apply hands e to h.
func (e Record) Apply(h Effects) { h.Record(e) }

// Apply hands e to h.
func (e AppendLog) Apply(h Effects) { h.AppendLog(e) }

// Apply hands e to h.
func (e CloseLog) Apply(h Effects) { h.CloseLog(e) }

// Apply hands e to h.
func (e Status) Apply(h Effects) { h.Status(e) }

type effect interface{ Apply(Effects) }

var (
	_ effect = Record{}
	_ effect = AppendLog{}
	_ effect = CloseLog{}
	_ effect = Status{}
)

// NewActor returns the reporter's Proto.Actor actor: the shared host
// (actors/host) around the reporter's Shell, artifacts handled in front
// of it (artifacts.go).
func NewActor(cfg Config, store Store, env actors.Env) *Actor {
	shell := NewShell(cfg, store)
	return &Actor{Actor: host.NewActor(shell, env), shell: shell}
}

// Shell is the reporter's role in its host (actors/host), in production
// and in the simulator alike: it records results, stores log chunks and
// answers for them against its Store.
//
// A result is acknowledged only once it is recorded and its result file
// written. A write that fails is not acknowledged (the dispatcher keeps the
// result and sends it again); while the store is failing the reporter
// tries again only after the host's backoff (see host.Host.StoreFailed),
// dropping what arrives before it unanswered.
type Shell struct {
	cfg   Config
	store Store
	h     *host.Host
	core  *Core

	recorded, duplicates int64
}

// NewShell returns the reporter's role on store.
func NewShell(cfg Config, store Store) *Shell { return &Shell{cfg: cfg, store: store} }

// Core is the core of the current incarnation.
func (s *Shell) Core() *Core { return s.core }

// Start implements host.Role.
func (s *Shell) Start(h *host.Host, now time.Time) (host.Core, []actors.Effect) {
	s.h = h
	s.core = New(s.cfg)
	return s.core, s.core.Start(now)
}

// Input implements host.Role.
func (s *Shell) Input(msg any, _ bool) (any, bool, bool) { return msg, false, true }

// Do implements host.Role.
func (s *Shell) Do(e actors.Effect) bool { return host.Visit[Effects](s, e) }

// StorePath implements host.StorePath.
func (s *Shell) StorePath() string { return host.PathOf(s.store) }

// Record implements Effects: the job's result is stored (a duplicate
// changes nothing), its build's result file written if every job of the
// build has a result now, and the dispatcher told (by job id).
func (s *Shell) Record(e Record) {
	if !s.h.StoreReady() {
		return // no ack: the dispatcher sends it again
	}
	if e.DropLog && !s.dropLog(e.Result) {
		return
	}
	inserted, err := s.store.RecordResult(e.Result)
	if err != nil {
		s.h.StoreFailed("record a result", err)
		return
	}
	// The file is written for a duplicate too (atomically, the latest
	// build winning; only once every job of the build has a result): a
	// crash between the insert of the job that completes its build and
	// the file must not lose the file for good, and a result is
	// acknowledged only once its build's file is written, if due.
	if inserted || !plant.On(plant.ResultFileNotRewritten) {
		if err := s.store.WriteResultFile(e.Result); err != nil {
			s.h.StoreFailed("write a result file", err)
			return
		}
	}
	if inserted {
		s.recorded++
		j := e.Result.Job
		args := []any{"repo", j.RepoName, "commit", j.Commit, "build", j.Build}
		if j.Cell != nil {
			args = append(args, "job", j.DisplayName(), "index", j.Index)
		}
		s.h.Log(actors.Info("result recorded", append(args, "status", e.Result.Status.Name())...))
	} else {
		s.duplicates++
	}
	s.h.StoreOK()
	j := e.Result.Job
	s.h.Send(e.ReplyTo, &messages.ResultRecordedAck{JobId: j.Id, Repo: j.Repo, Commit: j.Commit, Build: j.Build})
}

// AppendLog implements Effects.
func (s *Shell) AppendLog(e AppendLog) {
	c := e.Chunk
	if !s.h.StoreReady() {
		return // the runner sends what the reporter does not hold again
	}
	if _, err := s.store.AppendLog(c.Job, c.Attempt, c.Offset, c.Data); err != nil {
		s.h.StoreFailed("store a log chunk", fmt.Errorf("job %d attempt %d from %s: %w", c.Job.Id, c.Attempt, e.Writer.String(), err))
		return
	}
	s.h.StoreOK()
}

// CloseLog implements Effects.
func (s *Shell) CloseLog(e CloseLog) {
	have, err := s.store.LogHave(e.Msg.Job, e.Msg.Attempt)
	if err != nil {
		s.h.Log(actors.Note{Level: slog.LevelError, Msg: "log size unknown", Args: []any{"job", e.Msg.Job.Id, "error", err}})
	}
	s.h.Send(e.ReplyTo, &messages.LogAck{JobId: e.Msg.Job.Id, Attempt: e.Msg.Attempt, Have: have})
}

// Status implements Effects.
func (s *Shell) Status(e Status) {
	reg := int64(0)
	if s.core.Registered() {
		reg = 1
	}
	c := map[string]int64{"registered": reg, "results_recorded": s.recorded, "duplicate_results_ignored": s.duplicates,
		"forged_refused": s.core.Refused()}
	s.h.StoreCounters(c)
	s.h.Send(e.ReplyTo, &messages.StatusReply{Role: "reporter", Address: s.h.Address(), Counters: c})
}

// dropLog drops the stored log of r's attempt, which another runner than
// r's wrote, if the store can; otherwise it says loudly that it could not.
// It reports whether the result may be recorded.
func (s *Shell) dropLog(r *messages.Result) bool {
	d, ok := s.store.(LogDropper)
	if !ok {
		s.h.Log(actors.Note{Level: slog.LevelError, Msg: "the log of this attempt was not written by the runner its result names, and this store cannot drop it: it is kept",
			Args: []any{"job", r.Job.Id, "attempt", r.Attempt, "runner", r.RunnerId}})
		return true
	}
	if err := d.DropLog(r.Job, r.Attempt); err != nil {
		s.h.StoreFailed("drop a forged log", fmt.Errorf("drop the log of job %d attempt %d: %w", r.Job.Id, r.Attempt, err)) // no ack: the dispatcher retries
		return false
	}
	return true
}
