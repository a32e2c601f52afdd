package runner

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/messages"
)

// Effects is everything the runner's core asks of its shell beyond the
// effects every core shares. Each of the runner's effect types carries
// itself out with Apply on an Effects, so a new effect type does not
// compile until Shell, the one handler, carries it out too.
type Effects interface {
	StartJob(StartJob)
	CancelRun(CancelRun)
}

// Apply hands e to h.
func (e StartJob) Apply(h Effects) { h.StartJob(e) }

// Apply hands e to h.
func (e CancelRun) Apply(h Effects) { h.CancelRun(e) }

type effect interface{ Apply(Effects) }

var (
	_ effect = StartJob{}
	_ effect = CancelRun{}
)

// Shell is the runner's role in its host (actors/host), in production and
// in the simulator alike: it starts and kills attempts through its Jobs.
type Shell struct {
	cfg  Config
	jobs Jobs
	core *Core
}

// NewShell returns the runner's role on jobs.
func NewShell(cfg Config, jobs Jobs) *Shell { return &Shell{cfg: cfg, jobs: jobs} }

// Core is the core of the current incarnation.
func (s *Shell) Core() *Core { return s.core }

// Start implements host.Role.
func (s *Shell) Start(_ *host.Host, now time.Time) (host.Core, []actors.Effect) {
	s.core = New(s.cfg)
	return s.core, s.core.Start(now)
}

// Input implements host.Role.
func (s *Shell) Input(msg any, _ bool) (any, bool, bool) {
	if d, ok := msg.(JobDone); ok {
		s.jobs.Done(d.Ref)
	}
	return msg, false, true
}

// Do implements host.Role.
func (s *Shell) Do(e actors.Effect) bool { return host.Visit[Effects](s, e) }

// Stop implements host.Stopper: no job process outlives the runner.
func (s *Shell) Stop() { s.jobs.Stop() }

// StartJob implements Effects.
func (s *Shell) StartJob(e StartJob) { s.jobs.Start(e.Run) }

// CancelRun implements Effects.
func (s *Shell) CancelRun(e CancelRun) { s.jobs.Cancel(e.Ref, e.Reason) }

// Actor is the runner's Proto.Actor actor: the shared host around the
// runner's Shell, with jobs run by a JobExecutor in goroutines the actor
// owns, their output streamed to the reporter and their outcome fed back
// to the core as JobDone.
type Actor struct {
	*host.Actor
	// LogDir keeps an attempt's output while it is streamed, for resends,
	// when it is too large to keep in memory.
	LogDir string
	// ChunkSize is the largest log chunk sent at once.
	ChunkSize int
	// MaxArtifactSize caps what a job uploads, and fetches from the jobs
	// it needs (--max-artifact-size; 0: DefaultMaxArtifactSize).
	MaxArtifactSize int64
}

// NewActor returns the runner's actor.
func NewActor(cfg Config, exec JobExecutor, logDir string, env actors.Env) *Actor {
	a := &Actor{LogDir: logDir, ChunkSize: 64 << 10}
	jobs := &execJobs{a: a, exec: exec, cancels: map[attempt]context.CancelFunc{}}
	a.Actor = host.NewActor(NewShell(cfg, jobs), env)
	return a
}

// Stop asks the runner to give its jobs back and exit (SIGINT/SIGTERM).
func Stop(root *actor.RootContext, pid *actor.PID, reason string) {
	root.Send(pid, Shutdown{Reason: reason})
}

// execJobs runs attempts with a JobExecutor, each in its own goroutine:
// as many at once as the core starts (its slots).
type execJobs struct {
	a       *Actor
	exec    JobExecutor
	cancels map[attempt]context.CancelFunc
}

// attempt keys a running attempt.
type attempt struct {
	job int64
	n   int32
}

func attemptOf(ref *messages.JobRef) attempt { return attempt{ref.GetJobId(), ref.GetAttempt()} }

func (j *execJobs) Start(run *messages.RunJob) {
	jobCtx, cancel := context.WithCancel(context.Background())
	j.cancels[attempt{run.Job.Id, run.Attempt}] = cancel
	root, logDir, chunk, logger, exec := j.a.Root(), j.a.LogDir, j.a.ChunkSize, j.a.Logger, j.exec
	ref := &messages.JobRef{JobId: run.Job.Id, Attempt: run.Attempt}
	art := NewArtifacts(root, run, j.a.MaxArtifactSize, logger) // artifacts.go
	j.a.Host().Go(func() any {
		defer cancel()
		stream := newLogStream(root, run, logDir, chunk, logger)
		res := execute(jobCtx, exec, run, stream, art)
		stream.Close()
		return JobDone{Ref: ref, Result: res}
	})
}

func (j *execJobs) Cancel(ref *messages.JobRef, _ string) {
	if cancel := j.cancels[attemptOf(ref)]; cancel != nil {
		cancel()
	}
}

func (j *execJobs) Done(ref *messages.JobRef) { delete(j.cancels, attemptOf(ref)) }

func (j *execJobs) Stop() {
	for _, cancel := range j.cancels {
		cancel()
	}
	clear(j.cancels)
}
