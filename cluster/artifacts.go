package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/jobspec"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// The reporter's artifact ports (reporter.ArtifactWriter and
// reporter.ArtifactReader) on store.DB.

func (s resultStore) AppendArtifact(job *messages.Job, attempt int32, path, kind string, offset int64, data []byte) (int64, error) {
	return s.db.AppendArtifact(job, attempt, path, kind, offset, data)
}

func (s resultStore) HeldArtifact(jobID int64, attempt int32, path string) (reporter.ArtifactHeld, error) {
	h, err := s.db.HeldArtifact(jobID, attempt, path)
	return reporter.ArtifactHeld{File: artifactFile(h.File), AttemptBytes: h.AttemptBytes, AttemptFiles: h.AttemptFiles}, err
}

func (s resultStore) CloseArtifact(jobID int64, attempt int32, path string, size int64, sum []byte, mode uint32) (bool, error) {
	return s.db.CloseArtifact(jobID, attempt, path, size, sum, mode)
}

func (s resultStore) ResultByJob(jobID int64) (*messages.Result, error) {
	r, err := s.db.ResultByJob(jobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return r, err
}

func (s resultStore) Artifacts(jobID int64, attempt int32) ([]reporter.ArtifactFile, error) {
	fs, err := s.db.Artifacts(jobID, attempt)
	out := make([]reporter.ArtifactFile, len(fs))
	for i, f := range fs {
		out[i] = artifactFile(f)
	}
	return out, err
}

func (s resultStore) ReadArtifact(jobID int64, attempt int32, path string, offset int64, n int) ([]byte, error) {
	return s.db.ReadArtifact(jobID, attempt, path, offset, n)
}

func artifactFile(f store.ArtifactFile) reporter.ArtifactFile {
	return reporter.ArtifactFile{Path: f.Path, Kind: f.Kind, Size: f.Size, Kept: f.Kept, Mode: f.Mode}
}

var (
	_ reporter.ArtifactWriter = resultStore{}
	_ reporter.ArtifactReader = resultStore{}
	_ runner.ArtifactExecutor = (*jobExecutor)(nil)
)

// declared is what spec (.volt.yml's `artifacts:` and `reports:`) asks
// the job to upload after its steps.
func declared(spec *jobspec.Spec) runner.Declared {
	d := runner.Declared{Paths: spec.Artifacts}
	if len(spec.Reports) > 0 {
		d.Reports = make(map[string]string, len(spec.Reports))
		for _, r := range spec.Reports {
			d.Reports[r.Kind] = r.Path
		}
	}
	return d
}

// fetchNeeds places the artifacts of the jobs run needs in the workspace
// dir before the first step. false means the job must not run: res is
// errored (cancelled when ctx is) with the reason, and finished.
func fetchNeeds(ctx context.Context, art *runner.Artifacts, dir string, out io.Writer, res *messages.Result) (written int64, ok bool) {
	written, err := art.Fetch(ctx, dir, out)
	if err == nil {
		return written, true
	}
	res.Status, res.Reason, res.ExitCode = messages.Status_STATUS_ERRORED, err.Error(), -1
	if ctx.Err() != nil {
		res.Status = messages.Status_STATUS_CANCELLED
	}
	msg := "volt: " + res.Reason + "\n"
	fmt.Fprint(out, msg)
	res.LogBytes = written + int64(len(msg))
	res.FinishedUnixMs = time.Now().UnixMilli()
	return written, false
}

// afterSteps counts what fetchNeeds wrote in the log and uploads the
// job's declared artifacts and reports (see runner.Artifacts.Upload).
func afterSteps(ctx context.Context, art *runner.Artifacts, dir string, spec *jobspec.Spec, out io.Writer, res *messages.Result, fetched int64) {
	res.LogBytes += fetched
	art.Upload(ctx, dir, declared(spec), out, res)
}
