package store_test

import (
	"fmt"
	"io/fs"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// newDB opens a store in a fresh temporary data directory, closed at cleanup.
func newDB(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

func TestOpenReadOnlyWithoutData(t *testing.T) {
	dir := t.TempDir()
	db, err := store.OpenReadOnly(dir)
	require.Error(t, err)
	assert.Nil(t, db)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), "no Volt data in "+dir+": pass --data-dir")
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	dir := t.TempDir()
	w, err := store.Open(dir)
	require.NoError(t, err)
	require.NoError(t, w.Close())

	ro, err := store.OpenReadOnly(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, ro.Close()) }()

	job := &messages.Job{Id: 1, Repo: "r", Commit: "abcd", Build: 1}
	tests := []struct {
		name  string
		write func() error
	}{
		{name: "SaveJobs", write: func() error {
			return ro.SaveJobs([]*messages.JobRecord{{Job: job}}, nil)
		}},
		{name: "AppendLog", write: func() error {
			_, err := ro.AppendLog(job, 1, 0, []byte("x"))
			return err
		}},
		{name: "RecordResult", write: func() error {
			_, err := ro.RecordResult(&messages.Result{Job: job})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorIs(t, tc.write(), store.ErrReadOnly)
		})
	}
	// Reads work on a data directory whose writer is gone.
	rs, err := ro.Results(store.ResultFilter{})
	require.NoError(t, err)
	assert.Empty(t, rs)
}

// TestConcurrentReader runs `volt results` (a read-only store) while the
// reporter and dispatcher keep writing.
func TestConcurrentReader(t *testing.T) {
	dir := t.TempDir()
	w, err := store.Open(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, w.Close()) }()
	ro, err := store.OpenReadOnly(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, ro.Close()) }()

	const n = 100
	written := make(chan error, 1)
	go func() {
		written <- writeJobs(w, n)
	}()

	// Read until the writer is done, then once more: every read succeeds and
	// never goes back in time.
	last, writerDone := 0, false
	for {
		select {
		case err := <-written:
			require.NoError(t, err)
			writerDone = true
		default:
		}
		rs, err := ro.Results(store.ResultFilter{Limit: 5})
		require.NoError(t, err)
		if len(rs) > 0 {
			got := int(rs[0].GetFinishedUnixMs())
			require.GreaterOrEqual(t, got, last, "reader went back in time")
			last = got
		}
		if writerDone {
			break
		}
	}
	assert.Equal(t, n, last)
	r, err := ro.ResultForCommit(fmt.Sprintf("%040x", n))
	require.NoError(t, err)
	assert.Equal(t, int64(n), r.GetJob().GetId())
}

// writeJobs saves, records and logs n jobs, one transaction each.
func writeJobs(w *store.DB, n int) error {
	for i := 1; i <= n; i++ {
		job := &messages.Job{Id: int64(i), Repo: "r", Commit: fmt.Sprintf("%040x", i), Build: 1}
		if err := w.SaveJobs([]*messages.JobRecord{{Job: job, State: messages.JobState_JOB_STATE_DONE}}, nil); err != nil {
			return err
		}
		if _, err := w.RecordResult(&messages.Result{Job: job, Status: messages.Status_STATUS_PASSED, FinishedUnixMs: int64(i)}); err != nil {
			return err
		}
		if _, err := w.AppendLog(job, 1, 0, []byte("log line\n")); err != nil {
			return err
		}
	}
	return nil
}
