package reporter

// This file is shell, not core: it does network and file I/O and reads
// the clock, as logstream.go does (internal/mutate.NotCore leaves it out).
//
// Artifacts: the files a job uploads after its steps (its declared
// artifacts and test reports), and the fetches of the jobs that need them.
//
// They go by the actor in front of the core (Actor.Receive), not through
// it: a chunk is checked and stored, or a fetch answered, at once, as the
// shell stores a log chunk, and the core's state does not change. The
// checks are the core's all the same: the attempt's log ticket (the core
// holds its key), for the runner the connection proved.

import (
	"context"
	"fmt"
	"slices"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/messages"
)

// ArtifactFile is one file an attempt uploaded, as the store holds it.
type ArtifactFile struct {
	Path string
	Kind string
	// Size is the bytes held: the whole file once Kept.
	Size int64
	Kept bool
	// Mode is the permission bits it is kept with (0755 or 0644).
	Mode uint32
}

// ArtifactHeld is what the store holds of one file and of its attempt.
type ArtifactHeld struct {
	// File is the file; its Kind is empty when none of it was ever sent.
	File         ArtifactFile
	AttemptBytes int64
	AttemptFiles int
}

// ArtifactWriter keeps the files jobs upload (store.DB in production). It
// takes chunks in order only: a chunk beyond the held end is not stored.
type ArtifactWriter interface {
	// AppendArtifact stores data at offset and returns the contiguous
	// bytes held (data empty: only makes the file known).
	AppendArtifact(job *messages.Job, attempt int32, path, kind string, offset int64, data []byte) (have int64, err error)
	// HeldArtifact says what is held of a file and of its attempt.
	HeldArtifact(jobID int64, attempt int32, path string) (ArtifactHeld, error)
	// CloseArtifact keeps the file, with permission bits mode, when exactly
	// size bytes are held whose SHA-256 is sum, and drops what is held when
	// it does not match.
	CloseArtifact(jobID int64, attempt int32, path string, size int64, sum []byte, mode uint32) (kept bool, err error)
}

// ArtifactReader serves the kept files to the jobs that need them.
type ArtifactReader interface {
	// ResultByJob is the result recorded for a job; nil when none is.
	ResultByJob(jobID int64) (*messages.Result, error)
	// Artifacts lists an attempt's kept files, by path.
	Artifacts(jobID int64, attempt int32) ([]ArtifactFile, error)
	// ReadArtifact returns up to n bytes of a kept file from offset.
	ReadArtifact(jobID int64, attempt int32, path string, offset int64, n int) ([]byte, error)
}

// Defaults of the reporter's artifact limits.
const (
	// DefaultMaxArtifactBytes caps what one attempt uploads in all.
	DefaultMaxArtifactBytes = 1 << 30
	// MaxArtifactFiles caps the files of one attempt (a fetch lists them
	// all in one message).
	MaxArtifactFiles = 10_000
	// maxChunk is the largest chunk taken (runners send ArtifactChunkSize).
	maxChunk = 1 << 20
	// maxReport is the largest report handed to OnReport.
	maxReport = 64 << 20
)

// Actor is the reporter's Proto.Actor actor: the shared host
// (actors/host) around the reporter's Shell, with artifacts handled in
// front of it (see artifacts.go).
type Actor struct {
	*host.Actor
	shell *Shell
	// MaxArtifactBytes caps the bytes one attempt of a job may upload
	// (DefaultMaxArtifactBytes when 0); runners have their own, lower cap.
	MaxArtifactBytes int64
	// OnReport, when set, is handed each test report (kind junit or
	// go-test-json) once it is kept, in the actor: it must not block long.
	OnReport func(job *messages.Job, attempt int32, kind string, data []byte)
}

// Receive implements actor.Actor: artifact messages are answered here,
// everything else goes to the host.
func (a *Actor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *messages.ArtifactChunk, *messages.ArtifactClosed, *messages.ArtifactFetch:
		a.artifact(ctx)
		return
	}
	a.Actor.Receive(ctx)
}

