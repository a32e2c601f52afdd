package dispatcher_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

// hostPlatform is a host.Platform that runs the host's work when the test
// says so and keeps what is sent and logged.
type hostPlatform struct {
	now   time.Time
	work  []func() any
	sent  []proto.Message
	notes []actors.Note
}

func (p *hostPlatform) Now() time.Time                            { return p.now }
func (p *hostPlatform) Address() string                           { return "127.0.0.1:8001" }
func (p *hostPlatform) Send(_ actors.Addr, m proto.Message)       { p.sent = append(p.sent, m) }
func (p *hostPlatform) Register(_ actors.Addr, m proto.Message)   { p.sent = append(p.sent, m) }
func (p *hostPlatform) Watch(actors.Addr)                         {}
func (p *hostPlatform) Unwatch(actors.Addr)                       {}
func (p *hostPlatform) Exit(int, string)                          {}
func (p *hostPlatform) Log(n actors.Note)                         { p.notes = append(p.notes, n) }
func (p *hostPlatform) ArmTimer(time.Time)                        {}
func (p *hostPlatform) Go(w func() any)                           { p.work = append(p.work, w) }
func (p *hostPlatform) Self(in any)                               { p.work = append(p.work, func() any { return in }) }
func (p *hostPlatform) Stepped(actors.From, any, []actors.Effect) {}
func (p *hostPlatform) Carried(actors.From, any, []actors.Effect) {}
func (p *hostPlatform) Started(host.Core)                         {}
func (p *hostPlatform) Crash(any, int, []actors.Effect) bool      { return false }

// drain runs the host's work (its batch writes) and hands the results back.
func (p *hostPlatform) drain(h *host.Host) {
	for len(p.work) > 0 {
		w := p.work[0]
		p.work = p.work[1:]
		h.Receive(actors.FromLocal(""), w())
	}
}

// batches is a dispatcher.Store that keeps the batches it is given.
type batches struct{ saved []dispatcher.Batch }

func (b *batches) Save(x dispatcher.Batch) error { b.saved = append(b.saved, x); return nil }
func (b *batches) LoadQueue() ([]*messages.JobRecord, []*messages.Cursor, int64, error) {
	return nil, nil, 0, nil
}
func (b *batches) LoadIncarnations() ([]*messages.RunnerIncarnation, error) { return nil, nil }
func (b *batches) ArchivedJobs(string, []string) (map[string]*messages.JobRecord, error) {
	return nil, nil
}
func (b *batches) NewestBuild(string, string) ([]*messages.Job, error) { return nil, nil }

// leadership is a dispatcher.Leadership valid until a set time.
type leadership struct {
	fence dispatcher.Fence
	until time.Time
}

func (l *leadership) Fence() dispatcher.Fence  { return l.fence }
func (l *leadership) Valid(now time.Time) bool { return now.Before(l.until) }

func TestFailoverLeaderFencesItsWritesAndStopsWhenItsLeaseRunsOut(t *testing.T) {
	p := &hostPlatform{now: coretest.T0}
	st := &batches{}
	lead := &leadership{fence: dispatcher.Fence{Key: "/volt/election/694d7", Revision: 42}, until: coretest.T0.Add(5 * time.Second)}
	shell := dispatcher.NewShell(dispatcher.DefaultConfig().WithFailover(8*time.Second), st)
	shell.SetLeadership(lead)
	h := host.New(p, shell)
	h.Start()

	runnerAt := actors.NewAddr("127.0.0.1:8900", "runner")
	who := actors.From{Addr: runnerAt, Who: actors.Identity{Role: actors.RoleRunner, Name: "r1"}}
	h.Receive(who, &messages.RegisterRunner{RunnerId: "r1", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion, Seq: 1})
	p.drain(h)

	require.NotEmpty(t, st.saved)
	for _, b := range st.saved {
		assert.Equal(t, lead.fence, b.Fence, "every batch is fenced with the election key")
	}
	var reg *messages.RunnerRegistered
	for _, m := range p.sent {
		if r, ok := m.(*messages.RunnerRegistered); ok {
			reg = r
		}
	}
	require.NotNil(t, reg, "the registration is answered once durable")
	assert.Equal(t, dispatcher.FailoverEpoch(42, 0), reg.Epoch)
	assert.Equal(t, int64(42), dispatcher.EpochRevision(reg.Epoch))
	assert.Equal(t, int64(8000), reg.LeaseMs, "the lease rides out a failover")
	assert.Equal(t, int64(9000), reg.DeadAfterMs)
	assert.Equal(t, int64(3000), reg.SilenceMs)

	// Paused past its lease, the node wakes up to a heartbeat: it acts on
	// nothing (no acknowledgement renews the runner's lease) and says why.
	p.now = coretest.T0.Add(6 * time.Second)
	p.sent = nil
	h.Receive(who, &messages.Heartbeat{RunnerId: "r1", Incarnation: 1, Seq: 2})
	h.Receive(actors.FromLocal(""), actors.Tick{})
	p.drain(h)
	assert.Empty(t, p.sent, "a lapsed leader answers nothing")
	warned := 0
	for _, n := range p.notes {
		if n.Msg == "leader lease ran out by this node's clock: acting no more until the election says who leads" {
			warned++
		}
	}
	assert.Equal(t, 1, warned, "said once")
}

func TestStandbyAnswersWithTheLeader(t *testing.T) {
	s := dispatcher.Standby{Node: "127.0.0.1:8002", Leader: "127.0.0.1:8001", Epoch: 42, Since: coretest.T0}
	runnerAt := actors.NewAddr("127.0.0.1:8900", "runner")
	fx := s.Answer(actors.From{Addr: runnerAt, Who: actors.Identity{Role: actors.RoleRunner, Name: "r1"}}, &messages.Heartbeat{RunnerId: "r1"})
	require.Equal(t, []actors.Effect{actors.Send{To: runnerAt, Msg: &messages.NotLeader{Leader: "127.0.0.1:8001", Epoch: 42, Node: "127.0.0.1:8002"}}}, fx)

	fx = s.Answer(actors.From{Addr: "127.0.0.1:9/admin", Who: actors.Identity{Role: actors.RoleAdmin, Name: "ops"}}, &messages.StatusRequest{})
	require.Len(t, fx, 1)
	reply := fx[0].(actors.Send).Msg.(*messages.StatusReply)
	assert.Equal(t, "standby", reply.Node.State)
	assert.Equal(t, "127.0.0.1:8001", reply.Node.Leader)

	assert.Empty(t, s.Answer(actors.From{Addr: runnerAt}, &messages.Heartbeat{}), "an unproven sender gets nothing")
	assert.Empty(t, s.Answer(actors.From{Addr: runnerAt, Who: actors.Identity{Role: actors.RoleRunner, Name: "r1"}}, &messages.RunJob{}), "not a message the dispatcher takes")
}
