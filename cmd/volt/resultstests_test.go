package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/web"
)

// TestResultsTests: `volt results COMMIT --tests` lists each job's tests,
// failures first with the end of their message, a test that failed and
// then passed on retry marked flaky; from the data directory and from a
// web server alike, with the exit codes of `volt results COMMIT`.
func TestResultsTests(t *testing.T) {
	data := t.TempDir()
	db, err := store.Open(data)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	commit := "5d1c0e1e2a5b6f3c9b8a7d6e5f4a3b2c1d0e9f8a"
	j := &messages.Job{Id: 80, BuildId: 80, BuildJobs: 1, Repo: "/r.git", RepoName: "r", Commit: commit, Build: 1, Branches: []string{"main"},
		Cell: &messages.PipelineJob{Key: "test", Name: "test"}}
	ctx := context.Background()
	require.NoError(t, db.RecordTests(ctx, j, 1, time.UnixMilli(1000), []store.TestCase{
		{Suite: "example.com/p", Name: "TestFlaky", Status: store.TestFailed, Message: "timed out"},
	}))
	require.NoError(t, db.RecordTests(ctx, j, 2, time.UnixMilli(2000), []store.TestCase{
		{Suite: "example.com/p", Name: "TestFlaky", Status: store.TestPassed, DurationMS: 1500},
		{Suite: "example.com/p", Name: "TestOK", Status: store.TestPassed, DurationMS: 3},
		{Suite: "example.com/p", Name: "TestBroken", Status: store.TestFailed, DurationMS: 12, Message: strings.Repeat("noise\n", 20) + "p_test.go:9: want 4\n"},
	}))
	_, err = db.RecordResult(&messages.Result{Job: j, Attempt: 2, Status: messages.Status_STATUS_FAILED, FinishedUnixMs: 3000})
	require.NoError(t, err)

	jobs, err := db.BuildTests(80)
	require.NoError(t, err)
	var b strings.Builder
	printTests(&b, web.NewBuildTests(80, jobs))
	out := b.String()
	assert.Contains(t, out, "tests of build 1 (#80)\n\ntests of test (job 80, attempt 2): 1 failed, 1 flaky, 2 passed\n")
	assert.Contains(t, out, "  failed             12ms  example.com/p  TestBroken\n      …\n      noise\n")
	assert.Contains(t, out, "      p_test.go:9: want 4\n  passed flaky       1.5s  example.com/p  TestFlaky\n")
	assert.Contains(t, out, "  passed              3ms  example.com/p  TestOK\n")
	assert.Equal(t, 10, strings.Count(out, "      noise\n")+strings.Count(out, "want 4"), "the last ten lines of a message")

	b.Reset()
	printTests(&b, web.BuildTests{})
	assert.Contains(t, b.String(), "no test results")

	url := serveWeb(t, db, "")
	for name, source := range map[string][]string{"data dir": {"--data-dir", data}, "server": {"--server", url}} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, exitOK, run(append([]string{"results", commit[:10], "--tests"}, source...)))
			assert.Equal(t, exitNotFound, run(append([]string{"results", "ffffffffff", "--tests"}, source...)))
			assert.Equal(t, exitUsage, run(append([]string{"results", "--tests"}, source...)))
		})
	}
}
