package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/observer"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/gitexec"
	"github.com/voltci/volt/jobspec"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/store/etcdstore"
)

// Actor names: a peer is found as "<address>/<name>".
const (
	DispatcherName = "dispatcher"
	ReporterName   = "reporter"
	ObserverName   = "observer"
	RunnerName     = "runner"
)

// Env is what a role's shell on this node needs: its logger tagged with
// role, the port probe, the node's exit, and the reset of stuck connections.
func (n *Node) Env(role string) actors.Env {
	env := actors.Env{Logger: n.logger.With("role", role), Probe: Probe, OnExit: n.Exit}
	if n.links != nil {
		env.Unstick = n.links.unstick
	}
	return env
}

// Addr is the address of a role actor on this node.
func (n *Node) Addr(name string) actors.Addr { return actors.NewAddr(n.Address, name) }

// StartDispatcher starts the dispatcher role on db.
func (n *Node) StartDispatcher(cfg dispatcher.Config, db *store.DB) (*actor.PID, error) {
	st := n.dispatcherStore(db) // secrets.go
	pid, err := n.Spawn(DispatcherName, func() actor.Actor { return dispatcher.NewActor(cfg, st, n.Env("dispatcher")) })
	if err == nil {
		n.DrainBeforeStop(pid, dispatcher.Drain{})
	}
	return pid, err
}

// StartReporter starts the reporter role on db; result files go under db's
// directory, and the test reports jobs upload are parsed into db's tests.
func (n *Node) StartReporter(cfg reporter.Config, db *store.DB) (*actor.PID, error) {
	st := resultStore{db}
	onReport := n.recordReports(db) // reports.go
	return n.Spawn(ReporterName, func() actor.Actor {
		a := reporter.NewActor(cfg, st, n.Env("reporter"))
		a.OnReport = onReport
		return a
	})
}

// StartObserver starts the observer role reading repos.
func (n *Node) StartObserver(cfg observer.Config, repos []*gitexec.Repo) (*actor.PID, error) {
	rd := repoReader{repos: map[string]*gitexec.Repo{}}
	for _, r := range repos {
		rd.repos[r.URL()] = r
	}
	return n.Spawn(ObserverName, func() actor.Actor { return observer.NewActor(cfg, rd, n.Env("observer")) })
}

// RunnerSetup is what a runner needs beyond its identity.
type RunnerSetup struct {
	// WorkDir holds the mirrors, the worktree and log copies.
	WorkDir string
	// Fallback is a local clone to fetch from first (the original --repo).
	Fallback string
	// OutputCap is how much of a job's output is kept.
	OutputCap int64
	// Wrapper is the argv prefix that starts each step (see gitexec.WrapperMain).
	Wrapper []string
	// PruneUnused removes mirrors and worktrees of repositories not built
	// for this long, checked hourly; zero means a week.
	PruneUnused time.Duration
	// Isolation confines the job's steps: gitexec.IsolationBwrap,
	// gitexec.IsolationNone, or gitexec.IsolationAuto: bwrap where it
	// works, else none with a warning at start.
	Isolation gitexec.Isolation
	// Hide lists paths a sandboxed job never sees, besides WorkDir and
	// gitexec.DefaultHidden: the credentials directory, and what
	// the operator names (--hide).
	Hide []string
	// PassEnv names runner variables that jobs get too (--pass-env).
	PassEnv []string
	// JobUser, if set, is the user steps run as (--job-user; needs root).
	JobUser string
	// MaxArtifactSize caps what a job uploads, and fetches from the jobs
	// it needs (--max-artifact-size; 0: runner.DefaultMaxArtifactSize).
	MaxArtifactSize int64
}

// pruneEvery is how often a runner looks for repositories to prune.
const pruneEvery = time.Hour

// prune removes unused repositories from ws now and every pruneEvery until
// the node shuts down.
func (n *Node) prune(ws *gitexec.Workspace, unused time.Duration, logger *slog.Logger) {
	if unused <= 0 {
		unused = 7 * 24 * time.Hour
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		t := time.NewTicker(pruneEvery)
		defer t.Stop()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for {
			st, err := ws.Prune(ctx, unused, time.Now())
			switch {
			case err != nil:
				logger.Warn("pruning unused repositories failed; will retry", "error", err, "retry_in", pruneEvery)
			case st.Mirrors > 0:
				logger.Info("pruned repositories not built recently", "mirrors", st.Mirrors, "worktrees", st.Worktrees, "unused_for", unused)
			}
			select {
			case <-n.stopBG:
				return
			case <-t.C:
			}
		}
	}()
}

