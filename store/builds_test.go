package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// pipeline is the result of job index of build 100 (3 jobs: lint, then
// two shards of test needing it) of fileCommit.
func pipeline(index int32, st messages.Status, started, finished int64) *messages.Result {
	cells := []*messages.PipelineJob{
		{Key: "lint", Name: "lint"},
		{Key: "test", Name: "test 1/2", ShardIndex: 0, ShardTotal: 2, Needs: []int32{0}},
		{Key: "test", Name: "test 2/2", ShardIndex: 1, ShardTotal: 2, Needs: []int32{0}},
	}
	return &messages.Result{
		Job: &messages.Job{Id: 100 + int64(index), BuildId: 100, Index: index, BuildJobs: 3, Repo: "/srv/git/app.git", RepoName: "app",
			Commit: fileCommit, Branches: []string{"main"}, Build: 1, Cell: cells[index]},
		Attempt: 1, RunnerId: fmt.Sprintf("runner-%d", index), Status: st,
		QueuedUnixMs: 500, StartedUnixMs: started, FinishedUnixMs: finished,
	}
}

func record(t *testing.T, db *store.DB, r *messages.Result) bool {
	t.Helper()
	changed, err := db.RecordResult(r)
	require.NoError(t, err)
	return changed
}

// TestBuildOfJobs: a build's jobs are recorded one by one, in any order;
// the build is listed once every job has a result, with the aggregate.
func TestBuildOfJobs(t *testing.T) {
	db := newDB(t)
	shard2 := pipeline(2, messages.Status_STATUS_FAILED, 3000, 4500)
	shard2.Reason, shard2.FailedStep = "step test exited with 1", "test"
	assert.True(t, record(t, db, shard2))
	assert.True(t, record(t, db, pipeline(0, messages.Status_STATUS_PASSED, 1000, 2000)))
	assert.False(t, record(t, db, pipeline(0, messages.Status_STATUS_FAILED, 1000, 2000)), "a duplicate of job 0: the first copy wins")

	b, err := db.Build(100)
	require.NoError(t, err)
	assert.False(t, b.Complete)
	assert.Equal(t, int32(3), b.JobCount)
	assert.Equal(t, int32(2), b.Recorded)
	assert.Equal(t, messages.Status_STATUS_FAILED, b.Status, "the aggregate of the jobs recorded so far")
	assert.Nil(t, b.Jobs[1].Result)
	assert.Equal(t, int64(101), b.Jobs[1].ID)
	assert.Equal(t, "test 2/2", b.Jobs[2].Name)
	assert.Zero(t, b.Row)
	rows, _, err := db.ListResults(store.Query{Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, rows, "a build is listed once it is complete")
	_, err = db.ResultForCommit(fileCommit[:8])
	assert.ErrorIs(t, err, store.ErrNotFound)
	_, err = db.Build(101)
	assert.ErrorIs(t, err, store.ErrNotFound, "101 is a job's id, not a build's")

	last, err := db.LastResultID()
	require.NoError(t, err)
	shard1 := pipeline(1, messages.Status_STATUS_PASSED, 2500, 5000)
	shard1.Job.Branches = []string{"main", "release"}
	assert.True(t, record(t, db, shard1))

	for name, get := range map[string]func() (*store.Build, error){
		"Build":          func() (*store.Build, error) { return db.Build(100) },
		"BuildOf":        func() (*store.Build, error) { return db.BuildOf("/srv/git/app.git", fileCommit, 1) },
		"BuildForCommit": func() (*store.Build, error) { return db.BuildForCommit(fileCommit[:6]) },
	} {
		t.Run(name, func(t *testing.T) {
			b, err := get()
			require.NoError(t, err)
			assert.True(t, b.Complete)
			assert.Equal(t, int64(100), b.ID)
			assert.Equal(t, messages.Status_STATUS_FAILED, b.Status)
			assert.Equal(t, []string{"main", "release"}, b.Branches)
			assert.NotZero(t, b.Row)
			var names []string
			for _, j := range b.Jobs {
				names = append(names, j.Name+"="+j.Status.Name())
			}
			assert.Equal(t, []string{"lint=passed", "test 1/2=passed", "test 2/2=failed"}, names)
			assert.Equal(t, []int32{0}, b.Jobs[2].Cell.GetNeeds())
		})
	}

	// The aggregate: the deciding job's (shard 2's) attempt, runner, reason
	// and log; the build's status, branches and times.
	agg, err := db.ResultForCommit(fileCommit[:8])
	require.NoError(t, err)
	assert.Equal(t, messages.Status_STATUS_FAILED, agg.Status)
	assert.Equal(t, int64(102), agg.Job.Id)
	assert.Equal(t, int64(100), agg.Job.BuildID())
	assert.Equal(t, "runner-2", agg.RunnerId)
	assert.Equal(t, "test", agg.FailedStep)
	assert.Equal(t, []string{"main", "release"}, agg.Job.Branches)
	assert.Equal(t, int64(1000), agg.StartedUnixMs)
	assert.Equal(t, int64(5000), agg.FinishedUnixMs)
	assert.Equal(t, int64(500), agg.QueuedUnixMs)

	after, err := db.ResultsAfter(last, 10)
	require.NoError(t, err)
	require.Len(t, after, 1, "the build is fed once, when it completes")
	assert.Equal(t, int64(102), after[0].Result.Job.Id)
	for _, q := range []store.Query{{Limit: 10}, {Status: "failed", Limit: 10}, {Branch: "release", Limit: 10}, {RepoName: "app", Limit: 10}} {
		rows, _, err = db.ListResults(q)
		require.NoError(t, err)
		assert.Len(t, rows, 1, "%+v", q)
	}
	builds, next, err := db.ListBuilds(store.Query{Limit: 10})
	require.NoError(t, err)
	assert.Nil(t, next)
	require.Len(t, builds, 1)
	assert.Equal(t, int64(100), builds[0].ID)
	assert.Equal(t, int32(3), builds[0].JobCount)
	counts, err := db.StatusCounts()
	require.NoError(t, err)
	assert.Equal(t, int64(1), counts["failed"])
	assert.Equal(t, int64(0), counts["passed"], "jobs are not counted, builds are")

	// Every job keeps its own result.
	r, err := db.ResultByJob(101)
	require.NoError(t, err)
	assert.Equal(t, messages.Status_STATUS_PASSED, r.Status)

	// A branch seen later on one job's resend grows the build's.
	shard1.Job.Branches = []string{"dev"}
	assert.True(t, record(t, db, shard1))
	b, err = db.Build(100)
	require.NoError(t, err)
	assert.Equal(t, []string{"main", "release", "dev"}, b.Branches)
	rows, _, err = db.ListResults(store.Query{Branch: "dev", Limit: 10})
	require.NoError(t, err)
	assert.Len(t, rows, 1)
	after, err = db.ResultsAfter(last, 10)
	require.NoError(t, err)
	assert.Len(t, after, 1, "a branch added does not feed the build again")
}

// TestAggregate: the build's status is messages.Aggregate of its jobs',
// allow-failure failures counting as passed, and the job that decided it
// stands for the build.
func TestAggregate(t *testing.T) {
	tests := []struct {
		name     string
		statuses [3]messages.Status
		allow    int32 // index of the job allowed to fail, -1 for none
		want     messages.Status
		decider  int64
	}{
		{"all passed: the first job", [3]messages.Status{1, 1, 1}, -1, messages.Status_STATUS_PASSED, 100},
		{"the lowest failing job decides", [3]messages.Status{1, 2, 2}, -1, messages.Status_STATUS_FAILED, 101},
		{"an allowed failure counts as passed", [3]messages.Status{1, 2, 1}, 1, messages.Status_STATUS_PASSED, 100},
		{"a job that passed decides before an allowed failure", [3]messages.Status{2, 1, 1}, 0, messages.Status_STATUS_PASSED, 101},
		{"a failure outranks an error", [3]messages.Status{4, 1, 2}, -1, messages.Status_STATUS_FAILED, 102},
		{"skipped after a failure", [3]messages.Status{2, 6, 6}, -1, messages.Status_STATUS_FAILED, 100},
		{"all skipped", [3]messages.Status{6, 6, 6}, -1, messages.Status_STATUS_SKIPPED, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			for i, st := range tc.statuses {
				r := pipeline(int32(i), st, 1000, 2000)
				if st == messages.Status_STATUS_SKIPPED {
					r.Attempt, r.RunnerId, r.StartedUnixMs = 0, "", 0
				}
				r.Job.Cell.AllowFailure = int32(i) == tc.allow
				record(t, db, r)
			}
			agg, err := db.ResultForCommit(fileCommit)
			require.NoError(t, err)
			assert.Equal(t, tc.want, agg.Status)
			assert.Equal(t, tc.decider, agg.Job.Id)
		})
	}
}

