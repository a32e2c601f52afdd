package runner

// This file is shell, not core: it does network and file I/O and reads
// the clock, as logstream.go does (internal/mutate.NotCore leaves it out).
//
// Artifacts: before a job's first step the runner places in its workspace
// the artifacts of the jobs it needs; after its steps, whatever they ended
// with, it uploads the files the job declares (artifacts and test
// reports) to the reporter, before the outcome is reported, so that the
// jobs that need it find them.
//
// Files travel over the authenticated connection to the reporter, as the
// log does, in chunks of messages.ArtifactChunkSize, each with the
// attempt's log ticket. At most a window of chunks is in flight and the
// next is sent as the reporter acknowledges one: Proto.Actor batches up
// to 1,000 envelopes into one gRPC message against a 4 MiB limit, and a
// heartbeat to a dispatcher on the same node must not wait behind a
// whole file. A file ends with its size and SHA-256; the reporter keeps it
// only when both match.
//
// This is the shell's I/O: the core never sees it. The executor calls
// Fetch and Upload (ArtifactExecutor) with the workspace it prepared.

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// Declared is what a job uploads after its steps, as its .volt.yml says.
type Declared struct {
	// Paths are files or directories (every file below one), relative to
	// the workspace.
	Paths []string
	// Reports maps a report format (messages.KindJUnit,
	// messages.KindGoTestJSON) to a path.Match pattern relative to the
	// workspace.
	Reports map[string]string
}

// ArtifactExecutor is a JobExecutor that moves artifacts too: in
// ExecuteWithArtifacts it calls art.Fetch once the workspace is at the
// commit and before the first step, and art.Upload after the steps, before
// it returns. The runner calls it instead of Execute when its executor is
// one.
type ArtifactExecutor interface {
	ExecuteWithArtifacts(ctx context.Context, run *messages.RunJob, out io.Writer, art *Artifacts) *messages.Result
}

// DefaultMaxArtifactSize is the default of --max-artifact-size: what one
// job may upload in all, and fetch from the jobs it needs.
const DefaultMaxArtifactSize = 100 << 20

const (
	// artifactWindow is how many chunks are in flight at once.
	artifactWindow = 8
	// maxArtifactFiles is how many files a job uploads at most (as many as
	// the reporter keeps: a fetch lists them in one message).
	maxArtifactFiles = 10_000
	// ackWait is how long each request waits for the reporter's answer.
	ackWait = 5 * time.Second
	// stallFor is how long a transfer may go without progress.
	stallFor = 30 * time.Second
	// needWait is how long a fetch waits for the reporter to hold the
	// result of the job it needs (the dispatcher forwards results to the
	// reporter while it starts the jobs that need them).
	needWait = time.Minute
)

// Artifacts moves one attempt's artifacts between its workspace and the
// reporter. A nil *Artifacts moves nothing.
type Artifacts struct {
	root    *actor.RootContext
	sink    *actor.PID
	run     *messages.RunJob
	logger  *slog.Logger
	maxSize int64
	// chunk is the size of the chunks uploaded; stride the size of those
	// the reporter answers a fetch with (both ArtifactChunkSize but in tests).
	chunk, stride int
	window        int
	wait          time.Duration
	stall         time.Duration
	need          time.Duration
}

// NewArtifacts returns the mover of run's artifacts, through root to the
// reporter run names (none: nothing moves), within maxSize bytes each way
// (0: DefaultMaxArtifactSize).
func NewArtifacts(root *actor.RootContext, run *messages.RunJob, maxSize int64, logger *slog.Logger) *Artifacts {
	if maxSize <= 0 {
		maxSize = DefaultMaxArtifactSize
	}
	a := &Artifacts{root: root, run: run, logger: logger, maxSize: maxSize, chunk: messages.ArtifactChunkSize, stride: messages.ArtifactChunkSize,
		window: artifactWindow, wait: ackWait, stall: stallFor, need: needWait}
	if run.LogSink != "" {
		a.sink = actors.PID(actors.Addr(run.LogSink))
	}
	return a
}

