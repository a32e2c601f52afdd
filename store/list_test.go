package store_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// listFixture records 30 results: repo "a" on main (even ids) and dev (odd
// ids, failed), repo "b" on main, one finishing per millisecond step.
func listFixture(t *testing.T) *store.DB {
	t.Helper()
	db := newDB(t)
	for i := int64(1); i <= 30; i++ {
		repo, branch, st := "a", "main", messages.Status_STATUS_PASSED
		switch {
		case i > 20:
			repo = "b"
		case i%2 == 1:
			branch, st = "dev", messages.Status_STATUS_FAILED
		}
		_, err := db.RecordResult(result(i, repo, fmt.Sprintf("%040x", i), 1, []string{branch}, st, 1000+i))
		require.NoError(t, err)
	}
	return db
}

func rowIDs(rows []store.Row) []int64 {
	var out []int64
	for _, r := range rows {
		out = append(out, r.Result.GetJob().GetId())
	}
	return out
}

func TestListResults(t *testing.T) {
	db := listFixture(t)
	tests := []struct {
		name     string
		q        store.Query
		want     []int64
		wantNext bool
	}{
		{name: "newest first", q: store.Query{Limit: 3}, want: []int64{30, 29, 28}, wantNext: true},
		{name: "by repo name", q: store.Query{RepoName: "b-name", Limit: 20}, want: []int64{30, 29, 28, 27, 26, 25, 24, 23, 22, 21}},
		{name: "by repo url", q: store.Query{Repo: "a", Branch: "dev", Limit: 2}, want: []int64{19, 17}, wantNext: true},
		{name: "by status", q: store.Query{Status: "failed", Limit: 3}, want: []int64{19, 17, 15}, wantNext: true},
		{name: "unknown branch", q: store.Query{Branch: "nope", Limit: 3}},
		{name: "branch is not a substring match", q: store.Query{Branch: "mai", Limit: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, next, err := db.ListResults(tt.q)
			require.NoError(t, err)
			assert.Equal(t, tt.want, rowIDs(rows))
			assert.Equal(t, tt.wantNext, next != nil)
		})
	}
}

func TestListResultsPagesCoverEverythingOnce(t *testing.T) {
	db := listFixture(t)
	var all []int64
	q := store.Query{Repo: "a", Limit: 7}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10, "pagination does not end")
		rows, next, err := db.ListResults(q)
		require.NoError(t, err)
		all = append(all, rowIDs(rows)...)
		if next == nil {
			break
		}
		q.After = next
	}
	want := []int64{}
	for i := int64(20); i >= 1; i-- {
		want = append(want, i)
	}
	assert.Equal(t, want, all)
}

func TestReposBranchesAndBadges(t *testing.T) {
	db := listFixture(t)
	_, err := db.RecordResult(result(31, "a", fmt.Sprintf("%040x", 31), 1, []string{"main", "release"}, messages.Status_STATUS_ERRORED, 2000))
	require.NoError(t, err)

	repos, err := db.Repos()
	require.NoError(t, err)
	assert.Equal(t, []store.RepoRef{{Repo: "a", Name: "a-name"}, {Repo: "b", Name: "b-name"}}, repos)

	branches, err := db.Branches("a", 10, 2)
	require.NoError(t, err)
	got := map[string][]int64{}
	var order []string
	for _, b := range branches {
		order = append(order, b.Name)
		got[b.Name] = jobIDs(b.Results)
	}
	assert.Equal(t, []string{"main", "release", "dev"}, order, "most recently built first, then by name")
	assert.Equal(t, map[string][]int64{"main": {31, 20}, "release": {31}, "dev": {19, 17}}, got)

	tests := []struct {
		repo, branch string
		want         string
	}{
		{"a-name", "main", "errored"},
		{"a-name", "dev", "failed"},
		{"b-name", "main", "passed"},
	}
	for _, tt := range tests {
		r, err := db.LatestOnBranch(tt.repo, tt.branch)
		require.NoError(t, err)
		assert.Equal(t, tt.want, r.GetStatus().Name(), "%s/%s", tt.repo, tt.branch)
	}
	_, err = db.LatestOnBranch("a-name", "gone")
	assert.ErrorIs(t, err, store.ErrNotFound)

	counts, err := db.StatusCounts()
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"passed": 20, "failed": 10, "errored": 1, "timed_out": 0, "cancelled": 0, "skipped": 0}, counts)

	r, err := db.ResultByJob(17)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("%040x", 17), r.GetJob().GetCommit())
	_, err = db.ResultByJob(999)
	assert.ErrorIs(t, err, store.ErrNotFound)
}

func TestReadLogFrom(t *testing.T) {
	db := newDB(t)
	job := &messages.Job{Id: 1, Repo: "r", Commit: "abcd", Build: 1}
	for _, c := range []struct {
		off  int64
		data string
	}{{0, "hello "}, {6, "wide "}, {11, "world"}} {
		_, err := db.AppendLog(job, 1, c.off, []byte(c.data))
		require.NoError(t, err)
	}
	tests := []struct {
		name      string
		from, max int64
		want      string
	}{
		{"all", 0, 100, "hello wide world"},
		{"inside a chunk", 3, 100, "lo wide world"},
		{"capped", 3, 5, "lo wi"},
		{"at a chunk start", 11, 100, "world"},
		{"at the end", 16, 100, ""},
		{"past the end", 40, 100, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.ReadLogFrom(job, 1, tt.from, tt.max)
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}
