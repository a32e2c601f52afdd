package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/web"
)

// fakeDispatcher is a web.Backend that answers from a fixed status and
// records the requests it gets.
type fakeDispatcher struct {
	mu       sync.Mutex
	status   *messages.StatusReply
	down     bool
	cancels  []*messages.CancelRequest
	rebuilds []*messages.RebuildRequest
	notifies []*messages.Notify
}

func (f *fakeDispatcher) Status(ctx context.Context) (*messages.StatusReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, fmt.Errorf("dispatcher down")
	}
	return proto.Clone(f.status).(*messages.StatusReply), nil
}

func (f *fakeDispatcher) Cancel(ctx context.Context, req *messages.CancelRequest) (*messages.CancelReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels = append(f.cancels, req)
	for _, j := range f.status.GetJobs() {
		if j.GetJob().GetId() == req.GetJobId() && j.GetState() != messages.JobState_JOB_STATE_DONE {
			return &messages.CancelReply{JobId: req.GetJobId()}, nil
		}
	}
	return &messages.CancelReply{JobId: req.GetJobId(), Error: fmt.Sprintf("job %d is not queued or running", req.GetJobId())}, nil
}

func (f *fakeDispatcher) Rebuild(ctx context.Context, req *messages.RebuildRequest) (*messages.RebuildReply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rebuilds = append(f.rebuilds, req)
	return &messages.RebuildReply{JobId: 99, Build: 2}, nil
}

func (f *fakeDispatcher) Notify(ctx context.Context, req *messages.Notify) (*messages.NotifyAck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notifies = append(f.notifies, req)
	return &messages.NotifyAck{Observers: 1}, nil
}

func (f *fakeDispatcher) setStatus(st *messages.StatusReply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = st
}

const token = "s3cret"

func commitOf(i int) string { return fmt.Sprintf("%040x", i) }

func record(t testing.TB, db *store.DB, id int64, branch string, st messages.Status, finished int64, output string) *messages.Result {
	t.Helper()
	r := &messages.Result{
		Job:     &messages.Job{Id: id, Repo: "/srv/git/proj.git", RepoName: "proj", Commit: commitOf(int(id)), Branches: []string{branch}, Build: 1},
		Attempt: 1, RunnerId: "host/runner-1", Status: st,
		QueuedUnixMs: finished - 300, StartedUnixMs: finished - 200, FinishedUnixMs: finished, LogBytes: int64(len(output)),
	}
	if output != "" {
		_, err := db.AppendLog(r.Job, 1, 0, []byte(output))
		require.NoError(t, err)
	}
	_, err := db.RecordResult(r)
	require.NoError(t, err)
	return r
}

// running is a job the fake dispatcher says runs on runner-2.
var running = &messages.JobRecord{
	Job:   &messages.Job{Id: 50, Repo: "/srv/git/proj.git", RepoName: "proj", Commit: commitOf(50), Branches: []string{"main"}, Build: 1},
	State: messages.JobState_JOB_STATE_RUNNING, Attempt: 2, RunnerId: "host/runner-2", QueuedUnixMs: 1000, AssignedUnixMs: 2000,
}

func baseStatus() *messages.StatusReply {
	now := time.Now().UnixMilli()
	return &messages.StatusReply{
		Role: "dispatcher", Reporter: "127.0.0.1:8000/reporter", Observers: []string{"up"},
		Runners: []*messages.RunnerStatus{
			{RunnerId: "host/runner-1", Incarnation: 1, State: "idle", LastHeartbeatUnixMs: now},
			{RunnerId: "host/runner-2", Incarnation: 1, State: "busy", Job: &messages.JobRef{JobId: 50, Attempt: 2}, LastHeartbeatUnixMs: now},
			{RunnerId: "host/runner-3", Incarnation: 1, State: "idle", LastHeartbeatUnixMs: now - 60_000},
		},
		Jobs:     []*messages.JobRecord{proto.Clone(running).(*messages.JobRecord)},
		Counters: map[string]int64{"reassignments": 3, "stale_results_ignored": 2, "queued": 0},
	}
}

type fixture struct {
	url  string
	db   *store.DB
	disp *fakeDispatcher
}

// start runs a real server on a loopback port over a real SQLite store.
func start(t *testing.T, tok string) *fixture { return startCfg(t, web.Config{Token: tok}) }

