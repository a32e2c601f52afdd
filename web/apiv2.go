package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/voltci/volt/messages"
)

// /api/v2 speaks of builds and their jobs: a build is one commit's
// pipeline, run once; a job is one cell of it (docs/pipelines.md). /api/v1
// goes on answering as before, its "jobs" being builds.

// MatrixValue is one matrix variable's value in a job's cell.
type MatrixValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Shard is a job's shard: Index counts from 0 (VOLT_SHARD_INDEX), Total is
// VOLT_SHARD_TOTAL.
type Shard struct {
	Index int32 `json:"index"`
	Total int32 `json:"total"`
}

// BuildJob is one job of a build in /api/v2 and on the build page.
type BuildJob struct {
	// Index is the job's place in its build; its id is the build's id
	// plus Index.
	Index int32  `json:"index"`
	JobID int64  `json:"job_id"`
	Name  string `json:"name"`
	// Key is the job's name under jobs: ("" for the one job of a
	// single-list build).
	Key    string        `json:"key,omitempty"`
	Matrix []MatrixValue `json:"matrix,omitempty"`
	Shard  *Shard        `json:"shard,omitempty"`
	// Needs are the indexes of the jobs this one waits for.
	Needs        []int32 `json:"needs"`
	AllowFailure bool    `json:"allow_failure,omitempty"`
	// State is queued, running or done ("unknown" when neither the
	// dispatcher nor the store knows the job just now).
	State string `json:"state"`
	// Status is the job's final status once done (passed, failed,
	// timed_out, errored, cancelled, skipped), else its State.
	Status  string `json:"status"`
	Attempt int32  `json:"attempt"`
	// Retries counts the runs after a failure its retry: allowed.
	Retries int32  `json:"retries,omitempty"`
	Runner  string `json:"runner,omitempty"`
	// Waiting says why a queued job has not started ("no runner has
	// labels gpu").
	Waiting    string     `json:"waiting,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	FailedStep string     `json:"failed_step,omitempty"`
	ExitCode   int32      `json:"exit_code"`
	QueuedAt   *time.Time `json:"queued_at,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	DurationMS *int64     `json:"duration_ms,omitempty"`
	LogBytes   int64      `json:"log_bytes"`
	// PageURL shows the job (log, tests); LogURL is its raw log;
	// ArtifactsURL lists its artifacts.
	PageURL      string `json:"page_url"`
	LogURL       string `json:"log_url"`
	ArtifactsURL string `json:"artifacts_url"`
}

// BuildSummary is one build in GET /api/v2/builds.
type BuildSummary struct {
	// BuildID is the id of the build's first job.
	BuildID  int64    `json:"build_id"`
	Repo     string   `json:"repo"`
	RepoName string   `json:"repo_name"`
	Commit   string   `json:"commit"`
	Subject  string   `json:"subject,omitempty"`
	Branches []string `json:"branches"`
	// Number counts the builds of the commit: 1, then 2 for a rebuild.
	Number int32 `json:"number"`
	// State is queued (no job started), running or done.
	State string `json:"state"`
	// Status is the aggregate of the jobs' statuses once done
	// (messages.Aggregate), else State.
	Status   string `json:"status"`
	JobCount int    `json:"job_count"`
	// Counts are how many jobs have each status (BuildJob.Status).
	Counts     map[string]int `json:"counts"`
	QueuedAt   *time.Time     `json:"queued_at,omitempty"`
	StartedAt  *time.Time     `json:"started_at,omitempty"`
	FinishedAt *time.Time     `json:"finished_at,omitempty"`
	DurationMS *int64         `json:"duration_ms,omitempty"`
	PageURL    string         `json:"page_url"`
}

// BuildView is GET /api/v2/builds/{id}: the build with its jobs in index
// order.
type BuildView struct {
	BuildSummary
	Jobs []BuildJob `json:"jobs"`
}

// BuildsPage is the answer of GET /api/v2/builds.
type BuildsPage struct {
	Builds []BuildSummary `json:"builds"`
	// Next is the cursor of the next page ("" on the last page): pass it
	// back as ?cursor= with the same filters.
	Next string `json:"next,omitempty"`
}

// BuildQuery selects a page of builds, newest first: those in flight
// (first page only), then finished ones. Empty fields match everything.
type BuildQuery struct {
	RepoName, Repo, Branch string
	// Status is a final status name, or queued or running.
	Status string
	Limit  int
	// Cursor is BuildsPage.Next of the previous page.
	Cursor string
}

// buildSource is what /api/v2 and the build page need of the stores.
type buildSource interface {
	// Builds returns a page of builds matching q.
	Builds(ctx context.Context, q BuildQuery) (BuildsPage, error)
	// Build returns build id with its jobs, or an error wrapping
	// errNoBuild.
	Build(ctx context.Context, id int64) (*BuildView, error)
	// CopyJobLog writes the log of the newest attempt of job index of
	// build id to w.
	CopyJobLog(ctx context.Context, w io.Writer, id int64, index int32) (int64, error)
}

// errNoBuild is wrapped by a buildSource for an id that is no build's.
var errNoBuild = errors.New("no such build")

// stateUnknown is the state and status of a job neither the dispatcher
// nor the store knows just now (the dispatcher did not answer).
const stateUnknown = "unknown"

