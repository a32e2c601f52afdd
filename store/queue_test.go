package store_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

const (
	queued  = messages.JobState_JOB_STATE_QUEUED
	running = messages.JobState_JOB_STATE_RUNNING
	done    = messages.JobState_JOB_STATE_DONE
)

func jobRecord(id int64, commit string, build int32, state messages.JobState, forwarded bool) *messages.JobRecord {
	return &messages.JobRecord{
		Job: &messages.Job{
			Id: id, Repo: "/srv/repo.git", RepoName: "repo", Commit: commit,
			Branches: []string{"main"}, Build: build,
		},
		State:        state,
		Attempt:      1,
		Forwarded:    forwarded,
		QueuedUnixMs: 1000 + id,
	}
}

func ids(recs []*messages.JobRecord) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.GetJob().GetId())
	}
	return out
}

func TestSaveJobsLoadQueue(t *testing.T) {
	tests := []struct {
		name string
		// saves are applied in order, each one SaveJobs call.
		saves []func() ([]*messages.JobRecord, []*messages.Cursor)
		// wantIDs are the job ids LoadQueue returns.
		wantIDs     []int64
		wantCursors []*messages.Cursor
		wantMaxID   int64
	}{
		{name: "empty store"},
		{
			name: "done and forwarded jobs are left out",
			saves: []func() ([]*messages.JobRecord, []*messages.Cursor){
				func() ([]*messages.JobRecord, []*messages.Cursor) {
					return []*messages.JobRecord{
						jobRecord(4, "dddd", 1, done, true),
						jobRecord(2, "bbbb", 1, running, false),
						jobRecord(1, "aaaa", 1, queued, false),
						jobRecord(3, "cccc", 1, done, false),
						jobRecord(5, "eeee", 1, queued, true),
					}, nil
				},
			},
			wantIDs:   []int64{1, 2, 3, 5},
			wantMaxID: 5,
		},
		{
			name: "a later save updates state and forwarded",
			saves: []func() ([]*messages.JobRecord, []*messages.Cursor){
				func() ([]*messages.JobRecord, []*messages.Cursor) {
					return []*messages.JobRecord{jobRecord(1, "aaaa", 1, queued, false), jobRecord(2, "bbbb", 1, queued, false)}, nil
				},
				func() ([]*messages.JobRecord, []*messages.Cursor) {
					return []*messages.JobRecord{jobRecord(1, "aaaa", 1, done, true)}, nil
				},
			},
			wantIDs:   []int64{2},
			wantMaxID: 2,
		},
		{
			name: "max id survives when every job is finished",
			saves: []func() ([]*messages.JobRecord, []*messages.Cursor){
				func() ([]*messages.JobRecord, []*messages.Cursor) {
					return []*messages.JobRecord{jobRecord(9, "aaaa", 1, done, true)}, nil
				},
			},
			wantMaxID: 9,
		},
		{
			name: "cursors are upserted and sorted by repo then branch",
			saves: []func() ([]*messages.JobRecord, []*messages.Cursor){
				func() ([]*messages.JobRecord, []*messages.Cursor) {
					return nil, []*messages.Cursor{
						{Repo: "b", Branch: "main", Commit: "1111"},
						{Repo: "a", Branch: "main", Commit: "2222"},
						{Repo: "a", Branch: "dev", Commit: "3333"},
					}
				},
				func() ([]*messages.JobRecord, []*messages.Cursor) {
					return []*messages.JobRecord{jobRecord(1, "4444", 1, queued, false)},
						[]*messages.Cursor{{Repo: "a", Branch: "main", Commit: "4444"}}
				},
			},
			wantIDs: []int64{1},
			wantCursors: []*messages.Cursor{
				{Repo: "a", Branch: "dev", Commit: "3333"},
				{Repo: "a", Branch: "main", Commit: "4444"},
				{Repo: "b", Branch: "main", Commit: "1111"},
			},
			wantMaxID: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db, err := store.Open(dir)
			require.NoError(t, err)
			for _, save := range tc.saves {
				require.NoError(t, db.SaveJobs(save()))
			}
			require.NoError(t, db.Close())

			// A restarted dispatcher sees what was saved.
			db, err = store.Open(dir)
			require.NoError(t, err)
			defer func() { require.NoError(t, db.Close()) }()
			jobs, cursors, maxID, err := db.LoadQueue()
			require.NoError(t, err)
			assert.Equal(t, tc.wantIDs, ids(jobs))
			assert.Equal(t, tc.wantMaxID, maxID)
			require.Len(t, cursors, len(tc.wantCursors))
			for i := range cursors {
				assert.True(t, proto.Equal(tc.wantCursors[i], cursors[i]), "cursor %d: got %v want %v", i, cursors[i], tc.wantCursors[i])
			}
		})
	}
}

