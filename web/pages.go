package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// Dashboard limits: the first page stays small and fast however many
// results are stored.
const (
	maxBranches = 20
	perBranch   = 10
)

var funcs = template.FuncMap{
	"short": func(c string) string {
		if len(c) > 12 {
			return c[:12]
		}
		return c
	},
	"when": func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Local().Format(time.DateTime)
	},
	"clock": func(ms int64) string {
		if ms <= 0 {
			return "-"
		}
		return time.UnixMilli(ms).Local().Format(time.TimeOnly)
	},
	"dur": func(ms *int64) string {
		if ms == nil {
			return "-"
		}
		return (time.Duration(*ms) * time.Millisecond).String()
	},
	"join": strings.Join,
	"statusOf": func(j Job) string {
		if j.State == stateDone {
			return j.Status
		}
		return j.State
	},
	"badgeURL": func(repo, branch string) string {
		return "/badge/" + url.PathEscape(repo) + "/" + escapeBranch(branch) + ".svg"
	},
}

// escapeBranch escapes each path element of a branch name ("feature/x").
func escapeBranch(b string) string {
	parts := strings.Split(b, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

type dashboard struct {
	Live       liveView
	TokenNeeds bool
}

type liveView struct {
	Reachable bool
	Error     string
	Reporter  string
	Observers int
	Counters  []counter
	// Stores are the StoreCondition lines of roles whose store fails.
	Stores  []string
	Queue   []Job
	Runners []runnerView
	Repos   []repoView
	Updated string
}

type counter struct {
	Name  string
	Value int64
}

type runnerView struct {
	ID, State, Address string
	JobID              int64
	Attempt            int32
	LastHeartbeatMS    int64
}

type repoView struct {
	Name, Repo string
	Branches   []branchView
}

type branchView struct {
	Name string
	Rows []Job
}

// dashboardView gathers what the dashboard shows. st may be nil when the
// dispatcher did not answer (stErr says why): the results still show.
// stores are the store alerts (storeAlerts).
func (s *Server) dashboardView(st *messages.StatusReply, stErr error, stores []string) liveView {
	v := liveView{Reachable: stErr == nil, Updated: time.Now().Format(time.TimeOnly), Stores: stores}
	var inflight []Job
	now := time.Now()
	if stErr != nil {
		v.Error = stErr.Error()
	} else {
		v.Reporter, v.Observers = st.GetReporter(), len(st.GetObservers())
		for k, n := range st.GetCounters() {
			v.Counters = append(v.Counters, counter{k, n})
		}
		slices.SortFunc(v.Counters, func(a, b counter) int { return strings.Compare(a.Name, b.Name) })
		for _, rec := range st.GetJobs() {
			if rec.GetState() == messages.JobState_JOB_STATE_DONE {
				continue
			}
			j := fromRecord(rec)
			v.Queue = append(v.Queue, j)
			inflight = append(inflight, j)
		}
		for _, r := range st.GetRunners() {
			rv := runnerView{ID: r.GetRunnerId(), State: r.GetState(), Address: r.GetAddress(),
				JobID: r.GetJob().GetJobId(), Attempt: r.GetJob().GetAttempt(), LastHeartbeatMS: r.GetLastHeartbeatUnixMs()}
			if lost(r, now) {
				rv.State = "lost"
			}
			v.Runners = append(v.Runners, rv)
		}
	}
	repos, err := s.db.Repos()
	if err != nil {
		v.Error = strings.TrimSpace(v.Error + "; " + err.Error())
		s.log.Warn("web: list repositories", "error", err)
	}
	seen := map[string]bool{}
	for _, rp := range repos {
		seen[rp.Repo] = true
		rv := repoView{Name: rp.Name, Repo: rp.Repo}
		branches, err := s.db.Branches(rp.Repo, maxBranches, perBranch)
		if err != nil {
			s.log.Warn("web: list branches", "repo", rp.Repo, "error", err)
		}
		for _, b := range branches {
			bv := branchView{Name: b.Name}
			for _, r := range b.Results {
				bv.Rows = append(bv.Rows, fromResult(r))
			}
			rv.Branches = append(rv.Branches, bv)
		}
		v.Repos = append(v.Repos, rv)
	}
	// Builds in flight show at the top of their branches, so a new commit's
	// row appears at once and changes colour when it finishes.
	for _, j := range inflight {
		if !seen[j.Repo] {
			seen[j.Repo] = true
			v.Repos = append(v.Repos, repoView{Name: j.RepoName, Repo: j.Repo})
		}
		for ri := range v.Repos {
			if v.Repos[ri].Repo != j.Repo {
				continue
			}
			rv := &v.Repos[ri]
			for _, b := range j.Branches {
				bi := slices.IndexFunc(rv.Branches, func(bv branchView) bool { return bv.Name == b })
				if bi < 0 {
					rv.Branches = append([]branchView{{Name: b}}, rv.Branches...)
					bi = 0
				}
				rows := rv.Branches[bi].Rows
				if slices.ContainsFunc(rows, func(r Job) bool { return r.JobID == j.JobID }) {
					continue
				}
				rv.Branches[bi].Rows = append([]Job{j}, rows...)
			}
		}
	}
	return v
}

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Warn("web: render", "page", name, "error", err)
		http.Error(w, "could not render the page; see the server's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if _, err := buf.WriteTo(w); err != nil {
		s.log.Debug("web: write a page", "page", name, "error", err)
	}
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	st, err := s.status(r.Context())
	stores := s.storeAlerts(r.Context(), st)
	s.render(w, "dashboard.html", dashboard{Live: s.dashboardView(st, err, stores), TokenNeeds: s.cfg.Token != ""})
}

// jobPageView is what the job page shows.
type jobPageView struct {
	Job        Job
	Steps      []Step
	LogHTML    template.HTML
	LogOffset  int64
	Live       bool
	TokenNeeds bool
	Error      string
	// Artifacts are the files the job's final attempt kept (graphpage.go).
	Artifacts []ArtifactFile
}

func (s *Server) jobView(v Job, log []byte) jobPageView {
	// A finished build's log may still be arriving (it travels apart from
	// the result): such a page follows it too.
	live := v.State != stateDone || int64(len(log)) < v.LogBytes
	pv := jobPageView{Job: v, Steps: steps(v, log), Live: live, TokenNeeds: s.cfg.Token != ""}
	conv := &ansiHTML{}
	// The converter escapes everything; only its fixed <span> tags remain.
	pv.LogHTML = template.HTML(conv.Convert(log) + conv.Flush()) // #nosec G203 -- escaped by ansiHTML
	pv.LogOffset = int64(len(log))
	return pv
}

// jobID parses the {id} path value, answering 400 itself when it is bad.
func jobID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.Error(w, "job ids are positive numbers", http.StatusBadRequest)
		return 0, false
	}
	return id, true
}

