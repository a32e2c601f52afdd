package runner

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// fakeSink fakes the reporter's side of the log protocol: it keeps the
// contiguous bytes of one attempt's log and answers LogClosed with LogAck.
// drop loses the chunks it returns true for, as a reporter that restarted
// would.
//
// With ticket set it checks log tickets as the reporter does: a chunk or a
// close without that ticket is refused, with no answer; so is everything
// while keyless (a reporter that has not got the key yet) counts down the
// closes it leaves unanswered. tickets records every ticket it was shown.
type fakeSink struct {
	mu      sync.Mutex
	log     []byte
	chunks  int
	closes  int
	drop    func(c *messages.LogChunk) bool
	chunkIn chan struct{}
	ticket  []byte
	keyless int
	tickets [][]byte
}

// refuses says whether the sink, as the reporter, refuses a message with tk.
func (f *fakeSink) refuses(tk []byte) bool {
	f.tickets = append(f.tickets, tk)
	return f.keyless > 0 || (f.ticket != nil && !bytes.Equal(tk, f.ticket))
}

func (f *fakeSink) Receive(ctx actor.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch m := ctx.Message().(type) {
	case *messages.LogChunk:
		f.chunks++
		if f.refuses(m.Ticket) || (f.drop != nil && f.drop(m)) {
			return
		}
		if end := m.Offset + int64(len(m.Data)); m.Offset <= int64(len(f.log)) && end > int64(len(f.log)) {
			f.log = append(f.log, m.Data[int64(len(f.log))-m.Offset:]...)
		}
		select {
		case f.chunkIn <- struct{}{}:
		default:
		}
	case *messages.LogClosed:
		f.closes++
		if f.refuses(m.Ticket) {
			f.keyless = max(f.keyless-1, 0)
			return
		}
		ctx.Respond(&messages.LogAck{JobId: m.Job.Id, Attempt: m.Attempt, Have: int64(len(f.log))})
	}
}

func (f *fakeSink) state() (log []byte, chunks, closes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.log...), f.chunks, f.closes
}

// newTestStream starts a local actor system with a fake reporter and returns
// a stream to it that keeps at most spill bytes in memory, its log directory
// and the fake.
func newTestStream(t *testing.T, spill int, drop func(c *messages.LogChunk) bool) (*logStream, string, *fakeSink) {
	t.Helper()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	t.Cleanup(sys.Shutdown)
	sink := &fakeSink{drop: drop, chunkIn: make(chan struct{}, 1)}
	pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return sink }))
	dir := filepath.Join(t.TempDir(), "logs")
	run := &messages.RunJob{Job: &messages.Job{Id: 7, Repo: "r", Commit: "0123456789abcdef0123456789abcdef01234567"}, Attempt: 2,
		LogSink: string(actors.AddrOf(pid)), LogTicket: []byte("the ticket of job 7 attempt 2 for this runner")}
	s := newLogStream(sys.Root, run, dir, 16, slog.New(slog.DiscardHandler))
	s.spillAt = spill
	return s, dir, sink
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestLogStreamHandsOverTheWholeLog(t *testing.T) {
	for _, tc := range []struct {
		name      string
		spill     int
		drop      func(c *messages.LogChunk) bool
		wantFile  bool
		wantClose int
	}{
		{name: "small log, kept in memory", spill: 1 << 20, wantClose: 1},
		{name: "large log, spilled to a file", spill: 40, wantFile: true, wantClose: 1},
		{name: "chunks lost, resent from memory", spill: 1 << 20, drop: dropFirstSends(3), wantClose: 2},
		{name: "chunks lost, resent from the file", spill: 40, drop: dropFirstSends(3), wantFile: true, wantClose: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, dir, sink := newTestStream(t, tc.spill, tc.drop)
			var want bytes.Buffer
			for i := range 10 {
				line := []byte("--- step " + string(rune('a'+i)) + ": line of output\n")
				want.Write(line)
				n, err := s.Write(line)
				require.NoError(t, err)
				assert.Equal(t, len(line), n)
			}
			if tc.wantFile {
				assert.Equal(t, []string{"job-7-attempt-2.log"}, files(t, dir), "past the threshold the local copy is a file")
			} else {
				assert.Empty(t, files(t, dir), "a small log creates no file")
			}
			s.Close()
			log, _, closes := sink.state()
			assert.Equal(t, want.String(), string(log), "the reporter holds the whole log when Close returns")
			assert.Equal(t, tc.wantClose, closes)
			assert.Empty(t, files(t, dir), "the local copy is gone after Close")
		})
	}
}

// dropFirstSends loses the first n chunks, as a reporter that restarted
// while the job ran would have.
func dropFirstSends(n int) func(*messages.LogChunk) bool {
	seen := 0
	return func(*messages.LogChunk) bool {
		seen++
		return seen <= n
	}
}

