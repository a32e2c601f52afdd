package store_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

type chunk struct {
	offset int64
	data   string
}

func TestAppendLog(t *testing.T) {
	const full = "0123456789abcdefghij"
	tests := []struct {
		name   string
		chunks []chunk
		// wantHave is the contiguous length after each chunk.
		wantHave []int64
		wantLog  string
	}{
		{
			name:     "in order",
			chunks:   []chunk{{0, "0123"}, {4, "4567"}, {8, "89ab"}},
			wantHave: []int64{4, 8, 12},
			wantLog:  "0123456789ab",
		},
		{
			name:     "reversed",
			chunks:   []chunk{{8, "89ab"}, {4, "4567"}, {0, "0123"}},
			wantHave: []int64{0, 0, 12},
			wantLog:  "0123456789ab",
		},
		{
			name:     "duplicates are ignored",
			chunks:   []chunk{{0, "0123"}, {0, "0123"}, {8, "89ab"}, {8, "89ab"}, {4, "4567"}, {4, "4567"}},
			wantHave: []int64{4, 4, 4, 4, 12, 12},
			wantLog:  "0123456789ab",
		},
		{
			name:     "a gap holds back what follows",
			chunks:   []chunk{{0, "01"}, {4, "45"}, {8, "89"}, {2, "23"}},
			wantHave: []int64{2, 2, 2, 6},
			wantLog:  "012345",
		},
		{
			name:     "overlap with the held end keeps only the new tail",
			chunks:   []chunk{{0, "0123"}, {2, "23456"}},
			wantHave: []int64{4, 7},
			wantLog:  "0123456",
		},
		{
			name:     "overlapping chunks beyond the end",
			chunks:   []chunk{{6, "6789"}, {4, "45678"}, {12, "cd"}, {10, "ab"}, {0, "0123"}},
			wantHave: []int64{0, 0, 0, 0, 14},
			wantLog:  "0123456789abcd",
		},
		{
			name:     "a longer resend at a held-back offset wins",
			chunks:   []chunk{{4, "45"}, {4, "4567"}, {0, "0123"}},
			wantHave: []int64{0, 0, 8},
			wantLog:  "01234567",
		},
		{
			name:     "empty chunk",
			chunks:   []chunk{{0, ""}, {0, "01"}, {2, ""}},
			wantHave: []int64{0, 2, 2},
			wantLog:  "01",
		},
		{
			name: "many small chunks out of order",
			chunks: func() []chunk {
				var cs []chunk
				for i := len(full) - 1; i >= 0; i-- {
					cs = append(cs, chunk{int64(i), full[i : i+1]})
				}
				return cs
			}(),
			wantHave: append(make([]int64, len(full)-1), int64(len(full))),
			wantLog:  full,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			job := &messages.Job{Id: 1, Repo: "r", Commit: "abcd", Build: 1}
			for i, c := range tc.chunks {
				have, err := db.AppendLog(job, 1, c.offset, []byte(c.data))
				require.NoError(t, err)
				assert.Equal(t, tc.wantHave[i], have, "after chunk %d %+v", i, c)
			}
			have, err := db.LogHave(job, 1)
			require.NoError(t, err)
			assert.Equal(t, int64(len(tc.wantLog)), have)
			got, err := db.ReadLog(job, 1)
			require.NoError(t, err)
			assert.Equal(t, tc.wantLog, string(got))

			// Other attempts and builds of the job are separate logs.
			for _, other := range []struct {
				job     *messages.Job
				attempt int32
			}{{job, 2}, {&messages.Job{Id: 2, Repo: "r", Commit: "abcd", Build: 2}, 1}} {
				have, err := db.LogHave(other.job, other.attempt)
				require.NoError(t, err)
				assert.Zero(t, have)
				got, err := db.ReadLog(other.job, other.attempt)
				require.NoError(t, err)
				assert.Empty(t, got)
			}
		})
	}
}

func TestCopyLogLarge(t *testing.T) {
	db := newDB(t)
	job := &messages.Job{Id: 1, Repo: "r", Commit: "abcd", Build: 1}
	const chunkSize = 64 << 10
	want := bytes.Repeat([]byte("volt log line\n"), 4<<20/14) // about 4 MiB
	var have int64
	for off := 0; off < len(want); off += chunkSize {
		var err error
		have, err = db.AppendLog(job, 1, int64(off), want[off:min(off+chunkSize, len(want))])
		require.NoError(t, err)
	}
	assert.Equal(t, int64(len(want)), have)
	var buf bytes.Buffer
	n, err := db.CopyLog(&buf, job, 1)
	require.NoError(t, err)
	assert.Equal(t, int64(len(want)), n)
	assert.True(t, bytes.Equal(want, buf.Bytes()))
}

func TestAppendLogRejectsBadInput(t *testing.T) {
	tests := []struct {
		name   string
		job    *messages.Job
		offset int64
	}{
		{name: "no job", job: nil},
		{name: "negative offset", job: &messages.Job{Repo: "r", Commit: "abcd"}, offset: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t)
			_, err := db.AppendLog(tc.job, 1, tc.offset, []byte(strings.Repeat("x", 3)))
			require.Error(t, err)
		})
	}
}

func TestDropLogForgetsAnAttempt(t *testing.T) {
	db, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	job := &messages.Job{Id: 1, Repo: "r", Commit: "c", Build: 1}
	if _, err := db.AppendLog(job, 1, 0, []byte("forged output\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AppendLog(job, 2, 0, []byte("other attempt\n")); err != nil {
		t.Fatal(err)
	}
	if err := db.DropLog(job, 1); err != nil {
		t.Fatal(err)
	}
	if have, err := db.LogHave(job, 1); err != nil || have != 0 {
		t.Fatalf("after DropLog: have %d, err %v; want 0", have, err)
	}
	if b, err := db.ReadLog(job, 2); err != nil || string(b) != "other attempt\n" {
		t.Fatalf("another attempt's log: %q, %v", b, err)
	}
	if have, err := db.AppendLog(job, 1, 0, []byte("real\n")); err != nil || have != 5 {
		t.Fatalf("written again: have %d, err %v", have, err)
	}
}
