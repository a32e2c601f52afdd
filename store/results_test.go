package store_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

func result(id int64, repo, commit string, build int32, branches []string, st messages.Status, finished int64) *messages.Result {
	return &messages.Result{
		Job: &messages.Job{
			Id: id, Repo: repo, RepoName: repo + "-name", Commit: commit, Branches: branches, Build: build,
		},
		Attempt:        1,
		RunnerId:       "runner-1",
		Status:         st,
		StartedUnixMs:  finished - 100,
		FinishedUnixMs: finished,
	}
}

func jobIDs(rs []*messages.Result) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.GetJob().GetId())
	}
	return out
}

func TestRecordResultDuplicateIgnored(t *testing.T) {
	db := newDB(t)
	first := result(1, "r", "abcd", 1, []string{"main"}, messages.Status_STATUS_PASSED, 1000)
	inserted, err := db.RecordResult(first)
	require.NoError(t, err)
	assert.True(t, inserted)

	tests := []struct {
		name         string
		r            *messages.Result
		wantInserted bool
	}{
		{name: "same result again", r: first, wantInserted: false},
		{name: "same key with another outcome", r: result(1, "r", "abcd", 1, []string{"main"}, messages.Status_STATUS_FAILED, 2000), wantInserted: false},
		{name: "next build", r: result(2, "r", "abcd", 2, []string{"main"}, messages.Status_STATUS_FAILED, 3000), wantInserted: true},
		{name: "same commit in another repo", r: result(3, "other", "abcd", 1, nil, messages.Status_STATUS_PASSED, 4000), wantInserted: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inserted, err := db.RecordResult(tc.r)
			require.NoError(t, err)
			assert.Equal(t, tc.wantInserted, inserted)
		})
	}
	all, err := db.Results(store.ResultFilter{})
	require.NoError(t, err)
	assert.Equal(t, []int64{3, 2, 1}, jobIDs(all))
	assert.True(t, proto.Equal(first, all[2]), "the first copy wins: %v", all[2])
}

// TestRecordResultAddsABranch: the same build sent again naming a branch
// the stored copy does not (its commit was seen on another branch since)
// adds the branch and says the copy changed, so that the result file is
// written again; the rest of the first copy wins (issue 11, bug F).
func TestRecordResultAddsABranch(t *testing.T) {
	db := newDB(t)
	first := result(1, "r", "abcd", 1, []string{"feature"}, messages.Status_STATUS_PASSED, 1000)
	changed, err := db.RecordResult(first)
	require.NoError(t, err)
	require.True(t, changed)

	again := result(1, "r", "abcd", 1, []string{"feature", "main"}, messages.Status_STATUS_FAILED, 2000)
	changed, err = db.RecordResult(again)
	require.NoError(t, err)
	assert.True(t, changed, "a branch was added")
	changed, err = db.RecordResult(again)
	require.NoError(t, err)
	assert.False(t, changed, "nothing new")

	onMain, err := db.Results(store.ResultFilter{Branch: "main"})
	require.NoError(t, err)
	require.Len(t, onMain, 1)
	assert.Equal(t, []string{"feature", "main"}, onMain[0].Job.Branches)
	assert.Equal(t, messages.Status_STATUS_PASSED, onMain[0].Status, "the first copy wins")
	assert.EqualValues(t, 1000, onMain[0].FinishedUnixMs)
}