// execute runs one attempt with exec, moving its artifacts with art when
// exec is an ArtifactExecutor.
func execute(ctx context.Context, exec JobExecutor, run *messages.RunJob, out io.Writer, art *Artifacts) *messages.Result {
	if ae, ok := exec.(ArtifactExecutor); ok {
		return ae.ExecuteWithArtifacts(ctx, run, out, art)
	}
	return exec.Execute(ctx, run, out)
}

// counter counts the bytes written through it.
type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Fetch places in the workspace dir the artifacts of every job the
// attempt's cell needs, at their paths, and notes in out what it placed.
// An error means the job must not run: it says which need and why.
// written is what it wrote to out (the caller counts the log).
func (a *Artifacts) Fetch(ctx context.Context, dir string, out io.Writer) (written int64, err error) {
	needs := slices.Clone(a.neededIndexes())
	if len(needs) == 0 {
		return 0, nil
	}
	w := &counter{w: out}
	defer func() { written = w.n }()
	if a.sink == nil {
		fmt.Fprintf(w, "volt: no reporter is registered: the artifacts of the jobs this one needs are not fetched\n")
		return 0, nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return w.n, fmt.Errorf("fetch artifacts: open the workspace: %w", err)
	}
	defer root.Close()
	var total int64
	for _, n := range needs {
		list, err := a.list(ctx, n)
		if err != nil {
			return w.n, err
		}
		if len(list.Paths) != len(list.Sizes) {
			return w.n, fmt.Errorf("fetch the artifacts of job index %d: the reporter listed %d paths and %d sizes", n, len(list.Paths), len(list.Sizes))
		}
		var got int64
		for i, p := range list.Paths {
			size := list.Sizes[i]
			if size < 0 {
				return w.n, fmt.Errorf("fetch the artifacts of job index %d: negative size of %s", n, p)
			}
			if total += size; total > a.maxSize {
				return w.n, fmt.Errorf("the artifacts of the jobs this one needs exceed --max-artifact-size %s (at %s of job index %d): declare fewer artifacts in them, or raise --max-artifact-size on the runner",
					sizeString(a.maxSize), p, n)
			}
			mode := uint32(0o644)
			if i < len(list.Modes) {
				mode = messages.ArtifactMode(list.Modes[i])
			}
			if err := a.fetchFile(ctx, root, n, p, size, mode); err != nil {
				return w.n, err
			}
			got += size
		}
		fmt.Fprintf(w, "volt: placed %d artifact files (%s) of job index %d in the workspace\n", len(list.Paths), sizeString(got), n)
	}
	return w.n, nil
}

func (a *Artifacts) neededIndexes() []int32 {
	if a == nil {
		return nil
	}
	needs := slices.Clone(a.run.Job.GetCell().GetNeeds())
	slices.Sort(needs)
	return slices.Compact(needs)
}

// list asks the reporter for the files of the job at index n, waiting up
// to need for it to hold that job's result.
func (a *Artifacts) list(ctx context.Context, n int32) (*messages.ArtifactData, error) {
	deadline := time.Now().Add(a.need)
	pause := 100 * time.Millisecond
	for {
		d, err := a.ask(&messages.ArtifactFetch{Job: a.run.Job, Attempt: a.run.Attempt, Ticket: a.run.LogTicket, FromIndex: n})
		switch {
		case err == nil && d.Error == "":
			return d, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err == nil && !d.Later:
			// Final (the job does not need that index, say): asking again
			// would only wait.
			return nil, fmt.Errorf("fetch the artifacts of job index %d from the reporter: %s", n, d.Error)
		case time.Now().After(deadline):
			if err == nil {
				err = errors.New(d.Error)
			}
			return nil, fmt.Errorf("fetch the artifacts of job index %d from the reporter: %w", n, err)
		}
		sleep(ctx, pause)
		pause = min(2*pause, 2*time.Second)
	}
}

