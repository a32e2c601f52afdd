package web

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// API limits on /api/v1/results.
const (
	defaultLimit = 50
	maxLimit     = 500
)

// apiError is the body of every API error: {"error": "..."}.
type apiError struct {
	Error string `json:"error"`
}

func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		s.log.Debug("web: write a JSON answer", "error", err)
	}
}

func (s *Server) fail(w http.ResponseWriter, code int, format string, args ...any) {
	s.writeJSON(w, code, apiError{Error: fmt.Sprintf(format, args...)})
}

// ResultsPage is the answer of GET /api/v1/results.
type ResultsPage struct {
	Results []Job `json:"results"`
	// Next is the cursor of the next page ("" on the last page): pass it
	// back as ?cursor= with the same filters.
	Next string `json:"next,omitempty"`
}

func encodeCursor(c *store.PageCursor) string {
	if c == nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d.%d", c.FinishedMS, c.ID))
}

func decodeCursor(s string) (*store.PageCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	f, i, ok := strings.Cut(string(b), ".")
	if !ok {
		return nil, errors.New("malformed")
	}
	fin, err1 := strconv.ParseInt(f, 10, 64)
	id, err2 := strconv.ParseInt(i, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &store.PageCursor{FinishedMS: fin, ID: id}, nil
}

func (s *Server) apiResults(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	query := store.Query{RepoName: q.Get("repo"), Repo: q.Get("repo_url"), Branch: q.Get("branch"), Status: q.Get("status"), Limit: defaultLimit}
	if query.Status != "" {
		if _, err := messages.ParseStatus(query.Status); err != nil {
			s.fail(w, http.StatusBadRequest, "status: %v", err)
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
	if c := q.Get("cursor"); c != "" {
		cur, err := decodeCursor(c)
		if err != nil {
			s.fail(w, http.StatusBadRequest, "cursor: pass back the \"next\" value of the previous page unchanged")
			return
		}
		query.After = cur
	}
	rows, next, err := s.db.ListResults(query)
	if err != nil {
		s.log.Warn("web: list results", "error", err)
		s.fail(w, http.StatusInternalServerError, "list results: %v", err)
		return
	}
	page := ResultsPage{Results: make([]Job, 0, len(rows)), Next: encodeCursor(next)}
	for _, row := range rows {
		page.Results = append(page.Results, fromResult(row.Result))
	}
	s.writeJSON(w, http.StatusOK, page)
}

// JobWithLog is the answer of GET /api/v1/jobs/{id} and /api/v1/results/{commit}.
type JobWithLog struct {
	Job
	Steps []Step `json:"steps"`
	// Log is the attempt's output so far (UTF-8, invalid bytes replaced).
	Log string `json:"log"`
}

func (s *Server) withLog(w http.ResponseWriter, v Job, log []byte) {
	st := steps(v, log)
	if st == nil {
		st = []Step{}
	}
	s.writeJSON(w, http.StatusOK, JobWithLog{Job: v, Steps: st, Log: strings.ToValidUTF8(string(log), "\uFFFD")})
}

func (s *Server) apiResult(w http.ResponseWriter, r *http.Request) {
	res, ok := s.resultFor(w, r.PathValue("commit"), "no result for commit %s (it may still be queued or running: see /api/v1/queue)")
	if !ok {
		return
	}
	log, err := s.db.ReadLog(res.GetJob(), res.GetAttempt())
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "read the log: %v", err)
		return
	}
	s.withLog(w, fromResult(res), log)
}

func (s *Server) apiJob(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, http.StatusBadRequest, "job ids are positive numbers")
		return
	}
	v, log, err := s.jobWithLog(r.Context(), id)
	switch {
	case errors.Is(err, errNoJob):
		s.fail(w, http.StatusNotFound, "no job %d", id)
		return
	case err != nil:
		s.fail(w, http.StatusBadGateway, "look up job %d: %v", id, err)
		return
	}
	s.withLog(w, v, log)
}

// Runner is one runner in GET /api/v1/runners.
type Runner struct {
	ID            string     `json:"id"`
	Incarnation   int64      `json:"incarnation"`
	Address       string     `json:"address"`
	State         string     `json:"state"`
	JobID         int64      `json:"job_id,omitempty"`
	Attempt       int32      `json:"attempt,omitempty"`
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
}