func TestLogStreamFlushesWaitingBytesWithoutClose(t *testing.T) {
	s, _, sink := newTestStream(t, 1<<20, nil)
	_, err := s.Write([]byte("short\n")) // less than a chunk: waits for the timer
	require.NoError(t, err)
	select {
	case <-sink.chunkIn:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting bytes were never flushed")
	}
	log, _, _ := sink.state()
	assert.Equal(t, "short\n", string(log))
	_, err = s.Write([]byte("more\n")) // the timer is armed again
	require.NoError(t, err)
	select {
	case <-sink.chunkIn:
	case <-time.After(10 * time.Second):
		t.Fatal("the bytes of the second write were never flushed")
	}
	s.Close()
	log, _, closes := sink.state()
	assert.Equal(t, "short\nmore\n", string(log))
	assert.Equal(t, 1, closes)
}

func TestLogStreamEmptyLogNeedsNoHandOver(t *testing.T) {
	s, dir, sink := newTestStream(t, 1<<20, nil)
	s.Close()
	_, chunks, closes := sink.state()
	assert.Zero(t, chunks)
	assert.Zero(t, closes, "the reporter holds all of an empty log: no LogClosed round trip")
	assert.Empty(t, files(t, dir))
}

func TestLogStreamRefusesWritesAfterClose(t *testing.T) {
	s, _, sink := newTestStream(t, 1<<20, nil)
	_, err := s.Write([]byte("before\n"))
	require.NoError(t, err)
	s.Close()
	n, err := s.Write([]byte("after\n"))
	assert.ErrorIs(t, err, errStreamClosed)
	assert.Zero(t, n)
	log, _, _ := sink.state()
	assert.Equal(t, "before\n", string(log))
}

func TestLogStreamWithoutSinkKeepsNothing(t *testing.T) {
	s, dir, _ := newTestStream(t, 8, nil)
	s.sink = nil
	_, err := s.Write(bytes.Repeat([]byte("x"), 100))
	require.NoError(t, err)
	assert.Nil(t, s.mem)
	assert.Empty(t, files(t, dir))
	s.Close()
}

func TestLogStreamSpillWithoutDirectoryLosesOnlyTheLocalCopy(t *testing.T) {
	s, _, sink := newTestStream(t, 8, nil)
	s.dir = ""
	payload := bytes.Repeat([]byte("y"), 100)
	_, err := s.Write(payload)
	require.NoError(t, err)
	assert.True(t, s.lost)
	s.Close()
	log, _, _ := sink.state()
	assert.Equal(t, string(payload), string(log), "the log itself still reaches the reporter")
}

// TestLogStreamShowsTheTicketEverywhere: every chunk (also those resent,
// from memory or from the file) and every close carry the RunJob's log
// ticket, so a reporter that checks tickets takes the whole log.
func TestLogStreamShowsTheTicketEverywhere(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spill int
	}{
		{"resent from memory", 1 << 20},
		{"resent from the file", 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, sink := newTestStream(t, tc.spill, dropFirstSends(3))
			sink.ticket = s.run.LogTicket
			want := writeLines(t, s, 10)
			s.Close()
			log, chunks, closes := sink.state()
			assert.Equal(t, want, string(log))
			assert.Equal(t, 2, closes, "one resend")
			sink.mu.Lock()
			defer sink.mu.Unlock()
			assert.Len(t, sink.tickets, chunks+closes)
			for i, tk := range sink.tickets {
				assert.Equal(t, s.run.LogTicket, tk, "message %d", i)
			}
		})
	}
}

// TestLogStreamResendsWhatAReporterWithoutTheKeyRefused: a reporter that
// has not got the log-ticket key yet refuses the chunks and the first
// close without an answer; once it has the key, the next round resends
// the whole log.
func TestLogStreamResendsWhatAReporterWithoutTheKeyRefused(t *testing.T) {
	s, _, sink := newTestStream(t, 1<<20, nil)
	s.closeWait = 100 * time.Millisecond
	sink.ticket, sink.keyless = s.run.LogTicket, 1
	want := writeLines(t, s, 10)
	s.Close()
	log, _, closes := sink.state()
	assert.Equal(t, want, string(log), "the reporter holds the whole log when Close returns")
	assert.Equal(t, 3, closes, "refused, answered with nothing held, answered with everything")
}

// writeLines writes n lines of output to s and returns them.
func writeLines(t *testing.T, s *logStream, n int) string {
	t.Helper()
	var want bytes.Buffer
	for i := range n {
		line := []byte("--- step " + string(rune('a'+i)) + ": line of output\n")
		want.Write(line)
		_, err := s.Write(line)
		require.NoError(t, err)
	}
	return want.String()
}
