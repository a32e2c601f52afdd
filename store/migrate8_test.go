package store

import (
	"bytes"
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/messages"
)

// migrationsBefore returns the migrations below version v.
func migrationsBefore(v int) []migration {
	var out []migration
	for _, m := range migrations {
		if m.version < v {
			out = append(out, m)
		}
	}
	return out
}

// TestMigration8KeepsResultsAndLogs: a data directory at schema 7 with
// results (one of them pruned, the newest row id gone) and logs opens with
// every build, result and log where it was, as builds of one job (index
// 0); new rows never take an old id, and a job of a pipeline build gets
// its own log beside index 0's.
func TestMigration8KeepsResultsAndLogs(t *testing.T) {
	dir := t.TempDir()
	raw, err := sql.Open("sqlite", dsnFor(t, dir))
	require.NoError(t, err)
	require.NoError(t, migrate(context.Background(), raw, dir, migrationsBefore(8)))
	commit := func(n byte) string { return string(bytes.Repeat([]byte{'a' + n}, 40)) }
	old := map[int64]*messages.Result{}
	for id := int64(1); id <= 3; id++ {
		r := &messages.Result{Job: &messages.Job{Id: id * 10, Repo: "/srv/app.git", RepoName: "app", Commit: commit(byte(id)),
			Branches: []string{"main"}, Build: 1}, Attempt: 1, RunnerId: "r1", Status: messages.Status_STATUS_PASSED,
			StartedUnixMs: 1000 * id, FinishedUnixMs: 1000*id + 5}
		blob, err := proto.Marshal(r)
		require.NoError(t, err)
		_, err = raw.Exec(`INSERT INTO results (repo, repo_name, commit_hash, build, status, branches, finished_unix_ms, job_id, record)
			VALUES (?, 'app', ?, 1, 'passed', 'main', ?, ?, ?)`, r.Job.Repo, r.Job.Commit, r.FinishedUnixMs, r.Job.Id, blob)
		require.NoError(t, err)
		old[id] = r
		_, err = raw.Exec(`INSERT INTO logs (repo, commit_hash, build, attempt, have) VALUES (?, ?, 1, 1, 6)`, r.Job.Repo, r.Job.Commit)
		require.NoError(t, err)
		_, err = raw.Exec(`INSERT INTO log_chunks (repo, commit_hash, build, attempt, offset, size, data) VALUES (?, ?, 1, 1, 0, 6, ?)`,
			r.Job.Repo, r.Job.Commit, []byte("hello\n"))
		require.NoError(t, err)
	}
	// Retention pruned the newest: its row id must never come back.
	_, err = raw.Exec(`DELETE FROM results WHERE id = 3`)
	require.NoError(t, err)
	delete(old, 3)
	require.NoError(t, raw.Close())

	db, err := Open(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	assert.Equal(t, allVersions(), appliedVersions(t, dir))

	rows, _, err := db.ListResults(Query{Limit: 10})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	for _, row := range rows {
		assert.True(t, proto.Equal(old[row.ID], row.Result), "build row %d kept as it was", row.ID)
		r, err := db.ResultByJob(row.Result.Job.Id)
		require.NoError(t, err)
		assert.True(t, proto.Equal(old[row.ID], r))
		b, err := db.Build(row.Result.Job.Id)
		require.NoError(t, err)
		assert.True(t, b.Complete)
		assert.Equal(t, int32(1), b.JobCount)
		assert.Equal(t, "build", b.Jobs[0].Name)
		log, err := db.ReadLog(row.Result.Job, 1)
		require.NoError(t, err)
		assert.Equal(t, "hello\n", string(log))
	}
	last, err := db.LastResultID()
	require.NoError(t, err)
	assert.Equal(t, int64(2), last)

	// A new build of two jobs: ids above every old one, its own logs.
	for i := int32(0); i < 2; i++ {
		j := &messages.Job{Id: 100 + int64(i), BuildId: 100, Index: i, BuildJobs: 2, Repo: "/srv/app.git", RepoName: "app",
			Commit: commit(1), Build: 2, Cell: &messages.PipelineJob{Key: "k", Name: "k " + string('a'+rune(i))}}
		_, err := db.AppendLog(j, 1, 0, []byte{'0' + byte(i)})
		require.NoError(t, err)
		_, err = db.RecordResult(&messages.Result{Job: j, Attempt: 1, Status: messages.Status_STATUS_PASSED, FinishedUnixMs: 9000})
		require.NoError(t, err)
	}
	var resultID int64
	require.NoError(t, db.sql.QueryRow(`SELECT MIN(id) FROM results WHERE build = 2`).Scan(&resultID))
	assert.Greater(t, resultID, int64(3), "a job result took an id handed out before the migration")
	after, err := db.ResultsAfter(last, 10)
	require.NoError(t, err)
	require.Len(t, after, 1)
	assert.Greater(t, after[0].ID, int64(3), "a build took an id handed out before the migration")
	for i := int32(0); i < 2; i++ {
		log, err := db.ReadLog(&messages.Job{Repo: "/srv/app.git", Commit: commit(1), Build: 2, Index: i, BuildJobs: 2}, 1)
		require.NoError(t, err)
		assert.Equal(t, string([]byte{'0' + byte(i)}), string(log))
	}
	log, err := db.ReadLog(old[1].Job, 1)
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(log), "build 1's log untouched by build 2's")
}