func (a *Actor) artifact(ctx actor.Context) {
	core := a.shell.Core()
	if core == nil {
		return // not started: the runner asks again
	}
	d := &desk{store: a.shell.store, maxBytes: a.MaxArtifactBytes, onReport: a.OnReport, ticket: core.TicketValid}
	from := actors.FromContext(ctx)
	reply, refused, err := d.handle(from.Who, ctx.Message())
	switch {
	case err != nil:
		a.Logger.Error("artifact store failed: the runner sends again", "from", from.Who.String(), "error", err)
	case refused != "":
		n := actors.Refused(from, ctx.Message(), refused)
		a.Logger.Log(context.Background(), n.Level, n.Msg, n.Args...)
	case reply != nil:
		ctx.Respond(reply)
	}
}

// desk checks and carries out one artifact message against the store.
type desk struct {
	store    any // the reporter's Store: an ArtifactWriter and ArtifactReader when it keeps artifacts
	maxBytes int64
	onReport func(job *messages.Job, attempt int32, kind string, data []byte)
	ticket   func(who actors.Identity, job *messages.Job, attempt int32, ticket []byte) (valid, keyHeld bool)
}

// handle answers in for who: reply is the answer (nil for none), refused
// says why in is refused without an answer (a forgery, or malformed), err
// is the store failing (no answer: the runner sends again).
func (d *desk) handle(who actors.Identity, in any) (reply proto.Message, refused string, err error) {
	if !who.Is(actors.RoleRunner) {
		return nil, "only a runner uploads or fetches artifacts", nil
	}
	w, okW := d.store.(ArtifactWriter)
	r, okR := d.store.(ArtifactReader)
	switch m := in.(type) {
	case *messages.ArtifactChunk:
		if why := d.check(who, m.Job, m.Attempt, m.Ticket, m.Path); why != "" {
			return nil, why, nil
		}
		switch {
		case !messages.ValidArtifactKind(m.Kind):
			return nil, fmt.Sprintf("unknown artifact kind %q", m.Kind), nil
		case m.Offset < 0 || len(m.Data) > maxChunk:
			return nil, "chunk offset negative or chunk too large", nil
		case !okW:
			return d.ack(m.Job, m.Attempt, m.Path, 0, "this reporter's store keeps no artifacts"), "", nil
		}
		return d.chunk(w, m)
	case *messages.ArtifactClosed:
		if why := d.check(who, m.Job, m.Attempt, m.Ticket, m.Path); why != "" {
			return nil, why, nil
		}
		switch {
		case !messages.ValidArtifactKind(m.Kind):
			return nil, fmt.Sprintf("unknown artifact kind %q", m.Kind), nil
		case m.Size < 0 || len(m.Sha256) != 32:
			return nil, "negative size or no SHA-256", nil
		case !okW || !okR:
			return d.ack(m.Job, m.Attempt, m.Path, 0, "this reporter's store keeps no artifacts"), "", nil
		}
		return d.closed(w, r, m)
	case *messages.ArtifactFetch:
		if why := d.check(who, m.Job, m.Attempt, m.Ticket, ""); why != "" {
			return nil, why, nil
		}
		if m.Offset < 0 {
			return nil, "negative offset", nil
		}
		if m.Path != "" {
			if err := messages.ValidateArtifactPath(m.Path); err != nil {
				return nil, err.Error(), nil
			}
		}
		if !okR {
			return &messages.ArtifactData{JobId: m.Job.Id, FromIndex: m.FromIndex, Path: m.Path, Error: "this reporter's store keeps no artifacts"}, "", nil
		}
		return d.fetch(r, m)
	}
	return nil, "not an artifact message", nil
}

