package runner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// fakeDepot fakes the reporter's side of artifacts: it takes chunks in
// order (answering with what it holds), keeps a file on a close whose size
// and SHA-256 match, and serves fetches from files. Hooks make it lose a
// chunk, corrupt a file, or stay silent.
type fakeDepot struct {
	mu    sync.Mutex
	files map[string][]byte // received
	kinds map[string]string
	kept  map[string]bool
	serve map[string][]byte // what fetches get
	// listError, when set, answers every listing with it; later marks it
	// as one that may pass.
	listError string
	later     bool
	chunks    int
	// offsets counts the chunks received per offset of each file.
	offsets map[string]map[int64]int
	// lose drops a chunk (no answer) when it returns true.
	lose func(m *messages.ArtifactChunk) bool
	// corrupt changes the stored bytes of this many closes.
	corrupt int
	silent  bool
	tickets [][]byte
	fetches []*messages.ArtifactFetch
}

func newDepot() *fakeDepot {
	return &fakeDepot{files: map[string][]byte{}, kinds: map[string]string{}, kept: map[string]bool{}, serve: map[string][]byte{}, offsets: map[string]map[int64]int{}}
}

func (f *fakeDepot) Receive(ctx actor.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch m := ctx.Message().(type) {
	case *messages.ArtifactChunk:
		f.chunks++
		f.tickets = append(f.tickets, m.Ticket)
		if f.offsets[m.Path] == nil {
			f.offsets[m.Path] = map[int64]int{}
		}
		f.offsets[m.Path][m.Offset]++
		if f.silent || (f.lose != nil && f.lose(m)) {
			return
		}
		have := int64(len(f.files[m.Path]))
		if m.Offset <= have && m.Offset+int64(len(m.Data)) > have {
			f.files[m.Path] = append(f.files[m.Path], m.Data[have-m.Offset:]...)
		}
		f.kinds[m.Path] = m.Kind
		ctx.Respond(&messages.ArtifactAck{JobId: m.Job.Id, Attempt: m.Attempt, Path: m.Path, Have: int64(len(f.files[m.Path]))})
	case *messages.ArtifactClosed:
		f.tickets = append(f.tickets, m.Ticket)
		if f.silent {
			return
		}
		data := f.files[m.Path]
		if int64(len(data)) < m.Size {
			ctx.Respond(&messages.ArtifactAck{JobId: m.Job.Id, Attempt: m.Attempt, Path: m.Path, Have: int64(len(data))})
			return
		}
		if f.corrupt > 0 && len(data) > 0 {
			f.corrupt--
			data[0] ^= 1
		}
		sum := sha256.Sum256(data)
		if int64(len(data)) != m.Size || !bytes.Equal(sum[:], m.Sha256) {
			delete(f.files, m.Path)
			ctx.Respond(&messages.ArtifactAck{JobId: m.Job.Id, Attempt: m.Attempt, Path: m.Path, Error: "size or SHA-256 mismatch: dropped"})
			return
		}
		f.kept[m.Path] = true
		f.kinds[m.Path] = m.Kind
		ctx.Respond(&messages.ArtifactAck{JobId: m.Job.Id, Attempt: m.Attempt, Path: m.Path, Have: m.Size, Done: true})
	case *messages.ArtifactFetch:
		f.fetches = append(f.fetches, m)
		out := &messages.ArtifactData{JobId: m.Job.Id, FromIndex: m.FromIndex, Path: m.Path, Offset: m.Offset}
		if m.Path == "" && f.listError != "" {
			out.Error, out.Later = f.listError, f.later
			ctx.Respond(out)
			return
		}
		if m.Path == "" {
			for _, p := range sortedKeys(f.serve) {
				out.Paths = append(out.Paths, p)
				out.Sizes = append(out.Sizes, int64(len(f.serve[p])))
			}
			ctx.Respond(out)
			return
		}
		data, ok := f.serve[m.Path]
		if !ok {
			out.Error = "no such file"
		} else {
			out.Data = data[m.Offset:min(int64(len(data)), m.Offset+16)]
		}
		ctx.Respond(out)
	}
}