// startCfg is start with more of the server's configuration.
func startCfg(t *testing.T, cfg web.Config) *fixture {
	t.Helper()
	db, err := store.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	disp := &fakeDispatcher{status: baseStatus()}
	cfg.DB, cfg.Backend, cfg.Poll = db, disp, 50*time.Millisecond
	srv, err := web.New(cfg)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
	return &fixture{url: "http://" + l.Addr().String(), db: db, disp: disp}
}

func (f *fixture) do(t *testing.T, method, path string, hdr map[string]string, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

func TestAPIReads(t *testing.T) {
	f := start(t, token)
	for i := 1; i <= 12; i++ {
		st, branch := messages.Status_STATUS_PASSED, "main"
		if i%3 == 0 {
			st, branch = messages.Status_STATUS_FAILED, "dev"
		}
		record(t, f.db, int64(i), branch, st, int64(10_000+i), fmt.Sprintf("--- step unit: make test\nrun %d\n", i))
	}
	_, err := f.db.AppendLog(running.Job, 2, 0, []byte("--- step unit: make test\n\x1b[31mhalfway\x1b[0m\n"))
	require.NoError(t, err)

	tests := []struct {
		name     string
		path     string
		wantCode int
		want     []string // substrings of the body
	}{
		{"results", "/api/v1/results?limit=2", 200, []string{`"job_id": 12`, `"job_id": 11`, `"next": "`, `"status": "passed"`, `"duration_ms": 200`, `"queue_wait_ms": 100`}},
		{"results by status and branch", "/api/v1/results?status=failed&branch=dev&repo=proj", 200, []string{`"job_id": 12`, `"job_id": 3`}},
		{"results of an unknown repo", "/api/v1/results?repo=nope", 200, []string{`"results": []`}},
		{"bad status", "/api/v1/results?status=green", 400, []string{`"error": "status: unknown status`}},
		{"bad limit", "/api/v1/results?limit=0", 400, []string{"limit must be"}},
		{"bad cursor", "/api/v1/results?cursor=%21", 400, []string{"cursor"}},
		{"one result with its log", "/api/v1/results/" + commitOf(7), 200, []string{`"job_id": 7`, `"log": "--- step unit: make test\nrun 7\n"`, `"steps": [`, `"name": "unit"`}},
		{"unknown commit", "/api/v1/results/abcdef1234", 404, []string{"no result for commit"}},
		{"not a commit", "/api/v1/results/xyz", 400, []string{"invalid commit"}},
		{"a running job with its log so far", "/api/v1/jobs/50", 200, []string{`"state": "running"`, `"attempt": 2`, `halfway`, `"state": "running"`}},
		{"a finished job", "/api/v1/jobs/5", 200, []string{`"state": "done"`, `"status": "passed"`}},
		{"unknown job", "/api/v1/jobs/4242", 404, []string{"no job 4242"}},
		{"runners", "/api/v1/runners", 200, []string{`"id": "host/runner-2"`, `"state": "busy"`, `"job_id": 50`, `"state": "lost"`}},
		{"queue", "/api/v1/queue", 200, []string{`"job_id": 50`, `"state": "running"`}},
		{"status", "/api/v1/status", 200, []string{`"dispatcher": "ok"`, `"running": 1`, `"reassignments": 3`, `"passed": 8`, `"failed": 4`}},
		{"badge", "/badge/proj/main.svg", 200, []string{"<svg", ">passed<"}},
		{"badge of a failing branch", "/badge/proj/dev.svg", 200, []string{">failed<"}},
		{"badge of an unknown branch", "/badge/proj/feature/x.svg", 200, []string{">unknown<"}},
		{"healthz", "/healthz", 200, []string{"ok"}},
		{"raw log", "/jobs/7/log", 200, []string{"run 7\n"}},
		{"job page", "/jobs/50", 200, []string{`<span class="ansi-fg2">halfway</span>`, `data-stream="/jobs/50/events?attempt=2&amp;offset=`}},
		{"dashboard", "/", 200, []string{`data-commit="` + commitOf(12) + `"`, `class="commit status-running" data-commit="` + commitOf(50), "runner-lost"}},
		{"commit page redirects to its job", "/commits/" + commitOf(9), 200, []string{"build 1", "#9"}},
		{"metrics", "/metrics", 200, []string{"volt_jobs{state=\"running\"} 1", "volt_runners{state=\"lost\"} 1", "volt_reassignments_total 3",
			"volt_stale_results_ignored_total 2", `volt_results{status="failed"} 4`, "volt_observer_poll_duration_seconds", "process_cpu_seconds_total"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := f.do(t, "GET", tt.path, nil, "")
			assert.Equal(t, tt.wantCode, code, body)
			for _, w := range tt.want {
				assert.Contains(t, body, w)
			}
		})
	}
}

func TestAPIPagination(t *testing.T) {
	f := start(t, "")
	for i := 1; i <= 25; i++ {
		record(t, f.db, int64(i), "main", messages.Status_STATUS_PASSED, 10_000+int64(i%5), "")
	}
	seen := map[int64]bool{}
	next := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		q := url.Values{"limit": {"10"}}
		if next != "" {
			q.Set("cursor", next)
		}
		code, body, _ := f.do(t, "GET", "/api/v1/results?"+q.Encode(), nil, "")
		require.Equal(t, 200, code, body)
		var page web.ResultsPage
		require.NoError(t, json.Unmarshal([]byte(body), &page))
		for _, r := range page.Results {
			assert.False(t, seen[r.JobID], "job %d on two pages", r.JobID)
			seen[r.JobID] = true
		}
		if next = page.Next; next == "" {
			break
		}
	}
	assert.Len(t, seen, 25)
}