// StartRunner starts a runner role named name.
func (n *Node) StartRunner(name string, cfg runner.Config, setup RunnerSetup) (*actor.PID, error) {
	ws := gitexec.NewWorkspace(setup.WorkDir, setup.Fallback)
	steps, err := n.jobSandbox(cfg.ID, setup)
	if err != nil {
		return nil, err
	}
	exec := &jobExecutor{
		ws:        ws,
		exec:      steps,
		outputCap: setup.OutputCap,
		logger:    n.logger.With("role", "runner", "runner", cfg.ID),
		secrets:   n.secretSource(cfg.Dispatcher, cfg.Nodes),
	}
	n.prune(ws, setup.PruneUnused, exec.logger)
	// The first step's wrapper starts now, not when the first job comes.
	steps.Warm()
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		<-n.stopBG
		steps.Close()
	}()
	logDir := setup.WorkDir + "/logs"
	// Each incarnation is its own actor id: a restarted runner usually gets
	// the same address back, and a late Terminated for the old incarnation
	// must not take the new one down with it. The plain name is an alias, so
	// that `volt status --role runner` finds it.
	pid, err := n.Spawn(fmt.Sprintf("%s-%d", name, cfg.Incarnation), func() actor.Actor {
		a := runner.NewActor(cfg, exec, logDir, n.Env("runner"))
		a.MaxArtifactSize = setup.MaxArtifactSize
		return a
	})
	if err != nil {
		return nil, err
	}
	if proc, ok := n.System.ProcessRegistry.Get(pid); ok {
		n.System.ProcessRegistry.Add(proc, name)
	}
	return pid, nil
}

// jobSandbox is the executor of a runner's job steps, as setup asks: its
// isolation (bwrap probed once; a loud warning when it falls back to none),
// the paths it hides, the variables it passes, the user steps run as. The
// process becomes a child subreaper that kills what a job leaves behind.
// The wrapper's own environment is empty: a step can read it.
func (n *Node) jobSandbox(id string, setup RunnerSetup) (*gitexec.Executor, error) {
	e := &gitexec.Executor{Wrapper: setup.Wrapper, PassEnv: setup.PassEnv,
		Hide: append(append([]string{setup.WorkDir}, setup.Hide...), gitexec.DefaultHidden()...)}
	var cred *syscall.Credential
	if setup.JobUser != "" {
		u, err := gitexec.LookupJobUser(setup.JobUser)
		if err != nil {
			return nil, err
		}
		e.JobUser, cred = u, u.Cred
	}
	iso, fallback, err := gitexec.ResolveIsolation(setup.Isolation, cred)
	if err != nil {
		return nil, err
	}
	if fallback != nil {
		n.logger.Warn("JOBS RUN WITHOUT A SANDBOX (--isolation none): a job can read every file the runner's user can, its credentials included; install "+gitexec.BwrapPackage+" or let it make user namespaces (see the bwrap error), or pass --isolation none to accept this",
			"role", "runner", "runner", id, "bwrap", fallback.Error())
	}
	e.Isolation = iso
	if err := gitexec.ReapOrphans(); err != nil {
		return nil, err
	}
	return e, nil
}

// queueStore adapts store.DB to the dispatcher's Store port.
type queueStore struct{ db *store.DB }

// Path names the database for the ERROR a failing write logs.
func (q queueStore) Path() string { return filepath.Join(q.db.Dir(), store.FileName) }

// QueueStore is the dispatcher's Store on db, as StartDispatcher uses it:
// for benchmarks and tests that run the dispatcher actor themselves.
func QueueStore(db *store.DB) dispatcher.Store { return queueStore{db} }

func (q queueStore) Save(b dispatcher.Batch) error {
	return q.db.SaveQueue(b.Jobs, b.Cursors, b.Incarnations)
}

func (q queueStore) LoadQueue() ([]*messages.JobRecord, []*messages.Cursor, int64, error) {
	return q.db.LoadQueue()
}

func (q queueStore) LoadIncarnations() ([]*messages.RunnerIncarnation, error) {
	return q.db.LoadIncarnations()
}

func (q queueStore) NewestBuild(repo, commit string) ([]*messages.Job, error) {
	if messages.ValidateCommit(commit) != nil {
		return nil, nil
	}
	return q.db.NewestBuild(repo, commit)
}

