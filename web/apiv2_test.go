package web_test

import (
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/web"
)

// pipelineBuild is build id of four jobs, lint → test (go=1.25) and
// test (go=1.26) → package, as the dispatcher holds it while it runs: lint
// passed, the first test failed (on its second attempt), the second runs
// (retried once after a failure), package waits.
func pipelineBuild(id int64) []*messages.JobRecord {
	job := func(i int32, key string, matrix []*messages.MatrixValue, needs ...int32) *messages.Job {
		return &messages.Job{Id: id + int64(i), BuildId: id, Index: i, BuildJobs: 4, Repo: "/srv/git/app.git", RepoName: "app",
			Commit: commitOf(int(id)), Branches: []string{"main"}, Build: 1, Subject: "add the pipeline",
			Cell: &messages.PipelineJob{Key: key, Name: messages.CellName(key, matrix, 0, 0), Matrix: matrix, Needs: needs}}
	}
	goV := func(v string) []*messages.MatrixValue { return []*messages.MatrixValue{{Name: "go", Value: v}} }
	lint, t125, t126, pkg := job(0, "lint", nil), job(1, "test", goV("1.25"), 0), job(2, "test", goV("1.26"), 0), job(3, "package", nil, 1, 2)
	const t0 = 1_700_000_000_000
	return []*messages.JobRecord{
		{Job: lint, State: messages.JobState_JOB_STATE_DONE, Attempt: 1, RunnerId: "host/runner-1", QueuedUnixMs: t0,
			Result: &messages.Result{Job: lint, Attempt: 1, RunnerId: "host/runner-1", Status: messages.Status_STATUS_PASSED,
				QueuedUnixMs: t0, StartedUnixMs: t0 + 100, FinishedUnixMs: t0 + 1100}},
		{Job: t125, State: messages.JobState_JOB_STATE_DONE, Attempt: 2, RunnerId: "host/runner-2", QueuedUnixMs: t0 + 1100,
			Result: &messages.Result{Job: t125, Attempt: 2, RunnerId: "host/runner-2", Status: messages.Status_STATUS_FAILED, FailedStep: "test", ExitCode: 1,
				QueuedUnixMs: t0 + 1100, StartedUnixMs: t0 + 1200, FinishedUnixMs: t0 + 3200}},
		{Job: t126, State: messages.JobState_JOB_STATE_RUNNING, Attempt: 2, Retries: 1, RunnerId: "host/runner-1", QueuedUnixMs: t0 + 1100, AssignedUnixMs: t0 + 1300},
		{Job: pkg, State: messages.JobState_JOB_STATE_QUEUED, QueuedUnixMs: t0 + 1100, Waiting: "needs test (go=1.26)"},
	}
}

// withBuild puts recs where they are while a build runs: the results of
// the jobs that ended in the store, as the reporter records them, and the
// others in the fake dispatcher's memory (beside its running job), as it
// answers the web server (open jobs only).
func (f *fixture) withBuild(t *testing.T, recs []*messages.JobRecord) {
	t.Helper()
	st := baseStatus()
	for _, r := range recs {
		if r.GetState() == messages.JobState_JOB_STATE_DONE {
			_, err := f.db.RecordResult(r.GetResult())
			require.NoError(t, err)
			continue
		}
		st.Jobs = append(st.Jobs, proto.Clone(r).(*messages.JobRecord))
	}
	f.disp.setStatus(st)
}