func TestResults(t *testing.T) {
	db := newDB(t)
	passed, failed := messages.Status_STATUS_PASSED, messages.Status_STATUS_FAILED
	for _, r := range []*messages.Result{
		result(1, "a", "aaaa0001", 1, []string{"main"}, passed, 1000),
		result(2, "a", "aaaa0002", 1, []string{"main", "dev"}, failed, 2000),
		result(3, "b", "bbbb0003", 1, []string{"dev"}, passed, 3000),
		result(4, "a", "aaab0004", 1, []string{"feature,x"}, messages.Status_STATUS_TIMED_OUT, 4000),
		result(5, "b", "bbbb0005", 1, []string{"main"}, failed, 4000), // same time as 4: recorded later, listed first
		result(6, "a", "aaaa0001", 2, []string{"main"}, passed, 5000),
	} {
		inserted, err := db.RecordResult(r)
		require.NoError(t, err)
		require.True(t, inserted)
	}
	tests := []struct {
		name    string
		f       store.ResultFilter
		wantIDs []int64
		wantErr bool
	}{
		{name: "all newest first", wantIDs: []int64{6, 5, 4, 3, 2, 1}},
		{name: "repo", f: store.ResultFilter{Repo: "b"}, wantIDs: []int64{5, 3}},
		{name: "branch", f: store.ResultFilter{Branch: "dev"}, wantIDs: []int64{3, 2}},
		{name: "branch is matched whole", f: store.ResultFilter{Branch: "mai"}},
		{name: "status", f: store.ResultFilter{Status: "failed"}, wantIDs: []int64{5, 2}},
		{name: "status in upper case", f: store.ResultFilter{Status: "PASSED"}, wantIDs: []int64{6, 3, 1}},
		{name: "unknown status", f: store.ResultFilter{Status: "green"}, wantErr: true},
		{name: "commit prefix", f: store.ResultFilter{CommitPrefix: "aaaa"}, wantIDs: []int64{6, 2, 1}},
		{name: "commit prefix in upper case", f: store.ResultFilter{CommitPrefix: "AAAB"}, wantIDs: []int64{4}},
		{name: "commit prefix ending in f", f: store.ResultFilter{CommitPrefix: "f"}},
		{name: "commit prefix not hex", f: store.ResultFilter{CommitPrefix: "zz"}, wantErr: true},
		{name: "filters combine", f: store.ResultFilter{Repo: "a", Branch: "main", Status: "passed"}, wantIDs: []int64{6, 1}},
		{name: "limit", f: store.ResultFilter{Limit: 2}, wantIDs: []int64{6, 5}},
		{name: "second page", f: store.ResultFilter{Limit: 2, Offset: 2}, wantIDs: []int64{4, 3}},
		{name: "last page is short", f: store.ResultFilter{Limit: 4, Offset: 4}, wantIDs: []int64{2, 1}},
		{name: "offset past the end", f: store.ResultFilter{Limit: 2, Offset: 10}},
		{name: "offset without limit", f: store.ResultFilter{Offset: 4}, wantIDs: []int64{2, 1}},
		{name: "page of a filter", f: store.ResultFilter{Repo: "a", Limit: 1, Offset: 1}, wantIDs: []int64{4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := db.Results(tc.f)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantIDs, jobIDs(rs))
		})
	}
}

func TestResultForCommit(t *testing.T) {
	db := newDB(t)
	passed, failed := messages.Status_STATUS_PASSED, messages.Status_STATUS_FAILED
	for _, r := range []*messages.Result{
		result(1, "a", "1234abcd", 1, nil, failed, 1000),
		result(2, "a", "1234abcd", 3, nil, passed, 2000),
		result(3, "a", "1234abcd", 2, nil, failed, 3000), // build 2 finished after build 3
		result(4, "a", "5678aaaa", 1, nil, passed, 1000),
		result(5, "a", "5678bbbb", 1, nil, passed, 1000),
	} {
		_, err := db.RecordResult(r)
		require.NoError(t, err)
	}
	tests := []struct {
		name    string
		prefix  string
		wantID  int64
		wantErr error
	}{
		{name: "full id gives the latest build", prefix: "1234abcd", wantID: 2},
		{name: "unique prefix", prefix: "1234", wantID: 2},
		{name: "upper case", prefix: "1234ABC", wantID: 2},
		{name: "unique longer prefix", prefix: "5678b", wantID: 5},
		{name: "ambiguous", prefix: "5678", wantErr: store.ErrAmbiguous},
		{name: "not found", prefix: "9999", wantErr: store.ErrNotFound},
		{name: "too short", prefix: "123", wantErr: store.ErrInvalidCommit},
		{name: "not hex", prefix: "12345g", wantErr: store.ErrInvalidCommit},
		{name: "empty", prefix: "", wantErr: store.ErrInvalidCommit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := db.ResultForCommit(tc.prefix)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				assert.Nil(t, r)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantID, r.GetJob().GetId())
		})
	}
}

func TestRecordResultRejectsResultWithoutJob(t *testing.T) {
	db := newDB(t)
	_, err := db.RecordResult(&messages.Result{Status: messages.Status_STATUS_PASSED})
	require.Error(t, err)
}
