package adaptertest

import (
	"errors"
	"maps"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
)

// memStore is an in-memory dispatcher.Store that journals every write and
// load, and fails (or panics in) the one write that fault picks.
type memStore struct {
	j *journal
	// fault is asked before each write (n counts writes from 1); the first
	// time it says so, the write fails, with a panic when it says to.
	fault func(n int, jobs []*messages.JobRecord) (fail, panics bool)

	mu      sync.Mutex
	writes  int
	failed  bool
	jobs    map[int64]*messages.JobRecord
	cursors map[string]*messages.Cursor
	incs    map[string]int64
	maxID   int64
}

var _ dispatcher.Store = (*memStore)(nil)

var errDiskFull = errors.New("disk full")

func newMemStore(j *journal) *memStore {
	return &memStore{j: j, jobs: map[int64]*messages.JobRecord{}, cursors: map[string]*messages.Cursor{}, incs: map[string]int64{}}
}

func clones[T proto.Message](xs []T) []T {
	out := make([]T, len(xs))
	for i, x := range xs {
		out[i] = proto.Clone(x).(T)
	}
	return out
}

// write runs the fault check; it reports an error to return, or panics.
func (s *memStore) write(jobs []*messages.JobRecord) error {
	s.writes++
	if s.failed || s.fault == nil {
		return nil
	}
	fail, panics := s.fault(s.writes, jobs)
	if !fail {
		return nil
	}
	s.failed = true
	s.j.add(event{kind: "savefail", who: "store", msg: clones(jobs), err: errDiskFull})
	if panics {
		panic(errDiskFull)
	}
	return errDiskFull
}

func (s *memStore) Save(b dispatcher.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.write(b.Jobs); err != nil {
		return err
	}
	saved := clones(b.Jobs)
	for _, r := range saved {
		s.jobs[r.Job.Id] = r
		s.maxID = max(s.maxID, r.Job.Id)
	}
	for _, c := range clones(b.Cursors) {
		s.cursors[c.Repo+"\x00"+c.Branch] = c
	}
	for _, r := range b.Incarnations {
		s.incs[r.RunnerId] = max(s.incs[r.RunnerId], r.Incarnation)
	}
	s.j.add(event{kind: "save", who: "store", msg: saved})
	return nil
}

func (s *memStore) LoadQueue() ([]*messages.JobRecord, []*messages.Cursor, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.j.add(event{kind: "load", who: "store"})
	var jobs []*messages.JobRecord
	for _, id := range sortedIDs(s.jobs) {
		if r := s.jobs[id]; r.State != messages.JobState_JOB_STATE_DONE || !r.Forwarded {
			jobs = append(jobs, proto.Clone(r).(*messages.JobRecord))
		}
	}
	var cursors []*messages.Cursor
	for _, k := range slices.Sorted(maps.Keys(s.cursors)) {
		cursors = append(cursors, proto.Clone(s.cursors[k]).(*messages.Cursor))
	}
	return jobs, cursors, s.maxID, nil
}

func (s *memStore) LoadIncarnations() ([]*messages.RunnerIncarnation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*messages.RunnerIncarnation
	for _, id := range slices.Sorted(maps.Keys(s.incs)) {
		out = append(out, &messages.RunnerIncarnation{RunnerId: id, Incarnation: s.incs[id]})
	}
	return out, nil
}

func (s *memStore) ArchivedJobs(repo string, commits []string) (map[string]*messages.JobRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]*messages.JobRecord{}
	for _, id := range sortedIDs(s.jobs) {
		r := s.jobs[id]
		if r.Job.Repo == repo && slices.Contains(commits, r.Job.Commit) && r.State == messages.JobState_JOB_STATE_DONE {
			out[r.Job.Commit] = r
		}
	}
	return out, nil
}

func (s *memStore) NewestBuild(repo, commit string) ([]*messages.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var newest []*messages.Job
	for _, id := range sortedIDs(s.jobs) {
		r := s.jobs[id]
		if r.Job.Repo != repo || r.Job.Commit != commit {
			continue
		}
		if len(newest) > 0 && newest[0].Build != r.Job.Build {
			newest = nil
		}
		newest = append(newest, proto.Clone(r.Job).(*messages.Job))
	}
	return newest, nil
}

// snapshot returns copies of every job record, by id.
func (s *memStore) snapshot() map[int64]*messages.JobRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int64]*messages.JobRecord{}
	for id, r := range s.jobs {
		out[id] = proto.Clone(r).(*messages.JobRecord)
	}
	return out
}

func sortedIDs[V any](m map[int64]V) []int64 { return slices.Sorted(maps.Keys(m)) }