func getJSON[T any](t *testing.T, f *fixture, path string) T {
	t.Helper()
	code, body, hdr := f.do(t, "GET", path, nil, "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, "application/json; charset=utf-8", hdr.Get("Content-Type"))
	var v T
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

// TestAPIv2Build: a build in flight shows its jobs with their cells, needs,
// states, attempts, runners and waiting reasons, and its aggregate state;
// a finished build of one job (the single-list format) is one job named
// "build".
func TestAPIv2Build(t *testing.T) {
	f := start(t, token)
	f.withBuild(t, pipelineBuild(60))
	record(t, f.db, 5, "main", messages.Status_STATUS_FAILED, 10_000, "--- step unit: make test\nno good\n")

	b := getJSON[web.BuildView](t, f, "/api/v2/builds/60")
	assert.Equal(t, int64(60), b.BuildID)
	assert.Equal(t, "app", b.RepoName)
	assert.Equal(t, commitOf(60), b.Commit)
	assert.Equal(t, []string{"main"}, b.Branches)
	assert.Equal(t, int32(1), b.Number)
	assert.Equal(t, "running", b.State)
	assert.Equal(t, "running", b.Status)
	assert.Equal(t, 4, b.JobCount)
	assert.Equal(t, map[string]int{"passed": 1, "failed": 1, "running": 1, "queued": 1}, b.Counts)
	assert.Equal(t, "/builds/60", b.PageURL)
	require.Len(t, b.Jobs, 4)
	type row struct {
		Index   int32
		JobID   int64
		Name    string
		Key     string
		Needs   []int32
		State   string
		Status  string
		Attempt int32
		Retries int32
		Runner  string
		Waiting string
	}
	var got []row
	for _, j := range b.Jobs {
		got = append(got, row{j.Index, j.JobID, j.Name, j.Key, j.Needs, j.State, j.Status, j.Attempt, j.Retries, j.Runner, j.Waiting})
	}
	assert.Equal(t, []row{
		{0, 60, "lint", "lint", []int32{}, "done", "passed", 1, 0, "host/runner-1", ""},
		{1, 61, "test (go=1.25)", "test", []int32{0}, "done", "failed", 2, 0, "host/runner-2", ""},
		{2, 62, "test (go=1.26)", "test", []int32{0}, "running", "running", 2, 1, "host/runner-1", ""},
		{3, 63, "package", "package", []int32{1, 2}, "queued", "queued", 0, 0, "", "needs test (go=1.26)"},
	}, got)
	assert.Equal(t, []web.MatrixValue{{Name: "go", Value: "1.25"}}, b.Jobs[1].Matrix)
	assert.Equal(t, "test", b.Jobs[1].FailedStep)
	assert.Equal(t, int64(2000), *b.Jobs[1].DurationMS)
	assert.Equal(t, "/builds/60/jobs/1", b.Jobs[1].PageURL)
	assert.Equal(t, "/api/v2/builds/60/jobs/1/log", b.Jobs[1].LogURL)
	assert.Equal(t, "/api/v2/builds/60/jobs/1/artifacts", b.Jobs[1].ArtifactsURL)

	// The raw JSON keeps its field names (a contract, like /api/v1's).
	_, body, _ := f.do(t, "GET", "/api/v2/builds/60", nil, "")
	for _, w := range []string{`"build_id": 60`, `"job_count": 4`, `"counts": {`, `"jobs": [`, `"index": 3`, `"needs": [`, `"waiting": "needs test (go=1.26)"`, `"matrix": [`} {
		assert.Contains(t, body, w)
	}

	one := getJSON[web.BuildView](t, f, "/api/v2/builds/5")
	assert.Equal(t, "done", one.State)
	assert.Equal(t, "failed", one.Status)
	require.Len(t, one.Jobs, 1)
	assert.Equal(t, "build", one.Jobs[0].Name)
	assert.Empty(t, one.Jobs[0].Key)
	assert.Nil(t, one.Jobs[0].Shard)
	assert.Equal(t, map[string]int{"failed": 1}, one.Counts)
	require.NotNil(t, one.DurationMS)
	assert.Equal(t, int64(200), *one.DurationMS)

	code, body, _ := f.do(t, "GET", "/api/v2/builds/5/jobs/0/log", nil, "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "--- step unit: make test\nno good\n", body)
	// Each job of a build has its own log: a finished one's from its
	// result, a running one's so far.
	recs := pipelineBuild(60)
	_, err := f.db.AppendLog(recs[1].Job, 2, 0, []byte("FAIL: TestThing\n"))
	require.NoError(t, err)
	_, err = f.db.AppendLog(recs[2].Job, 2, 0, []byte("ok so far\n"))
	require.NoError(t, err)
	for path, want := range map[string]string{"/api/v2/builds/60/jobs/1/log": "FAIL: TestThing\n", "/api/v2/builds/60/jobs/2/log": "ok so far\n", "/api/v2/builds/60/jobs/3/log": ""} {
		code, body, _ := f.do(t, "GET", path, nil, "")
		assert.Equal(t, http.StatusOK, code, path)
		assert.Equal(t, want, body, path)
	}

	for _, tt := range []struct {
		name, path string
		code       int
		want       string
	}{
		{"a job's id is no build's", "/api/v2/builds/62", 404, "62 is job 2 of build 60"},
		{"unknown build", "/api/v2/builds/4242", 404, "no such build"},
		{"not a number", "/api/v2/builds/x", 400, "build ids are positive numbers"},
		{"a job past the build's", "/api/v2/builds/60/jobs/4/log", 404, "build 60 has 4 jobs"},
		{"a job index that is no number", "/api/v2/builds/60/jobs/-1/log", 404, "build 60 has 4 jobs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := f.do(t, "GET", tt.path, nil, "")
			assert.Equal(t, tt.code, code, body)
			assert.Contains(t, body, tt.want)
		})
	}
}

// TestAPIv2Builds: the list starts with the builds in flight, then the
// finished ones newest first, each with its job count and counts per
// status, and filters by status.
func TestAPIv2Builds(t *testing.T) {
	f := start(t, "")
	recs := pipelineBuild(60)
	f.withBuild(t, recs)
	for i := 1; i <= 3; i++ {
		st := messages.Status_STATUS_PASSED
		if i == 2 {
			st = messages.Status_STATUS_FAILED
		}
		record(t, f.db, int64(i), "main", st, int64(10_000+i), "")
	}

	page := getJSON[web.BuildsPage](t, f, "/api/v2/builds")
	var ids []int64
	for _, b := range page.Builds {
		ids = append(ids, b.BuildID)
	}
	assert.Equal(t, []int64{60, 50, 3, 2, 1}, ids, "in flight first (newest first), then finished")
	assert.Equal(t, 4, page.Builds[0].JobCount)
	assert.Equal(t, map[string]int{"passed": 1, "failed": 1, "running": 1, "queued": 1}, page.Builds[0].Counts)
	assert.Equal(t, "running", page.Builds[0].Status)
	assert.Equal(t, "failed", page.Builds[3].Status)
	assert.Equal(t, 1, page.Builds[3].JobCount)
	assert.Empty(t, page.Next)

	failed := getJSON[web.BuildsPage](t, f, "/api/v2/builds?status=failed")
	require.Len(t, failed.Builds, 1)
	assert.Equal(t, int64(2), failed.Builds[0].BuildID)
	runningOnly := getJSON[web.BuildsPage](t, f, "/api/v2/builds?status=running&repo=app")
	require.Len(t, runningOnly.Builds, 1)
	assert.Equal(t, int64(60), runningOnly.Builds[0].BuildID)

	// Once every job ended, the build is done with the aggregate status.
	recs[2].State, recs[2].Result = messages.JobState_JOB_STATE_DONE,
		&messages.Result{Job: recs[2].Job, Attempt: 1, Status: messages.Status_STATUS_PASSED, StartedUnixMs: 1, FinishedUnixMs: 2}
	recs[3].State, recs[3].Waiting, recs[3].Result = messages.JobState_JOB_STATE_DONE, "",
		&messages.Result{Job: recs[3].Job, Status: messages.Status_STATUS_SKIPPED, Reason: "a job it needs failed"}
	f.withBuild(t, recs)
	b := getJSON[web.BuildView](t, f, "/api/v2/builds/60")
	assert.Equal(t, "done", b.State)
	assert.Equal(t, "failed", b.Status, "a failed job fails the build")
	assert.Equal(t, map[string]int{"passed": 2, "failed": 1, "skipped": 1}, b.Counts)
	require.NotNil(t, b.FinishedAt)
	page = getJSON[web.BuildsPage](t, f, "/api/v2/builds?repo=app")
	require.Len(t, page.Builds, 1, "a finished build of four jobs is listed once")
	assert.Equal(t, int64(60), page.Builds[0].BuildID)
	assert.Equal(t, "failed", page.Builds[0].Status)
	assert.Equal(t, 4, page.Builds[0].JobCount)

	for _, bad := range []string{"?status=green", "?limit=0", "?cursor=!!"} {
		code, body, _ := f.do(t, "GET", "/api/v2/builds"+bad, nil, "")
		assert.Equal(t, http.StatusBadRequest, code, bad+": "+body)
	}
}

// TestAPIv2Cancel: cancelling a build needs the token and asks the
// dispatcher to cancel the build by its id; an id that is no build's is a
// 404 and never reaches the dispatcher.
func TestAPIv2Cancel(t *testing.T) {
	f := start(t, token)
	recs := pipelineBuild(60)
	recs[0].State, recs[0].Result = messages.JobState_JOB_STATE_RUNNING, nil // the fake cancels what runs
	f.withBuild(t, recs)
	auth := map[string]string{"Authorization": "Bearer " + token}

	code, body, _ := f.do(t, "POST", "/api/v2/builds/60/cancel", nil, "")
	assert.Equal(t, http.StatusUnauthorized, code, body)
	code, body, _ = f.do(t, "POST", "/api/v2/builds/61/cancel", auth, "")
	assert.Equal(t, http.StatusNotFound, code, body)
	code, body, _ = f.do(t, "POST", "/api/v2/builds/60/cancel", auth, "")
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"build_id": 60, "cancelled": true}`, body)
	cancels := f.disp.cancelled()
	require.Len(t, cancels, 1)
	assert.Equal(t, int64(60), cancels[0].GetJobId())
	assert.Equal(t, token, cancels[0].GetToken())
}

// TestBuildPage: the build page draws a box per job and an arrow per need,
// links each job's log, tests and artifacts, and follows the build while
// it runs; a job's page under its build shows its log.
func TestBuildPage(t *testing.T) {
	f := start(t, "")
	recs := pipelineBuild(60)
	recs[3].Job.Cell.Name = `package "<script>window.__xss=1</script>`
	f.withBuild(t, recs)
	_, err := f.db.AppendLog(recs[2].Job, 2, 0, []byte("--- step test: go test\nok so far\n"))
	require.NoError(t, err)

	code, body, _ := f.do(t, "GET", "/builds/60", nil, "")
	require.Equal(t, http.StatusOK, code, body)
	for _, w := range []string{
		`id="job-0"`, `id="job-3"`, `class="job status-failed" id="job-1"`, `data-name="test (go=1.26)"`,
		`id="need-0-1"`, `id="need-0-2"`, `id="need-1-3"`, `id="need-2-3"`,
		`href="/builds/60/jobs/2#log"`, `href="/builds/60/jobs/2#tests"`, `href="/builds/60/jobs/2#artifacts"`,
		`data-stream="/builds/60/events"`, "needs test (go=1.26)",
	} {
		assert.Contains(t, body, w)
	}
	assert.NotContains(t, body, "<script>window", "a job's name from .volt.yml is escaped")
	assert.Contains(t, body, `data-name="package &#34;&lt;script&gt;window.__xss=1&lt;/script&gt;"`)

	code, body, _ = f.do(t, "GET", "/builds/60/jobs/2", nil, "")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "ok so far")
	assert.Contains(t, body, `<a href="/builds/60">#60</a> (4 jobs)`)
	assert.Contains(t, body, "test (go=1.26) · build 60")
	assert.Contains(t, body, "None yet: a job uploads its artifacts after its steps.")
	code, _, _ = f.do(t, "GET", "/builds/61/jobs/1", nil, "")
	assert.Equal(t, http.StatusNotFound, code, "job 61 is not job 1 of a build 61")

	// A job's page lists the files it kept, each a download.
	content := []byte("coverage: 81%\n")
	_, err = f.db.AppendArtifact(recs[1].Job, 2, "out/cover age.txt", messages.KindArtifact, 0, content)
	require.NoError(t, err)
	sum := sha256.Sum256(content)
	kept, err := f.db.CloseArtifact(61, 2, "out/cover age.txt", int64(len(content)), sum[:], 0o644)
	require.NoError(t, err)
	require.True(t, kept)
	code, body, _ = f.do(t, "GET", "/builds/60/jobs/1", nil, "")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `<a href="/api/v2/builds/60/jobs/1/artifacts/out/cover%20age.txt" download>out/cover age.txt</a> <small>14 bytes</small>`)
	code, body, _ = f.do(t, "GET", "/api/v2/builds/60/jobs/1/artifacts/out/cover%20age.txt", nil, "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, string(content), body)

	// The events stream sends the live part, then the final one once the
	// build is done.
	ended := false
	events(t, f, "/builds/60/events", 10*time.Second, func(event, data string) bool {
		if !ended {
			require.Equal(t, "build", event)
			assert.Contains(t, data, `class="job status-running" id="job-2"`)
			for i, st := range []messages.Status{messages.Status_STATUS_PASSED, messages.Status_STATUS_SKIPPED} {
				r := recs[2+i]
				r.State, r.Waiting, r.Result = messages.JobState_JOB_STATE_DONE, "", &messages.Result{Job: r.Job, Attempt: r.Attempt, Status: st}
			}
			f.withBuild(t, recs)
			ended = true
			return false
		}
		if event != "done" {
			return false
		}
		assert.Contains(t, data, `class="job status-skipped" id="job-3"`)
		assert.Contains(t, data, `id="build-status">failed<`)
		return true
	})
}