// ask sends one fetch and waits for its answer.
func (a *Artifacts) ask(m *messages.ArtifactFetch) (*messages.ArtifactData, error) {
	res, err := a.root.RequestFuture(a.sink, m, a.wait).Result()
	if err != nil {
		return nil, fmt.Errorf("no answer within %s (is the reporter running and registered with the dispatcher?): %w", a.wait, err)
	}
	d, ok := res.(*messages.ArtifactData)
	if !ok || d.JobId != a.run.Job.Id || d.FromIndex != m.FromIndex || d.Path != m.Path || (m.Path != "" && d.Offset != m.Offset) {
		return nil, fmt.Errorf("the reporter answered %T for another fetch", res)
	}
	return d, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// fetchFile writes one file of the job at index n into root, with a
// window of chunk requests in flight.
func (a *Artifacts) fetchFile(ctx context.Context, root *os.Root, n int32, p string, size int64, mode uint32) (err error) {
	what := fmt.Sprintf("artifact %s of job index %d", p, n)
	if err := messages.ValidateArtifactPath(p); err != nil {
		return fmt.Errorf("fetch %s: the reporter named a path that is not allowed: %w", what, err)
	}
	if d := path.Dir(p); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("fetch %s: %w", what, err)
		}
	}
	f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(mode))
	if err != nil {
		return fmt.Errorf("fetch %s: %w", what, err)
	}
	if err := f.Chmod(os.FileMode(mode)); err != nil { // the umask and an existing file's mode aside
		return errors.Join(fmt.Errorf("fetch %s: %w", what, err), f.Close())
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("fetch %s: %w", what, cerr)
		}
	}()
	type req struct {
		offset int64
		fut    *actor.Future
	}
	var q []req
	next, done := int64(0), int64(0)
	progress := time.Now()
	for done < size {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for len(q) < a.window && next < size {
			m := &messages.ArtifactFetch{Job: a.run.Job, Attempt: a.run.Attempt, Ticket: a.run.LogTicket, FromIndex: n, Path: p, Offset: next}
			q = append(q, req{next, a.root.RequestFuture(a.sink, m, a.wait)})
			next += int64(a.stride)
		}
		head := q[0]
		q = q[1:]
		res, ferr := head.fut.Result()
		d, ok := res.(*messages.ArtifactData)
		switch {
		case ferr != nil || !ok || d.Path != p || d.Offset != head.offset:
			if time.Since(progress) > a.stall {
				return fmt.Errorf("fetch %s: no answer from the reporter for %s (is it running?)", what, a.stall)
			}
			q, next = nil, done // ask again from the first byte missing
			continue
		case d.Error != "":
			return fmt.Errorf("fetch %s: %s", what, d.Error)
		}
		if want := min(int64(a.stride), size-head.offset); int64(len(d.Data)) != want {
			return fmt.Errorf("fetch %s: the reporter sent %d bytes at %d, not %d: the file changed or the reporter is another version", what, len(d.Data), head.offset, want)
		}
		if _, err := f.WriteAt(d.Data, head.offset); err != nil {
			return fmt.Errorf("fetch %s: %w", what, err)
		}
		done, progress = head.offset+int64(len(d.Data)), time.Now()
	}
	return nil
}

// upFile is one file to upload.
type upFile struct {
	path, kind string
	size       int64
	mode       uint32 // 0755 or 0644: messages.ArtifactMode
}

