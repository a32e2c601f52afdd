package reporter

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// artifactStore is an in-memory ArtifactWriter and ArtifactReader with the
// store's rules: chunks in order, kept on a matching close.
type artifactStore struct {
	files   map[string]*storedFile // "job/attempt/path"
	results map[int64]*messages.Result
}

type storedFile struct {
	kind string
	data []byte
	kept bool
	mode uint32
}

func newArtifactStore() *artifactStore {
	return &artifactStore{files: map[string]*storedFile{}, results: map[int64]*messages.Result{}}
}

func fileKey(jobID int64, attempt int32, path string) string {
	return fmt.Sprintf("%d/%d/%s", jobID, attempt, path)
}

func (s *artifactStore) AppendArtifact(job *messages.Job, attempt int32, path, kind string, offset int64, data []byte) (int64, error) {
	k := fileKey(job.Id, attempt, path)
	f := s.files[k]
	if f == nil {
		f = &storedFile{kind: kind}
		s.files[k] = f
	}
	have := int64(len(f.data))
	if !f.kept && offset <= have && offset+int64(len(data)) > have {
		f.data = append(f.data, data[have-offset:]...)
	}
	return int64(len(f.data)), nil
}

func (s *artifactStore) HeldArtifact(jobID int64, attempt int32, path string) (ArtifactHeld, error) {
	var h ArtifactHeld
	if f := s.files[fileKey(jobID, attempt, path)]; f != nil {
		h.File = ArtifactFile{Path: path, Kind: f.kind, Size: int64(len(f.data)), Kept: f.kept}
	}
	prefix := fmt.Sprintf("%d/%d/", jobID, attempt)
	for k, f := range s.files {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			h.AttemptFiles++
			h.AttemptBytes += int64(len(f.data))
		}
	}
	return h, nil
}

func (s *artifactStore) CloseArtifact(jobID int64, attempt int32, path string, size int64, sum []byte, mode uint32) (bool, error) {
	f := s.files[fileKey(jobID, attempt, path)]
	if f == nil {
		return false, nil
	}
	got := sha256.Sum256(f.data)
	if int64(len(f.data)) == size && string(got[:]) == string(sum) {
		f.kept, f.mode = true, messages.ArtifactMode(mode)
	} else if int64(len(f.data)) >= size {
		f.data = nil
	}
	return f.kept, nil
}

func (s *artifactStore) ResultByJob(jobID int64) (*messages.Result, error) {
	return s.results[jobID], nil
}

func (s *artifactStore) Artifacts(jobID int64, attempt int32) ([]ArtifactFile, error) {
	var out []ArtifactFile
	prefix := fmt.Sprintf("%d/%d/", jobID, attempt)
	for k, f := range s.files {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix && f.kept {
			out = append(out, ArtifactFile{Path: k[len(prefix):], Kind: f.kind, Size: int64(len(f.data)), Kept: true, Mode: f.mode})
		}
	}
	return out, nil
}

func (s *artifactStore) ReadArtifact(jobID int64, attempt int32, path string, offset int64, n int) ([]byte, error) {
	f := s.files[fileKey(jobID, attempt, path)]
	if f == nil || !f.kept || offset > int64(len(f.data)) {
		return nil, fmt.Errorf("no kept file %s", path)
	}
	return f.data[offset:min(int64(len(f.data)), offset+int64(n))], nil
}

var artifactKey = []byte("0123456789abcdef0123456789abcdef")

// build is a build of three jobs from id 100: lint (0), test (1) needs
// lint, package (2) needs test.
func buildJob(index int32) *messages.Job {
	j := &messages.Job{Id: 100 + int64(index), BuildId: 100, Index: index, BuildJobs: 3, Repo: "/srv/r.git",
		Commit: "88e7207773cbf7ac1165ce1c04f30b5b9f416a91", Build: 1, Cell: &messages.PipelineJob{Key: []string{"lint", "test", "package"}[index]}}
	if index > 0 {
		j.Cell.Needs = []int32{index - 1}
	}
	return j
}

func newDesk(s *artifactStore) *desk {
	return &desk{store: s, maxBytes: 100, ticket: func(who actors.Identity, job *messages.Job, attempt int32, tk []byte) (bool, bool) {
		return who.IsLocal() || messages.ValidTicket(artifactKey, tk, job, attempt, who.Name), true
	}}
}

var runner1 = actors.Identity{Role: actors.RoleRunner, Name: "r1"}

func tk(j *messages.Job, attempt int32, runner string) []byte {
	return messages.LogTicket(artifactKey, j, attempt, runner)
}