// check says why a message about job's attempt is refused, or "": it must
// be well formed, name a consistent place in its build, and carry the
// attempt's ticket for the runner who sent it.
func (d *desk) check(who actors.Identity, job *messages.Job, attempt int32, ticket []byte, path string) string {
	switch {
	case job == nil || messages.ValidateCommit(job.Commit) != nil || job.Repo == "" || attempt < 1:
		return "malformed: no job, commit or attempt"
	case job.Index < 0 || job.Id != job.BuildID()+int64(job.Index) || job.Index >= job.JobsInBuild():
		return fmt.Sprintf("job %d claims index %d of build %d: inconsistent", job.Id, job.Index, job.BuildID())
	}
	for _, n := range job.GetCell().GetNeeds() {
		if n < 0 || n >= job.Index {
			return fmt.Sprintf("job %d (index %d) claims to need index %d", job.Id, job.Index, n)
		}
	}
	if path != "" {
		if err := messages.ValidateArtifactPath(path); err != nil {
			return err.Error()
		}
	}
	valid, keyHeld := d.ticket(who, job, attempt, ticket)
	switch {
	case !keyHeld && !valid:
		return "no log key yet (not registered with the dispatcher): the runner sends again"
	case !valid:
		return fmt.Sprintf("no valid ticket of %s for job %d attempt %d", who, job.Id, attempt)
	}
	return ""
}

func (d *desk) ack(job *messages.Job, attempt int32, path string, have int64, why string) *messages.ArtifactAck {
	return &messages.ArtifactAck{JobId: job.Id, Attempt: attempt, Path: path, Have: have, Error: why}
}

func (d *desk) limit() int64 {
	if d.maxBytes > 0 {
		return d.maxBytes
	}
	return DefaultMaxArtifactBytes
}

// chunk stores a chunk at the held end and says how much is held.
func (d *desk) chunk(w ArtifactWriter, m *messages.ArtifactChunk) (proto.Message, string, error) {
	h, err := w.HeldArtifact(m.Job.Id, m.Attempt, m.Path)
	if err != nil {
		return nil, "", err
	}
	have := h.File.Size
	switch {
	case h.File.Kept:
		return &messages.ArtifactAck{JobId: m.Job.Id, Attempt: m.Attempt, Path: m.Path, Have: have, Done: true}, "", nil
	case m.Offset > have:
		return d.ack(m.Job, m.Attempt, m.Path, have, ""), "", nil // a chunk was lost: the runner resends from have
	case h.File.Kind == "" && h.AttemptFiles >= MaxArtifactFiles:
		return d.ack(m.Job, m.Attempt, m.Path, have, fmt.Sprintf("job %d attempt %d uploads more than %d files: the reporter keeps no more; upload an archive of them instead",
			m.Job.Id, m.Attempt, MaxArtifactFiles)), "", nil
	}
	if grow := m.Offset + int64(len(m.Data)) - have; grow > 0 && h.AttemptBytes+grow > d.limit() {
		return d.ack(m.Job, m.Attempt, m.Path, have, fmt.Sprintf("job %d attempt %d uploads more than the reporter keeps for one job (%d bytes): declare fewer artifacts, or raise the reporter's cap",
			m.Job.Id, m.Attempt, d.limit())), "", nil
	}
	have, err = w.AppendArtifact(m.Job, m.Attempt, m.Path, m.Kind, m.Offset, m.Data)
	if err != nil {
		return nil, "", err
	}
	return d.ack(m.Job, m.Attempt, m.Path, have, ""), "", nil
}