// Upload uploads the files d declares from the workspace dir after the
// steps ended with res, unless the attempt was cancelled (ctx, or res
// says so), and notes in out what it did. A failed upload makes a passed
// res errored with the reason, and adds the reason to another status's.
// What it writes to out is added to res.LogBytes.
func (a *Artifacts) Upload(ctx context.Context, dir string, d Declared, out io.Writer, res *messages.Result) {
	if a == nil || ctx.Err() != nil || res.Status == messages.Status_STATUS_CANCELLED || (len(d.Paths) == 0 && len(d.Reports) == 0) {
		return
	}
	w := &counter{w: out}
	defer func() { res.LogBytes += w.n }()
	if a.sink == nil {
		fmt.Fprintf(w, "volt: no reporter is registered: the job's artifacts are not uploaded\n")
		return
	}
	err := a.upload(ctx, dir, d, w)
	if err == nil || ctx.Err() != nil {
		return
	}
	fmt.Fprintf(w, "volt: %v\n", err)
	if res.Status == messages.Status_STATUS_PASSED {
		res.Status, res.Reason, res.ExitCode = messages.Status_STATUS_ERRORED, err.Error(), -1
		return
	}
	res.Reason = strings.TrimPrefix(res.Reason+"; ", "; ") + err.Error()
}

func (a *Artifacts) upload(ctx context.Context, dir string, d Declared, out io.Writer) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("upload artifacts: open the workspace: %w", err)
	}
	defer root.Close()
	files, err := collect(root, d, out)
	if err != nil {
		return err
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	switch {
	case len(files) > maxArtifactFiles:
		return fmt.Errorf("artifacts: %d files, more than the %d a job may upload: upload an archive of them instead", len(files), maxArtifactFiles)
	case total > a.maxSize:
		return fmt.Errorf("artifacts exceed --max-artifact-size %s: %s in %d files (%s): declare fewer or smaller artifacts, or raise --max-artifact-size on the runner",
			sizeString(a.maxSize), sizeString(total), len(files), largest(files, 3))
	}
	for _, f := range files {
		if err := a.sendFile(ctx, root, f); err != nil {
			return err
		}
	}
	if len(files) > 0 {
		fmt.Fprintf(out, "volt: uploaded %d artifact files (%s)\n", len(files), sizeString(total))
	}
	return nil
}

// collect lists the files d declares, by path: a declared file, every
// regular file below a declared directory, every file a report pattern
// matches (as that report's kind). A path that does not exist, or a
// pattern that matches nothing, is noted in out and skipped; a path that
// leaves the workspace (.., absolute, a symbolic link out of it) is an
// error.
func collect(root *os.Root, d Declared, out io.Writer) ([]upFile, error) {
	byPath := map[string]upFile{}
	add := func(p, kind string, explicit bool) error {
		fi, err := root.Stat(p) // follows links, only within the workspace
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if _, lerr := root.Lstat(p); lerr == nil {
				return fmt.Errorf("artifact %s is a symbolic link to nothing, or out of the workspace: refused", p)
			}
			if explicit {
				fmt.Fprintf(out, "volt: artifact %s does not exist after the steps: skipped\n", p)
			}
			return nil
		case err != nil:
			return fmt.Errorf("artifact %s: %w (a symbolic link out of the workspace is refused)", p, err)
		case fi.IsDir():
			return fs.WalkDir(root.FS(), p, func(q string, e fs.DirEntry, err error) error {
				switch {
				case err != nil:
					return fmt.Errorf("artifact %s: %w", q, err)
				case e.IsDir():
					return nil
				case e.Type()&fs.ModeSymlink != 0:
					ti, err := root.Stat(q)
					if err != nil {
						return fmt.Errorf("artifact %s is a symbolic link out of the workspace: refused", q)
					}
					if !ti.Mode().IsRegular() {
						fmt.Fprintf(out, "volt: artifact %s links to a directory or a special file: skipped\n", q)
						return nil
					}
					return put(byPath, q, kind, ti)
				case !e.Type().IsRegular():
					return nil
				}
				info, err := e.Info()
				if err != nil {
					return fmt.Errorf("artifact %s: %w", q, err)
				}
				return put(byPath, q, kind, info)
			})
		case !fi.Mode().IsRegular():
			return fmt.Errorf("artifact %s is not a regular file or directory", p)
		}
		return put(byPath, p, kind, fi)
	}
	for _, p := range d.Paths {
		clean, err := declaredPath(p)
		if err != nil {
			return nil, err
		}
		if err := add(clean, messages.KindArtifact, true); err != nil {
			return nil, err
		}
	}
	kinds := make([]string, 0, len(d.Reports))
	for k := range d.Reports {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, kind := range kinds {
		pattern := d.Reports[kind]
		if kind == messages.KindArtifact || !messages.ValidArtifactKind(kind) {
			return nil, fmt.Errorf("reports: unknown format %q (want %s or %s)", kind, messages.KindJUnit, messages.KindGoTestJSON)
		}
		clean, err := declaredPath(pattern)
		if err != nil {
			return nil, fmt.Errorf("reports: %w", err)
		}
		matches, err := fs.Glob(root.FS(), clean)
		if err != nil {
			return nil, fmt.Errorf("reports: pattern %q: %w", pattern, err)
		}
		if len(matches) == 0 {
			fmt.Fprintf(out, "volt: no %s report matches %s after the steps\n", kind, pattern)
		}
		for _, m := range matches {
			if err := add(m, kind, false); err != nil {
				return nil, err
			}
		}
	}
	files := make([]upFile, 0, len(byPath))
	for _, f := range byPath {
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b upFile) int { return strings.Compare(a.path, b.path) })
	return files, nil
}