func digest(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

// TestArtifactUploadChecks: the reporter takes an attempt's chunks only
// with that attempt's ticket for the runner that sends them, in order,
// within its cap, and keeps a file only when size and checksum match.
func TestArtifactUploadChecks(t *testing.T) {
	j := buildJob(1)
	chunk := func(off int64, data string, ticket []byte) *messages.ArtifactChunk {
		return &messages.ArtifactChunk{Job: j, Attempt: 1, Path: "coverage.out", Kind: messages.KindArtifact, Offset: off, Data: []byte(data), Ticket: ticket}
	}
	closed := func(size int64, sum []byte) *messages.ArtifactClosed {
		return &messages.ArtifactClosed{Job: j, Attempt: 1, Path: "coverage.out", Kind: messages.KindArtifact, Size: size, Sha256: sum, Ticket: tk(j, 1, "r1")}
	}
	good := tk(j, 1, "r1")
	for _, tc := range []struct {
		name    string
		who     actors.Identity
		in      any
		refused bool
	}{
		{"no ticket", runner1, chunk(0, "x", nil), true},
		{"another runner's ticket", runner1, chunk(0, "x", tk(j, 1, "r2")), true},
		{"another attempt's ticket", runner1, chunk(0, "x", tk(j, 2, "r1")), true},
		{"r1's ticket shown by r2", actors.Identity{Role: actors.RoleRunner, Name: "r2"}, chunk(0, "x", good), true},
		{"not a runner", actors.Identity{Role: actors.RoleObserver, Name: "r1"}, chunk(0, "x", good), true},
		{"a path out of the workspace", runner1, &messages.ArtifactChunk{Job: j, Attempt: 1, Path: "../etc/passwd", Kind: messages.KindArtifact, Data: []byte("x"), Ticket: good}, true},
		{"an absolute path", runner1, &messages.ArtifactChunk{Job: j, Attempt: 1, Path: "/etc/passwd", Kind: messages.KindArtifact, Data: []byte("x"), Ticket: good}, true},
		{"an unknown kind", runner1, &messages.ArtifactChunk{Job: j, Attempt: 1, Path: "a", Kind: "exe", Data: []byte("x"), Ticket: good}, true},
		{"inconsistent index", runner1, &messages.ArtifactChunk{Job: &messages.Job{Id: 100, BuildId: 100, Index: 1, Repo: j.Repo, Commit: j.Commit, Build: 1}, Attempt: 1, Path: "a", Kind: messages.KindArtifact, Ticket: good}, true},
		{"a close without the ticket", runner1, &messages.ArtifactClosed{Job: j, Attempt: 1, Path: "a", Kind: messages.KindArtifact, Sha256: digest("")}, true},
		{"a valid chunk", runner1, chunk(0, "x", good), false},
		{"this process needs no ticket", actors.Local, chunk(0, "x", nil), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newArtifactStore()
			reply, refused, err := newDesk(s).handle(tc.who, tc.in)
			require.NoError(t, err)
			if tc.refused {
				assert.NotEmpty(t, refused)
				assert.Nil(t, reply, "a refusal is not answered")
				assert.Empty(t, s.files, "nothing stored")
				return
			}
			assert.Empty(t, refused)
			assert.Equal(t, int64(1), reply.(*messages.ArtifactAck).Have)
		})
	}

	t.Run("chunks in order, the cap, the checksum", func(t *testing.T) {
		s := newArtifactStore()
		d := newDesk(s)
		ack := func(in any) *messages.ArtifactAck {
			t.Helper()
			reply, refused, err := d.handle(runner1, in)
			require.NoError(t, err)
			require.Empty(t, refused)
			return reply.(*messages.ArtifactAck)
		}
		assert.Equal(t, int64(4), ack(chunk(0, "0123", good)).Have)
		assert.Equal(t, int64(4), ack(chunk(8, "89", good)).Have, "a chunk after a lost one: resend from 4")
		assert.Equal(t, int64(8), ack(chunk(4, "4567", good)).Have)
		a := ack(closed(10, digest("0123456789")))
		assert.Equal(t, int64(8), a.Have, "close before the whole file: send the rest")
		assert.False(t, a.Done)
		assert.Equal(t, int64(10), ack(chunk(8, "89", good)).Have)
		a = ack(closed(10, digest("another content")))
		assert.NotEmpty(t, a.Error, "a checksum mismatch is refused")
		assert.False(t, a.Done)
		assert.Equal(t, int64(0), a.Have, "and dropped: the runner starts again")
		ack(chunk(0, "0123456789", good))
		a = ack(closed(10, digest("0123456789")))
		assert.True(t, a.Done)
		assert.Empty(t, a.Error)
		assert.True(t, ack(closed(10, digest("0123456789"))).Done, "a repeated close is acknowledged again")

		big := &messages.ArtifactChunk{Job: j, Attempt: 1, Path: "big", Kind: messages.KindArtifact, Data: make([]byte, 91), Ticket: good}
		a = ack(big)
		assert.Contains(t, a.Error, "more than the reporter keeps for one job (100 bytes)")
		assert.Equal(t, int64(0), a.Have)
	})
}