func TestAPIWrites(t *testing.T) {
	f := start(t, token)
	record(t, f.db, 7, "main", messages.Status_STATUS_FAILED, 10_000, "")
	bearer := map[string]string{"Authorization": "Bearer " + token}
	tests := []struct {
		name     string
		path     string
		hdr      map[string]string
		body     string
		wantCode int
		want     string
	}{
		{"cancel without a token", "/api/v1/jobs/50/cancel", nil, "", 401, "wrong or missing token"},
		{"cancel with a wrong token", "/api/v1/jobs/50/cancel", map[string]string{"Authorization": "Bearer nope"}, "", 401, "token"},
		{"cancel", "/api/v1/jobs/50/cancel", bearer, "", 200, `"cancelled": true`},
		{"cancel a finished job", "/api/v1/jobs/7/cancel", bearer, "", 409, "not queued or running"},
		{"rebuild", "/api/v1/commits/" + commitOf(7)[:8] + "/rebuild", bearer, "", 200, `"job_id": 99`},
		{"rebuild an unknown commit", "/api/v1/commits/abcdef12/rebuild", bearer, "", 404, "never built"},
		{"hook without a token", "/api/v1/hooks/git", nil, "", 401, "token"},
		{"hook with volt's body", "/api/v1/hooks/git", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"},
			`{"repo": "proj", "branch": "main"}`, 200, `"observers": 1`},
		{"hook with a forge's push event", "/api/v1/hooks/git", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"},
			`{"ref": "refs/heads/feature/x", "repository": {"name": "proj"}}`, 200, `"branch": "feature/x"`},
		{"hook with a bad body", "/api/v1/hooks/git", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"},
			`{"ref": `, 400, "body"},
		{"cross-site form post", "/jobs/50/cancel", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"},
			"token=" + token, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := f.do(t, "POST", tt.path, tt.hdr, tt.body)
			assert.Equal(t, tt.wantCode, code, body)
			assert.Contains(t, body, tt.want)
		})
	}
	f.disp.mu.Lock()
	defer f.disp.mu.Unlock()
	require.Len(t, f.disp.cancels, 2)
	assert.Equal(t, token, f.disp.cancels[0].GetToken(), "the token goes on to the dispatcher")
	require.Len(t, f.disp.rebuilds, 1)
	assert.Equal(t, commitOf(7), f.disp.rebuilds[0].GetCommit(), "a prefix is resolved to the full commit")
	assert.Equal(t, "/srv/git/proj.git", f.disp.rebuilds[0].GetRepo())
	require.Len(t, f.disp.notifies, 2)
	assert.Equal(t, "proj", f.disp.notifies[1].GetRepo())
	assert.Equal(t, "feature/x", f.disp.notifies[1].GetBranch())
}

func TestFormsNeedTheToken(t *testing.T) {
	f := start(t, token)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		name, form, wantLocation string
		wantCancels              int
	}{
		{"no token", "", "/jobs/50?error=wrong+or+missing+token", 0},
		{"token", "token=" + token, "/jobs/50", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := noRedirect.PostForm(f.url+"/jobs/50/cancel", mustQuery(tt.form))
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
			assert.Equal(t, tt.wantLocation, resp.Header.Get("Location"))
			f.disp.mu.Lock()
			assert.Len(t, f.disp.cancels, tt.wantCancels)
			f.disp.mu.Unlock()
		})
	}
}