// put adds a file, a report's kind winning over an artifact's.
func put(byPath map[string]upFile, p, kind string, info fs.FileInfo) error {
	if err := messages.ValidateArtifactPath(p); err != nil {
		return err
	}
	if f, ok := byPath[p]; ok && f.kind != messages.KindArtifact {
		return nil
	}
	byPath[p] = upFile{path: p, kind: kind, size: info.Size(), mode: messages.ArtifactMode(uint32(info.Mode().Perm()))}
	return nil
}

// declaredPath is a path from .volt.yml as the workspace names it: a
// trailing slash and "./" dropped; absolute paths and ".." refused.
func declaredPath(p string) (string, error) {
	switch {
	case strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("artifact path %q is absolute: name it relative to the workspace", p)
	case slices.Contains(strings.Split(p, "/"), ".."):
		return "", fmt.Errorf("artifact path %q leaves the workspace: refused", p)
	}
	clean := path.Clean(strings.TrimSuffix(p, "/"))
	if clean == "." {
		return "", fmt.Errorf("artifact path %q is the whole workspace: name the files or directories to keep", p)
	}
	return clean, messages.ValidateArtifactPath(clean)
}

// largest names the n largest files with their sizes.
func largest(files []upFile, n int) string {
	s := slices.Clone(files)
	slices.SortFunc(s, func(a, b upFile) int { return cmp.Compare(b.size, a.size) })
	var parts []string
	for _, f := range s[:min(n, len(s))] {
		parts = append(parts, f.path+" "+sizeString(f.size))
	}
	if len(s) > n {
		parts = append(parts, "...")
	}
	return strings.Join(parts, ", ")
}

// sizeString is a size for people: 100MiB, 1.5KiB, 12B.
func sizeString(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d%s", int64(v), units[i])
	}
	return fmt.Sprintf("%.1f%s", v, units[i])
}

// sendFile uploads one file: chunks with a window in flight, then its size
// and SHA-256, resending from what the reporter says it holds. A checksum
// the reporter refuses is tried once more from the start (the file may
// have been written to while it was read).
func (a *Artifacts) sendFile(ctx context.Context, root *os.Root, f upFile) error {
	file, err := root.Open(f.path)
	if err != nil {
		return fmt.Errorf("upload artifact %s: %w", f.path, err)
	}
	defer file.Close()
	for try := 0; ; try++ {
		err := a.sendOnce(ctx, file, f)
		if !errors.Is(err, errMismatch) || try == 1 {
			return err
		}
	}
}

var errMismatch = errors.New("checksum refused")