func (q queueStore) ArchivedJobs(repo string, commits []string) (map[string]*messages.JobRecord, error) {
	return q.db.LatestJobs(repo, commits)
}

// resultStore adapts store.DB to the reporter's Store port.
type resultStore struct{ db *store.DB }

// Path names the data directory for the ERROR a failing write logs.
func (s resultStore) Path() string { return s.db.Dir() }

func (s resultStore) RecordResult(r *messages.Result) (bool, error) { return s.db.RecordResult(r) }
func (s resultStore) AppendLog(job *messages.Job, attempt int32, offset int64, data []byte) (int64, error) {
	return s.db.AppendLog(job, attempt, offset, data)
}
func (s resultStore) LogHave(job *messages.Job, attempt int32) (int64, error) {
	return s.db.LogHave(job, attempt)
}
func (s resultStore) DropLog(job *messages.Job, attempt int32) error {
	return s.db.DropLog(job, attempt)
}

func (s resultStore) WriteResultFile(r *messages.Result) error { return s.db.WriteResultFile(r) }

// repoReader adapts gitexec.Repo to the observer's RepoReader port.
type repoReader struct{ repos map[string]*gitexec.Repo }

func (rd repoReader) Read(ctx context.Context, repo, branch, since string, max int) observer.Polled {
	p := observer.Polled{Repo: repo, Branch: branch}
	r := rd.repos[repo]
	if r == nil {
		p.Err = "unknown repository " + repo
		return p
	}
	tip, err := r.Tip(ctx, branch)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	p.Tip = tip
	if tip == since {
		return p
	}
	// One git process in the usual case: the new commits, whether the
	// branch was force-pushed, and the subjects (display only: nil when
	// they cannot be read).
	rg, subjects, err := r.Log(ctx, since, tip, max)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	p.Commits, p.Forced, p.Skipped, p.Subjects = rg.Commits, rg.Forced, rg.Skipped, subjects
	return p
}

// Pipeline reads commit's .volt.yml and expands it. A file too large or
// not a file is the file's mistake, told in the pipeline's error; any
// other failure to read is an error, and the poll is tried again.
func (rd repoReader) Pipeline(ctx context.Context, repo, commit string) (*messages.Pipeline, error) {
	r := rd.repos[repo]
	if r == nil {
		return nil, fmt.Errorf("unknown repository %s", repo)
	}
	data, err := r.ReadFile(ctx, commit, jobspec.FileName, jobspec.MaxFileSize)
	switch {
	case errors.Is(err, gitexec.ErrFileTooLarge):
		return &messages.Pipeline{Error: fmt.Sprintf("%s is larger than %d KiB: make it smaller", jobspec.FileName, jobspec.MaxFileSize>>10)}, nil
	case errors.Is(err, gitexec.ErrNotAFile):
		return &messages.Pipeline{Error: fmt.Sprintf("%s is a folder, a symbolic link or a submodule: make it a file", jobspec.FileName)}, nil
	case err != nil:
		return nil, err
	}
	return jobspec.ExpandPipeline(data), nil
}

// jobExecutor adapts gitexec and jobspec to the runner's JobExecutor port.
type jobExecutor struct {
	ws        *gitexec.Workspace
	slots     slotPool // each job at once in a worktree of its own
	exec      *gitexec.Executor
	outputCap int64
	logger    *slog.Logger
	secrets   *secretSource // secrets.go
}

func (e *jobExecutor) Execute(ctx context.Context, run *messages.RunJob, out io.Writer) *messages.Result {
	return e.ExecuteWithArtifacts(ctx, run, out, nil)
}