func TestSaveJobsRoundTripsTheWholeRecord(t *testing.T) {
	db := newDB(t)
	rec := jobRecord(7, "abcdef", 2, running, false)
	rec.RunnerId = "runner-1"
	rec.RunnerIncarnation = 3
	rec.LastError = "runner lost"
	rec.Job.Branches = []string{"main", "dev"}
	require.NoError(t, db.SaveJobs([]*messages.JobRecord{rec}, nil))

	got, err := db.Job(7)
	require.NoError(t, err)
	assert.True(t, proto.Equal(rec, got), "got %v", got)

	got, err = db.JobByCommit("/srv/repo.git", "abcdef", 2)
	require.NoError(t, err)
	assert.True(t, proto.Equal(rec, got), "got %v", got)

	jobs, _, _, err := db.LoadQueue()
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	assert.True(t, proto.Equal(rec, jobs[0]), "got %v", jobs[0])
}

func TestJobNotFound(t *testing.T) {
	db := newDB(t)
	tests := []struct {
		name string
		get  func() (*messages.JobRecord, error)
	}{
		{name: "by id", get: func() (*messages.JobRecord, error) { return db.Job(1) }},
		{name: "by commit", get: func() (*messages.JobRecord, error) { return db.JobByCommit("r", "abcd", 1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := tc.get()
			assert.Nil(t, rec)
			assert.ErrorIs(t, err, store.ErrNotFound)
		})
	}
}

func TestSaveJobsUniqueBuild(t *testing.T) {
	tests := []struct {
		name    string
		second  []*messages.JobRecord
		wantErr error
		// wantBuild and wantID are LatestBuild of aaaa afterwards.
		wantBuild int32
		wantID    int64
	}{
		{
			name:      "same id again is an update",
			second:    []*messages.JobRecord{jobRecord(1, "aaaa", 1, done, false)},
			wantBuild: 1, wantID: 1,
		},
		{
			name:      "next build of the commit",
			second:    []*messages.JobRecord{jobRecord(2, "aaaa", 2, queued, false)},
			wantBuild: 2, wantID: 2,
		},
		{
			name:      "another id for the same build fails",
			second:    []*messages.JobRecord{jobRecord(2, "aaaa", 1, queued, false)},
			wantErr:   store.ErrDuplicateBuild,
			wantBuild: 1, wantID: 1,
		},
		{
			name: "the failure rolls back the whole call",
			second: []*messages.JobRecord{
				jobRecord(3, "aaaa", 3, queued, false),
				jobRecord(2, "aaaa", 1, queued, false),
			},
			wantErr:   store.ErrDuplicateBuild,
			wantBuild: 1, wantID: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			require.NoError(t, db.SaveJobs([]*messages.JobRecord{jobRecord(1, "aaaa", 1, queued, false)}, nil))
			cursor := &messages.Cursor{Repo: "/srv/repo.git", Branch: "main", Commit: "aaaa"}
			err := db.SaveJobs(tc.second, []*messages.Cursor{cursor})
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			build, id, err := db.LatestBuild("/srv/repo.git", "aaaa")
			require.NoError(t, err)
			assert.Equal(t, tc.wantBuild, build)
			assert.Equal(t, tc.wantID, id)
			_, cursors, _, err := db.LoadQueue()
			require.NoError(t, err)
			assert.Equal(t, tc.wantErr == nil, len(cursors) == 1, "the cursor lands with its jobs or not at all")
		})
	}
}