// TestArtifactReportsGoToOnReport: a kept test report is handed to
// OnReport, once, with its kind; an artifact is not.
func TestArtifactReportsGoToOnReport(t *testing.T) {
	s := newArtifactStore()
	d := newDesk(s)
	var got []string
	d.onReport = func(job *messages.Job, attempt int32, kind string, data []byte) {
		got = append(got, fmt.Sprintf("%d/%d %s %s", job.Id, attempt, kind, data))
	}
	j := buildJob(1)
	for _, f := range []struct{ path, kind, data string }{{"report.json", messages.KindGoTestJSON, `{"Action":"pass"}`}, {"cover.out", messages.KindArtifact, "mode: set"}} {
		_, refused, err := d.handle(runner1, &messages.ArtifactChunk{Job: j, Attempt: 1, Path: f.path, Kind: f.kind, Data: []byte(f.data), Ticket: tk(j, 1, "r1")})
		require.NoError(t, err)
		require.Empty(t, refused)
		reply, _, err := d.handle(runner1, &messages.ArtifactClosed{Job: j, Attempt: 1, Path: f.path, Kind: f.kind, Size: int64(len(f.data)), Sha256: digest(f.data), Ticket: tk(j, 1, "r1")})
		require.NoError(t, err)
		require.True(t, reply.(*messages.ArtifactAck).Done)
	}
	assert.Equal(t, []string{`101/1 go-test-json {"Action":"pass"}`}, got)
}

// TestArtifactFetch: a job gets the artifacts of the jobs its cell needs
// (which its ticket vouches for), from their recorded attempt, and only
// when that attempt passed.
func TestArtifactFetch(t *testing.T) {
	s := newArtifactStore()
	test, pkg := buildJob(1), buildJob(2)
	// test's attempt 1 failed, attempt 2 passed; both uploaded.
	for attempt, content := range map[int32]string{1: "attempt 1", 2: "attempt 2"} {
		_, err := s.AppendArtifact(test, attempt, "coverage.out", messages.KindArtifact, 0, []byte(content))
		require.NoError(t, err)
		_, err = s.CloseArtifact(test.Id, attempt, "coverage.out", int64(len(content)), digest(content), 0o644)
		require.NoError(t, err)
	}
	d := newDesk(s)
	fetch := func(asker *messages.Job, ticket []byte, from int32, path string) (*messages.ArtifactData, string) {
		t.Helper()
		reply, refused, err := d.handle(runner1, &messages.ArtifactFetch{Job: asker, Attempt: 1, Ticket: ticket, FromIndex: from, Path: path})
		require.NoError(t, err)
		if refused != "" {
			require.Nil(t, reply)
			return nil, refused
		}
		return reply.(*messages.ArtifactData), ""
	}

	data, _ := fetch(pkg, tk(pkg, 1, "r1"), 1, "")
	assert.Contains(t, data.Error, "no result at the reporter yet")
	assert.True(t, data.Later, "the runner asks again")

	s.results[test.Id] = &messages.Result{Job: test, Attempt: 2, Status: messages.Status_STATUS_PASSED}
	data, _ = fetch(pkg, tk(pkg, 1, "r1"), 1, "")
	require.Empty(t, data.Error)
	assert.Equal(t, []string{"coverage.out"}, data.Paths)
	assert.Equal(t, []int64{9}, data.Sizes)
	data, _ = fetch(pkg, tk(pkg, 1, "r1"), 1, "coverage.out")
	assert.Equal(t, "attempt 2", string(data.Data), "the recorded attempt's")
	assert.True(t, data.Eof)

	data, _ = fetch(pkg, tk(pkg, 1, "r1"), 0, "")
	assert.Contains(t, data.Error, "does not need index 0", "package needs test, not lint")
	assert.Empty(t, data.Paths)

	forged := proto.Clone(pkg).(*messages.Job)
	forged.Cell.Needs = []int32{0, 1}
	_, refused := fetch(forged, tk(pkg, 1, "r1"), 0, "")
	assert.Contains(t, refused, "no valid ticket", "needs the ticket does not vouch for are refused")
	_, refused = fetch(pkg, tk(pkg, 1, "r2"), 1, "")
	assert.NotEmpty(t, refused, "another runner's ticket")

	s.results[test.Id].Status = messages.Status_STATUS_FAILED
	data, _ = fetch(pkg, tk(pkg, 1, "r1"), 1, "")
	assert.Empty(t, data.Error)
	assert.Empty(t, data.Paths, "a need that did not pass hands nothing on")

	other := proto.Clone(test).(*messages.Job)
	other.Commit = "99e7207773cbf7ac1165ce1c04f30b5b9f416a91"
	s.results[test.Id] = &messages.Result{Job: other, Attempt: 2, Status: messages.Status_STATUS_PASSED}
	data, _ = fetch(pkg, tk(pkg, 1, "r1"), 1, "")
	assert.Contains(t, data.Error, "is not index 1 of the asking job's build")
}
