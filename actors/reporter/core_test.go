package reporter_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

var (
	dispAddr   = actors.NewAddr("127.0.0.1:8000", "dispatcher")
	otherAddr  = actors.NewAddr("127.0.0.1:8123", "dispatcher")
	runnerAddr = actors.NewAddr("10.0.0.1:8900", "r1")
)

func registers(fx []actors.Effect) []*messages.RegisterReporter {
	var out []*messages.RegisterReporter
	for _, r := range coretest.EffectsOf[actors.Register](fx) {
		if r.To == dispAddr {
			out = append(out, r.Msg.(*messages.RegisterReporter))
		}
	}
	return out
}

// step delivers in from addr, as the identity a connection would prove for
// its rightful sender: the dispatcher's messages from the dispatcher, a log
// from runner r1, a status request from admin, the reporter's own inputs
// from this process.
func step(c *reporter.Core, now time.Time, addr actors.Addr, in any) []actors.Effect {
	return c.Step(now, actors.From{Addr: addr, Who: rightful(in)}, in)
}

var r1 = actors.Identity{Role: actors.RoleRunner, Name: "r1"}

func rightful(in any) actors.Identity {
	switch in.(type) {
	case *messages.ReporterRegistered, *messages.ResultRecorded:
		return actors.Identity{Role: actors.RoleDispatcher, Name: "disp-host"}
	case *messages.LogChunk, *messages.LogClosed:
		return r1
	case *messages.StatusRequest, *messages.Notify:
		return actors.Identity{Role: actors.RoleAdmin, Name: "ops"}
	}
	return actors.Local
}

func newCore(t *testing.T) (*reporter.Core, []actors.Effect) {
	c := reporter.New(reporter.Config{ID: "rep", Dispatcher: dispAddr, Token: "tok"})
	return c, c.Start(coretest.T0)
}

// testKey is the log-ticket key the dispatcher hands over in these tests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// ticket is the log ticket the dispatcher gives who for job's attempt.
func ticket(who actors.Identity, j *messages.Job, attempt int32) []byte {
	return messages.LogTicket(testKey, j, attempt, who.Name)
}

// newRegistered is newCore, registered with the dispatcher (it holds the
// log-ticket key).
func newRegistered(t *testing.T) *reporter.Core {
	c, _ := newCore(t)
	step(c, coretest.T0, dispAddr, &messages.ReporterRegistered{Accepted: true, LogKey: testKey})
	require.True(t, c.Registered())
	return c
}

func job(n int) *messages.Job {
	return &messages.Job{Id: int64(n), Repo: "/srv/git/app.git", Commit: coretest.Commit(n), Branches: []string{"main"}, Build: 1}
}

func TestReporterRegisters(t *testing.T) {
	c, fx := newCore(t)
	regs := registers(fx)
	require.Len(t, regs, 1)
	assert.Equal(t, "rep", regs[0].ReporterId)
	assert.Equal(t, messages.ProtocolVersion, regs[0].ProtocolVersion)
	assert.Equal(t, "tok", regs[0].Token)

	assert.Empty(t, step(c, coretest.T0, otherAddr, &messages.ReporterRegistered{Accepted: true}), "only the dispatcher's answer counts")
	assert.False(t, c.Registered())

	fx = step(c, coretest.T0.Add(50*time.Millisecond), dispAddr, &messages.ReporterRegistered{Accepted: true})
	assert.True(t, c.Registered())
	assert.Contains(t, fx, actors.Effect(actors.Watch{Addr: dispAddr}))
	assert.Empty(t, step(c, coretest.T0.Add(time.Second), "", actors.Tick{}), "no registration while registered and fresh")
	refresh := registers(step(c, coretest.T0.Add(time.Minute), "", actors.Tick{}))
	require.Len(t, refresh, 1, "a registered reporter registers again every Refresh, so that a dispatcher restarted in place learns of it")
	assert.Empty(t, step(c, coretest.T0.Add(time.Minute+time.Second), "", actors.Tick{}), "not again before the next Refresh")
	assert.Empty(t, step(c, coretest.T0.Add(time.Minute), dispAddr, &messages.ReporterRegistered{Accepted: true}), "a duplicate answer")
}

func TestReporterRefusedExits(t *testing.T) {
	c, _ := newCore(t)
	fx := step(c, coretest.T0, dispAddr, &messages.ReporterRegistered{Reason: "wrong or missing token"})
	exits := coretest.EffectsOf[actors.Exit](fx)
	require.Len(t, exits, 1)
	assert.Equal(t, 1, exits[0].Code)
	assert.Contains(t, exits[0].Reason, "wrong or missing token")
}