func TestLatestBuildUnknownCommit(t *testing.T) {
	db := newDB(t)
	build, id, err := db.LatestBuild("r", "abcd")
	require.NoError(t, err)
	assert.Zero(t, build)
	assert.Zero(t, id)
}

func TestSaveJobsRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		jobs    []*messages.JobRecord
		cursors []*messages.Cursor
	}{
		{name: "nil record", jobs: []*messages.JobRecord{nil}},
		{name: "record without job", jobs: []*messages.JobRecord{{State: queued}}},
		{name: "zero id", jobs: []*messages.JobRecord{jobRecord(0, "aaaa", 1, queued, false)}},
		{name: "cursor without branch", cursors: []*messages.Cursor{{Repo: "r"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			require.Error(t, db.SaveJobs(tc.jobs, tc.cursors))
		})
	}
}

// BenchmarkSaveJobs measures one job per transaction, the dispatcher's usual
// write (each is durable in the WAL when it returns).
func BenchmarkSaveJobs(b *testing.B) {
	db := newDB(b)
	id := int64(0)
	for b.Loop() {
		id++
		rec := jobRecord(id, "abcdef0123456789abcdef0123456789abcdef01", int32(id), queued, false)
		if err := db.SaveJobs([]*messages.JobRecord{rec}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLatestJobsInOneQuery(t *testing.T) {
	db, err := store.Open(t.TempDir())
	require.NoError(t, err)
	defer db.Close()
	a, b, never := strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)
	rec := func(id int64, commit string, build int32) *messages.JobRecord {
		return &messages.JobRecord{Job: &messages.Job{Id: id, Repo: "/r", RepoName: "r", Commit: commit, Build: build},
			State: messages.JobState_JOB_STATE_QUEUED}
	}
	require.NoError(t, db.SaveJobs([]*messages.JobRecord{rec(1, a, 1), rec(2, b, 1), rec(3, a, 2)}, nil))
	recs, err := db.LatestJobs("/r", []string{a, b, never})
	require.NoError(t, err)
	got := map[string]int64{}
	for commit, r := range recs {
		got[commit] = r.Job.Id
	}
	require.Equal(t, map[string]int64{a: 3, b: 2}, got, "the newest build of each, nothing for a commit never built")
	recs, err = db.LatestJobs("/other", []string{a})
	require.NoError(t, err)
	require.Empty(t, recs)
}

// TestSaveQueueOneTransaction: jobs, cursors and incarnations of one group
// commit land together, later records of a job win, and a failure anywhere
// leaves none of them.
func TestSaveQueueOneTransaction(t *testing.T) {
	cursor := &messages.Cursor{Repo: "/srv/repo.git", Branch: "main", Commit: "cccc"}
	inc := &messages.RunnerIncarnation{RunnerId: "host/runner-1", Incarnation: 5}
	tests := []struct {
		name    string
		jobs    []*messages.JobRecord
		wantErr error
		// wantState is job 2's state afterwards; 0 when it must not exist.
		wantState messages.JobState
	}{
		{
			name:      "all of it lands",
			jobs:      []*messages.JobRecord{jobRecord(2, "bbbb", 1, queued, false)},
			wantState: queued,
		},
		{
			name:      "the last record of a job wins",
			jobs:      []*messages.JobRecord{jobRecord(2, "bbbb", 1, queued, false), jobRecord(2, "bbbb", 1, running, false)},
			wantState: running,
		},
		{
			name:    "a duplicate build fails everything",
			jobs:    []*messages.JobRecord{jobRecord(2, "bbbb", 1, queued, false), jobRecord(3, "aaaa", 1, queued, false)},
			wantErr: store.ErrDuplicateBuild,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			require.NoError(t, db.SaveJobs([]*messages.JobRecord{jobRecord(1, "aaaa", 1, queued, false)}, nil))
			err := db.SaveQueue(tc.jobs, []*messages.Cursor{cursor}, []*messages.RunnerIncarnation{inc})
			jobs, cursors, maxID, lerr := db.LoadQueue()
			require.NoError(t, lerr)
			incs, lerr := db.LoadIncarnations()
			require.NoError(t, lerr)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				assert.Equal(t, []int64{1}, ids(jobs))
				assert.Empty(t, cursors)
				assert.Empty(t, incs)
				assert.Equal(t, int64(1), maxID)
				return
			}
			require.NoError(t, err)
			require.Equal(t, []int64{1, 2}, ids(jobs))
			assert.Equal(t, tc.wantState, jobs[1].State)
			require.Len(t, cursors, 1)
			assert.True(t, proto.Equal(cursor, cursors[0]))
			require.Len(t, incs, 1)
			assert.True(t, proto.Equal(inc, incs[0]))
			assert.Equal(t, int64(2), maxID)
		})
	}
}