// finish fills a build's summary from its jobs: state, aggregate status,
// counts and times.
func (b *BuildView) finish() {
	b.JobCount, b.Counts = len(b.Jobs), map[string]int{}
	b.PageURL = fmt.Sprintf("/builds/%d", b.BuildID)
	done, started := 0, false
	var statuses []messages.Status
	var allow []bool
	var queued, start, end int64
	for _, j := range b.Jobs {
		b.Counts[j.Status]++
		if j.State == stateDone {
			done++
			st, err := messages.ParseStatus(j.Status)
			if err == nil {
				statuses = append(statuses, st)
				allow = append(allow, j.AllowFailure)
			}
		}
		if j.Attempt > 0 || j.State == stateDone || j.State == stateRunning {
			started = true
		}
		if t := j.QueuedAt; t != nil && (queued == 0 || t.UnixMilli() < queued) {
			queued = t.UnixMilli()
		}
		if t := j.StartedAt; t != nil && (start == 0 || t.UnixMilli() < start) {
			start = t.UnixMilli()
		}
		if t := j.FinishedAt; t != nil && t.UnixMilli() > end {
			end = t.UnixMilli()
		}
	}
	switch {
	case done == len(b.Jobs) && len(b.Jobs) > 0:
		b.State = stateDone
		b.Status = messages.Aggregate(statuses, allow).Name()
	case started:
		b.State, b.Status = stateRunning, stateRunning
	default:
		b.State, b.Status = stateQueued, stateQueued
	}
	b.QueuedAt, b.StartedAt = msTime(queued), msTime(start)
	if b.State == stateDone {
		b.FinishedAt = msTime(end)
		if start > 0 && end >= start {
			b.DurationMS = msPtr(end - start)
		}
	}
}

// NeedNames names the jobs of b that needs lists, for the build page.
func (b *BuildView) NeedNames(needs []int32) string {
	names := make([]string, 0, len(needs))
	for _, n := range needs {
		if n >= 0 && int(n) < len(b.Jobs) {
			names = append(names, b.Jobs[n].Name)
		}
	}
	return strings.Join(names, ", ")
}

// buildRoutes adds /api/v2's builds and the build pages to m.
func (s *Server) buildRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v2/builds", s.apiBuilds)
	m.HandleFunc("GET /api/v2/builds/{id}", s.apiBuild)
	m.HandleFunc("GET /api/v2/builds/{id}/jobs/{index}/log", s.apiJobLog)
	m.HandleFunc("POST /api/v2/builds/{id}/cancel", s.apiBuildCancel)
	m.HandleFunc("GET /builds/{id}", s.buildPage)
	m.HandleFunc("GET /builds/{id}/events", s.buildEvents)
	m.HandleFunc("GET /builds/{id}/jobs/{index}", s.buildJobPage)
}

// buildID parses the {id} path value.
func buildID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

// jobIndex parses the {index} path value.
func jobIndex(r *http.Request) (int32, bool) {
	i, err := strconv.ParseInt(r.PathValue("index"), 10, 32)
	return int32(i), err == nil && i >= 0 && i < maxBuildJobs
}

func (s *Server) apiBuilds(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := BuildQuery{RepoName: q.Get("repo"), Repo: q.Get("repo_url"), Branch: q.Get("branch"), Status: q.Get("status"),
		Limit: defaultLimit, Cursor: q.Get("cursor")}
	if st := query.Status; st != "" && st != stateQueued && st != stateRunning {
		if _, err := messages.ParseStatus(st); err != nil {
			s.fail(w, http.StatusBadRequest, "status: %v (or queued, running)", err)
			return
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxLimit {
			s.fail(w, http.StatusBadRequest, "limit must be a number from 1 to %d", maxLimit)
			return
		}
		query.Limit = n
	}
	page, err := s.builds.Builds(r.Context(), query)
	switch {
	case errors.Is(err, errBadCursor):
		s.fail(w, http.StatusBadRequest, "cursor: pass back the \"next\" value of the previous page unchanged")
		return
	case err != nil:
		s.log.Warn("web: list builds", "error", err)
		s.fail(w, http.StatusInternalServerError, "list builds: %v", err)
		return
	}
	if page.Builds == nil {
		page.Builds = []BuildSummary{}
	}
	s.writeJSON(w, http.StatusOK, page)
}

// lookupBuild finds build {id}, answering the API request itself when it
// cannot.
func (s *Server) lookupBuild(w http.ResponseWriter, r *http.Request) (*BuildView, bool) {
	id, ok := buildID(r)
	if !ok {
		s.fail(w, http.StatusBadRequest, "build ids are positive numbers")
		return nil, false
	}
	b, err := s.builds.Build(r.Context(), id)
	switch {
	case errors.Is(err, errNoBuild):
		s.fail(w, http.StatusNotFound, "%v", err)
		return nil, false
	case err != nil:
		s.fail(w, http.StatusBadGateway, "look up build %d: %v", id, err)
		return nil, false
	}
	return b, true
}

func (s *Server) apiBuild(w http.ResponseWriter, r *http.Request) {
	if b, ok := s.lookupBuild(w, r); ok {
		s.writeJSON(w, http.StatusOK, b)
	}
}

func (s *Server) apiJobLog(w http.ResponseWriter, r *http.Request) {
	b, ok := s.lookupBuild(w, r)
	if !ok {
		return
	}
	i, ok := jobIndex(r)
	if !ok || int(i) >= len(b.Jobs) {
		s.fail(w, http.StatusNotFound, "build %d has %d jobs, indexed from 0", b.BuildID, len(b.Jobs))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if _, err := s.builds.CopyJobLog(r.Context(), w, b.BuildID, i); err != nil {
		s.log.Warn("web: send a job's log", "build", b.BuildID, "index", i, "error", err)
	}
}

func (s *Server) apiBuildCancel(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.fail(w, http.StatusUnauthorized, "wrong or missing token: send Authorization: Bearer <token>")
		return
	}
	b, ok := s.lookupBuild(w, r)
	if !ok {
		return
	}
	if code, msg := s.cancel(r, b.BuildID); msg != "" {
		s.fail(w, code, "%s", msg)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"build_id": b.BuildID, "cancelled": true})
}
