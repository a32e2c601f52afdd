package testreport_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/testreport"
)

// TestRecordReport: a go test -json report of a failing test, then one of
// its retry passing, leave the test flaky in the build; a JUnit report of
// the same attempt adds its cases; a report that does not parse stores
// nothing and says which job sent it.
func TestRecordReport(t *testing.T) {
	db, err := store.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	ctx := context.Background()
	job := &messages.Job{Id: 7, BuildId: 7, BuildJobs: 1, Repo: "/srv/app.git", RepoName: "app", Commit: "abcdef0123456789abcdef0123456789abcdef01",
		Build: 1, Branches: []string{"main"}, Cell: &messages.PipelineJob{Key: "test", Name: "test", Retry: 1}}
	report := func(action, output string) []byte {
		return []byte(`{"Action":"run","Package":"example.com/app","Test":"TestNet"}
{"Action":"output","Package":"example.com/app","Test":"TestNet","Output":"` + output + `\n"}
{"Action":"` + action + `","Package":"example.com/app","Test":"TestNet","Elapsed":0.25}
`)
	}
	require.NoError(t, testreport.RecordReport(ctx, db, job, 1, messages.KindGoTestJSON, report("fail", "dial tcp: connection reset")))
	require.NoError(t, testreport.RecordReport(ctx, db, job, 2, messages.KindGoTestJSON, report("pass", "ok")))
	require.NoError(t, testreport.RecordReport(ctx, db, job, 2, messages.KindJUnit,
		[]byte(`<testsuite name="ui"><testcase classname="ui.Login" name="shows errors" time="0.5"><failure message="no banner"/></testcase></testsuite>`)))

	err = testreport.RecordReport(ctx, db, job, 3, messages.KindJUnit, []byte(`<testsuite><testcase name="x">`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "job 7 (test) attempt 3")

	jobs, err := db.BuildTests(7)
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	assert.Equal(t, int32(2), jobs[0].Attempt, "the broken report of attempt 3 stored nothing")
	require.Len(t, jobs[0].Tests, 2)
	assert.Equal(t, store.TestCase{Suite: "ui.Login", Name: "shows errors", Status: store.TestFailed, DurationMS: 500, Message: "no banner"}, jobs[0].Tests[0].TestCase)
	assert.Equal(t, store.TestCase{Suite: "example.com/app", Name: "TestNet", Status: store.TestPassed, DurationMS: 250}, jobs[0].Tests[1].TestCase)
	assert.True(t, jobs[0].Tests[1].Flaky)

	h, err := db.TestHistory(store.TestQuery{RepoName: "app", Name: "TestNet", Limit: 10})
	require.NoError(t, err)
	require.Len(t, h.Runs, 2)
	assert.Contains(t, h.Runs[1].Message, "connection reset")
	assert.Equal(t, 1.0, h.FlakeRate)
}
