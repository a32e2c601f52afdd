package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/internal/etcdtest"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/store/etcdstore"
)

// A single dispatcher's SQLite queue moved into etcd is the same queue:
// the open jobs, the finished ones (the index of builds), the cursors, the
// incarnations and the largest job id.
func TestMigrateToEtcd(t *testing.T) {
	db, err := store.Open(t.TempDir())
	require.NoError(t, err)
	defer db.Close()
	var jobs []*messages.JobRecord
	for id := int64(1); id <= 70; id++ {
		st, fwd := messages.JobState_JOB_STATE_DONE, true
		if id > 65 {
			st, fwd = messages.JobState_JOB_STATE_QUEUED, false
		}
		jobs = append(jobs, &messages.JobRecord{Job: &messages.Job{Id: id, Repo: "/srv/git/app.git", Commit: coretest.Commit(int(id)),
			Branches: []string{"main"}, Build: 1}, State: st, Forwarded: fwd})
	}
	cursors := []*messages.Cursor{{Repo: "/srv/git/app.git", Branch: "main", Commit: coretest.Commit(70)}}
	require.NoError(t, db.SaveQueue(jobs, cursors, []*messages.RunnerIncarnation{{RunnerId: "r1", Incarnation: 9}}))
	key, err := store.CreateSecretKey(filepath.Join(t.TempDir(), store.SecretKeyFile))
	require.NoError(t, err)
	require.NoError(t, db.PutSecret(key.Seal("DEPLOY_KEY", "app", []string{"main"}, []byte("s3cret"), time.Now())))

	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	et, err := etcdstore.Open(context.Background(), etcdstore.Config{Endpoints: c.Endpoints()})
	require.NoError(t, err)
	defer et.Close()
	n, err := migrateToEtcd(db, et)
	require.NoError(t, err)
	assert.Equal(t, 70, n)

	open, cur, maxID, err := et.LoadQueue()
	require.NoError(t, err)
	assert.Len(t, open, 5)
	assert.Equal(t, int64(70), maxID)
	require.Len(t, cur, 1)
	assert.Equal(t, coretest.Commit(70), cur[0].Commit)
	incs, err := et.LoadIncarnations()
	require.NoError(t, err)
	require.Len(t, incs, 1)
	assert.Equal(t, int64(9), incs[0].Incarnation)
	arch, err := et.ArchivedJobs("/srv/git/app.git", []string{coretest.Commit(3)})
	require.NoError(t, err)
	assert.Equal(t, int64(3), arch[coretest.Commit(3)].GetJob().GetId(), "a finished build is still known: it is not built again")
	secrets, err := et.Secrets([]string{"DEPLOY_KEY"})
	require.NoError(t, err)
	require.Len(t, secrets, 1)
	value, err := key.Open(secrets[0].Secret())
	require.NoError(t, err)
	assert.Equal(t, "s3cret", string(value), "still sealed with the same key")
}