// TestLogsPerJob: the jobs of a build each have their own log, attempt by
// attempt.
func TestLogsPerJob(t *testing.T) {
	db := newDB(t)
	for i := int32(0); i < 3; i++ {
		_, err := db.AppendLog(pipeline(i, 0, 0, 0).Job, 1, 0, []byte(fmt.Sprintf("job %d\n", i)))
		require.NoError(t, err)
	}
	for i := int32(0); i < 3; i++ {
		log, err := db.ReadLog(pipeline(i, 0, 0, 0).Job, 1)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("job %d\n", i), string(log))
	}
	bad := pipeline(0, 0, 0, 0).Job
	bad.Index = 3
	_, err := db.AppendLog(bad, 1, 0, []byte("x"))
	assert.Error(t, err, "an index outside the build")
}

// TestPipelineResultFile: the file of a pipeline build is written once
// every job has a result: the build's lines, one line per job, then the
// logs of the jobs that did not pass.
func TestPipelineResultFile(t *testing.T) {
	db := newDB(t)
	path := filepath.Join(db.Dir(), store.ResultDir, fileCommit)
	lint := pipeline(0, messages.Status_STATUS_PASSED, 1_700_000_000_000, 1_700_000_001_000)
	shard1 := pipeline(1, messages.Status_STATUS_FAILED, 1_700_000_001_500, 1_700_000_003_000)
	shard1.Attempt, shard1.Reason, shard1.FailedStep = 2, "step test exited with 1", "test"
	shard2 := pipeline(2, messages.Status_STATUS_SKIPPED, 0, 1_700_000_003_000)
	shard2.Attempt, shard2.RunnerId = 0, ""
	for _, r := range []*messages.Result{lint, shard1} {
		_, err := db.AppendLog(r.Job, r.Attempt, 0, []byte("output of "+r.Job.Cell.Name))
		require.NoError(t, err)
		record(t, db, r)
		require.NoError(t, db.WriteResultFile(r))
		_, err = os.Stat(path)
		assert.ErrorIs(t, err, os.ErrNotExist, "a file before every job has a result")
	}
	record(t, db, shard2)
	require.NoError(t, db.WriteResultFile(shard2))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, `status: failed
repo: /srv/git/app.git
branches: main
commit: 0123456789abcdef0123456789abcdef01234567
build: 1
attempt: 2
runner: runner-1
started: 2023-11-14T22:13:20.000Z
finished: 2023-11-14T22:13:23.000Z
duration: 3s
reason: step test exited with 1
failed_step: test
jobs:
  lint: passed, attempt 1, runner runner-0, 1s
  test 1/2: failed, attempt 2, runner runner-1, 1.5s
  test 2/2: skipped, attempt 0, runner -, 0s

==> test 1/2: failed <==
output of test 1/2
`, string(got))

	// A later build of one job of the single-list format: today's file.
	one := result(200, "/srv/git/app.git", fileCommit, 2, []string{"main"}, messages.Status_STATUS_PASSED, 1_700_000_009_000)
	_, err = db.AppendLog(one.Job, 1, 0, []byte("ok\n"))
	require.NoError(t, err)
	record(t, db, one)
	require.NoError(t, db.WriteResultFile(one))
	other := t.TempDir()
	require.NoError(t, store.WriteResultFile(other, one, strings.NewReader("ok\n")))
	want, err := os.ReadFile(filepath.Join(other, store.ResultDir, fileCommit))
	require.NoError(t, err)
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got), "a single-list build's file is as before pipelines")

	// The earlier build's late duplicate leaves the later build's file.
	require.NoError(t, db.WriteResultFile(shard2))
	again, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(got), string(again))
}
