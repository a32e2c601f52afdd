package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/internal/etcdtest"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store/etcdstore"
)

func open(t *testing.T, c *etcdtest.Cluster, prefix string) *etcdstore.DB {
	t.Helper()
	ca, cert, key := c.TLSFiles()
	db, err := etcdstore.Open(context.Background(), etcdstore.Config{Endpoints: c.Endpoints(), Prefix: prefix, CA: ca, Cert: cert, Key: key})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func record(id int64, build int32, index int32, jobs int32, state messages.JobState, forwarded bool) *messages.JobRecord {
	return &messages.JobRecord{Job: &messages.Job{Id: id, Repo: "/srv/git/app.git", Commit: coretest.Commit(int(id - int64(index))),
		Branches: []string{"main"}, Build: build, Index: index, BuildJobs: jobs, BuildId: id - int64(index)}, State: state, Forwarded: forwarded}
}

// campaign wins an election on cli's session and returns the fence.
func campaign(t *testing.T, db *etcdstore.DB, ttl int) (etcdstore.Fence, *concurrency.Session, *concurrency.Election) {
	t.Helper()
	s, err := concurrency.NewSession(db.Client(), concurrency.WithTTL(ttl))
	require.NoError(t, err)
	e := concurrency.NewElection(s, db.Prefix()+"/election")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, e.Campaign(ctx, "node"))
	return etcdstore.Fence{Key: e.Key(), Revision: e.Rev()}, s, e
}

func TestQueueRoundTripsLikeSQLite(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	db := open(t, c, "/t1")
	jobs, cursors, maxID, err := db.LoadQueue()
	require.NoError(t, err)
	assert.Empty(t, jobs)
	assert.Empty(t, cursors)
	assert.Zero(t, maxID)

	b := etcdstore.Batch{
		Jobs: []*messages.JobRecord{
			record(1, 1, 0, 1, messages.JobState_JOB_STATE_DONE, true),     // finished and forwarded: archived
			record(2, 1, 0, 2, messages.JobState_JOB_STATE_RUNNING, false), // a two-job build, one running
			record(3, 1, 1, 2, messages.JobState_JOB_STATE_DONE, true),     // ... and its other job ended
			record(4, 2, 0, 1, messages.JobState_JOB_STATE_QUEUED, false),  // a rebuild of job 4's commit
		},
		Cursors:      []*messages.Cursor{{Repo: "/srv/git/app.git", Branch: "feature/x", Commit: coretest.Commit(9)}},
		Incarnations: []*messages.RunnerIncarnation{{RunnerId: "r/1", Incarnation: 7}},
	}
	b.Jobs[3].Job.Commit = coretest.Commit(40)
	require.NoError(t, db.Save(b))

	db2 := open(t, c, "/t1") // a new leader's view
	jobs, cursors, maxID, err = db2.LoadQueue()
	require.NoError(t, err)
	var ids []int64
	for _, j := range jobs {
		ids = append(ids, j.Job.Id)
	}
	assert.Equal(t, []int64{2, 3, 4}, ids, "every job of a build with an open job; the archived one stays out")
	require.Len(t, cursors, 1)
	assert.Equal(t, "feature/x", cursors[0].Branch)
	assert.Equal(t, int64(4), maxID)
	incs, err := db2.LoadIncarnations()
	require.NoError(t, err)
	require.Len(t, incs, 1)
	assert.Equal(t, "r/1", incs[0].RunnerId)

	arch, err := db2.ArchivedJobs("/srv/git/app.git", []string{coretest.Commit(1), coretest.Commit(2), coretest.Commit(77)})
	require.NoError(t, err)
	assert.Equal(t, int64(1), arch[coretest.Commit(1)].Job.Id)
	assert.Equal(t, int64(2), arch[coretest.Commit(2)].Job.Id, "the first job of the newest build")
	assert.NotContains(t, arch, coretest.Commit(77))
	nb, err := db2.NewestBuild("/srv/git/app.git", coretest.Commit(2))
	require.NoError(t, err)
	require.Len(t, nb, 2)
	assert.Equal(t, []int64{2, 3}, []int64{nb[0].Id, nb[1].Id})

	// The build ends and is forwarded: it leaves the queue.
	require.NoError(t, db2.Save(etcdstore.Batch{Jobs: []*messages.JobRecord{record(2, 1, 0, 2, messages.JobState_JOB_STATE_DONE, true)}}))
	jobs, _, _, err = db2.LoadQueue()
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	assert.Equal(t, int64(4), jobs[0].Job.Id)
}

