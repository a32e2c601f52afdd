package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/voltci/volt/store"
)

// TestRun is one test's result in one attempt of a job, in the test
// endpoints. The fields about the job are set in a test's history (a
// build's listing has them on its JobTests).
type TestRun struct {
	Suite      string `json:"suite"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	DurationMS int64  `json:"duration_ms"`
	// Message says why it failed, errored or was skipped.
	Message string `json:"message,omitempty"`
	// Flaky: on this commit, in this job, the test failed or errored and
	// then passed (a retry: or a rebuild).
	Flaky      bool       `json:"flaky"`
	Commit     string     `json:"commit,omitempty"`
	Build      int32      `json:"build,omitempty"`
	BuildID    int64      `json:"build_id,omitempty"`
	JobID      int64      `json:"job_id,omitempty"`
	Job        string     `json:"job,omitempty"`
	Attempt    int32      `json:"attempt,omitempty"`
	RecordedAt *time.Time `json:"recorded_at,omitempty"`
}

// JobTests is the tests of one job of a build: those of its newest attempt
// that uploaded a report, failures first, then flaky, skipped, passed.
type JobTests struct {
	Index   int32  `json:"index"`
	JobID   int64  `json:"job_id"`
	Name    string `json:"name"`
	Attempt int32  `json:"attempt"`
	// Counts has the number of tests of each status, and "flaky".
	Counts map[string]int `json:"counts"`
	Tests  []TestRun      `json:"tests"`
}

// BuildTests is GET /api/v2/builds/{id}/tests and
// GET /api/v2/commits/{commit}/tests (the commit's newest build with a
// job's result, complete or not).
type BuildTests struct {
	BuildID  int64      `json:"build_id"`
	RepoName string     `json:"repo_name"`
	Commit   string     `json:"commit"`
	Build    int32      `json:"build"`
	Jobs     []JobTests `json:"jobs"`
}

// TestHistory is GET /api/v2/tests?repo=NAME&name=TEST[&suite=S][&limit=N]:
// a test's newest runs across commits and its flake rate over them:
// FlakyGroups / Groups, where a group is one (commit, job, suite) of the
// runs in which the test passed, failed or errored (all of the commit's
// runs are judged, not only those listed), and a flaky one is where it
// failed or errored and then passed.
type TestHistory struct {
	RepoName    string    `json:"repo_name"`
	Suite       string    `json:"suite,omitempty"`
	Name        string    `json:"name"`
	Runs        []TestRun `json:"runs"`
	Groups      int       `json:"groups"`
	FlakyGroups int       `json:"flaky_groups"`
	FlakeRate   float64   `json:"flake_rate"`
}

// Test history limits: ?limit= defaults to 50, at most 500.
const (
	defaultTestRuns = 50
	maxTestRuns     = 500
)

// testRoutes adds the test endpoints and pages to m.
func (s *Server) testRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v2/builds/{id}/tests", s.apiBuildTests)
	m.HandleFunc("GET /api/v2/commits/{commit}/tests", s.apiCommitTests)
	m.HandleFunc("GET /api/v2/tests", s.apiTestHistory)
	m.HandleFunc("GET /builds/{id}/tests", s.buildTestsPage)
	m.HandleFunc("GET /tests", s.testPage)
}

func runOf(r store.TestRun) TestRun {
	return TestRun{Suite: r.Suite, Name: r.Name, Status: r.Status, DurationMS: r.DurationMS, Message: r.Message, Flaky: r.Flaky}
}

// NewBuildTests is the API's view of the tests store.DB.BuildTests
// returns for build buildID.
func NewBuildTests(buildID int64, jobs []store.JobTests) BuildTests {
	out := BuildTests{BuildID: buildID, Jobs: []JobTests{}}
	for _, j := range jobs {
		jt := JobTests{Index: j.Index, JobID: j.JobID, Name: j.Name, Attempt: j.Attempt, Counts: map[string]int{}, Tests: []TestRun{}}
		for _, r := range j.Tests {
			out.RepoName, out.Commit, out.Build = r.RepoName, r.Commit, r.Build
			jt.Counts[r.Status]++
			if r.Flaky {
				jt.Counts["flaky"]++
			}
			jt.Tests = append(jt.Tests, runOf(r))
		}
		out.Jobs = append(out.Jobs, jt)
	}
	return out
}

// buildTests reads the tests of build {id}, answering the request itself
// (as JSON) when it cannot.
func (s *Server) buildTests(w http.ResponseWriter, r *http.Request) (BuildTests, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, http.StatusBadRequest, "build ids are positive numbers")
		return BuildTests{}, false
	}
	return s.testsOfBuild(w, id)
}

func (s *Server) testsOfBuild(w http.ResponseWriter, id int64) (BuildTests, bool) {
	jobs, err := s.db.BuildTests(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, http.StatusNotFound, "build %d has no test results: its jobs uploaded no report (declare reports: in .volt.yml), have not finished, or were pruned", id)
		return BuildTests{}, false
	case err != nil:
		s.fail(w, http.StatusInternalServerError, "read the tests: %v", err)
		return BuildTests{}, false
	}
	return NewBuildTests(id, jobs), true
}

func (s *Server) apiBuildTests(w http.ResponseWriter, r *http.Request) {
	if bt, ok := s.buildTests(w, r); ok {
		s.writeJSON(w, http.StatusOK, bt)
	}
}

func (s *Server) apiCommitTests(w http.ResponseWriter, r *http.Request) {
	b, err := s.db.BuildForCommit(r.PathValue("commit"))
	switch {
	case errors.Is(err, store.ErrInvalidCommit), errors.Is(err, store.ErrAmbiguous):
		s.fail(w, http.StatusBadRequest, "%v", err)
		return
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, http.StatusNotFound, "no result for commit %s (it may still be queued or running)", r.PathValue("commit"))
		return
	case err != nil:
		s.fail(w, http.StatusInternalServerError, "look up the commit: %v", err)
		return
	}
	if bt, ok := s.testsOfBuild(w, b.ID); ok {
		s.writeJSON(w, http.StatusOK, bt)
	}
}

// testHistory reads the history ?repo=&name=[&suite=][&limit=] asks for;
// code and msg say why not.
func (s *Server) testHistory(r *http.Request) (h TestHistory, code int, msg string) {
	q := r.URL.Query()
	h = TestHistory{RepoName: q.Get("repo"), Suite: q.Get("suite"), Name: q.Get("name"), Runs: []TestRun{}}
	if h.RepoName == "" || h.Name == "" {
		return h, http.StatusBadRequest, "a test's history needs ?repo= (the repository's name) and ?name= (the test's), and may take ?suite="
	}
	limit := defaultTestRuns
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxTestRuns {
			return h, http.StatusBadRequest, fmt.Sprintf("limit must be from 1 to %d", maxTestRuns)
		}
		limit = n
	}
	got, err := s.db.TestHistory(store.TestQuery{RepoName: h.RepoName, Suite: h.Suite, Name: h.Name, Limit: limit})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return h, http.StatusNotFound, fmt.Sprintf("no runs of test %s in repository %s (check both names: the repository's is the one the dashboard shows)", h.Name, h.RepoName)
	case err != nil:
		return h, http.StatusInternalServerError, "read the test's history: " + err.Error()
	}
	h.Groups, h.FlakyGroups, h.FlakeRate = got.Groups, got.Flaky, got.FlakeRate
	for _, r := range got.Runs {
		v := runOf(r)
		v.Commit, v.Build, v.BuildID, v.JobID, v.Job, v.Attempt = r.Commit, r.Build, r.BuildID, r.JobID, r.JobName, r.Attempt
		v.RecordedAt = msTime(r.FinishedUnixMS)
		h.Runs = append(h.Runs, v)
	}
	return h, http.StatusOK, ""
}

func (s *Server) apiTestHistory(w http.ResponseWriter, r *http.Request) {
	h, code, msg := s.testHistory(r)
	if msg != "" {
		s.fail(w, code, "%s", msg)
		return
	}
	s.writeJSON(w, http.StatusOK, h)
}

// testRow is one test in the pages.
type testRow struct {
	TestRun
	Duration   string
	HistoryURL string
	When       string
}

func (s *Server) row(repo string, r TestRun) testRow {
	q := url.Values{"repo": {repo}, "suite": {r.Suite}, "name": {r.Name}}
	row := testRow{TestRun: r, Duration: (time.Duration(r.DurationMS) * time.Millisecond).String(), HistoryURL: "/tests?" + q.Encode()}
	if r.RecordedAt != nil {
		row.When = r.RecordedAt.Local().Format(time.DateTime)
	}
	return row
}

type buildTestsView struct {
	BuildTests
	Jobs []jobTestsView
}

type jobTestsView struct {
	JobTests
	Rows []testRow
}

func (s *Server) buildTestsPage(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	jobs, err := s.db.BuildTests(id)
	if err != nil {
		s.lookupError(w, fmt.Sprintf("the tests of build %d", id), err)
		return
	}
	bt := NewBuildTests(id, jobs)
	v := buildTestsView{BuildTests: bt}
	for _, j := range bt.Jobs {
		jv := jobTestsView{JobTests: j}
		for _, t := range j.Tests {
			jv.Rows = append(jv.Rows, s.row(bt.RepoName, t))
		}
		v.Jobs = append(v.Jobs, jv)
	}
	s.render(w, "tests.html", v)
}

type testPageView struct {
	TestHistory
	Rows      []testRow
	FlakeRate string
}

func (s *Server) testPage(w http.ResponseWriter, r *http.Request) {
	h, code, msg := s.testHistory(r)
	if msg != "" {
		http.Error(w, msg, code)
		return
	}
	v := testPageView{TestHistory: h, FlakeRate: strconv.FormatFloat(100*h.FlakeRate, 'f', 1, 64) + "%"}
	for _, t := range h.Runs {
		v.Rows = append(v.Rows, s.row(h.RepoName, t))
	}
	s.render(w, "test.html", v)
}
