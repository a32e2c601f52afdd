package host

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// Under steady traffic a newer batch always has effects waiting when an
// older one lands. The held effects must still be released in order, and
// the space of released ones reused: memory stays flat.
func TestHeldEffectsReuseTheirSpace(t *testing.T) {
	var g groupCommit
	released := 0
	for batch := uint64(1); batch <= 10_000; batch++ {
		g.last = batch
		for i := range 3 {
			g.hold(held{effect: actors.Note{Msg: "effect", Args: []any{batch, i}}})
		}
		g.durable = batch - 1
		for {
			h, ok := g.next()
			if !ok {
				break
			}
			require.Equal(t, []any{uint64(released/3 + 1), released % 3}, h.effect.(actors.Note).Args, "out of order")
			released++
		}
	}
	require.Equal(t, 3*9_999, released)
	require.LessOrEqual(t, len(g.held.buf), 16, "held effects kept the space of released ones")
}

// fake is a platform that runs Go's work when the test says so.
type fake struct {
	now   time.Time
	work  []func() any
	self  []any
	sent  []proto.Message
	notes []actors.Note
	armed time.Time
}

func (f *fake) Now() time.Time                            { return f.now }
func (f *fake) Address() string                           { return "test" }
func (f *fake) Send(_ actors.Addr, m proto.Message)       { f.sent = append(f.sent, m) }
func (f *fake) Register(_ actors.Addr, m proto.Message)   { f.sent = append(f.sent, m) }
func (f *fake) Watch(actors.Addr)                         {}
func (f *fake) Unwatch(actors.Addr)                       {}
func (f *fake) Exit(int, string)                          {}
func (f *fake) Log(n actors.Note)                         { f.notes = append(f.notes, n) }
func (f *fake) ArmTimer(d time.Time)                      { f.armed = d }
func (f *fake) Go(w func() any)                           { f.work = append(f.work, w) }
func (f *fake) Self(in any)                               { f.self = append(f.self, in) }
func (f *fake) Stepped(actors.From, any, []actors.Effect) {}
func (f *fake) Carried(actors.From, any, []actors.Effect) {}
func (f *fake) Started(Core)                              {}
func (f *fake) Crash(any, int, []actors.Effect) bool      { return false }

// write is the test role's write effect.
type write struct{ n int }

// core answers each Heartbeat with an ack, and each CommitObserved with a
// write and an ack.
type core struct{}

func (core) Deadline() time.Time { return time.Time{} }
func (core) Step(_ time.Time, _ actors.From, in any) []actors.Effect {
	switch in.(type) {
	case *messages.Heartbeat:
		return []actors.Effect{actors.Send{Msg: &messages.HeartbeatAck{}}}
	case *messages.CommitObserved:
		return []actors.Effect{write{1}, actors.Send{Msg: &messages.CommitObservedAck{}}}
	}
	return nil
}

// role is a Journal whose store fails while err is set.
type role struct {
	err    error
	batch  []int
	saved  [][]int
	starts int
}

func (r *role) Start(*Host, time.Time) (Core, []actors.Effect) {
	r.starts++
	r.batch = nil
	return core{}, nil
}
func (r *role) Input(msg any, _ bool) (any, bool, bool) { return msg, false, true }
func (r *role) Do(actors.Effect) bool                   { return false }
func (r *role) Gather(e actors.Effect) (bool, bool) {
	w, ok := e.(write)
	if ok {
		r.batch = append(r.batch, w.n)
	}
	return ok, ok
}
func (r *role) Take() any { b := r.batch; r.batch = nil; return b }
func (r *role) Save(b any) error {
	if r.err != nil {
		return r.err
	}
	r.saved = append(r.saved, b.([]int))
	return nil
}
func (r *role) PassInput(msg any) bool { _, hb := msg.(*messages.Heartbeat); return hb }
func (r *role) Pass(e actors.Effect) bool {
	s, ok := e.(actors.Send)
	_, ack := s.Msg.(*messages.HeartbeatAck)
	return ok && ack
}
func (r *role) IsWrite(e actors.Effect) bool { _, ok := e.(write); return ok }

// run runs the platform's pending Self and Go work.
func (f *fake) run(h *Host) {
	for len(f.self) > 0 || len(f.work) > 0 {
		if len(f.self) > 0 {
			in := f.self[0]
			f.self = f.self[1:]
			h.Receive(actors.From{Who: actors.Local}, in)
			continue
		}
		w := f.work[0]
		f.work = f.work[1:]
		h.Receive(actors.From{Who: actors.Local}, w())
	}
}

func errorsLogged(notes []actors.Note) int {
	n := 0
	for _, x := range notes {
		if x.Level == slog.LevelError {
			n++
		}
	}
	return n
}

// TestFailingStoreRetriesAndResumes: a batch that fails is written again
// with backoff, with one ERROR for the whole outage; meanwhile only
// heartbeats reach the core and only their acks go out; once it is
// written the role starts afresh, and an INFO says so.
func TestFailingStoreRetriesAndResumes(t *testing.T) {
	f := &fake{now: time.Unix(1000, 0)}
	r := &role{err: errors.New("no space left on device")}
	h := New(f, r)
	h.Start()
	h.Receive(actors.From{}, &messages.CommitObserved{})
	f.run(h)
	require.True(t, h.StoreFailing())
	require.Empty(t, f.sent, "the ack waits for its write")

	h.Receive(actors.From{}, &messages.CommitObserved{}) // no new work
	h.Receive(actors.From{}, &messages.Heartbeat{})
	require.Len(t, f.sent, 1)
	require.IsType(t, &messages.HeartbeatAck{}, f.sent[0])
	require.Equal(t, f.now.Add(100*time.Millisecond), h.Deadline(), "the first retry")

	for i := 0; i < 8; i++ { // backoff doubles to 5 s
		f.now = h.Deadline()
		h.Receive(actors.From{Who: actors.Local}, actors.Tick{})
		f.run(h)
	}
	require.Equal(t, f.now.Add(5*time.Second), h.Deadline())
	require.Equal(t, 1, errorsLogged(f.notes), "one ERROR for the outage")
	require.Equal(t, int64(9), h.StoreWriteErrors())

	r.err = nil
	f.now = h.Deadline()
	h.Receive(actors.From{Who: actors.Local}, actors.Tick{})
	f.run(h)
	require.False(t, h.StoreFailing())
	require.Equal(t, [][]int{{1}}, r.saved, "the failed batch, and only it, is written")
	require.Equal(t, 2, r.starts, "the role started afresh")
	require.Len(t, f.sent, 1, "what waited for the failed batch is dropped")
	c := map[string]int64{}
	h.StoreCounters(c)
	require.Equal(t, map[string]int64{"store_failing": 0, "store_write_errors": 9}, c)

	h.Receive(actors.From{}, &messages.CommitObserved{})
	f.run(h)
	require.IsType(t, &messages.CommitObservedAck{}, f.sent[len(f.sent)-1], "new work is taken again")
}