func mustQuery(s string) url.Values {
	v, err := url.ParseQuery(s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestEverythingFromARepoIsEscaped(t *testing.T) {
	f := start(t, "")
	payload := `<script>window.__xss=1</script>`
	r := record(t, f.db, 3, "x"+payload, messages.Status_STATUS_FAILED, 10_000, "out "+payload+"\n\x1b]0;<b>title</b>\x07\x1b[1m"+payload+"\n")
	r.Reason = payload
	for _, path := range []string{"/", "/jobs/3"} {
		code, body, hdr := f.do(t, "GET", path, nil, "")
		require.Equal(t, 200, code)
		assert.NotContains(t, body, "<script>window", path)
		assert.NotContains(t, body, "<b>title", path)
		assert.Contains(t, body, "&lt;script&gt;window.__xss=1&lt;/script&gt;", path)
		assert.Contains(t, hdr.Get("Content-Security-Policy"), "script-src 'self'")
	}
}

// events reads server-sent events from path until stop says enough.
func events(t *testing.T, f *fixture, path string, timeout time.Duration, stop func(event, data string) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", f.url+path, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	event, data := "", []string{}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event != "" && stop(event, strings.Join(data, "\n")) {
				return
			}
			event, data = "", nil
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		}
	}
	t.Fatalf("stream %s ended or timed out (%v) before the expected event", path, ctx.Err())
}

func TestDashboardStreamsNewResults(t *testing.T) {
	f := start(t, "")
	first := true
	events(t, f, "/events", 10*time.Second, func(event, data string) bool {
		require.Equal(t, "dashboard", event)
		if first {
			first = false
			assert.Contains(t, data, `data-commit="`+commitOf(50)+`"`, "the running job shows at once")
			record(t, f.db, 8, "main", messages.Status_STATUS_PASSED, 10_000, "")
			return false
		}
		return strings.Contains(data, `class="commit status-passed" data-commit="`+commitOf(8)+`"`)
	})
}

func TestJobLogStreams(t *testing.T) {
	f := start(t, "")
	job := running.Job
	_, err := f.db.AppendLog(job, 2, 0, []byte("line 1\n"))
	require.NoError(t, err)
	var got strings.Builder
	step := 0
	events(t, f, "/jobs/50/events?attempt=2&offset=0", 10*time.Second, func(event, data string) bool {
		switch event {
		case "log":
			got.WriteString(data)
			if step == 0 && strings.Contains(got.String(), "line 1") {
				step++
				_, err := f.db.AppendLog(job, 2, 7, []byte("\x1b[32mline 2\x1b[0m\n"))
				require.NoError(t, err)
			}
			if step == 1 && strings.Contains(got.String(), "line 2") {
				step++
				// The job ends: the dispatcher forgets it, the result is recorded.
				f.disp.setStatus(&messages.StatusReply{Role: "dispatcher"})
				_, err := f.db.RecordResult(&messages.Result{Job: job, Attempt: 2, Status: messages.Status_STATUS_PASSED,
					StartedUnixMs: 1, FinishedUnixMs: 2, LogBytes: 23})
				require.NoError(t, err)
			}
			return false
		case "done":
			assert.Contains(t, data, `<span class="pill status-passed" id="job-status">passed</span>`)
			return true
		}
		t.Fatalf("unexpected event %q: %s", event, data)
		return true
	})
	assert.Equal(t, "line 1\n<span class=\"ansi-fg3\">line 2</span>\n", got.String())
}

func TestProtectedReadsNeedTheToken(t *testing.T) {
	f := startCfg(t, web.Config{Token: "tok", ProtectReads: true})
	for _, path := range []string{"/", "/api/v1/results", "/api/v1/status", "/metrics", "/events", "/badge/r/main.svg"} {
		code, _, hdr := f.do(t, "GET", path, nil, "")
		require.Equal(t, http.StatusUnauthorized, code, path)
		require.Contains(t, hdr.Get("WWW-Authenticate"), "Basic", path)
		code, _, _ = f.do(t, "GET", path, map[string]string{"Authorization": "Bearer wrong"}, "")
		require.Equal(t, http.StatusUnauthorized, code, path)
	}
	code, _, _ := f.do(t, "GET", "/api/v1/results", map[string]string{"Authorization": "Bearer tok"}, "")
	require.Equal(t, http.StatusOK, code)
	req, err := http.NewRequest("GET", f.url+"/api/v1/results", nil)
	require.NoError(t, err)
	req.SetBasicAuth("anyone", "tok")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the token as the basic-auth password (what a browser sends)")
	code, _, _ = f.do(t, "GET", "/healthz", nil, "")
	require.Equal(t, http.StatusOK, code, "health checks stay open")
}
