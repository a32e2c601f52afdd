package reporter_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/messages"
)

// t0 is the virtual clock's start; tests add durations to it.
var t0 = time.Unix(1_700_000_000, 0)

var (
	dispAddr   = actors.NewAddr("127.0.0.1:8000", "dispatcher")
	otherAddr  = actors.NewAddr("127.0.0.1:8123", "dispatcher")
	runnerAddr = actors.NewAddr("10.0.0.1:8900", "r1")
)

func commit(n int) string { return fmt.Sprintf("%040x", n) }

func effectsOf[T any](fx []actors.Effect) []T {
	var out []T
	for _, e := range fx {
		if x, ok := e.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

func registers(fx []actors.Effect) []*messages.RegisterReporter {
	var out []*messages.RegisterReporter
	for _, r := range effectsOf[actors.Register](fx) {
		if r.To == dispAddr {
			out = append(out, r.Msg.(*messages.RegisterReporter))
		}
	}
	return out
}

func newCore(t *testing.T) (*reporter.Core, []actors.Effect) {
	c := reporter.New(reporter.Config{ID: "rep", Dispatcher: dispAddr, Token: "tok"})
	return c, c.Start(t0)
}

func job(n int) *messages.Job {
	return &messages.Job{Id: int64(n), Repo: "/srv/git/app.git", Commit: commit(n), Branches: []string{"main"}, Build: 1}
}

func TestReporterRegisters(t *testing.T) {
	c, fx := newCore(t)
	regs := registers(fx)
	require.Len(t, regs, 1)
	assert.Equal(t, "rep", regs[0].ReporterId)
	assert.Equal(t, messages.ProtocolVersion, regs[0].ProtocolVersion)
	assert.Equal(t, "tok", regs[0].Token)

	assert.Empty(t, c.Step(t0, otherAddr, &messages.ReporterRegistered{Accepted: true}), "only the dispatcher's answer counts")
	assert.False(t, c.Registered())

	fx = c.Step(t0.Add(50*time.Millisecond), dispAddr, &messages.ReporterRegistered{Accepted: true})
	assert.True(t, c.Registered())
	assert.Contains(t, fx, actors.Effect(actors.Watch{Addr: dispAddr}))
	assert.Empty(t, c.Step(t0.Add(time.Second), "", actors.Tick{}), "no registration while registered and fresh")
	refresh := registers(c.Step(t0.Add(time.Minute), "", actors.Tick{}))
	require.Len(t, refresh, 1, "a registered reporter registers again every Refresh, so that a dispatcher restarted in place learns of it")
	assert.Empty(t, c.Step(t0.Add(time.Minute+time.Second), "", actors.Tick{}), "not again before the next Refresh")
	assert.Empty(t, c.Step(t0.Add(time.Minute), dispAddr, &messages.ReporterRegistered{Accepted: true}), "a duplicate answer")
}

func TestReporterRefusedExits(t *testing.T) {
	c, _ := newCore(t)
	fx := c.Step(t0, dispAddr, &messages.ReporterRegistered{Reason: "wrong or missing token"})
	exits := effectsOf[actors.Exit](fx)
	require.Len(t, exits, 1)
	assert.Equal(t, 1, exits[0].Code)
	assert.Contains(t, exits[0].Reason, "wrong or missing token")
}

func TestReporterNeverGivesUpOnItsDispatcher(t *testing.T) {
	c, _ := newCore(t)
	c.Step(t0, dispAddr, &messages.ReporterRegistered{Accepted: true})
	lost := t0.Add(time.Second)

	fx := c.Step(lost, "", actors.PeerTerminated{Addr: dispAddr})
	assert.Len(t, registers(fx), 1, "registers again at once")
	assert.False(t, c.Registered())
	assert.Empty(t, c.Step(lost, "", actors.PeerTerminated{Addr: otherAddr}))

	var attempts []time.Duration
	for now := lost.Add(100 * time.Millisecond); now.Sub(lost) <= time.Hour; now = now.Add(100 * time.Millisecond) {
		fx := c.Step(now, "", actors.Tick{})
		require.Empty(t, effectsOf[actors.Exit](fx), "the reporter never exits for a lost dispatcher")
		if len(registers(fx)) > 0 && len(attempts) < 6 {
			attempts = append(attempts, now.Sub(lost))
		}
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{100 * ms, 300 * ms, 700 * ms, 1500 * ms, 3100 * ms, 5100 * ms}, attempts,
		"backoff doubles, capped at 2 s")

	c.Step(lost.Add(2*time.Hour), dispAddr, &messages.ReporterRegistered{Accepted: true})
	assert.True(t, c.Registered())
}

func TestReporterInputs(t *testing.T) {
	chunk := &messages.LogChunk{Job: job(1), Attempt: 1, Offset: 10, Data: []byte("ok\n")}
	closed := &messages.LogClosed{Job: job(1), Attempt: 1, Size: 13}
	result := &messages.Result{Job: job(1), Attempt: 2, RunnerId: "r1", Status: messages.Status_STATUS_PASSED}
	tests := []struct {
		name string
		from actors.Addr
		in   any
		want actors.Effect // nil: only a warning
	}{
		{"result", dispAddr, &messages.ResultRecorded{Result: result}, reporter.Record{Result: result, ReplyTo: dispAddr}},
		{"result without job", dispAddr, &messages.ResultRecorded{Result: &messages.Result{Attempt: 1}}, nil},
		{"no result", dispAddr, &messages.ResultRecorded{}, nil},
		{"result with a bad commit", dispAddr, &messages.ResultRecorded{Result: &messages.Result{
			Job: &messages.Job{Id: 1, Commit: "../../etc/passwd"}}}, nil},
		{"log chunk", runnerAddr, chunk, reporter.AppendLog{Chunk: chunk}},
		{"log chunk at a negative offset", runnerAddr, &messages.LogChunk{Job: job(1), Offset: -1}, nil},
		{"log chunk with a bad commit", runnerAddr, &messages.LogChunk{Job: &messages.Job{Commit: "-x"}}, nil},
		{"log chunk without job", runnerAddr, &messages.LogChunk{}, nil},
		{"log closed", runnerAddr, closed, reporter.CloseLog{Msg: closed, ReplyTo: runnerAddr}},
		{"log closed with a bad commit", runnerAddr, &messages.LogClosed{Job: &messages.Job{Commit: "HEAD"}}, nil},
		{"unknown message", runnerAddr, &messages.Notify{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newCore(t)
			fx := c.Step(t0, tt.from, tt.in)
			if tt.want == nil {
				require.Len(t, fx, 1)
				note, ok := fx[0].(actors.Note)
				require.True(t, ok, "only a warning: %T", fx[0])
				assert.NotEmpty(t, note.Msg)
				return
			}
			assert.Equal(t, []actors.Effect{tt.want}, fx)
		})
	}
}
