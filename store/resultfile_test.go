package store_test

import (
	"errors"
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

const fileCommit = "0123456789abcdef0123456789abcdef01234567"

func fileResult() *messages.Result {
	started := time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)
	return &messages.Result{
		Job: &messages.Job{
			Id: 42, Repo: "/srv/git/app.git", RepoName: "app", Commit: fileCommit,
			Branches: []string{"main", "release"}, Build: 2,
		},
		Attempt:        3,
		RunnerId:       "runner-7",
		Status:         messages.Status_STATUS_FAILED,
		Reason:         "step test exited with 1",
		ExitCode:       1,
		StartedUnixMs:  started.UnixMilli(),
		FinishedUnixMs: started.Add(1234 * time.Millisecond).UnixMilli(),
		FailedStep:     "test",
	}
}

func TestWriteResultFileFormat(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(r *messages.Result)
		output string
		want   string
	}{
		{
			name:   "failed with reason and step",
			output: "--- FAIL: TestX\nFAIL\n",
			want: `status: failed
repo: /srv/git/app.git
branches: main,release
commit: 0123456789abcdef0123456789abcdef01234567
build: 2
attempt: 3
runner: runner-7
started: 2026-03-14T15:09:26.535Z
finished: 2026-03-14T15:09:27.769Z
duration: 1.234s
reason: step test exited with 1
failed_step: test

--- FAIL: TestX
FAIL
`,
		},
		{
			name: "passed has no reason or step lines",
			edit: func(r *messages.Result) {
				r.Status, r.Reason, r.FailedStep = messages.Status_STATUS_PASSED, "", ""
				r.Job.Branches = []string{"main"}
				r.FinishedUnixMs = r.StartedUnixMs + 61_000
			},
			output: "ok\n",
			want: `status: passed
repo: /srv/git/app.git
branches: main
commit: 0123456789abcdef0123456789abcdef01234567
build: 2
attempt: 3
runner: runner-7
started: 2026-03-14T15:09:26.535Z
finished: 2026-03-14T15:10:27.535Z
duration: 1m1s

ok
`,
		},
		{
			name: "line breaks in a value stay on one line",
			edit: func(r *messages.Result) {
				r.Status = messages.Status_STATUS_ERRORED
				r.Reason = "git fetch failed:\nfatal: no such repo\r\n"
				r.FailedStep = ""
			},
			want: `status: errored
repo: /srv/git/app.git
branches: main,release
commit: 0123456789abcdef0123456789abcdef01234567
build: 2
attempt: 3
runner: runner-7
started: 2026-03-14T15:09:26.535Z
finished: 2026-03-14T15:09:27.769Z
duration: 1.234s
reason: git fetch failed: fatal: no such repo 

`,
		},
		{
			name: "never started",
			edit: func(r *messages.Result) {
				r.Status, r.Reason, r.FailedStep = messages.Status_STATUS_CANCELLED, "", ""
				r.StartedUnixMs = 0
				r.Job.Branches = nil
			},
			want: `status: cancelled
repo: /srv/git/app.git
branches: 
commit: 0123456789abcdef0123456789abcdef01234567
build: 2
attempt: 3
runner: runner-7
started: 
finished: 2026-03-14T15:09:27.769Z
duration: 0s

`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := fileResult()
			if tc.edit != nil {
				tc.edit(r)
			}
			require.NoError(t, store.WriteResultFile(dir, r, strings.NewReader(tc.output)))
			got, err := os.ReadFile(filepath.Join(dir, "test_results", fileCommit))
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
			assertOnlyFile(t, dir)
		})
	}
}

// assertOnlyFile checks that test_results holds the result file and nothing
// else (no temporary file left behind) and that everyone can read it.
func assertOnlyFile(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "test_results"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, fileCommit, entries[0].Name())
	info, err := entries[0].Info()
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), info.Mode().Perm())
}

func TestWriteResultFileLatestBuildWins(t *testing.T) {
	tests := []struct {
		name       string
		builds     []int32
		wantBuild  string
		wantOutput string
	}{
		{name: "newer build replaces", builds: []int32{1, 2}, wantBuild: "build: 2", wantOutput: "output of build 2"},
		{name: "older build is ignored", builds: []int32{3, 2}, wantBuild: "build: 3", wantOutput: "output of build 3"},
		{name: "same build is rewritten", builds: []int32{2, 2}, wantBuild: "build: 2", wantOutput: "output of build 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, b := range tc.builds {
				r := fileResult()
				r.Job.Build = b
				out := "output of build " + string(rune('0'+b))
				require.NoError(t, store.WriteResultFile(dir, r, strings.NewReader(out)))
			}
			got, err := os.ReadFile(filepath.Join(dir, "test_results", fileCommit))
			require.NoError(t, err)
			assert.Contains(t, string(got), "\n"+tc.wantBuild+"\n")
			assert.True(t, strings.HasSuffix(string(got), "\n\n"+tc.wantOutput), "got %q", got)
			assertOnlyFile(t, dir)
		})
	}
}

func TestWriteResultFileRejectsBadCommit(t *testing.T) {
	tests := []struct {
		name   string
		commit string
	}{
		{name: "empty", commit: ""},
		{name: "path", commit: "../../etc/passwd"},
		{name: "slash in hex", commit: "abcd/ef01"},
		{name: "upper case", commit: "ABCDEF01"},
		{name: "too short", commit: "abc"},
		{name: "too long", commit: strings.Repeat("a", 65)},
		{name: "not hex", commit: "abcdefgh"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := fileResult()
			r.Job.Commit = tc.commit
			err := store.WriteResultFile(dir, r, strings.NewReader("x"))
			require.ErrorIs(t, err, store.ErrInvalidCommit)
			_, statErr := os.Stat(filepath.Join(dir, "test_results"))
			assert.True(t, os.IsNotExist(statErr), "nothing is created")
		})
	}
}

// failingReader fails after some output, as a broken log stream would.
type failingReader struct{ sent bool }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.sent {
		return 0, errors.New("stream broke")
	}
	f.sent = true
	return copy(p, "partial"), nil
}

func TestWriteResultFileFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	r := fileResult()
	r.Job.Build = 1
	require.NoError(t, store.WriteResultFile(dir, r, strings.NewReader("old output")))
	before, err := os.ReadFile(filepath.Join(dir, "test_results", fileCommit))
	require.NoError(t, err)

	r.Job.Build = 2
	err = store.WriteResultFile(dir, r, &failingReader{})
	require.ErrorContains(t, err, "stream broke")

	after, err := os.ReadFile(filepath.Join(dir, "test_results", fileCommit))
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after))
	assertOnlyFile(t, dir)
}
