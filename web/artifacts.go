package web

import (
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// ArtifactFile is one file a job uploaded, in the artifact listings.
type ArtifactFile struct {
	// Path is relative to the job's workspace.
	Path string `json:"path"`
	// Kind is "artifact", or a test report's format ("junit", "go-test-json").
	Kind   string `json:"kind"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Mode is its permission bits, 493 (0755) for an executable, else 420 (0644).
	Mode uint32 `json:"mode"`
	// URL downloads the file.
	URL string `json:"url"`
}

// JobArtifacts is GET /api/v2/builds/{id}/jobs/{index}/artifacts: the
// files of the job's final attempt (the one its result names, or the
// newest while it runs).
type JobArtifacts struct {
	BuildID int64 `json:"build_id"`
	Index   int32 `json:"index"`
	JobID   int64 `json:"job_id"`
	// Name is the job's name ("test (go=1.26) 1/4"); "" until its
	// result is recorded.
	Name    string         `json:"name,omitempty"`
	Attempt int32          `json:"attempt"`
	Repo    string         `json:"repo"`
	Commit  string         `json:"commit"`
	Build   int32          `json:"build"`
	Files   []ArtifactFile `json:"files"`
}

// CommitArtifacts is GET /api/v2/commits/{commit}/artifacts: the
// artifacts of each job of the commit's newest build that has any.
type CommitArtifacts struct {
	Jobs []JobArtifacts `json:"jobs"`
}

// artifactRoutes adds the artifact endpoints to m.
func (s *Server) artifactRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/v2/builds/{id}/jobs/{index}/artifacts", s.apiJobArtifacts)
	m.HandleFunc("GET /api/v2/builds/{id}/jobs/{index}/artifacts/{path...}", s.apiArtifact)
	m.HandleFunc("GET /api/v2/commits/{commit}/artifacts", s.apiCommitArtifacts)
}

// ArtifactURL is where a file of job index of build buildID is downloaded.
func ArtifactURL(buildID int64, index int32, p string) string {
	parts := strings.Split(p, "/")
	for i, e := range parts {
		parts[i] = url.PathEscape(e)
	}
	return fmt.Sprintf("/api/v2/builds/%d/jobs/%d/artifacts/%s", buildID, index, strings.Join(parts, "/"))
}

func jobArtifactsOf(j *store.JobArtifacts) JobArtifacts {
	out := JobArtifacts{BuildID: j.BuildID, Index: j.Index, JobID: j.JobID, Name: j.Name, Attempt: j.Attempt,
		Repo: j.Repo, Commit: j.Commit, Build: j.Build, Files: []ArtifactFile{}}
	for _, f := range j.Files {
		out.Files = append(out.Files, ArtifactFile{Path: f.Path, Kind: f.Kind, Size: f.Size, SHA256: hex.EncodeToString(f.SHA256), Mode: f.Mode,
			URL: ArtifactURL(j.BuildID, j.Index, f.Path)})
	}
	return out
}

// buildJobArtifacts looks up the artifacts of job {index} of build {id},
// answering the request itself when it cannot.
func (s *Server) buildJobArtifacts(w http.ResponseWriter, r *http.Request) (*store.JobArtifacts, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	index, ierr := strconv.ParseInt(r.PathValue("index"), 10, 32)
	if err != nil || id <= 0 || ierr != nil || index < 0 {
		s.fail(w, http.StatusBadRequest, "build ids are positive numbers and job indexes from 0")
		return nil, false
	}
	j, err := s.db.JobArtifacts(id + index)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && (j.BuildID != id || int64(j.Index) != index)):
		s.fail(w, http.StatusNotFound, "job %d of build %d has no artifacts (it declares none, has not uploaded them yet, or they were pruned)", index, id)
		return nil, false
	case err != nil:
		s.fail(w, http.StatusInternalServerError, "read the artifacts: %v", err)
		return nil, false
	}
	return j, true
}

func (s *Server) apiJobArtifacts(w http.ResponseWriter, r *http.Request) {
	if j, ok := s.buildJobArtifacts(w, r); ok {
		s.writeJSON(w, http.StatusOK, jobArtifactsOf(j))
	}
}

// apiArtifact sends one file as an attachment.
func (s *Server) apiArtifact(w http.ResponseWriter, r *http.Request) {
	p := r.PathValue("path")
	if err := messages.ValidateArtifactPath(p); err != nil {
		s.fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	j, ok := s.buildJobArtifacts(w, r)
	if !ok {
		return
	}
	var file *store.ArtifactFile
	for i := range j.Files {
		if j.Files[i].Path == p {
			file = &j.Files[i]
		}
	}
	if file == nil {
		s.fail(w, http.StatusNotFound, "job %d of build %d has no artifact %s", j.Index, j.BuildID, p)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(file.Size, 10))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(p)}))
	h.Set("X-Volt-SHA256", hex.EncodeToString(file.SHA256))
	if _, err := s.db.CopyArtifact(w, j.JobID, j.Attempt, p); err != nil {
		s.log.Warn("web: send an artifact", "job", j.JobID, "path", p, "error", err) // the status is sent: the client sees a short body
	}
}

func (s *Server) apiCommitArtifacts(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.db.CommitArtifacts(r.PathValue("commit"))
	switch {
	case errors.Is(err, store.ErrInvalidCommit):
		s.fail(w, http.StatusBadRequest, "%v", err)
		return
	case errors.Is(err, store.ErrAmbiguous):
		s.fail(w, http.StatusBadRequest, "commit prefix %s matches several commits: give more digits", r.PathValue("commit"))
		return
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, http.StatusNotFound, "no artifacts for commit %s (its jobs declare none, have not finished, or they were pruned)", r.PathValue("commit"))
		return
	case err != nil:
		s.fail(w, http.StatusInternalServerError, "read the artifacts: %v", err)
		return
	}
	out := CommitArtifacts{Jobs: []JobArtifacts{}}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, jobArtifactsOf(j))
	}
	s.writeJSON(w, http.StatusOK, out)
}