func TestReporterNeverGivesUpOnItsDispatcher(t *testing.T) {
	c, _ := newCore(t)
	step(c, coretest.T0, dispAddr, &messages.ReporterRegistered{Accepted: true})
	lost := coretest.T0.Add(time.Second)

	fx := step(c, lost, "", actors.PeerTerminated{Addr: dispAddr})
	assert.Len(t, registers(fx), 1, "registers again at once")
	assert.False(t, c.Registered())
	assert.Empty(t, step(c, lost, "", actors.PeerTerminated{Addr: otherAddr}))

	var attempts []time.Duration
	for now := lost.Add(100 * time.Millisecond); now.Sub(lost) <= time.Hour; now = now.Add(100 * time.Millisecond) {
		fx := step(c, now, "", actors.Tick{})
		require.Empty(t, coretest.EffectsOf[actors.Exit](fx), "the reporter never exits for a lost dispatcher")
		if len(registers(fx)) > 0 && len(attempts) < 6 {
			attempts = append(attempts, now.Sub(lost))
		}
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{100 * ms, 300 * ms, 700 * ms, 1500 * ms, 3100 * ms, 5100 * ms}, attempts,
		"backoff doubles, capped at 2 s")

	step(c, lost.Add(2*time.Hour), dispAddr, &messages.ReporterRegistered{Accepted: true})
	assert.True(t, c.Registered())
}

