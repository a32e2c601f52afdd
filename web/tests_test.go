package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/web"
)

// TestTestsAPI: a build's tests per job, failures first, a test that
// failed then passed on retry marked flaky; a test's history with its
// flake rate; and the two pages that show them.
func TestTestsAPI(t *testing.T) {
	f := start(t, token)
	ctx := context.Background()
	job := func(buildID int64, index int32, build int32, commit, name string) *messages.Job {
		return &messages.Job{Id: buildID + int64(index), BuildId: buildID, Index: index, BuildJobs: 2, Repo: "/srv/app.git", RepoName: "app",
			Commit: commit, Build: build, Branches: []string{"main"}, Cell: &messages.PipelineJob{Key: name, Name: name}}
	}
	rec := func(j *messages.Job, attempt int32, at int64, cases ...store.TestCase) {
		require.NoError(t, f.db.RecordTests(ctx, j, attempt, time.UnixMilli(at), cases))
	}
	c1, c2 := commitOf(60), commitOf(70)
	lint, unit := job(60, 0, 1, c1, "lint"), job(60, 1, 1, c1, "unit 1/2")
	rec(lint, 1, 1000, store.TestCase{Suite: "vet", Name: "vet", Status: store.TestPassed, DurationMS: 1500})
	rec(unit, 1, 1000, store.TestCase{Suite: "pkg", Name: "TestFlaky", Status: store.TestFailed, Message: "timeout <waiting>"},
		store.TestCase{Suite: "pkg", Name: "TestOK", Status: store.TestPassed})
	rec(unit, 2, 2000, store.TestCase{Suite: "pkg", Name: "TestFlaky", Status: store.TestPassed, DurationMS: 20},
		store.TestCase{Suite: "pkg", Name: "TestOK", Status: store.TestPassed},
		store.TestCase{Suite: "pkg", Name: "TestBroken", Status: store.TestFailed, Message: "want 4"})
	rec(job(70, 1, 1, c2, "unit 1/2"), 1, 3000, store.TestCase{Suite: "pkg", Name: "TestFlaky", Status: store.TestPassed})
	_, err := f.db.RecordResult(&messages.Result{Job: lint, Attempt: 1, Status: messages.Status_STATUS_FAILED, FinishedUnixMs: 2500})
	require.NoError(t, err)

	for _, path := range []string{"/api/v2/builds/60/tests", "/api/v2/commits/" + c1[:12] + "/tests"} {
		code, body, _ := f.do(t, "GET", path, nil, "")
		require.Equal(t, http.StatusOK, code, body)
		var bt web.BuildTests
		require.NoError(t, json.Unmarshal([]byte(body), &bt))
		assert.Equal(t, web.BuildTests{BuildID: 60, RepoName: "app", Commit: c1, Build: 1, Jobs: []web.JobTests{
			{Index: 0, JobID: 60, Name: "lint", Attempt: 1, Counts: map[string]int{"passed": 1},
				Tests: []web.TestRun{{Suite: "vet", Name: "vet", Status: "passed", DurationMS: 1500}}},
			{Index: 1, JobID: 61, Name: "unit 1/2", Attempt: 2, Counts: map[string]int{"passed": 2, "failed": 1, "flaky": 1},
				Tests: []web.TestRun{
					{Suite: "pkg", Name: "TestBroken", Status: "failed", Message: "want 4"},
					{Suite: "pkg", Name: "TestFlaky", Status: "passed", DurationMS: 20, Flaky: true},
					{Suite: "pkg", Name: "TestOK", Status: "passed"},
				}},
		}}, bt, path)
	}

	code, body, _ := f.do(t, "GET", "/api/v2/tests?repo=app&suite=pkg&name=TestFlaky", nil, "")
	require.Equal(t, http.StatusOK, code, body)
	var h web.TestHistory
	require.NoError(t, json.Unmarshal([]byte(body), &h))
	require.Len(t, h.Runs, 3)
	assert.Equal(t, []bool{false, true, true}, []bool{h.Runs[0].Flaky, h.Runs[1].Flaky, h.Runs[2].Flaky})
	assert.Equal(t, c2, h.Runs[0].Commit)
	assert.Equal(t, "unit 1/2", h.Runs[1].Job)
	assert.Equal(t, int32(2), h.Runs[1].Attempt)
	assert.Equal(t, int64(61), h.Runs[1].JobID)
	assert.Equal(t, 2, h.Groups)
	assert.Equal(t, 1, h.FlakyGroups)
	assert.InDelta(t, 0.5, h.FlakeRate, 1e-9)

	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/api/v2/builds/61/tests", http.StatusNotFound, "no test results"},
		{"/api/v2/builds/x/tests", http.StatusBadRequest, "positive"},
		{"/api/v2/commits/" + commitOf(99) + "/tests", http.StatusNotFound, "no result"},
		{"/api/v2/commits/xyz/tests", http.StatusBadRequest, "invalid commit"},
		{"/api/v2/tests?repo=app", http.StatusBadRequest, "?name="},
		{"/api/v2/tests?repo=app&name=TestFlaky&limit=0", http.StatusBadRequest, "limit"},
		{"/api/v2/tests?repo=app&name=TestNever", http.StatusNotFound, "no runs"},
	} {
		code, body, _ := f.do(t, "GET", tc.path, nil, "")
		assert.Equal(t, tc.code, code, "%s: %s", tc.path, body)
		assert.Contains(t, body, tc.want, tc.path)
	}

	code, body, _ = f.do(t, "GET", "/builds/60/tests", nil, "")
	require.Equal(t, http.StatusOK, code, body)
	for _, w := range []string{`<a href="/jobs/61">unit 1/2</a>`, `<span class="pill flaky">flaky</span>`,
		`href="/tests?name=TestFlaky&amp;repo=app&amp;suite=pkg"`, "1 failed", "want 4"} {
		assert.Contains(t, body, w)
	}
	assert.Less(t, strings.Index(body, "TestBroken"), strings.Index(body, "TestOK"), "failures first")

	code, body, _ = f.do(t, "GET", "/tests?repo=app&suite=pkg&name=TestFlaky", nil, "")
	require.Equal(t, http.StatusOK, code, body)
	for _, w := range []string{`<span class="pill flaky" id="flaky">flaky</span>`, `50.0% (1 flaky of 2 commit jobs)`, `<a href="/jobs/61">unit 1/2</a>`,
		`<a href="/builds/70/tests">1</a>`, `timeout &lt;waiting&gt;`} {
		assert.Contains(t, body, w)
	}
	code, _, _ = f.do(t, "GET", "/tests?repo=app&name=TestNever", nil, "")
	assert.Equal(t, http.StatusNotFound, code)
}