func sortedKeys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

var artifactRun = &messages.RunJob{
	Job: &messages.Job{Id: 12, BuildId: 10, Index: 2, BuildJobs: 3, Repo: "r", Commit: "0123456789abcdef0123456789abcdef01234567", Build: 1,
		Cell: &messages.PipelineJob{Key: "package", Name: "package", Needs: []int32{1, 0, 1}}},
	Attempt: 1, LogTicket: []byte("the ticket of job 12 attempt 1"),
}

// newMover starts a local actor system with a fake depot and returns an
// Artifacts to it that gives up quickly.
func newMover(t *testing.T, maxSize int64) (*Artifacts, *fakeDepot) {
	t.Helper()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	t.Cleanup(sys.Shutdown)
	depot := newDepot()
	pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return depot }))
	run := proto.Clone(artifactRun).(*messages.RunJob)
	run.LogSink = string(actors.AddrOf(pid))
	a := NewArtifacts(sys.Root, run, maxSize, slog.New(slog.DiscardHandler))
	a.chunk, a.stride = 16, 16
	a.wait = 100 * time.Millisecond
	a.stall = 500 * time.Millisecond
	a.need = 500 * time.Millisecond
	return a, depot
}

// workspace writes files (path -> content) under a new directory.
func workspace(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(c), 0o644))
	}
	return dir
}

func passed() *messages.Result { return &messages.Result{Status: messages.Status_STATUS_PASSED} }

// TestUploadDeclaredFiles: a declared file, every file below a declared
// directory and the reports a pattern matches arrive whole, in chunks,
// each with the attempt's ticket, reports under their kind; a missing path
// is noted, not fatal.
func TestUploadDeclaredFiles(t *testing.T) {
	a, depot := newMover(t, 1<<20)
	big := strings.Repeat("0123456789", 30) // 300 bytes: 19 chunks of 16
	dir := workspace(t, map[string]string{
		"coverage.out": "mode: set\n", "dist/app": big, "dist/lib/x.so": "x", "out/a.xml": "<testsuite/>",
		"out/b.xml": "<testsuite/>", "report.json": `{"Action":"pass"}`, "src/main.go": "package main",
	})
	var log bytes.Buffer
	res := passed()
	a.Upload(context.Background(), dir, Declared{
		Paths:   []string{"coverage.out", "dist/", "./missing"},
		Reports: map[string]string{messages.KindJUnit: "out/*.xml", messages.KindGoTestJSON: "report.json"},
	}, &log, res)

	require.Equal(t, messages.Status_STATUS_PASSED, res.Status, "%s", log.String())
	assert.Equal(t, int64(log.Len()), res.LogBytes, "what it wrote is counted in the log's size")
	assert.Contains(t, log.String(), "artifact missing does not exist after the steps: skipped")
	assert.Contains(t, log.String(), "uploaded 6 artifact files")
	depot.mu.Lock()
	defer depot.mu.Unlock()
	want := map[string]string{"coverage.out": "mode: set\n", "dist/app": big, "dist/lib/x.so": "x", "out/a.xml": "<testsuite/>", "out/b.xml": "<testsuite/>", "report.json": `{"Action":"pass"}`}
	for p, c := range want {
		assert.Equal(t, c, string(depot.files[p]), p)
		assert.True(t, depot.kept[p], p)
	}
	assert.Len(t, depot.kept, len(want), "src/ was not declared")
	assert.Equal(t, messages.KindJUnit, depot.kinds["out/a.xml"])
	assert.Equal(t, messages.KindGoTestJSON, depot.kinds["report.json"])
	assert.Equal(t, messages.KindArtifact, depot.kinds["dist/app"])
	for _, tk := range depot.tickets {
		assert.Equal(t, artifactRun.LogTicket, tk)
	}
}

