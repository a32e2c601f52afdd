package sim

import (
	"context"
	"errors"
	"time"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/observer"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/messages"
)

// Fakes of the roles' ports. The roles' own shells run under simulation
// (actors/host and each role's Shell): the world supplies only what they
// talk to, a store, a result directory, a repository and job processes.
// Each fake belongs to one incarnation of its node: once the node is down,
// whatever its host still does changes nothing.

// errNoSpace is what a store refuses a write with during a store fault.
var errNoSpace = errors.New("database or disk is full (simulated)")

// errDead is what a dead incarnation's store calls get.
var errDead = errors.New("the process is dead")

// storeDown reports whether the store of role refuses writes now.
func (w *World) storeDown(r role) bool {
	until, ok := w.storeFaults[r]
	return ok && w.now.Before(until)
}

// dispStore is the dispatcher's store (dispatcher.Store and
// dispatcher.SecretStore). A batch is durable when its Save returns: the
// host writes it off the actor (platform.Go), so a crash before then loses
// it, as SQLite loses a transaction that has not committed.
type dispStore struct {
	p *platform
	d *durable
	*secretStore
	// lead is the node's leadership in a failover world: writes are
	// fenced on it (failover.go).
	lead *simLeadership
}

func (s *dispStore) Save(b dispatcher.Batch) error {
	if !s.p.alive() {
		return errDead
	}
	if s.p.w.storeDown(roleDispatcher) {
		s.p.w.traceWorld("the dispatcher's store refuses a write")
		return errNoSpace
	}
	if s.lead != nil {
		if err := s.p.w.fencedSave(s.p.n, s.lead, b); err != nil {
			return err
		}
	}
	s.d.save(b.Jobs, b.Cursors, b.Incarnations)
	s.p.w.check.persisted(b.Jobs)
	s.p.w.check.persistedCursors(s.p.w, b.Cursors)
	return nil
}

func (s *dispStore) LoadQueue() ([]*messages.JobRecord, []*messages.Cursor, int64, error) {
	d := s.d.load()
	return d.Jobs, d.Cursors, d.MaxID, nil
}

func (s *dispStore) LoadIncarnations() ([]*messages.RunnerIncarnation, error) {
	return s.d.load().Incarnations, nil
}

func (s *dispStore) ArchivedJobs(repo string, commits []string) (map[string]*messages.JobRecord, error) {
	return s.d.archived(repo, commits), nil
}

func (s *dispStore) NewestBuild(repo, commit string) ([]*messages.Job, error) {
	return s.d.latest(repo, commit), nil
}

// results is the reporter's durable state: the results recorded (SQLite)
// and the result files written (test_results/<commit>, each written
// atomically by rename), which survive a reporter crash.
type results struct {
	recorded map[string]bool  // repo@commit#build
	files    map[string]int32 // commit -> build of the file
	logs     map[string]int64 // contiguous log bytes held
	dropped  map[string]bool
}

func newResults() *results {
	return &results{recorded: map[string]bool{}, files: map[string]int32{}, logs: map[string]int64{}, dropped: map[string]bool{}}
}

// resultStore is the reporter's store (reporter.Store and LogDropper).
type resultStore struct {
	p *platform
	r *results
}

func resultKey(r *messages.Result) string { return jobKey(r.Job) }

func (s *resultStore) RecordResult(r *messages.Result) (bool, error) {
	w := s.p.w
	if !s.p.alive() {
		return false, errDead
	}
	if w.storeDown(roleReporter) {
		w.traceWorld("the reporter's store refuses a write")
		return false, errNoSpace
	}
	k := logKeyOf(r.Job, r.Attempt)
	w.check.recorded(w, r)
	w.check.logRecorded(r, s.r.dropped[k])
	key := resultKey(r)
	if s.r.recorded[key] {
		return false, nil
	}
	s.r.recorded[key] = true
	return true, nil
}

func (s *resultStore) WriteResultFile(r *messages.Result) error {
	w := s.p.w
	if !s.p.alive() {
		return errDead
	}
	if w.storeDown(roleReporter) {
		return errNoSpace
	}
	if w.fileCrash {
		// The power goes between the insert and the file.
		w.fileCrash = false
		w.traceWorld("crash of rep between its insert and its result file")
		w.crash(s.p.n, time.Duration(w.rng.Int64N(int64(2*time.Second))))
		return errDead
	}
	if b, ok := s.r.files[r.Job.Commit]; !ok || b <= r.Job.Build {
		s.r.files[r.Job.Commit] = r.Job.Build
	}
	w.check.resultFileWritten(r)
	return nil
}

func (s *resultStore) AppendLog(job *messages.Job, attempt int32, offset int64, data []byte) (int64, error) {
	if !s.p.alive() {
		return 0, errDead
	}
	k := logKeyOf(job, attempt)
	if have := s.r.logs[k]; offset <= have {
		s.r.logs[k] = max(have, offset+int64(len(data)))
	}
	return s.r.logs[k], nil
}

func (s *resultStore) LogHave(job *messages.Job, attempt int32) (int64, error) {
	return s.r.logs[logKeyOf(job, attempt)], nil
}

func (s *resultStore) DropLog(job *messages.Job, attempt int32) error {
	if !s.p.alive() {
		return errDead
	}
	if s.p.w.storeDown(roleReporter) {
		return errNoSpace
	}
	k := logKeyOf(job, attempt)
	s.r.dropped[k] = true
	delete(s.r.logs, k)
	return nil
}

// repoReader is the observer's repository (observer.RepoReader).
type repoReader struct{ w *World }

func (r repoReader) Read(_ context.Context, repo, branch, since string, max int) observer.Polled {
	return r.w.repo.read(observer.Poll{Repo: repo, Branch: branch, Since: since, Max: max})
}

// Pipeline is the simulated commit's pipeline as drawn with it
// (pipeline.go): what `git show <commit>:.volt.yml` expands to.
func (r repoReader) Pipeline(_ context.Context, _, commit string) (*messages.Pipeline, error) {
	if info := r.w.repo.commits[commit]; info != nil && info.pipeline != nil {
		return info.pipeline, nil
	}
	return &messages.Pipeline{}, nil
}

// jobs is a runner's job processes (runner.Jobs): each attempt is a proc
// that ends after its commit's duration (world.go, startJob).
type jobs struct{ p *platform }

var _ runner.Jobs = jobs{}

func (j jobs) Start(run *messages.RunJob) {
	if j.p.alive() {
		j.p.w.startJob(j.p.n, run)
	}
}

func (j jobs) Cancel(ref *messages.JobRef, reason string) {
	w, n := j.p.w, j.p.n
	if !j.p.alive() {
		return
	}
	if p := n.procOf(ref); p != nil {
		w.procs++
		p.id = w.procs
		p.result = w.outcome(p, messages.Status_STATUS_CANCELLED, reason)
		w.after(5*time.Millisecond, event{kind: evJobEnd, node: n.idx, gen: n.gen, arg: int(p.id)})
	}
}

// procOf is n's process of attempt ref, nil if none.
func (n *node) procOf(ref *messages.JobRef) *proc {
	for _, p := range n.procs {
		if p.ref.JobId == ref.GetJobId() && p.ref.Attempt == ref.GetAttempt() {
			return p
		}
	}
	return nil
}

// oneProc is one of n's job processes (the oldest), nil when it runs none.
func (n *node) oneProc() *proc {
	if len(n.procs) == 0 {
		return nil
	}
	return n.procs[0]
}

func (jobs) Done(*messages.JobRef) {}
func (jobs) Stop()                 {}