func TestReporterInputs(t *testing.T) {
	chunk := &messages.LogChunk{Job: job(1), Attempt: 1, Offset: 10, Data: []byte("ok\n"), Ticket: ticket(r1, job(1), 1)}
	closed := &messages.LogClosed{Job: job(1), Attempt: 1, Size: 13, Ticket: ticket(r1, job(1), 1)}
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
		{"log chunk", runnerAddr, chunk, reporter.AppendLog{Chunk: chunk, Writer: r1}},
		{"log chunk at a negative offset", runnerAddr, &messages.LogChunk{Job: job(1), Offset: -1}, nil},
		{"log chunk with a bad commit", runnerAddr, &messages.LogChunk{Job: &messages.Job{Commit: "-x"}}, nil},
		{"log chunk without job", runnerAddr, &messages.LogChunk{}, nil},
		{"log closed", runnerAddr, closed, reporter.CloseLog{Msg: closed, ReplyTo: runnerAddr}},
		{"log closed with a bad commit", runnerAddr, &messages.LogClosed{Job: &messages.Job{Commit: "HEAD"}}, nil},
		{"status", "ops:1/cli", &messages.StatusRequest{}, reporter.Status{ReplyTo: "ops:1/cli"}},
		{"unknown message", runnerAddr, &messages.Notify{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRegistered(t)
			fx := step(c, coretest.T0, tt.from, tt.in)
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

// --- Identity: the sender a connection proved, never the one a message claims ---

var (
	unauthenticated = actors.Identity{}
	mallory         = actors.Identity{Role: actors.RoleRunner, Name: "mallory"}
	anObserver      = actors.Identity{Role: actors.RoleObserver, Name: "obs-host"}
	aReporter       = actors.Identity{Role: actors.RoleReporter, Name: "rep-host"}
	aNotify         = actors.Identity{Role: actors.RoleNotify, Name: "git-host"}
	theDispatcher   = actors.Identity{Role: actors.RoleDispatcher, Name: "disp-host"}
)

// TestForgeriesChangeNothingAndGetNoAnswer: a message from an identity that
// may not send it changes nothing, records nothing, stores no log and gets
// no answer.
func TestForgeriesChangeNothingAndGetNoAnswer(t *testing.T) {
	// claimed is registered; r1 has sent part of job 1 attempt 1's log, and
	// job 2 attempt 1's result is recorded.
	claimed := func(t *testing.T) *reporter.Core {
		c := newRegistered(t)
		require.Len(t, coretest.EffectsOf[reporter.AppendLog](step(c, coretest.T0, runnerAddr, &messages.LogChunk{Job: job(1), Attempt: 1, Data: []byte("a"),
			Ticket: ticket(r1, job(1), 1)})), 1)
		require.Len(t, coretest.EffectsOf[reporter.Record](step(c, coretest.T0, dispAddr, &messages.ResultRecorded{Result: &messages.Result{
			Job: job(2), Attempt: 1, RunnerId: "r1", Status: messages.Status_STATUS_PASSED}})), 1)
		return c
	}
	result := &messages.ResultRecorded{Result: &messages.Result{Job: job(3), Attempt: 1, RunnerId: "r1", Status: messages.Status_STATUS_PASSED}}
	chunk := &messages.LogChunk{Job: job(1), Attempt: 1, Offset: 1, Data: []byte("forged")}
	cases := []struct {
		name string
		who  actors.Identity
		addr actors.Addr
		msg  any
	}{
		{"result unauthenticated", unauthenticated, dispAddr, result},
		{"result from a runner", mallory, dispAddr, result},
		{"result from an observer", anObserver, dispAddr, result},
		{"result from another reporter", aReporter, dispAddr, result},
		{"registration refused, from a runner", mallory, dispAddr, &messages.ReporterRegistered{Reason: "go away"}},
		{"registration refused, unauthenticated", unauthenticated, dispAddr, &messages.ReporterRegistered{Reason: "go away"}},
		{"log chunk unauthenticated", unauthenticated, runnerAddr, &messages.LogChunk{Job: job(3), Attempt: 1, Data: []byte("x")}},
		{"log chunk from an observer", anObserver, runnerAddr, &messages.LogChunk{Job: job(3), Attempt: 1, Data: []byte("x")}},
		{"log chunk from the dispatcher", theDispatcher, runnerAddr, &messages.LogChunk{Job: job(3), Attempt: 1, Data: []byte("x")}},
		{"log chunk to r1's log from another runner", mallory, runnerAddr, chunk},
		{"log chunk to a recorded attempt's log", r1, runnerAddr, &messages.LogChunk{Job: job(2), Attempt: 1, Offset: 9, Data: []byte("late"),
			Ticket: ticket(r1, job(2), 1)}},
		{"log chunk without a ticket, for an attempt no one has written", mallory, runnerAddr, &messages.LogChunk{Job: job(4), Attempt: 1, Data: []byte("squat")}},
		{"log chunk with r1's ticket, from another runner", mallory, runnerAddr, &messages.LogChunk{Job: job(4), Attempt: 1, Data: []byte("squat"),
			Ticket: ticket(r1, job(4), 1)}},
		{"log chunk with a ticket for another attempt", r1, runnerAddr, &messages.LogChunk{Job: job(4), Attempt: 2, Data: []byte("x"),
			Ticket: ticket(r1, job(4), 1)}},
		{"log chunk with a ticket for another job", r1, runnerAddr, &messages.LogChunk{Job: job(4), Attempt: 1, Data: []byte("x"),
			Ticket: ticket(r1, job(5), 1)}},
		{"log closed without a ticket", r1, runnerAddr, &messages.LogClosed{Job: job(4), Attempt: 1, Size: 1}},
		{"log closed unauthenticated", unauthenticated, runnerAddr, &messages.LogClosed{Job: job(3), Attempt: 1, Size: 1}},
		{"log closed from a notify certificate", aNotify, runnerAddr, &messages.LogClosed{Job: job(3), Attempt: 1, Size: 1}},
		{"r1's log closed by another runner", mallory, runnerAddr, &messages.LogClosed{Job: job(1), Attempt: 1, Size: 1}},
		{"status unauthenticated", unauthenticated, "evil:1/x", &messages.StatusRequest{}},
		{"status from a runner", mallory, "evil:1/x", &messages.StatusRequest{}},
		{"status from an observer", anObserver, "evil:1/x", &messages.StatusRequest{}},
		{"status from a notify certificate", aNotify, "evil:1/x", &messages.StatusRequest{}},
		{"a message no one sends the reporter, from the dispatcher", theDispatcher, dispAddr, &messages.RunJob{Job: job(3), Attempt: 1}},
		{"a tick from the network", mallory, "", actors.Tick{}},
		{"the dispatcher gone, said by no one", unauthenticated, "", actors.PeerTerminated{Addr: dispAddr}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := claimed(t)
			now := coretest.T0.Add(time.Minute) // a refresh is due: a forged input must not send it
			before, refused := c.Digest(), c.Refused()

			fx := c.Step(now, actors.From{Addr: tc.addr, Who: tc.who}, tc.msg)

			require.Len(t, fx, 1, "a note and nothing else: %v", fx)
			note, ok := fx[0].(actors.Note)
			require.True(t, ok, "%T", fx[0])
			assert.Equal(t, slog.LevelWarn, note.Level)
			assert.Contains(t, fmt.Sprint(note.Args...), actors.TypeName(tc.msg), "the note names the message type")
			assert.Equal(t, before, c.Digest(), "no state changed")
			assert.Equal(t, refused+1, c.Refused(), "the refusal is counted")
			assert.True(t, c.Registered())
		})
	}
}

// TestLogKeptOnlyForTheRunnerTheResultNames: a log names no runner, so the
// first identity to write to an attempt's log claims it, and the result
// the dispatcher forwards decides whether it is kept.
func TestLogKeptOnlyForTheRunnerTheResultNames(t *testing.T) {
	local := actors.Local
	r2 := actors.Identity{Role: actors.RoleRunner, Name: "r2"}
	type write struct {
		who     actors.Identity
		attempt int32
		ticket  bool // the writer holds the dispatcher's ticket for the attempt
		stored  bool
	}
	cases := []struct {
		name    string
		writes  []write
		result  string // the runner the result names, for attempt 1
		dropLog bool
	}{
		{"the runner's own log", []write{{r1, 1, true, true}, {r1, 1, true, true}}, "r1", false},
		{"no log at all", nil, "r1", false},
		{"a runner without the ticket cannot squat the log, the rightful one keeps it", []write{{mallory, 1, false, false}, {r1, 1, true, true}}, "r1", false},
		{"another runner's log (it held a ticket) for a result of r1", []write{{r2, 1, true, true}}, "r1", true},
		{"another attempt's writer does not matter", []write{{mallory, 2, true, true}, {r1, 1, true, true}}, "r1", false},
		{"this process's runner (volt up)", []write{{local, 1, false, true}}, "host/runner-1", false},
		{"this process wrote to a remote runner's log too", []write{{r1, 1, true, true}, {local, 1, false, true}}, "r1", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newRegistered(t)
			for i, w := range tc.writes {
				m := &messages.LogChunk{Job: job(1), Attempt: w.attempt, Offset: int64(i), Data: []byte("x")}
				if w.ticket {
					m.Ticket = ticket(w.who, job(1), w.attempt)
				}
				fx := c.Step(coretest.T0, actors.From{Addr: runnerAddr, Who: w.who}, m)
				assert.Equal(t, w.stored, len(coretest.EffectsOf[reporter.AppendLog](fx)) == 1, "write %d by %s", i, w.who)
			}
			fx := step(c, coretest.T0, dispAddr, &messages.ResultRecorded{Result: &messages.Result{Job: job(1), Attempt: 1, RunnerId: tc.result}})
			recs := coretest.EffectsOf[reporter.Record](fx)
			require.Len(t, recs, 1)
			assert.Equal(t, tc.dropLog, recs[0].DropLog)

			// The dispatcher resends until acknowledged: the same answer.
			recs = coretest.EffectsOf[reporter.Record](step(c, coretest.T0, dispAddr, &messages.ResultRecorded{Result: &messages.Result{Job: job(1), Attempt: 1, RunnerId: tc.result}}))
			require.Len(t, recs, 1)
			assert.Equal(t, tc.dropLog, recs[0].DropLog)

			// A recorded attempt's log takes no more, from anyone but this process.
			for _, who := range []actors.Identity{r1, mallory} {
				fx = c.Step(coretest.T0, actors.From{Addr: runnerAddr, Who: who}, &messages.LogChunk{Job: job(1), Attempt: 1, Offset: 100, Data: []byte("late"),
					Ticket: ticket(who, job(1), 1)})
				assert.Empty(t, coretest.EffectsOf[reporter.AppendLog](fx), "%s after the result", who)
			}
		})
	}
}

// TestNoLogBeforeTheKey: until the dispatcher has accepted this reporter
// (and handed it the log-ticket key), no remote runner's log is taken; the
// runner's log stream resends.
func TestNoLogBeforeTheKey(t *testing.T) {
	c, _ := newCore(t)
	m := &messages.LogChunk{Job: job(1), Attempt: 1, Data: []byte("x"), Ticket: ticket(r1, job(1), 1)}
	assert.Empty(t, coretest.EffectsOf[reporter.AppendLog](step(c, coretest.T0, runnerAddr, m)))
	step(c, coretest.T0, dispAddr, &messages.ReporterRegistered{Accepted: true, LogKey: testKey})
	assert.Len(t, coretest.EffectsOf[reporter.AppendLog](step(c, coretest.T0, runnerAddr, m)), 1)
}

// pipelineJob is job index of a build of n jobs whose id is build.
func pipelineJob(build int64, index, n int32) *messages.Job {
	j := job(int(build))
	j.Id, j.BuildId, j.Index, j.BuildJobs = build+int64(index), build, index, n
	j.Cell = &messages.PipelineJob{Key: fmt.Sprintf("job%d", index), Name: fmt.Sprintf("job%d", index)}
	return j
}

// TestJobsOfABuildHaveTheirOwnLogs: each job of a build has its own
// attempts and log, so two runners running jobs 0 and 1 of one build,
// both at attempt 1, each write their own log, and each job's result
// keeps its runner's log.
func TestJobsOfABuildHaveTheirOwnLogs(t *testing.T) {
	c := newRegistered(t)
	r2 := actors.Identity{Role: actors.RoleRunner, Name: "r2"}
	for _, w := range []struct {
		who   actors.Identity
		index int32
	}{{r1, 0}, {r2, 1}, {r1, 0}, {r2, 1}} {
		j := pipelineJob(10, w.index, 2)
		fx := c.Step(coretest.T0, actors.From{Addr: runnerAddr, Who: w.who},
			&messages.LogChunk{Job: j, Attempt: 1, Data: []byte("x"), Ticket: ticket(w.who, j, 1)})
		require.Len(t, coretest.EffectsOf[reporter.AppendLog](fx), 1, "%s writing job %d", w.who, w.index)
	}
	for i, runner := range []string{"r1", "r2"} {
		res := &messages.Result{Job: pipelineJob(10, int32(i), 2), Attempt: 1, RunnerId: runner, Status: messages.Status_STATUS_PASSED}
		recs := coretest.EffectsOf[reporter.Record](step(c, coretest.T0, dispAddr, &messages.ResultRecorded{Result: res}))
		require.Len(t, recs, 1)
		assert.False(t, recs[0].DropLog, "job %d keeps its runner's log", i)
	}
}

// TestSkippedJobRecorded: a job that never ran (skipped: no runner, no
// attempt, no log) is recorded like any other result.
func TestSkippedJobRecorded(t *testing.T) {
	c := newRegistered(t)
	res := &messages.Result{Job: pipelineJob(10, 2, 3), Status: messages.Status_STATUS_SKIPPED, Reason: "needs job1, which failed"}
	fx := step(c, coretest.T0, dispAddr, &messages.ResultRecorded{Result: res})
	assert.Equal(t, []actors.Effect{reporter.Record{Result: res, ReplyTo: dispAddr}}, fx)
}

// TestImpossiblePlacesRefused: results and logs are keyed by the job's
// index in its build, so a message whose index does not fit its build or
// its id changes nothing.
func TestImpossiblePlacesRefused(t *testing.T) {
	bad := map[string]func(j *messages.Job){
		"index beyond the build":        func(j *messages.Job) { j.Index = 2 },
		"negative index":                func(j *messages.Job) { j.Index = -1 },
		"id not the build's plus index": func(j *messages.Job) { j.Id = 99 },
		"index without a build id":      func(j *messages.Job) { j.BuildId = 0 },
		"a build of too many jobs":      func(j *messages.Job) { j.BuildJobs = 1 << 30 },
	}
	for name, spoil := range bad {
		t.Run(name, func(t *testing.T) {
			c := newRegistered(t)
			before := c.Digest()
			j := pipelineJob(10, 1, 2)
			spoil(j)
			for _, in := range []any{
				&messages.ResultRecorded{Result: &messages.Result{Job: j, Attempt: 1, RunnerId: "r1"}},
				&messages.LogChunk{Job: j, Attempt: 1, Data: []byte("x"), Ticket: ticket(r1, j, 1)},
				&messages.LogClosed{Job: j, Attempt: 1, Ticket: ticket(r1, j, 1)},
			} {
				from := runnerAddr
				if _, ok := in.(*messages.ResultRecorded); ok {
					from = dispAddr
				}
				fx := step(c, coretest.T0, from, in)
				require.Len(t, fx, 1, "%T", in)
				_, ok := fx[0].(actors.Note)
				assert.True(t, ok, "%T: only a warning, got %T", in, fx[0])
			}
			assert.Equal(t, before, c.Digest())
		})
	}
}
