package runner

import (
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

// logStream is the io.Writer a job's output goes to. It keeps a local copy
// (for resends) and streams chunks to the reporter every flushEvery or
// chunkSize bytes. Close hands the log over: it tells the reporter the size
// and resends whatever the reporter lacks.
type logStream struct {
	root   *actor.RootContext
	self   *actor.PID
	sink   *actor.PID
	run    *messages.RunJob
	logger *slog.Logger
	chunk  int

	mu     sync.Mutex
	file   *os.File
	buf    []byte
	offset int64 // bytes already sent
	size   int64 // bytes written
	stop   chan struct{}
	wg     sync.WaitGroup
}

const flushEvery = 100 * time.Millisecond

func newLogStream(root *actor.RootContext, self *actor.PID, run *messages.RunJob, dir string, chunk int, logger *slog.Logger) *logStream {
	s := &logStream{root: root, self: self, run: run, logger: logger, chunk: chunk, stop: make(chan struct{})}
	if run.LogSink != "" {
		s.sink = actors.PID(actors.Addr(run.LogSink))
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			logger.Warn("cannot keep a local copy of the log", "dir", dir, "error", err)
		} else {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("job-%d-attempt-%d.log", run.Job.Id, run.Attempt)))
			if err != nil {
				logger.Warn("cannot keep a local copy of the log", "dir", dir, "error", err)
			}
			s.file = f
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.mu.Lock()
				s.flushLocked()
				s.mu.Unlock()
			}
		}
	}()
	return s
}

// Write implements io.Writer.
func (s *logStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		if _, err := s.file.Write(p); err != nil {
			s.logger.Warn("local log copy failed", "error", err)
			s.file.Close()
			s.file = nil
		}
	}
	s.size += int64(len(p))
	if s.sink == nil {
		return len(p), nil
	}
	s.buf = append(s.buf, p...)
	for len(s.buf) >= s.chunk {
		s.send(s.buf[:s.chunk])
		s.buf = s.buf[s.chunk:]
	}
	return len(p), nil
}

func (s *logStream) flushLocked() {
	if len(s.buf) > 0 && s.sink != nil {
		s.send(s.buf)
		s.buf = nil
	}
}

func (s *logStream) send(data []byte) {
	s.root.Send(s.sink, &messages.LogChunk{Job: s.run.Job, Attempt: s.run.Attempt, Offset: s.offset, Data: append([]byte(nil), data...)})
	s.offset += int64(len(data))
}

// Close flushes and hands the log over to the reporter: up to three rounds
// of "here is the size" / "I have N bytes" / resend from N.
func (s *logStream) Close() {
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
	if s.file != nil {
		defer func() {
			name := s.file.Name()
			s.file.Close()
			os.Remove(name)
		}()
	}
	if s.sink == nil {
		return
	}
	for round := 0; round < 3; round++ {
		res, err := s.root.RequestFuture(s.sink, &messages.LogClosed{Job: s.run.Job, Attempt: s.run.Attempt, Size: s.size}, 3*time.Second).Result()
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
		if s.file == nil {
			s.logger.Warn("reporter lacks part of the log and no local copy is left", "job", s.run.Job.Id, "have", ack.Have, "size", s.size)
			return
		}
		s.offset = ack.Have
		r := io.NewSectionReader(s.file, ack.Have, s.size-ack.Have)
		buf := make([]byte, s.chunk)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				s.send(buf[:n])
			}
			if err != nil {
				break
			}
		}
	}
	s.logger.Warn("gave up handing the log to the reporter", "job", s.run.Job.Id, "size", s.size)
}
