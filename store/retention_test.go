package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

func TestPrune(t *testing.T) {
	day := int64(24 * time.Hour / time.Millisecond)
	now := time.UnixMilli(100 * day)
	tests := []struct {
		name      string
		rt        store.Retention
		wantKept  []int64
		wantFiles int
	}{
		{name: "keep everything", rt: store.Retention{}, wantKept: []int64{6, 5, 4, 3, 2, 1}},
		{name: "two per branch", rt: store.Retention{KeepBuilds: 2}, wantKept: []int64{6, 5, 4}, wantFiles: 3},
		{name: "one per branch: a result on two branches counts for both", rt: store.Retention{KeepBuilds: 1}, wantKept: []int64{6}, wantFiles: 5},
		{name: "three days old or younger", rt: store.Retention{KeepFor: 3 * 24 * time.Hour}, wantKept: []int64{6, 5, 4, 3}, wantFiles: 2},
		{name: "both", rt: store.Retention{KeepBuilds: 1, KeepFor: 24 * time.Hour}, wantKept: []int64{6}, wantFiles: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newDB(t)
			// Results 1..4 on main, 5 on dev, 6 on main and dev; result i
			// finished 6-i days before now (6 finished just now).
			for i := int64(1); i <= 6; i++ {
				branches := []string{"main"}
				switch i {
				case 5:
					branches = []string{"dev"}
				case 6:
					branches = []string{"main", "dev"}
				}
				r := result(i, "r", fmt.Sprintf("%040x", i), 1, branches, messages.Status_STATUS_PASSED, now.UnixMilli()-(6-i)*day)
				_, err := db.RecordResult(r)
				require.NoError(t, err)
				_, err = db.AppendLog(r.Job, 1, 0, []byte("output\n"))
				require.NoError(t, err)
				require.NoError(t, store.WriteResultFile(db.Dir(), r, strings.NewReader("output\n")))
			}
			// A build still running (no result): its log must survive.
			running := &messages.Job{Id: 7, Repo: "r", Commit: fmt.Sprintf("%040x", 1), Build: 2}
			_, err := db.AppendLog(running, 1, 0, []byte("still running\n"))
			require.NoError(t, err)

			st, err := db.Prune(tt.rt, now)
			require.NoError(t, err)
			rows, _, err := db.ListResults(store.Query{Limit: 100})
			require.NoError(t, err)
			assert.Equal(t, tt.wantKept, rowIDs(rows))
			assert.Equal(t, 6-len(tt.wantKept), st.Results)
			assert.Equal(t, tt.wantFiles, st.ResultFiles)

			for i := int64(1); i <= 6; i++ {
				job := &messages.Job{Repo: "r", Commit: fmt.Sprintf("%040x", i), Build: 1}
				have, err := db.LogHave(job, 1)
				require.NoError(t, err)
				_, statErr := os.Stat(filepath.Join(db.Dir(), store.ResultDir, job.Commit))
				kept := false
				for _, k := range tt.wantKept {
					kept = kept || k == i
				}
				if kept {
					assert.Equal(t, int64(7), have, "log of kept result %d", i)
					assert.NoError(t, statErr, "result file of kept result %d", i)
				} else {
					assert.Zero(t, have, "log of pruned result %d", i)
					assert.ErrorIs(t, statErr, os.ErrNotExist, "result file of pruned result %d", i)
				}
			}
			have, err := db.LogHave(running, 1)
			require.NoError(t, err)
			assert.Equal(t, int64(14), have, "the running build's log")
		})
	}
}

// TestPruneBuildOfJobs: a complete build goes with every job's result and
// log and its result file; a build still missing a job's result is kept
// whole, however old.
func TestPruneBuildOfJobs(t *testing.T) {
	db := newDB(t)
	for i := int32(0); i < 3; i++ {
		r := pipeline(i, messages.Status_STATUS_PASSED, 1000, 2000)
		_, err := db.AppendLog(r.Job, 1, 0, []byte("log\n"))
		require.NoError(t, err)
		record(t, db, r)
	}
	require.NoError(t, db.WriteResultFile(pipeline(2, messages.Status_STATUS_PASSED, 1000, 2000)))
	open := pipeline(0, messages.Status_STATUS_PASSED, 1000, 2000)
	open.Job.Build, open.Job.BuildId, open.Job.Id = 2, 200, 200
	_, err := db.AppendLog(open.Job, 1, 0, []byte("log\n"))
	require.NoError(t, err)
	record(t, db, open)

	st, err := db.Prune(store.Retention{KeepFor: time.Hour}, time.UnixMilli(2000).Add(48*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, store.PruneStats{Results: 1, Jobs: 3, Logs: 3, ResultFiles: 1}, st,
		"build 1's file goes with it; build 2 writes its own when complete")
	for i := int32(0); i < 3; i++ {
		_, err := db.ResultByJob(100 + int64(i))
		assert.ErrorIs(t, err, store.ErrNotFound)
		have, err := db.LogHave(pipeline(i, 0, 0, 0).Job, 1)
		require.NoError(t, err)
		assert.Zero(t, have)
	}
	b, err := db.Build(200)
	require.NoError(t, err)
	assert.Equal(t, int32(1), b.Recorded)
	have, err := db.LogHave(open.Job, 1)
	require.NoError(t, err)
	assert.Equal(t, int64(4), have)
}