// TestUploadWindowAndResends: no more than the window of chunks is ever
// unacknowledged; a lost chunk is sent again from what the reporter holds;
// a corrupted file is sent again once from the start; a reporter that
// stops answering fails the upload with a message that says so.
func TestUploadWindowAndResends(t *testing.T) {
	content := strings.Repeat("abcdefghij", 40) // 400 bytes: 25 chunks
	dir := workspace(t, map[string]string{"dist/app": content})
	decl := Declared{Paths: []string{"dist/app"}}

	t.Run("silent reporter: a window, then the stall", func(t *testing.T) {
		a, depot := newMover(t, 1<<20)
		depot.silent = true
		var log bytes.Buffer
		res := passed()
		a.Upload(context.Background(), dir, decl, &log, res)
		assert.Equal(t, messages.Status_STATUS_ERRORED, res.Status)
		assert.Contains(t, res.Reason, "did not acknowledge it")
		assert.Contains(t, log.String(), "is it running and registered with the dispatcher?")
		depot.mu.Lock()
		defer depot.mu.Unlock()
		assert.Len(t, depot.offsets["dist/app"], artifactWindow, "only the window's chunks were ever sent: %v", depot.offsets["dist/app"])
	})
	t.Run("a lost chunk is sent again", func(t *testing.T) {
		a, depot := newMover(t, 1<<20)
		lost := false
		depot.lose = func(m *messages.ArtifactChunk) bool {
			if m.Offset == 48 && !lost {
				lost = true
				return true
			}
			return false
		}
		res := passed()
		a.Upload(context.Background(), dir, decl, &bytes.Buffer{}, res)
		require.Equal(t, messages.Status_STATUS_PASSED, res.Status, res.Reason)
		depot.mu.Lock()
		defer depot.mu.Unlock()
		assert.Equal(t, content, string(depot.files["dist/app"]))
		assert.Equal(t, 2, depot.offsets["dist/app"][48], "the lost chunk went twice")
		assert.Equal(t, 1, depot.offsets["dist/app"][0], "the ones before it once")
	})
	t.Run("a checksum mismatch is sent again once", func(t *testing.T) {
		a, depot := newMover(t, 1<<20)
		depot.corrupt = 1
		res := passed()
		a.Upload(context.Background(), dir, decl, &bytes.Buffer{}, res)
		require.Equal(t, messages.Status_STATUS_PASSED, res.Status, res.Reason)
		depot.mu.Lock()
		assert.Equal(t, content, string(depot.files["dist/app"]))
		depot.mu.Unlock()
	})
	t.Run("a checksum mismatch twice fails", func(t *testing.T) {
		a, depot := newMover(t, 1<<20)
		depot.corrupt = 2
		res := &messages.Result{Status: messages.Status_STATUS_FAILED, Reason: "step test exited with status 1"}
		a.Upload(context.Background(), dir, decl, &bytes.Buffer{}, res)
		assert.Equal(t, messages.Status_STATUS_FAILED, res.Status, "a failed job stays failed")
		assert.Contains(t, res.Reason, "step test exited with status 1; upload artifact dist/app: size or SHA-256 mismatch")
	})
}

// TestUploadSizeCap: past --max-artifact-size nothing is sent, the job
// errors and its log says how much, which files and what to do.
func TestUploadSizeCap(t *testing.T) {
	a, depot := newMover(t, 100)
	dir := workspace(t, map[string]string{"dist/big": strings.Repeat("x", 90), "dist/small": strings.Repeat("y", 20)})
	var log bytes.Buffer
	res := passed()
	a.Upload(context.Background(), dir, Declared{Paths: []string{"dist"}}, &log, res)
	assert.Equal(t, messages.Status_STATUS_ERRORED, res.Status)
	assert.Equal(t, "artifacts exceed --max-artifact-size 100B: 110B in 2 files (dist/big 90B, dist/small 20B): declare fewer or smaller artifacts, or raise --max-artifact-size on the runner", res.Reason)
	assert.Contains(t, log.String(), "volt: artifacts exceed --max-artifact-size 100B")
	depot.mu.Lock()
	defer depot.mu.Unlock()
	assert.Zero(t, depot.chunks, "nothing was sent")
}