// TestSaveQueueManyTransactions runs many group commits through the
// prepared statements, interleaved with reads: what each returned is there,
// and jobs finished in a later batch leave the queue.
func TestSaveQueueManyTransactions(t *testing.T) {
	db := newDB(t)
	const batches, perBatch = 50, 20
	id := int64(0)
	for n := range batches {
		var jobs []*messages.JobRecord
		for range perBatch {
			id++
			jobs = append(jobs, jobRecord(id, fmt.Sprintf("%040x", id), 1, queued, false))
		}
		// The previous batch's jobs finish in this one.
		for k := id - 2*perBatch + 1; k > 0 && k <= id-perBatch; k++ {
			jobs = append(jobs, jobRecord(k, fmt.Sprintf("%040x", k), 1, done, true))
		}
		cur := &messages.Cursor{Repo: "/srv/repo.git", Branch: "main", Commit: fmt.Sprintf("%040x", id)}
		incs := []*messages.RunnerIncarnation{{RunnerId: "r", Incarnation: int64(n)}}
		require.NoError(t, db.SaveQueue(jobs, []*messages.Cursor{cur}, incs))
		// A read on another connection sees the commit at once.
		rec, err := db.Job(id)
		require.NoError(t, err)
		assert.Equal(t, queued, rec.State)
	}
	jobs, cursors, maxID, err := db.LoadQueue()
	require.NoError(t, err)
	assert.Len(t, jobs, perBatch, "only the last batch's jobs are open")
	assert.Equal(t, id, maxID)
	require.Len(t, cursors, 1)
	assert.Equal(t, fmt.Sprintf("%040x", id), cursors[0].Commit)
	incs, err := db.LoadIncarnations()
	require.NoError(t, err)
	require.Len(t, incs, 1)
	assert.Equal(t, int64(batches-1), incs[0].Incarnation)
	// An older incarnation never replaces a newer one.
	require.NoError(t, db.SaveQueue(nil, nil, []*messages.RunnerIncarnation{{RunnerId: "r", Incarnation: 1}}))
	incs, err = db.LoadIncarnations()
	require.NoError(t, err)
	assert.Equal(t, int64(batches-1), incs[0].Incarnation)
}

// BenchmarkSaveQueue measures group commits of 100 job records, as the
// dispatcher writes them under load; ns/job is the cost of one record.
func BenchmarkSaveQueue(b *testing.B) {
	db := newDB(b)
	id := int64(0)
	jobs := make([]*messages.JobRecord, 100)
	for b.Loop() {
		for i := range jobs {
			id++
			jobs[i] = jobRecord(id, fmt.Sprintf("%040x", id), 1, queued, false)
		}
		if err := db.SaveQueue(jobs, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(jobs)), "ns/job")
}