// A leader deposed while still running (its session lost, a standby won)
// can write nothing: its fenced transaction fails with ErrFenced.
func TestDeposedLeaderCannotWrite(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	old := open(t, c, "/t2")
	f1, s1, _ := campaign(t, old, 5)
	require.NoError(t, old.Save(etcdstore.Batch{Fence: f1, Jobs: []*messages.JobRecord{record(1, 1, 0, 1, messages.JobState_JOB_STATE_QUEUED, false)}}))

	// The old leader's session ends (as when its lease expires); a
	// standby wins.
	require.NoError(t, s1.Close())
	next := open(t, c, "/t2")
	f2, _, _ := campaign(t, next, 5)
	assert.Greater(t, f2.Revision, f1.Revision, "the epoch grows")

	err := old.Save(etcdstore.Batch{Fence: f1, Jobs: []*messages.JobRecord{record(1, 1, 0, 1, messages.JobState_JOB_STATE_RUNNING, false)}})
	require.Error(t, err)
	assert.True(t, errors.Is(err, etcdstore.ErrFenced), "%v", err)
	require.NoError(t, next.Save(etcdstore.Batch{Fence: f2, Jobs: []*messages.JobRecord{record(2, 2, 0, 1, messages.JobState_JOB_STATE_QUEUED, false)}}))

	jobs, _, _, err := next.LoadQueue()
	require.NoError(t, err)
	require.Len(t, jobs, 2)
	assert.Equal(t, messages.JobState_JOB_STATE_QUEUED, jobs[0].State, "nothing the deposed leader wrote is there")
}

// A 200-job pipeline does not fit one transaction: it is written in
// chunks, committed once, then applied; a leader that dies between the
// commit and the apply leaves it to the next, which finishes it.
func TestLargeBatchIsAtomicAndFinishedByTheNextLeader(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 3})
	db := open(t, c, "/t3")
	f, _, _ := campaign(t, db, 5)
	var b etcdstore.Batch
	b.Fence = f
	for i := range 200 {
		rec := record(int64(i+1), 1, int32(i), 200, messages.JobState_JOB_STATE_QUEUED, false)
		rec.Job.Commit = coretest.Commit(1)
		rec.Job.Subject = fmt.Sprintf("shard %d of a large pipeline %0400d", i, 0)
		b.Jobs = append(b.Jobs, rec)
	}
	before := db.Stats()
	require.NoError(t, db.Save(b))
	after := db.Stats()
	t.Logf("200 jobs: %d transactions, %d operations, %d value bytes", after.Txns-before.Txns, after.Ops-before.Ops, after.ValueBytes-before.ValueBytes)
	assert.Greater(t, after.Txns-before.Txns, int64(3), "more than one transaction")

	jobs, _, maxID, err := open(t, c, "/t3").LoadQueue()
	require.NoError(t, err)
	assert.Len(t, jobs, 200)
	assert.Equal(t, int64(200), maxID)

	// A committed batch whose chunks were never applied (the leader died
	// right after its commit) is applied by the next leader's LoadQueue.
	cli := c.Client()
	ctx := context.Background()
	rec := record(300, 1, 0, 1, messages.JobState_JOB_STATE_QUEUED, false)
	blob, err := etcdstore.ChunkOf(db, etcdstore.Batch{Jobs: []*messages.JobRecord{rec}})
	require.NoError(t, err)
	_, err = cli.Put(ctx, "/t3/pending/00000000000000000001/000000", blob)
	require.NoError(t, err)
	_, err = cli.Put(ctx, "/t3/pending/00000000000000000001/commit", "1")
	require.NoError(t, err)
	// ... and an uncommitted one is dropped.
	_, err = cli.Put(ctx, "/t3/pending/00000000000000000002/000000", blob)
	require.NoError(t, err)

	next := open(t, c, "/t3")
	next.Lead(f)
	jobs, _, _, err = next.LoadQueue()
	require.NoError(t, err)
	assert.Len(t, jobs, 201, "the committed batch was finished")
	left, err := cli.Get(ctx, "/t3/pending/", clientv3.WithPrefix())
	require.NoError(t, err)
	assert.Zero(t, left.Count, "no pending batch is left")
}

func TestMutualTLSToEtcd(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1, TLS: true})
	db := open(t, c, "/t4")
	require.NoError(t, db.Save(etcdstore.Batch{Jobs: []*messages.JobRecord{record(1, 1, 0, 1, messages.JobState_JOB_STATE_QUEUED, false)}}))

	// Without a client certificate etcd refuses the connection.
	_, err := etcdstore.Open(context.Background(), etcdstore.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second})
	require.Error(t, err)
	t.Logf("without a certificate: %v", err)
}

func TestRevocationsAreShared(t *testing.T) {
	c := etcdtest.Start(t, etcdtest.Options{Members: 1})
	a, b := open(t, c, "/t5"), open(t, c, "/t5")
	require.NoError(t, a.Revoke("runner/runner-7"))
	require.NoError(t, a.Revoke("runner/runner-7"), "adding twice is the same")
	require.NoError(t, b.Revoke("mallory"))
	list, err := b.Revocations()
	require.NoError(t, err)
	assert.Equal(t, []string{"mallory", "runner/runner-7"}, list)
}