func (a *Artifacts) sendOnce(ctx context.Context, file *os.File, f upFile) error {
	up := &upload{a: a, file: file, f: f, h: sha256.New()}
	for {
		if err := up.send(ctx); err != nil {
			return err
		}
		sum := up.h.Sum(nil)
		res, err := a.root.RequestFuture(a.sink, &messages.ArtifactClosed{Job: a.run.Job, Attempt: a.run.Attempt, Path: f.path, Kind: f.kind,
			Size: f.size, Sha256: sum, Ticket: a.run.LogTicket, Mode: f.mode}, a.wait).Result()
		ack, ok := res.(*messages.ArtifactAck)
		switch {
		case err != nil || !ok || ack.Path != f.path:
			if time.Since(up.progress) > a.stall {
				return fmt.Errorf("upload artifact %s: the reporter did not confirm it for %s (is it running and registered with the dispatcher?)", f.path, a.stall)
			}
			continue
		case ack.Done:
			return nil
		case ack.Error != "":
			if ack.Have == 0 && up.have == f.size {
				return fmt.Errorf("upload artifact %s: %s: %w", f.path, ack.Error, errMismatch)
			}
			return fmt.Errorf("upload artifact %s: the reporter refused it: %s", f.path, ack.Error)
		}
		up.rewind(ack.Have) // it lacks some: send from there
	}
}

// upload is one pass of one file's chunks.
type upload struct {
	a    *Artifacts
	file *os.File
	f    upFile
	h    hash.Hash
	// hashed is how far h has read; have is what the reporter
	// acknowledged; next is the next byte to send.
	hashed, have, next int64
	progress           time.Time
}

func (u *upload) rewind(to int64) {
	u.have = min(max(to, 0), u.f.size)
	u.next = u.have
	u.progress = time.Now()
}

// send sends the file from next to its end with at most a window of
// chunks unacknowledged, going back to what the reporter holds when it
// says a chunk is missing or stops answering.
func (u *upload) send(ctx context.Context) error {
	a := u.a
	type inflight struct {
		end int64
		fut *actor.Future
	}
	var q []inflight
	if u.progress.IsZero() {
		u.progress = time.Now()
	}
	for u.have < u.f.size || len(q) > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for len(q) < a.window && u.next < u.f.size {
			n := min(int64(a.chunk), u.f.size-u.next)
			buf := make([]byte, n)
			if _, err := u.file.ReadAt(buf, u.next); err != nil {
				return fmt.Errorf("upload artifact %s: read at %d: %w (did it shrink while it was uploaded?)", u.f.path, u.next, err)
			}
			if u.next <= u.hashed && u.next+n > u.hashed { // the first pass, or what it had not read
				u.h.Write(buf[u.hashed-u.next:])
				u.hashed = u.next + n
			}
			fut := a.root.RequestFuture(a.sink, &messages.ArtifactChunk{Job: a.run.Job, Attempt: a.run.Attempt, Path: u.f.path, Kind: u.f.kind,
				Offset: u.next, Data: buf, Ticket: a.run.LogTicket}, a.wait)
			q = append(q, inflight{u.next + n, fut})
			u.next += n
		}
		if len(q) == 0 {
			return nil
		}
		head := q[0]
		q = q[1:]
		res, err := head.fut.Result()
		ack, ok := res.(*messages.ArtifactAck)
		switch {
		case err != nil || !ok || ack.Path != u.f.path:
			if time.Since(u.progress) > a.stall {
				return fmt.Errorf("upload artifact %s: the reporter did not acknowledge it for %s (is it running and registered with the dispatcher?)", u.f.path, a.stall)
			}
			q = nil
			u.next = u.have // send again what it has not acknowledged
			continue
		case ack.Error != "":
			return fmt.Errorf("upload artifact %s: the reporter refused it: %s", u.f.path, ack.Error)
		case ack.Done:
			u.have, u.next = u.f.size, u.f.size
			return nil
		}
		if ack.Have > u.have {
			u.have = min(ack.Have, u.f.size)
			u.progress = time.Now()
		}
		if ack.Have < head.end { // a chunk before this one was lost
			q = nil
			u.next = u.have
		}
	}
	return nil
}
