package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
)

// testJob is job index of build build (id buildID) of commit c of repo
// "app", named name.
func testJob(buildID int64, index int32, build int32, c, name string) *messages.Job {
	return &messages.Job{Id: buildID + int64(index), BuildId: buildID, Index: index, BuildJobs: 2, Repo: "/srv/app.git", RepoName: "app",
		Commit: c, Build: build, Branches: []string{"main"}, Cell: &messages.PipelineJob{Key: name, Name: name}}
}

func pass(name string) TestCase {
	return TestCase{Suite: "pkg", Name: name, Status: TestPassed, DurationMS: 5}
}
func fail(name string) TestCase {
	return TestCase{Suite: "pkg", Name: name, Status: TestFailed, DurationMS: 7, Message: name + " broke"}
}

func recordTests(t *testing.T, db *DB, j *messages.Job, attempt int32, at int64, cases ...TestCase) {
	t.Helper()
	require.NoError(t, db.RecordTests(context.Background(), j, attempt, time.UnixMilli(at), cases))
}

// flakyOf maps each test of a build's job index to whether it is flaky.
func flakyOf(t *testing.T, db *DB, buildID int64, index int32) map[string]bool {
	t.Helper()
	jobs, err := db.BuildTests(buildID)
	require.NoError(t, err)
	for _, j := range jobs {
		if j.Index == index {
			out := map[string]bool{}
			for _, r := range j.Tests {
				out[r.Name] = r.Flaky
			}
			return out
		}
	}
	t.Fatalf("build %d has no tests of job %d", buildID, index)
	return nil
}

func TestFlakyTests(t *testing.T) {
	const c1, c2 = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	tests := []struct {
		name string
		// record stores the runs; buildID and index name the job read back.
		record  func(t *testing.T, db *DB)
		buildID int64
		index   int32
		want    map[string]bool
	}{
		{
			name: "failed on attempt 1, passed on attempt 2 (a retry): flaky",
			record: func(t *testing.T, db *DB) {
				recordTests(t, db, testJob(10, 1, 1, c1, "test"), 1, 100, fail("TestA"), pass("TestB"))
				recordTests(t, db, testJob(10, 1, 1, c1, "test"), 2, 200, pass("TestA"), pass("TestB"))
			},
			buildID: 10, index: 1, want: map[string]bool{"TestA": true, "TestB": false},
		},
		{
			name: "the retry's report arrives first: still flaky",
			record: func(t *testing.T, db *DB) {
				recordTests(t, db, testJob(10, 1, 1, c1, "test"), 2, 200, pass("TestA"))
				recordTests(t, db, testJob(10, 1, 1, c1, "test"), 1, 100, fail("TestA"))
			},
			buildID: 10, index: 1, want: map[string]bool{"TestA": true},
		},
		{
			name: "failed in build 1, passed in build 2 (a rebuild): flaky in both",
			record: func(t *testing.T, db *DB) {
				recordTests(t, db, testJob(10, 0, 1, c1, "test"), 1, 100, fail("TestA"))
				recordTests(t, db, testJob(20, 0, 2, c1, "test"), 1, 200, pass("TestA"))
			},
			buildID: 20, index: 0, want: map[string]bool{"TestA": true},
		},
		{
			name: "failed then failed again: not flaky",
			record: func(t *testing.T, db *DB) {
				recordTests(t, db, testJob(10, 0, 1, c1, "test"), 1, 100, fail("TestA"))
				recordTests(t, db, testJob(10, 0, 1, c1, "test"), 2, 200, fail("TestA"))
				recordTests(t, db, testJob(20, 0, 2, c1, "test"), 1, 300, fail("TestA"))
			},
			buildID: 20, index: 0, want: map[string]bool{"TestA": false},
		},
		{
			name: "passed then failed: not flaky (a test that broke)",
			record: func(t *testing.T, db *DB) {
				recordTests(t, db, testJob(10, 0, 1, c1, "test"), 1, 100, pass("TestA"))
				recordTests(t, db, testJob(10, 0, 1, c1, "test"), 2, 200, fail("TestA"))
			},
			buildID: 10, index: 0, want: map[string]bool{"TestA": false},
		},
		{
			name: "failed on another commit or in another job: not flaky",
			record: func(t *testing.T, db *DB) {
				recordTests(t, db, testJob(10, 0, 1, c1, "test (go=1.25)"), 1, 100, fail("TestA"))
				recordTests(t, db, testJob(10, 1, 1, c1, "test (go=1.26)"), 1, 100, pass("TestA"))
				recordTests(t, db, testJob(30, 1, 1, c2, "test (go=1.26)"), 1, 300, pass("TestA"))
			},
			buildID: 10, index: 1, want: map[string]bool{"TestA": false},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t)
			tc.record(t, db)
			assert.Equal(t, tc.want, flakyOf(t, db, tc.buildID, tc.index))
		})
	}
}

