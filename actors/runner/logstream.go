package runner

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// logStream is the io.Writer a job's output goes to. It streams chunks to
// the reporter (a chunk as soon as chunkSize bytes are waiting, the rest at
// most flushEvery after it was written) and keeps a local copy of the whole
// log for resends: in memory up to spillAt bytes, in a file in the log
// directory past that, so an ordinary log costs no file create and delete.
// Close hands the log over: it tells the reporter the size and resends
// whatever the reporter lacks from the local copy.
type logStream struct {
	root   *actor.RootContext
	sink   *actor.PID
	run    *messages.RunJob
	logger *slog.Logger
	chunk  int
	dir    string
	// spillAt is the most bytes of the local copy kept in memory.
	spillAt int
	// closeWait is how long each round of Close waits for the reporter's
	// LogAck. A reporter that refuses LogClosed (a forgery to it: no
	// ticket it can verify, for one because it has no key yet) does not
	// answer at all.
	closeWait time.Duration

	mu sync.Mutex
	// mem is the local copy (bytes 0..size) until it outgrows spillAt; file
	// holds it from then on. lost says there is no local copy any more (the
	// spill or a write to the file failed).
	mem  []byte
	file *os.File
	lost bool
	// buf holds the bytes written but not sent yet. Sent chunks are slices
	// of it: it is only ever appended to, never overwritten.
	buf    []byte
	offset int64 // bytes already sent
	size   int64 // bytes written
	closed bool

	// The flush timer is armed when bytes start waiting and fires once;
	// inflight counts armed timers whose callback has not finished, so
	// Close can wait for a callback it could not stop.
	timer    *time.Timer
	armed    bool
	inflight sync.WaitGroup
}

const (
	flushEvery = 100 * time.Millisecond
	// spillAt is how much of a log the runner keeps in memory for resends
	// before it moves the local copy to a file.
	spillAt = 1 << 20
	// closeWait is how long Close waits for each LogAck.
	closeWait = 3 * time.Second
	// handOver is how long Close keeps trying to hand a log over.
	handOver = 20 * time.Second
)

var errStreamClosed = errors.New("write to a closed job log")

func newLogStream(root *actor.RootContext, run *messages.RunJob, dir string, chunk int, logger *slog.Logger) *logStream {
	s := &logStream{root: root, run: run, logger: logger, chunk: chunk, dir: dir, spillAt: spillAt, closeWait: closeWait}
	if run.LogSink != "" {
		s.sink = actors.PID(actors.Addr(run.LogSink))
	}
	return s
}

// Write implements io.Writer.
func (s *logStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errStreamClosed
	}
	s.size += int64(len(p))
	if s.sink == nil {
		return len(p), nil // nowhere to send it, so nothing to resend either
	}
	s.keep(p)
	s.buf = append(s.buf, p...)
	for len(s.buf) >= s.chunk {
		s.send(s.buf[:s.chunk:s.chunk])
		s.buf = s.buf[s.chunk:]
	}
	if len(s.buf) == 0 {
		s.buf = nil // the next write starts a fresh buffer, not the tail of a sent chunk's
	} else if !s.armed {
		s.arm()
	}
	return len(p), nil
}

// keep adds p to the local copy, moving the copy to a file when it
// outgrows memory. A failure loses the local copy, not the log.
func (s *logStream) keep(p []byte) {
	switch {
	case s.lost:
	case s.file != nil:
		if _, err := s.file.Write(p); err != nil {
			s.logger.Warn("local log copy failed", "job", s.run.Job.Id, "error", err)
			s.dropFile()
			s.lost = true
		}
	case len(s.mem)+len(p) <= s.spillAt:
		s.mem = append(s.mem, p...)
	default:
		s.spill(p)
	}
}

// spill moves the local copy to a file, followed by p.
func (s *logStream) spill(p []byte) {
	mem := s.mem
	s.mem = nil
	s.lost = true // until the file holds it all
	if s.dir == "" {
		s.logger.Warn("log too large to keep in memory and no log directory: a resend will not be possible", "job", s.run.Job.Id, "size", s.size)
		return
	}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		s.logger.Warn("cannot keep a local copy of the log", "dir", s.dir, "error", err)
		return
	}
	f, err := os.Create(filepath.Join(s.dir, fmt.Sprintf("job-%d-attempt-%d.log", s.run.Job.Id, s.run.Attempt)))
	if err != nil {
		s.logger.Warn("cannot keep a local copy of the log", "dir", s.dir, "error", err)
		return
	}
	s.file = f
	for _, b := range [][]byte{mem, p} {
		if _, err := f.Write(b); err != nil {
			s.logger.Warn("local log copy failed", "job", s.run.Job.Id, "error", err)
			s.dropFile()
			return
		}
	}
	s.lost = false
}