// TestUploadRefusesPathsOutOfTheWorkspace: "..", absolute paths and
// symbolic links that lead out of the workspace are refused, and nothing
// is sent; a link within it is followed.
func TestUploadRefusesPathsOutOfTheWorkspace(t *testing.T) {
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("s3cr3t"), 0o600))
	for _, tc := range []struct {
		name  string
		paths []string
		setup func(dir string)
		want  string
	}{
		{name: "dot-dot", paths: []string{"../secret"}, want: "leaves the workspace"},
		{name: "dot-dot inside", paths: []string{"dist/../../secret"}, want: "leaves the workspace"},
		{name: "absolute", paths: []string{filepath.Join(outside, "secret")}, want: "is absolute"},
		{name: "the whole workspace", paths: []string{"./"}, want: "is the whole workspace"},
		{name: "a link to a file outside", paths: []string{"link"}, setup: func(dir string) {
			require.NoError(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "link")))
		}, want: "out of the workspace"},
		{name: "a link to a directory outside", paths: []string{"dist"}, setup: func(dir string) {
			require.NoError(t, os.Symlink(outside, filepath.Join(dir, "dist")))
		}, want: "out of the workspace"},
		{name: "a link outside within a declared directory", paths: []string{"dist"}, setup: func(dir string) {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "dist"), 0o755))
			require.NoError(t, os.Symlink("../../"+filepath.Base(outside)+"/secret", filepath.Join(dir, "dist", "s")))
		}, want: "out of the workspace"},
		{name: "a relative link that climbs out", paths: []string{"up"}, setup: func(dir string) {
			require.NoError(t, os.Symlink("../x", filepath.Join(dir, "up")))
		}, want: "out of the workspace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, depot := newMover(t, 1<<20)
			dir := workspace(t, map[string]string{"README": "hi"})
			if tc.setup != nil {
				tc.setup(dir)
			}
			res := passed()
			a.Upload(context.Background(), dir, Declared{Paths: tc.paths}, &bytes.Buffer{}, res)
			assert.Equal(t, messages.Status_STATUS_ERRORED, res.Status)
			assert.Contains(t, res.Reason, tc.want)
			depot.mu.Lock()
			defer depot.mu.Unlock()
			assert.Zero(t, depot.chunks, "nothing was sent")
		})
	}

	t.Run("a link within the workspace is followed", func(t *testing.T) {
		a, depot := newMover(t, 1<<20)
		dir := workspace(t, map[string]string{"build/app": "binary"})
		require.NoError(t, os.Symlink("build/app", filepath.Join(dir, "app")))
		res := passed()
		a.Upload(context.Background(), dir, Declared{Paths: []string{"app"}}, &bytes.Buffer{}, res)
		require.Equal(t, messages.Status_STATUS_PASSED, res.Status, res.Reason)
		depot.mu.Lock()
		defer depot.mu.Unlock()
		assert.Equal(t, "binary", string(depot.files["app"]))
	})
}

// TestUploadSkippedWhenCancelled: a cancelled attempt uploads nothing.
func TestUploadSkippedWhenCancelled(t *testing.T) {
	a, depot := newMover(t, 1<<20)
	dir := workspace(t, map[string]string{"a": "a"})
	res := &messages.Result{Status: messages.Status_STATUS_CANCELLED}
	a.Upload(context.Background(), dir, Declared{Paths: []string{"a"}}, &bytes.Buffer{}, res)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.Upload(ctx, dir, Declared{Paths: []string{"a"}}, &bytes.Buffer{}, passed())
	depot.mu.Lock()
	defer depot.mu.Unlock()
	assert.Zero(t, depot.chunks)
}