func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	return db
}

// TestBuildTests: each job shows its newest attempt's tests, failures
// first, then flaky, skipped and passed; two reports of one attempt add
// up, and a test named twice keeps its worse status.
func TestBuildTests(t *testing.T) {
	db := openTest(t)
	const c = "3333333333333333333333333333333333333333"
	lint, unit := testJob(40, 0, 1, c, "lint"), testJob(40, 1, 1, c, "unit")
	recordTests(t, db, lint, 1, 100, pass("TestVet"))
	recordTests(t, db, unit, 1, 100, fail("TestFlaky"), fail("TestOld"))
	recordTests(t, db, unit, 2, 200, pass("TestZ"), pass("TestFlaky"), TestCase{Suite: "pkg", Name: "TestSkip", Status: TestSkipped, Message: "no db"})
	recordTests(t, db, unit, 2, 210, fail("TestBroken"), pass("TestZ")) // a second report
	recordTests(t, db, unit, 2, 220, pass("TestBroken"))                // sent again, better: the worse stays

	_, err := db.BuildTests(41)
	require.ErrorIs(t, err, ErrNotFound)
	jobs, err := db.BuildTests(40)
	require.NoError(t, err)
	require.Len(t, jobs, 2)
	assert.Equal(t, "lint", jobs[0].Name)
	assert.Equal(t, JobTests{BuildID: 40, Index: 1, JobID: 41, Name: "unit", Attempt: 2}, JobTests{BuildID: jobs[1].BuildID, Index: jobs[1].Index,
		JobID: jobs[1].JobID, Name: jobs[1].Name, Attempt: jobs[1].Attempt})
	var order []string
	for _, r := range jobs[1].Tests {
		order = append(order, fmt.Sprintf("%s %s flaky=%v", r.Name, r.Status, r.Flaky))
	}
	assert.Equal(t, []string{"TestBroken failed flaky=false", "TestFlaky passed flaky=true", "TestSkip skipped flaky=false", "TestZ passed flaky=false"}, order)
	assert.Equal(t, "TestBroken broke", jobs[1].Tests[0].Message)
	assert.Equal(t, int64(210), jobs[1].Tests[0].FinishedUnixMS)
}