func (s *Server) apiRunners(w http.ResponseWriter, r *http.Request) {
	st, err := s.status(r.Context())
	if err != nil {
		s.fail(w, http.StatusBadGateway, "the dispatcher did not answer: %v", err)
		return
	}
	out := struct {
		Runners []Runner `json:"runners"`
	}{Runners: []Runner{}}
	now := time.Now()
	for _, rs := range st.GetRunners() {
		state := rs.GetState()
		if lost(rs, now) {
			state = "lost"
		}
		out.Runners = append(out.Runners, Runner{ID: rs.GetRunnerId(), Incarnation: rs.GetIncarnation(), Address: rs.GetAddress(),
			State: state, JobID: rs.GetJob().GetJobId(), Attempt: rs.GetJob().GetAttempt(), LastHeartbeat: msTime(rs.GetLastHeartbeatUnixMs())})
	}
	s.writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiQueue(w http.ResponseWriter, r *http.Request) {
	st, err := s.status(r.Context())
	if err != nil {
		s.fail(w, http.StatusBadGateway, "the dispatcher did not answer: %v", err)
		return
	}
	out := struct {
		Jobs []Job `json:"jobs"`
	}{Jobs: []Job{}}
	for _, rec := range st.GetJobs() {
		if rec.GetState() != messages.JobState_JOB_STATE_DONE {
			out.Jobs = append(out.Jobs, fromRecord(rec))
		}
	}
	s.writeJSON(w, http.StatusOK, out)
}

// Status is the answer of GET /api/v1/status.
type Status struct {
	Dispatcher string           `json:"dispatcher"`
	Error      string           `json:"error,omitempty"`
	Reporter   string           `json:"reporter,omitempty"`
	Observers  int              `json:"observers"`
	Runners    int              `json:"runners"`
	Queued     int              `json:"queued"`
	Running    int              `json:"running"`
	Counters   map[string]int64 `json:"counters"`
	Results    map[string]int64 `json:"results"`
	// Stores are the StoreCondition lines of the dispatcher and the
	// reporter while their store writes fail.
	Stores []string `json:"stores,omitempty"`
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	out := Status{Dispatcher: "ok", Counters: map[string]int64{}}
	counts, err := s.db.StatusCounts()
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "count results: %v", err)
		return
	}
	out.Results = counts
	st, err := s.status(r.Context())
	out.Stores = s.storeAlerts(r.Context(), st)
	if err != nil {
		out.Dispatcher, out.Error = "unreachable", err.Error()
		s.writeJSON(w, http.StatusOK, out)
		return
	}
	out.Reporter, out.Observers, out.Runners = st.GetReporter(), len(st.GetObservers()), len(st.GetRunners())
	for _, rec := range st.GetJobs() {
		switch rec.GetState() {
		case messages.JobState_JOB_STATE_QUEUED:
			out.Queued++
		case messages.JobState_JOB_STATE_RUNNING:
			out.Running++
		}
	}
	for k, v := range st.GetCounters() {
		out.Counters[k] = v
	}
	s.writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiCancel(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.fail(w, http.StatusUnauthorized, "wrong or missing token: send Authorization: Bearer <token>")
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(w, http.StatusBadRequest, "job ids are positive numbers")
		return
	}
	if code, msg := s.cancel(r, id); msg != "" {
		s.fail(w, code, "%s", msg)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"job_id": id, "cancelled": true})
}

func (s *Server) apiRebuild(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.fail(w, http.StatusUnauthorized, "wrong or missing token: send Authorization: Bearer <token>")
		return
	}
	res, ok := s.resultFor(w, r.PathValue("commit"), "commit %s was never built here: nothing to rebuild")
	if !ok {
		return
	}
	reply, code, msg := s.rebuild(r, res.GetJob().GetRepo(), res.GetJob().GetCommit())
	if msg != "" {
		s.fail(w, code, "%s", msg)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"job_id": reply.GetJobId(), "build": reply.GetBuild(), "commit": res.GetJob().GetCommit()})
}

// hookBody is what the webhook reads from a JSON body: Volt's own
// {"repo", "branch"}, or the "ref" and "repository" of a forge's push event.
type hookBody struct {
	Repo       string `json:"repo"`
	Branch     string `json:"branch"`
	Ref        string `json:"ref"`
	Repository struct {
		Name string `json:"name"`
	} `json:"repository"`
}

// maxHookBody caps the webhook body; forges' push events fit easily.
const maxHookBody = 1 << 20

func (s *Server) apiHook(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.fail(w, http.StatusUnauthorized, "wrong or missing token: send Authorization: Bearer <token>")
		return
	}
	repo, branch := r.URL.Query().Get("repo"), r.URL.Query().Get("branch")
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/json" {
		var b hookBody
		body, err := io.ReadAll(io.LimitReader(r.Body, maxHookBody))
		if err != nil {
			s.fail(w, http.StatusBadRequest, "read the body: %v", err)
			return
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &b); err != nil {
				s.fail(w, http.StatusBadRequest, "body: %v: send {\"repo\": NAME, \"branch\": BRANCH} or a forge's push event", err)
				return
			}
		}
		if repo == "" {
			repo = b.Repo
		}
		if repo == "" {
			repo = b.Repository.Name
		}
		if branch == "" {
			branch = b.Branch
		}
		if branch == "" {
			branch = strings.TrimPrefix(b.Ref, "refs/heads/")
		}
	}
	ctx, done := timeoutCtx(r, s.cfg.StatusTimeout)
	defer done()
	ack, err := s.cfg.Backend.Notify(ctx, &messages.Notify{Repo: repo, Branch: branch, Token: s.cfg.Token})
	switch {
	case err != nil:
		s.fail(w, http.StatusBadGateway, "the dispatcher did not answer: %v", err)
		return
	case ack.GetObservers() < 0:
		s.fail(w, http.StatusForbidden, "the dispatcher refused the token: start this server with the dispatcher's --token")
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"observers": ack.GetObservers(), "repo": repo, "branch": branch})
}

// resultFor looks up the newest result of a commit (full id or unique
// prefix) and answers the error itself when there is none: 404 with
// notFound (a format taking the commit), 400 for a bad or ambiguous id.
func (s *Server) resultFor(w http.ResponseWriter, commit, notFound string) (*messages.Result, bool) {
	res, err := s.db.ResultForCommit(commit)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, http.StatusNotFound, notFound, commit)
		return nil, false
	case errors.Is(err, store.ErrInvalidCommit), errors.Is(err, store.ErrAmbiguous):
		s.fail(w, http.StatusBadRequest, "%v", err)
		return nil, false
	case err != nil:
		s.fail(w, http.StatusInternalServerError, "look up %s: %v", commit, err)
		return nil, false
	}
	return res, true
}