// TestDashboardNamesBuilds: the dashboard's queue lists each job with its
// build (linked to the build page), its name and why it waits; a
// finished build's row and its commit's address open its build page.
func TestDashboardNamesBuilds(t *testing.T) {
	f := start(t, "")
	f.withBuild(t, pipelineBuild(60))
	record(t, f.db, 5, "main", messages.Status_STATUS_PASSED, 10_000, "")
	code, body, _ := f.do(t, "GET", "/", nil, "")
	require.Equal(t, http.StatusOK, code, body)
	for _, w := range []string{
		`data-job="63" data-build="60"><td><a href="/builds/60">#60</a></td><td><a href="/jobs/63">package</a></td>`,
		`<small class="waiting">needs test (go=1.26)</small>`,
		`data-commit="` + commitOf(5) + `" data-job="5" data-build="5"><td><span class="pill status-passed">passed</span></td><td><a href="/builds/5">`,
	} {
		assert.Contains(t, body, w)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(f.url + "/commits/" + commitOf(5))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/builds/5", resp.Header.Get("Location"), "a commit's page is its newest build's")
}

// TestBuildPageForms: the build page's Cancel and Rebuild forms go back to
// a build page: the cancelled build's, or the new build's.
func TestBuildPageForms(t *testing.T) {
	f := start(t, "")
	recs := pipelineBuild(60)
	recs[0].State, recs[0].Result = messages.JobState_JOB_STATE_RUNNING, nil // the fake cancels what runs
	f.withBuild(t, recs)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range []struct{ action, want string }{
		{"/jobs/60/cancel", "/builds/60"},
		{"/jobs/60/rebuild", "/builds/99"}, // the fake dispatcher's new build
	} {
		resp, err := noFollow.PostForm(f.url+tt.action, map[string][]string{"page": {"build"}})
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode, tt.action)
		assert.Equal(t, tt.want, resp.Header.Get("Location"), tt.action)
	}
	cancels := f.disp.cancelled()
	require.Len(t, cancels, 1)
	assert.Equal(t, int64(60), cancels[0].GetJobId())
}

// cancelled is what the fake dispatcher was asked to cancel so far.
func (f *fakeDispatcher) cancelled() []*messages.CancelRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*messages.CancelRequest(nil), f.cancels...)
}
