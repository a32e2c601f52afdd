package store_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

func artifactJob(id, buildID int64, index int32) *messages.Job {
	return &messages.Job{Id: id, BuildId: buildID, Index: index, Repo: "r", RepoName: "r-name",
		Commit: "88e7207773cbf7ac1165ce1c04f30b5b9f416a91", Build: 1, Branches: []string{"main"}}
}

func sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// TestArtifactChunksAreTakenInOrder: chunks are taken only at the held end
// (a later one waits for a resend), duplicates change nothing, and a file
// is kept only when its size and SHA-256 match; a mismatch drops it so the
// runner can start again.
func TestArtifactChunksAreTakenInOrder(t *testing.T) {
	db := newDB(t)
	j := artifactJob(10, 10, 0)
	steps := []struct {
		offset   int64
		data     string
		wantHave int64
	}{
		{0, "0123", 4},
		{8, "89", 4}, // beyond the end: not stored
		{4, "4567", 8},
		{4, "4567", 8}, // a duplicate
		{6, "6789", 10},
	}
	for i, s := range steps {
		have, err := db.AppendArtifact(j, 1, "dist/app", messages.KindArtifact, s.offset, []byte(s.data))
		require.NoError(t, err)
		assert.Equal(t, s.wantHave, have, "step %d", i)
	}
	held, err := db.HeldArtifact(10, 1, "dist/app")
	require.NoError(t, err)
	assert.Equal(t, int64(10), held.File.Size)
	assert.False(t, held.File.Kept)
	assert.Equal(t, int64(10), held.AttemptBytes)
	assert.Equal(t, 1, held.AttemptFiles)

	files, err := db.Artifacts(10, 1)
	require.NoError(t, err)
	assert.Empty(t, files, "a file not closed is not listed")

	kept, err := db.CloseArtifact(10, 1, "dist/app", 11, sum("0123456789"), 0o644)
	require.NoError(t, err)
	assert.False(t, kept, "fewer bytes than the size: not kept, kept as they are")
	held, err = db.HeldArtifact(10, 1, "dist/app")
	require.NoError(t, err)
	assert.Equal(t, int64(10), held.File.Size)

	kept, err = db.CloseArtifact(10, 1, "dist/app", 10, sum("another file"), 0o644)
	require.NoError(t, err)
	assert.False(t, kept, "a checksum mismatch is not kept")
	held, err = db.HeldArtifact(10, 1, "dist/app")
	require.NoError(t, err)
	assert.Equal(t, int64(0), held.File.Size, "and its bytes are dropped")

	for _, c := range []string{"01234", "56789"} {
		_, err := db.AppendArtifact(j, 1, "dist/app", messages.KindArtifact, held.File.Size, []byte(c))
		require.NoError(t, err)
		held.File.Size += int64(len(c))
	}
	kept, err = db.CloseArtifact(10, 1, "dist/app", 10, sum("0123456789"), 0o644)
	require.NoError(t, err)
	require.True(t, kept)
	kept, err = db.CloseArtifact(10, 1, "dist/app", 10, sum("0123456789"), 0o644)
	require.NoError(t, err)
	assert.True(t, kept, "closing a kept file again is fine")
	have, err := db.AppendArtifact(j, 1, "dist/app", messages.KindArtifact, 10, []byte("more"))
	require.NoError(t, err)
	assert.Equal(t, int64(10), have, "a kept file takes no more bytes")

	files, err = db.Artifacts(10, 1)
	require.NoError(t, err)
	require.Len(t, files, 1)
	assert.Equal(t, store.ArtifactFile{JobID: 10, Attempt: 1, Path: "dist/app", Kind: messages.KindArtifact, Size: 10, Kept: true, SHA256: sum("0123456789"), Mode: 0o644}, files[0])

	part, err := db.ReadArtifact(10, 1, "dist/app", 3, 5)
	require.NoError(t, err)
	assert.Equal(t, "34567", string(part))
	part, err = db.ReadArtifact(10, 1, "dist/app", 8, 5)
	require.NoError(t, err)
	assert.Equal(t, "89", string(part), "fewer at the end")
	var all bytes.Buffer
	n, err := db.CopyArtifact(&all, 10, 1, "dist/app")
	require.NoError(t, err)
	assert.Equal(t, int64(10), n)
	assert.Equal(t, "0123456789", all.String())
	_, err = db.ReadArtifact(10, 2, "dist/app", 0, 5)
	assert.ErrorIs(t, err, store.ErrNotFound, "another attempt has none")
}

