package web_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/web"
)

// TestArtifactAPI: a job's artifacts are listed with their sizes,
// checksums and download URLs, by build and job index or by commit, and
// each downloads as an attachment; what does not exist is a 404, a path
// out of the workspace a 400.
func TestArtifactAPI(t *testing.T) {
	f := start(t, token)
	pkg := &messages.Job{Id: 41, BuildId: 40, Index: 1, BuildJobs: 2, Repo: "/srv/app.git", RepoName: "app", Commit: commitOf(40), Build: 1,
		Branches: []string{"main"}, Cell: &messages.PipelineJob{Key: "package", Name: "package", Needs: []int32{0}}}
	content := "#!/bin/sh\necho app\n"
	_, err := f.db.AppendArtifact(pkg, 1, "dist/my app", messages.KindArtifact, 0, []byte(content))
	require.NoError(t, err)
	sum := sha256.Sum256([]byte(content))
	kept, err := f.db.CloseArtifact(41, 1, "dist/my app", int64(len(content)), sum[:], 0o755)
	require.NoError(t, err)
	require.True(t, kept)
	_, err = f.db.RecordResult(&messages.Result{Job: pkg, Attempt: 1, Status: messages.Status_STATUS_PASSED, FinishedUnixMs: time.Now().UnixMilli()})
	require.NoError(t, err)

	code, body, _ := f.do(t, "GET", "/api/v2/builds/40/jobs/1/artifacts", nil, "")
	require.Equal(t, http.StatusOK, code, body)
	var list web.JobArtifacts
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	assert.Equal(t, web.JobArtifacts{BuildID: 40, Index: 1, JobID: 41, Name: "package", Attempt: 1, Repo: "/srv/app.git", Commit: commitOf(40), Build: 1,
		Files: []web.ArtifactFile{{Path: "dist/my app", Kind: "artifact", Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]), Mode: 0o755,
			URL: "/api/v2/builds/40/jobs/1/artifacts/dist/my%20app"}}}, list)

	code, body, hdr := f.do(t, "GET", list.Files[0].URL, nil, "")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, content, body)
	assert.Equal(t, `attachment; filename="my app"`, hdr.Get("Content-Disposition"))
	assert.Equal(t, "application/octet-stream", hdr.Get("Content-Type"))

	code, body, _ = f.do(t, "GET", "/api/v2/commits/"+commitOf(40)[:10]+"/artifacts", nil, "")
	require.Equal(t, http.StatusOK, code, body)
	var byCommit web.CommitArtifacts
	require.NoError(t, json.Unmarshal([]byte(body), &byCommit))
	require.Len(t, byCommit.Jobs, 1)
	assert.Equal(t, "package", byCommit.Jobs[0].Name)

	for _, tc := range []struct {
		path string
		code int
	}{
		{"/api/v2/builds/40/jobs/0/artifacts", http.StatusNotFound},
		{"/api/v2/builds/41/jobs/0/artifacts", http.StatusNotFound}, // job 41, but not as index 0 of build 41
		{"/api/v2/builds/40/jobs/1/artifacts/dist/other", http.StatusNotFound},
		{"/api/v2/builds/40/jobs/1/artifacts/dist/%2E%2E/%2E%2E/etc/passwd", http.StatusBadRequest},
		{"/api/v2/builds/40/jobs/1/artifacts/dist/../../etc/passwd", http.StatusNotFound}, // cleaned by the mux: no such route
		{"/api/v2/builds/x/jobs/1/artifacts", http.StatusBadRequest},
		{"/api/v2/commits/" + commitOf(41) + "/artifacts", http.StatusNotFound},
		{"/api/v2/commits/xyz/artifacts", http.StatusBadRequest},
	} {
		code, body, _ := f.do(t, "GET", tc.path, nil, "")
		assert.Equal(t, tc.code, code, "%s: %s", tc.path, body)
	}
}
