package main

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// TestArtifactsCommand: `volt artifacts COMMIT [JOB] --out DIR` downloads
// one job's files at their paths, or every job's under its name (a
// shard's "/" spelled out), from the data directory and from a web server
// alike; an unknown job is "not found" (exit 3) and names those there are.
func TestArtifactsCommand(t *testing.T) {
	data := t.TempDir()
	db, err := store.Open(data)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	commit := "88e7207773cbf7ac1165ce1c04f30b5b9f416a91"
	upload := func(index int32, name, p, content string, mode uint32) {
		j := &messages.Job{Id: 70 + int64(index), BuildId: 70, Index: index, BuildJobs: 3, Repo: "/r.git", RepoName: "r", Commit: commit, Build: 1,
			Branches: []string{"main"}, Cell: &messages.PipelineJob{Key: name, Name: name}}
		_, err := db.AppendArtifact(j, 1, p, messages.KindArtifact, 0, []byte(content))
		require.NoError(t, err)
		sum := sha256.Sum256([]byte(content))
		kept, err := db.CloseArtifact(j.Id, 1, p, int64(len(content)), sum[:], mode)
		require.NoError(t, err)
		require.True(t, kept)
		_, err = db.RecordResult(&messages.Result{Job: j, Attempt: 1, Status: messages.Status_STATUS_PASSED, FinishedUnixMs: time.Now().UnixMilli()})
		require.NoError(t, err)
	}
	upload(1, "test 1/2", "coverage.out", "mode: set\n", 0o640)
	upload(2, "package", "dist/app", "binary", 0o700)

	url := serveWeb(t, db, "")

	for name, source := range map[string][]string{"data dir": {"--data-dir", data}, "server": {"--server", url}} {
		t.Run(name, func(t *testing.T) {
			one := t.TempDir()
			require.Equal(t, exitOK, run(append([]string{"artifacts", commit[:8], "package", "--out", one}, source...)))
			got, err := os.ReadFile(filepath.Join(one, "dist", "app"))
			require.NoError(t, err)
			assert.Equal(t, "binary", string(got))
			fi, err := os.Stat(filepath.Join(one, "dist", "app"))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm(), "a built binary stays executable")

			all := t.TempDir()
			require.Equal(t, exitOK, run(append([]string{"artifacts", commit, "--out", all}, source...)))
			got, err = os.ReadFile(filepath.Join(all, "test 1 of 2", "coverage.out"))
			require.NoError(t, err)
			assert.Equal(t, "mode: set\n", string(got))
			fi, err = os.Stat(filepath.Join(all, "test 1 of 2", "coverage.out"))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
			got, err = os.ReadFile(filepath.Join(all, "package", "dist", "app"))
			require.NoError(t, err)
			assert.Equal(t, "binary", string(got))

			require.Equal(t, exitOK, run(append([]string{"artifacts", commit}, source...)), "a listing")
			assert.Equal(t, exitNotFound, run(append([]string{"artifacts", commit, "deploy"}, source...)))
			assert.Equal(t, exitNotFound, run(append([]string{"artifacts", "ffffffff"}, source...)))
		})
	}
}