func (s *logStream) dropFile() {
	name := s.file.Name()
	if err := s.file.Close(); err != nil {
		s.logger.Warn("closing the local log copy failed", "file", name, "error", err)
	}
	if err := os.Remove(name); err != nil {
		s.logger.Warn("removing the local log copy failed", "file", name, "error", err)
	}
	s.file = nil
}

// arm starts the flush timer: the waiting bytes go out at most flushEvery
// from now. Called with mu held.
func (s *logStream) arm() {
	s.armed = true
	s.inflight.Add(1)
	if s.timer == nil {
		s.timer = time.AfterFunc(flushEvery, s.tick)
		return
	}
	s.timer.Reset(flushEvery)
}

func (s *logStream) tick() {
	defer s.inflight.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	if !s.closed {
		s.flushLocked()
	}
}

func (s *logStream) flushLocked() {
	if len(s.buf) > 0 && s.sink != nil {
		s.send(s.buf[:len(s.buf):len(s.buf)])
		s.buf = nil
	}
}

// send sends data, which nothing overwrites afterwards, as the chunk at the
// current offset, with the attempt's log ticket: the reporter takes no
// chunk without it.
func (s *logStream) send(data []byte) {
	s.root.Send(s.sink, &messages.LogChunk{Job: s.run.Job, Attempt: s.run.Attempt, Offset: s.offset, Data: data, Ticket: s.run.LogTicket})
	s.offset += int64(len(data))
}

// Close flushes and hands the log over to the reporter in rounds of
// "here is the size" / "I have N bytes" / resend from N. A round the
// reporter does not answer (it is away, or has not got the log-ticket key
// from the dispatcher yet, and refused the chunks too) is tried again; a
// round in which the reporter gained nothing (its store refuses writes,
// say a full disk, and it retries only after a backoff) is tried again
// after a pause that doubles up to 2 s. Rounds go on for handOver (20 s),
// at least three. Close returns when the reporter holds the whole log (or
// after the last round), so the result that follows never reaches the
// reporter ahead of its log. An empty log needs no hand-over: the reporter
// holds all of its zero bytes.
func (s *logStream) Close() {
	s.mu.Lock()
	defer s.inflight.Wait() // a timer that fired before Stop; it sees closed and does nothing
	defer s.mu.Unlock()
	s.closed = true
	if s.armed && s.timer.Stop() {
		s.armed = false
		s.inflight.Done()
	}
	s.flushLocked()
	defer func() {
		s.mem = nil
		if s.file != nil {
			s.dropFile()
		}
	}()
	if s.sink == nil || s.size == 0 {
		return
	}
	deadline := time.Now().Add(handOver)
	pause, have := 100*time.Millisecond, int64(-1)
	for round := 0; round < 3 || time.Now().Before(deadline); round++ {
		res, err := s.root.RequestFuture(s.sink, &messages.LogClosed{Job: s.run.Job, Attempt: s.run.Attempt, Size: s.size, Ticket: s.run.LogTicket}, s.closeWait).Result()
		if err != nil {
			s.logger.Warn("reporter did not confirm the log", "job", s.run.Job.Id, "error", err)
			continue
		}
		ack, ok := res.(*messages.LogAck)
		if !ok {
			return
		}
		if ack.Have >= s.size {
			return
		}
		if !s.resend(ack.Have) {
			s.logger.Warn("reporter lacks part of the log and no local copy is left", "job", s.run.Job.Id, "have", ack.Have, "size", s.size)
			return
		}
		if ack.Have <= have {
			time.Sleep(pause) // it gained nothing: give its store time
			pause = min(2*pause, 2*time.Second)
		}
		have = ack.Have
	}
	s.logger.Warn("gave up handing the log to the reporter", "job", s.run.Job.Id, "size", s.size)
}

// resend sends the log from byte from on, from the local copy; false when
// there is none.
func (s *logStream) resend(from int64) bool {
	from = max(from, 0)
	s.offset = from
	switch {
	case s.lost:
		return false
	case s.file != nil:
		r := io.NewSectionReader(s.file, from, s.size-from)
		for {
			buf := make([]byte, s.chunk) // each sent chunk keeps its own
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				s.send(buf[:n:n])
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					s.logger.Warn("reading the local log copy failed", "job", s.run.Job.Id, "error", err)
				}
				return true
			}
		}
	default:
		for i := int(from); i < len(s.mem); i += s.chunk {
			j := min(i+s.chunk, len(s.mem))
			s.send(s.mem[i:j:j])
		}
		return true
	}
}