// ExecuteWithArtifacts implements runner.ArtifactExecutor (artifacts.go).
func (e *jobExecutor) ExecuteWithArtifacts(ctx context.Context, run *messages.RunJob, out io.Writer, art *runner.Artifacts) *messages.Result {
	started := time.Now()
	res := &messages.Result{Job: run.Job, Attempt: run.Attempt, RunnerId: run.RunnerId, StartedUnixMs: started.UnixMilli()}
	fail := func(reason string) *messages.Result {
		res.Status = messages.Status_STATUS_ERRORED
		if ctx.Err() != nil {
			res.Status = messages.Status_STATUS_CANCELLED
		}
		res.Reason = reason
		res.ExitCode = -1
		msg := "volt: " + reason + "\n"
		fmt.Fprint(out, msg)
		res.LogBytes = int64(len(msg))
		res.FinishedUnixMs = time.Now().UnixMilli()
		return res
	}
	slot, release := e.slots.take()
	defer release()
	dir, err := e.ws.Prepare(ctx, run.Job.Repo, run.Job.Commit, slot)
	if err != nil {
		return fail(fmt.Sprintf("prepare the workspace: %v", err))
	}
	spec, err := jobspec.LoadJob(dir, run.Job.Cell) // the cell's steps, matrix and shard env; nil: the single list
	if err != nil {
		return fail(err.Error())
	}
	out, finish, err := e.withSecrets(run, spec, out) // before any step: refused, none runs
	if err != nil {
		return fail(err.Error())
	}
	defer finish(res)
	fetched, ok := fetchNeeds(ctx, art, dir, out, res) // artifacts.go
	if !ok {
		return res
	}
	timeout := spec.JobTimeout(time.Duration(run.TimeoutMs) * time.Millisecond)
	steps := make([]gitexec.Step, len(spec.Steps))
	for i, s := range spec.Steps {
		steps[i] = gitexec.Step{Name: s.Name, Run: s.Run, Timeout: s.Timeout}
	}
	o := e.exec.Execute(ctx, gitexec.Run{
		Dir: dir, Env: jobEnv(run, spec), Steps: steps, Timeout: timeout,
		OutputCap: e.outputCap, Output: out,
	})
	res.Status = o.Status
	res.Reason, res.FailedStep, res.ExitCode = o.Reason, o.FailedStep, int32(o.ExitCode)
	res.LogBytes, res.LogDropped = o.Kept, o.Dropped
	afterSteps(ctx, art, dir, spec, out, res, fetched) // artifacts.go
	res.FinishedUnixMs = time.Now().UnixMilli()
	return res
}

// jobEnv is the job's variables (docs/contract.md, Addresses, ports and defaults) and
// .volt.yml's env; the executor adds PATH, HOME, TMPDIR, LANG and
// --pass-env's, never the rest of the runner's environment.
func jobEnv(run *messages.RunJob, spec *jobspec.Spec) []string {
	env := append([]string(nil),
		"CI=true", "VOLT=true",
		"VOLT_REPO="+run.Job.RepoName,
		"VOLT_BRANCH="+strings.Join(run.Job.Branches, ","),
		"VOLT_COMMIT="+run.Job.Commit,
		"VOLT_BUILD="+strconv.Itoa(int(run.Job.Build)),
		"VOLT_BUILD_ID="+strconv.FormatInt(run.Job.BuildID(), 10),
		"VOLT_JOB="+run.Job.DisplayName(),
		"VOLT_ATTEMPT="+strconv.Itoa(int(run.Attempt)),
	)
	for _, k := range sortedEnvKeys(spec.Env) {
		env = append(env, k+"="+spec.Env[k])
	}
	return env
}

func sortedEnvKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// etcdQueue adapts etcdstore.DB to the dispatcher's Store port: a failover
// leader's batches, fenced on its election key.
type etcdQueue struct{ db *etcdstore.DB }

// EtcdQueue is the dispatcher's Store on db.
func EtcdQueue(db *etcdstore.DB) dispatcher.Store { return etcdQueue{db} }

// Path names the store for the ERROR a failing write logs.
func (q etcdQueue) Path() string { return q.db.Path() }

func (q etcdQueue) Save(b dispatcher.Batch) error {
	err := q.db.Save(etcdstore.Batch{Jobs: b.Jobs, Cursors: b.Cursors, Incarnations: b.Incarnations,
		Fence: etcdstore.Fence{Key: b.Fence.Key, Revision: b.Fence.Revision}})
	if errors.Is(err, etcdstore.ErrFenced) {
		return fmt.Errorf("%w: %w", dispatcher.ErrFenced, err)
	}
	return err
}

func (q etcdQueue) LoadQueue() ([]*messages.JobRecord, []*messages.Cursor, int64, error) {
	return q.db.LoadQueue()
}

func (q etcdQueue) LoadIncarnations() ([]*messages.RunnerIncarnation, error) {
	return q.db.LoadIncarnations()
}

func (q etcdQueue) NewestBuild(repo, commit string) ([]*messages.Job, error) {
	return q.db.NewestBuild(repo, commit)
}

func (q etcdQueue) ArchivedJobs(repo string, commits []string) (map[string]*messages.JobRecord, error) {
	return q.db.ArchivedJobs(repo, commits)
}