// TestTestHistory: the newest runs of one test across commits, each
// marked flaky when its commit's job was, and the flake rate over the
// (commit, job) groups shown.
func TestTestHistory(t *testing.T) {
	db := openTest(t)
	commit := func(i int) string { return fmt.Sprintf("%040x", i) }
	at := int64(1000)
	// Commits 1-6: 1 passes; 2 fails then passes on retry (flaky); 3
	// fails twice; 4 is skipped; 5 fails, then passes in a rebuild
	// (flaky); 6 passes.
	run := func(i int, buildID int64, build, attempt int32, c TestCase) {
		at += 10
		recordTests(t, db, testJob(buildID, 0, build, commit(i), "test"), attempt, at, c, pass("TestOther"))
	}
	run(1, 100, 1, 1, pass("TestA"))
	run(2, 200, 1, 1, fail("TestA"))
	run(2, 200, 1, 2, pass("TestA"))
	run(3, 300, 1, 1, fail("TestA"))
	run(3, 300, 1, 2, fail("TestA"))
	run(4, 400, 1, 1, TestCase{Suite: "pkg", Name: "TestA", Status: TestSkipped})
	run(5, 500, 1, 1, fail("TestA"))
	run(5, 510, 2, 1, pass("TestA"))
	run(6, 600, 1, 1, pass("TestA"))

	h, err := db.TestHistory(TestQuery{RepoName: "app", Name: "TestA", Limit: 50})
	require.NoError(t, err)
	var got []string
	for _, r := range h.Runs {
		got = append(got, fmt.Sprintf("%s b%d a%d %s flaky=%v", r.Commit[38:], r.Build, r.Attempt, r.Status, r.Flaky))
	}
	assert.Equal(t, []string{
		"06 b1 a1 passed flaky=false",
		"05 b2 a1 passed flaky=true",
		"05 b1 a1 failed flaky=true",
		"04 b1 a1 skipped flaky=false",
		"03 b1 a2 failed flaky=false",
		"03 b1 a1 failed flaky=false",
		"02 b1 a2 passed flaky=true",
		"02 b1 a1 failed flaky=true",
		"01 b1 a1 passed flaky=false",
	}, got)
	assert.Equal(t, 5, h.Groups, "commit 4 was only skipped")
	assert.Equal(t, 2, h.Flaky)
	assert.InDelta(t, 0.4, h.FlakeRate, 1e-9)

	// A window of two runs still judges commit 5 whole (its failure is
	// outside the window).
	h, err = db.TestHistory(TestQuery{RepoName: "app", Name: "TestA", Suite: "pkg", Limit: 2})
	require.NoError(t, err)
	require.Len(t, h.Runs, 2)
	assert.Equal(t, 2, h.Groups)
	assert.Equal(t, 1, h.Flaky)
	assert.InDelta(t, 0.5, h.FlakeRate, 1e-9)

	_, err = db.TestHistory(TestQuery{RepoName: "app", Name: "TestA", Suite: "other", Limit: 2})
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = db.TestHistory(TestQuery{RepoName: "app", Name: "TestA", Limit: 0})
	assert.Error(t, err)
}

func TestRecordTestsRefuses(t *testing.T) {
	db := openTest(t)
	j := testJob(10, 0, 1, "4444444444444444444444444444444444444444", "test")
	ctx := context.Background()
	assert.Error(t, db.RecordTests(ctx, j, 1, time.Now(), []TestCase{{Suite: "s", Name: "n", Status: "green"}}))
	assert.Error(t, db.RecordTests(ctx, j, 1, time.Now(), []TestCase{{Suite: "s", Status: TestPassed}}))
	assert.Error(t, db.RecordTests(ctx, j, 0, time.Now(), nil))
	assert.Error(t, db.RecordTests(ctx, nil, 1, time.Now(), nil))
	_, err := db.BuildTests(10)
	assert.ErrorIs(t, err, ErrNotFound, "nothing was stored")
}

// TestPruneTests: retention's call removes one build's tests and no other.
func TestPruneTests(t *testing.T) {
	db := openTest(t)
	const c = "5555555555555555555555555555555555555555"
	recordTests(t, db, testJob(10, 0, 1, c, "test"), 1, 100, fail("TestA"), pass("TestB"))
	recordTests(t, db, testJob(20, 0, 2, c, "test"), 1, 200, pass("TestA"))
	var n int64
	require.NoError(t, db.inTx(context.Background(), func(exec func(string, ...any) (int64, error)) error {
		var err error
		n, err = pruneTests(exec, "/srv/app.git", c, 1)
		return err
	}))
	assert.Equal(t, int64(2), n)
	_, err := db.BuildTests(10)
	assert.ErrorIs(t, err, ErrNotFound)
	jobs, err := db.BuildTests(20)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	assert.False(t, jobs[0].Tests[0].Flaky, "the failure that made it flaky is gone")
}