// TestJobAndCommitArtifacts: a job's artifacts are its recorded attempt's
// (before the result, its newest attempt's); a commit's are those of its
// newest build, by job index; retention drops them with the build.
func TestJobAndCommitArtifacts(t *testing.T) {
	db := newDB(t)
	upload := func(j *messages.Job, attempt int32, path, data string) {
		t.Helper()
		_, err := db.AppendArtifact(j, attempt, path, messages.KindArtifact, 0, []byte(data))
		require.NoError(t, err)
		kept, err := db.CloseArtifact(j.Id, attempt, path, int64(len(data)), sum(data), 0o644)
		require.NoError(t, err)
		require.True(t, kept)
	}
	test, pkg := artifactJob(20, 20, 0), artifactJob(21, 20, 1)
	upload(test, 1, "coverage.out", "attempt 1")
	upload(test, 2, "coverage.out", "attempt 2")
	upload(pkg, 1, "dist/app", "binary")

	j, err := db.JobArtifacts(20)
	require.NoError(t, err)
	assert.Equal(t, int32(2), j.Attempt, "no result yet: the newest attempt")

	res := &messages.Result{Job: test, Attempt: 1, Status: messages.Status_STATUS_PASSED, FinishedUnixMs: time.Now().UnixMilli()}
	_, err = db.RecordResult(res)
	require.NoError(t, err)
	j, err = db.JobArtifacts(20)
	require.NoError(t, err)
	assert.Equal(t, int32(1), j.Attempt, "the recorded attempt's")
	assert.Equal(t, "build", j.Name, "a job without a cell is the build's one job")
	require.Len(t, j.Files, 1)

	rebuilt := artifactJob(30, 30, 0)
	rebuilt.Build = 2
	byCommit, err := db.CommitArtifacts(test.Commit[:8])
	require.NoError(t, err)
	require.Len(t, byCommit, 2)
	assert.Equal(t, []int64{20, 21}, []int64{byCommit[0].JobID, byCommit[1].JobID})
	assert.Equal(t, int32(1), byCommit[1].Index)

	upload(rebuilt, 1, "dist/app", "rebuilt")
	byCommit, err = db.CommitArtifacts(test.Commit)
	require.NoError(t, err)
	require.Len(t, byCommit, 1, "the newest build's only")
	assert.Equal(t, int64(30), byCommit[0].JobID)

	_, err = db.CommitArtifacts("ffff")
	assert.ErrorIs(t, err, store.ErrNotFound)

	// Retention: build 1's result goes, and its artifacts with it.
	_, err = db.RecordResult(&messages.Result{Job: rebuilt, Attempt: 1, Status: messages.Status_STATUS_PASSED, FinishedUnixMs: time.Now().UnixMilli() + 1})
	require.NoError(t, err)
	st, err := db.Prune(store.Retention{KeepBuilds: 1}, time.Now())
	require.NoError(t, err)
	assert.Equal(t, 1, st.Results)
	for _, id := range []int64{20, 21} {
		_, err := db.JobArtifacts(id)
		assert.ErrorIs(t, err, store.ErrNotFound, fmt.Sprintf("job %d", id))
	}
	_, err = db.JobArtifacts(30)
	assert.NoError(t, err, "the kept build's artifacts stay")
}