// TestFetchNeeds: the files of each job the cell needs (each index once)
// land in the workspace at their paths, in chunks, with the asking
// attempt's ticket; a path the reporter names out of the workspace, or
// through a link out of it, is refused; the size cap applies.
func TestFetchNeeds(t *testing.T) {
	big := strings.Repeat("0123456789", 30)
	t.Run("placed", func(t *testing.T) {
		a, depot := newMover(t, 1<<20)
		depot.serve = map[string][]byte{"dist/app": []byte(big), "coverage.out": []byte("mode: set\n"), "empty": nil}
		dir := workspace(t, map[string]string{"coverage.out": "stale"})
		var log bytes.Buffer
		n, err := a.Fetch(context.Background(), dir, &log)
		require.NoError(t, err)
		assert.Equal(t, int64(log.Len()), n)
		for p, c := range map[string]string{"dist/app": big, "coverage.out": "mode: set\n", "empty": ""} {
			got, err := os.ReadFile(filepath.Join(dir, p))
			require.NoError(t, err)
			assert.Equal(t, c, string(got), p)
		}
		assert.Contains(t, log.String(), "placed 3 artifact files (310B) of job index 0")
		assert.Contains(t, log.String(), "of job index 1")
		depot.mu.Lock()
		defer depot.mu.Unlock()
		lists := map[int32]int{}
		for _, f := range depot.fetches {
			assert.Equal(t, artifactRun.LogTicket, f.Ticket)
			assert.Equal(t, artifactRun.Attempt, f.Attempt)
			if f.Path == "" {
				lists[f.FromIndex]++
			}
		}
		assert.Equal(t, map[int32]int{0: 1, 1: 1}, lists, "each need listed once")
	})
	for _, tc := range []struct {
		name  string
		serve map[string][]byte
		setup func(dir string)
		max   int64
		want  string
	}{
		{name: "dot-dot", serve: map[string][]byte{"../evil": []byte("x")}, want: "not allowed"},
		{name: "absolute", serve: map[string][]byte{"/tmp/evil": []byte("x")}, want: "not allowed"},
		{name: "through a link out", serve: map[string][]byte{"dist/app": []byte("x")}, setup: func(dir string) {
			require.NoError(t, os.Symlink(os.TempDir(), filepath.Join(dir, "dist")))
		}, want: "fetch artifact dist/app"},
		{name: "too large", serve: map[string][]byte{"a": []byte(big)}, max: 100, want: "exceed --max-artifact-size 100B"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 1 << 20
			}
			a, depot := newMover(t, max)
			depot.serve = tc.serve
			dir := workspace(t, nil)
			if tc.setup != nil {
				tc.setup(dir)
			}
			_, err := a.Fetch(context.Background(), dir, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			_, statErr := os.Stat(filepath.Join(os.TempDir(), "app"))
			assert.True(t, os.IsNotExist(statErr) || tc.name != "through a link out", "nothing written outside")
		})
	}
	t.Run("a final refusal ends the fetch at once", func(t *testing.T) {
		a, depot := newMover(t, 1<<20)
		depot.listError = "job 11 (index 2) does not need index 0"
		start := time.Now()
		_, err := a.Fetch(context.Background(), t.TempDir(), &bytes.Buffer{})
		require.ErrorContains(t, err, "does not need index 0")
		assert.Less(t, time.Since(start), a.need, "not retried until the need deadline")
		depot.mu.Lock()
		defer depot.mu.Unlock()
		assert.Len(t, depot.fetches, 1)
	})
	t.Run("no result yet is asked again until the deadline", func(t *testing.T) {
		a, depot := newMover(t, 1<<20)
		depot.listError, depot.later = "job 10 (index 0) has no result at the reporter yet", true
		_, err := a.Fetch(context.Background(), t.TempDir(), &bytes.Buffer{})
		require.ErrorContains(t, err, "no result at the reporter yet")
		depot.mu.Lock()
		defer depot.mu.Unlock()
		assert.Greater(t, len(depot.fetches), 1)
	})
	t.Run("no needs, no fetch", func(t *testing.T) {
		a, depot := newMover(t, 1<<20)
		a.run.Job = &messages.Job{Id: 10, BuildId: 10, Repo: "r", Commit: artifactRun.Job.Commit, Build: 1}
		_, err := a.Fetch(context.Background(), t.TempDir(), &bytes.Buffer{})
		require.NoError(t, err)
		depot.mu.Lock()
		defer depot.mu.Unlock()
		assert.Empty(t, depot.fetches)
	})
}

func TestSizeString(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 100: "100B", 1536: "1.5KiB", 100 << 20: "100MiB"} {
		assert.Equal(t, want, sizeString(n), fmt.Sprint(n))
	}
}
