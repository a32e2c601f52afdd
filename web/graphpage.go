package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/voltci/volt/store"
)

// buildPageView is what the build page shows: the build, its pipeline
// drawn, and its jobs listed.
type buildPageView struct {
	Build      *BuildView
	Graph      pipelineGraph
	Live       bool
	TokenNeeds bool
	Error      string
}

func (s *Server) buildView(b *BuildView) buildPageView {
	return buildPageView{Build: b, Graph: layout(b.Jobs), Live: b.State != stateDone, TokenNeeds: s.cfg.Token != ""}
}

// pageBuild finds build {id} for a page, answering the request itself
// when it cannot.
func (s *Server) pageBuild(w http.ResponseWriter, r *http.Request) (*BuildView, bool) {
	id, ok := buildID(r)
	if !ok {
		http.Error(w, "build ids are positive numbers", http.StatusBadRequest)
		return nil, false
	}
	b, err := s.builds.Build(r.Context(), id)
	switch {
	case errors.Is(err, errNoBuild):
		http.Error(w, err.Error(), http.StatusNotFound)
		return nil, false
	case err != nil:
		s.log.Warn("web: look up a build", "build", id, "error", err)
		http.Error(w, fmt.Sprintf("build %d: %v", id, err), http.StatusBadGateway)
		return nil, false
	}
	return b, true
}

func (s *Server) buildPage(w http.ResponseWriter, r *http.Request) {
	b, ok := s.pageBuild(w, r)
	if !ok {
		return
	}
	pv := s.buildView(b)
	pv.Error = r.URL.Query().Get("error")
	s.render(w, "build.html", pv)
}

// buildEvents follows a build: a "build" event carries the page's live part
// (HTML: summary, graph, jobs) whenever it changes, and a "done" event
// the final one before the stream ends.
func (s *Server) buildEvents(w http.ResponseWriter, r *http.Request) {
	id, ok := buildID(r)
	if !ok {
		http.Error(w, "build ids are positive numbers", http.StatusBadRequest)
		return
	}
	rc := sse(w)
	if rc == nil {
		return
	}
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	last, quiet := "", time.Duration(0)
	for {
		b, err := s.builds.Build(r.Context(), id)
		if (err != nil && r.Context().Err() != nil) || errors.Is(err, errNoBuild) {
			return
		}
		if err == nil {
			var buf bytes.Buffer
			if err := s.pages.ExecuteTemplate(&buf, "pipeline", s.buildView(b)); err != nil {
				s.log.Warn("web: render a build", "build", id, "error", err)
				return
			}
			event := "build"
			if b.State == stateDone {
				event = "done"
			}
			if html := buf.String(); html != last || event == "done" {
				if err := writeEvent(w, rc, event, "", html); err != nil || event == "done" {
					return
				}
				last, quiet = html, 0
			}
		}
		if quiet += s.cfg.Poll; quiet >= keepAlive {
			quiet = 0
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

// buildJobPage shows job {index} of build {id}: the job page, under its
// build's address.
func (s *Server) buildJobPage(w http.ResponseWriter, r *http.Request) {
	id, ok := buildID(r)
	i, iok := jobIndex(r)
	if !ok || !iok {
		http.Error(w, "build ids are positive numbers and job indexes count from 0", http.StatusBadRequest)
		return
	}
	v, log, err := s.jobWithLog(r.Context(), id+int64(i))
	if err == nil && (v.job.BuildID() != id || v.job.GetIndex() != i) {
		err = errNoJob
	}
	if err != nil {
		s.lookupError(w, fmt.Sprintf("job %d of build %d", i, id), err)
		return
	}
	pv := s.jobView(v, log)
	pv.Error = r.URL.Query().Get("error")
	pv.Artifacts = s.jobArtifactFiles(v)
	s.render(w, "job.html", pv)
}

// jobArtifactFiles are the files v's final attempt kept, for its page;
// none when it kept none (or the store cannot say: the page shows the
// rest).
func (s *Server) jobArtifactFiles(v Job) []ArtifactFile {
	j, err := s.db.JobArtifacts(v.JobID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		s.log.Warn("web: list a job's artifacts", "job", v.JobID, "error", err)
		return nil
	case j.BuildID != v.BuildID() || j.Index != v.Index():
		return nil
	}
	return jobArtifactsOf(j).Files
}