// closed keeps a file whose size and checksum match, and hands a kept
// test report to onReport.
func (d *desk) closed(w ArtifactWriter, r ArtifactReader, m *messages.ArtifactClosed) (proto.Message, string, error) {
	h, err := w.HeldArtifact(m.Job.Id, m.Attempt, m.Path)
	if err != nil {
		return nil, "", err
	}
	switch {
	case h.File.Kept && h.File.Size == m.Size:
		return &messages.ArtifactAck{JobId: m.Job.Id, Attempt: m.Attempt, Path: m.Path, Have: m.Size, Done: true}, "", nil
	case h.File.Kept:
		return d.ack(m.Job, m.Attempt, m.Path, h.File.Size, fmt.Sprintf("%s is kept already with %d bytes, not %d", m.Path, h.File.Size, m.Size)), "", nil
	case h.File.Size < m.Size:
		return d.ack(m.Job, m.Attempt, m.Path, h.File.Size, ""), "", nil // the runner sends the rest
	case m.Size == 0 && h.File.Kind == "":
		if h.AttemptFiles >= MaxArtifactFiles {
			return d.ack(m.Job, m.Attempt, m.Path, 0, fmt.Sprintf("job %d attempt %d uploads more than %d files", m.Job.Id, m.Attempt, MaxArtifactFiles)), "", nil
		}
		if _, err := w.AppendArtifact(m.Job, m.Attempt, m.Path, m.Kind, 0, nil); err != nil {
			return nil, "", err
		}
	}
	kept, err := w.CloseArtifact(m.Job.Id, m.Attempt, m.Path, m.Size, m.Sha256, m.Mode)
	if err != nil {
		return nil, "", err
	}
	if !kept {
		return d.ack(m.Job, m.Attempt, m.Path, 0, fmt.Sprintf("%s: the %d bytes the reporter got do not match the size and SHA-256 the runner sent (did the file change while it was uploaded?): dropped",
			m.Path, h.File.Size)), "", nil
	}
	if m.Kind != messages.KindArtifact && d.onReport != nil && m.Size <= maxReport {
		data, err := r.ReadArtifact(m.Job.Id, m.Attempt, m.Path, 0, int(m.Size))
		if err != nil {
			return nil, "", err
		}
		d.onReport(m.Job, m.Attempt, m.Kind, data)
	}
	return &messages.ArtifactAck{JobId: m.Job.Id, Attempt: m.Attempt, Path: m.Path, Have: m.Size, Done: true}, "", nil
}

// fetch answers a job's ArtifactFetch: the list of files, or a chunk of
// one, of the job of its build at from_index, which its cell must need,
// from that job's recorded attempt, which must have passed.
func (d *desk) fetch(r ArtifactReader, m *messages.ArtifactFetch) (proto.Message, string, error) {
	out := &messages.ArtifactData{JobId: m.Job.Id, FromIndex: m.FromIndex, Path: m.Path, Offset: m.Offset}
	if !slices.Contains(m.Job.GetCell().GetNeeds(), m.FromIndex) {
		out.Error = fmt.Sprintf("job %d (index %d) does not need index %d: only the artifacts of the jobs it needs are handed to it", m.Job.Id, m.Job.Index, m.FromIndex)
		return out, "", nil
	}
	source := m.Job.BuildID() + int64(m.FromIndex)
	res, err := r.ResultByJob(source)
	if err != nil {
		return nil, "", err
	}
	switch {
	case res == nil:
		out.Error, out.Later = fmt.Sprintf("job %d (index %d) has no result at the reporter yet", source, m.FromIndex), true
		return out, "", nil
	case res.Job.GetRepo() != m.Job.Repo || res.Job.GetCommit() != m.Job.Commit || res.Job.GetBuild() != m.Job.Build || res.Job.GetIndex() != m.FromIndex:
		out.Error = fmt.Sprintf("job %d is not index %d of the asking job's build", source, m.FromIndex)
		return out, "", nil
	case res.Status != messages.Status_STATUS_PASSED:
		out.Eof = true // it did not pass: nothing is handed on
		return out, "", nil
	}
	if m.Path == "" {
		files, err := r.Artifacts(source, res.Attempt)
		if err != nil {
			return nil, "", err
		}
		for _, f := range files {
			out.Paths = append(out.Paths, f.Path)
			out.Sizes = append(out.Sizes, f.Size)
			out.Modes = append(out.Modes, messages.ArtifactMode(f.Mode))
		}
		out.Eof = true
		return out, "", nil
	}
	data, err := r.ReadArtifact(source, res.Attempt, m.Path, m.Offset, messages.ArtifactChunkSize)
	if err != nil {
		out.Error = fmt.Sprintf("%s of job %d: %v", m.Path, source, err)
		return out, "", nil
	}
	out.Data, out.Eof = data, len(data) < messages.ArtifactChunkSize
	return out, "", nil
}