// jobWithLog finds a job and reads its log so far.
func (s *Server) jobWithLog(ctx context.Context, id int64) (Job, []byte, error) {
	v, err := s.lookupJob(ctx, id)
	if err != nil {
		return v, nil, err
	}
	if v.Attempt == 0 {
		return v, nil, nil
	}
	log, err := s.db.ReadLog(v.job, v.Attempt)
	return v, log, err
}

func (s *Server) lookupError(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, errNoJob), errors.Is(err, store.ErrNotFound):
		http.Error(w, what+" not found: it may have been pruned, or the id is wrong", http.StatusNotFound)
	default:
		s.log.Warn("web: look up", "what", what, "error", err)
		http.Error(w, what+": "+err.Error(), http.StatusBadGateway)
	}
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	v, log, err := s.jobWithLog(r.Context(), id)
	if err != nil {
		s.lookupError(w, fmt.Sprintf("job %d", id), err)
		return
	}
	pv := s.jobView(v, log)
	pv.Error = r.URL.Query().Get("error")
	pv.Artifacts = s.jobArtifactFiles(v)
	s.render(w, "job.html", pv)
}

func (s *Server) rawLog(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	v, err := s.lookupJob(r.Context(), id)
	if err != nil {
		s.lookupError(w, fmt.Sprintf("job %d", id), err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="volt-job-%d-attempt-%d.log"`, id, v.Attempt))
	if v.Attempt == 0 {
		return
	}
	if _, err := s.db.CopyLog(w, v.job, v.Attempt); err != nil {
		s.log.Warn("web: send a raw log", "job", id, "error", err)
	}
}

// commitPage sends a commit (full or a unique prefix) to its latest build's
// page.
func (s *Server) commitPage(w http.ResponseWriter, r *http.Request) {
	res, err := s.db.ResultForCommit(r.PathValue("commit"))
	switch {
	case errors.Is(err, store.ErrInvalidCommit), errors.Is(err, store.ErrAmbiguous):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		s.lookupError(w, "commit", err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/builds/%d", res.GetJob().BuildID()), http.StatusSeeOther)
}

// back sends a form's browser back to a job page (or to the build page,
// when the form came from one: page=build), with an error to show.
func back(w http.ResponseWriter, r *http.Request, id int64, msg string) {
	u := fmt.Sprintf("/jobs/%d", id)
	if r.PostFormValue("page") == "build" {
		u = fmt.Sprintf("/builds/%d", id)
	}
	if msg != "" {
		u += "?error=" + url.QueryEscape(msg)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

func (s *Server) cancelForm(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	if !s.authorized(r) {
		back(w, r, id, "wrong or missing token")
		return
	}
	_, msg := s.cancel(r, id)
	back(w, r, id, msg)
}

func (s *Server) rebuildForm(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	if !s.authorized(r) {
		back(w, r, id, "wrong or missing token")
		return
	}
	v, err := s.lookupJob(r.Context(), id)
	if err != nil {
		back(w, r, id, err.Error())
		return
	}
	reply, _, msg := s.rebuild(r, v.Repo, v.Commit)
	if msg != "" {
		back(w, r, id, msg)
		return
	}
	back(w, r, reply.GetJobId(), "")
}

// cancel asks the dispatcher to cancel job id; msg is empty on success, and
// code is the HTTP status for the API.
func (s *Server) cancel(r *http.Request, id int64) (code int, msg string) {
	ctx, done := context.WithTimeout(r.Context(), s.cfg.StatusTimeout)
	defer done()
	reply, err := s.cfg.Backend.Cancel(ctx, &messages.CancelRequest{JobId: id, Token: s.cfg.Token, Who: who(r)})
	switch {
	case err != nil:
		return http.StatusBadGateway, "the dispatcher did not answer: " + err.Error()
	case reply.GetError() != "":
		return refusal(reply.GetError()), reply.GetError()
	}
	return http.StatusOK, ""
}

// rebuild asks the dispatcher for a new build of repo's commit.
func (s *Server) rebuild(r *http.Request, repo, commit string) (reply *messages.RebuildReply, code int, msg string) {
	ctx, done := context.WithTimeout(r.Context(), s.cfg.StatusTimeout)
	defer done()
	reply, err := s.cfg.Backend.Rebuild(ctx, &messages.RebuildRequest{Repo: repo, Commit: commit, Token: s.cfg.Token, Who: who(r)})
	switch {
	case err != nil:
		return nil, http.StatusBadGateway, "the dispatcher did not answer: " + err.Error()
	case reply.GetError() != "":
		return reply, refusal(reply.GetError()), reply.GetError()
	}
	return reply, http.StatusOK, ""
}

// refusal maps a dispatcher's refusal to an HTTP status.
func refusal(msg string) int {
	if strings.Contains(msg, "token") {
		return http.StatusForbidden
	}
	if strings.Contains(msg, "never built") {
		return http.StatusNotFound
	}
	return http.StatusConflict
}
