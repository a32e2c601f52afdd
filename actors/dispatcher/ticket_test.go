package dispatcher_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

// TestRunJobCarriesALogTicketTheReporterCanCheck: the reporter gets the
// log-ticket key when it registers, and every RunJob carries the ticket
// for that runner and attempt, which verifies under it, for no one else.
func TestRunJobCarriesALogTicketTheReporterCanCheck(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	cfg.LogKey = []byte("0123456789abcdef0123456789abcdef")
	w := newWorld(t, cfg)
	w.addObserver(obsAddr)
	regs := coretest.Sends[*messages.ReporterRegistered](w.addReporter())
	require.Len(t, regs, 1)
	require.Equal(t, cfg.LogKey, regs[0].LogKey)

	w.addRunner("r1", 1)
	runs := coretest.Sends[*messages.RunJob](w.observe("main", "", coretest.Commit(1)))
	require.Len(t, runs, 1)
	run := runs[0]
	require.True(t, messages.ValidTicket(regs[0].LogKey, run.LogTicket, run.Job, run.Attempt, "r1"))
	require.False(t, messages.ValidTicket(regs[0].LogKey, run.LogTicket, run.Job, run.Attempt, "r2"))
	require.False(t, messages.ValidTicket(regs[0].LogKey, run.LogTicket, run.Job, run.Attempt+1, "r1"))
}

// TestEachAttemptGetsItsOwnTicket: a job reassigned after its runner is
// lost is a new attempt on another runner, with a ticket of its own: the
// lost runner's ticket is no good for it, and the new one no good for the
// old attempt.
func TestEachAttemptGetsItsOwnTicket(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	cfg.LogKey = []byte("0123456789abcdef0123456789abcdef")
	w := newWorld(t, cfg)
	w.addObserver(obsAddr)
	w.addReporter()
	w.addRunner("r1", 1)
	first := coretest.Sends[*messages.RunJob](w.observe("main", "", coretest.Commit(1)))
	require.Len(t, first, 1)
	w.addRunner("r2", 1)
	second := coretest.Sends[*messages.RunJob](w.step("", actors.PeerTerminated{Addr: runnerAddr("r1"), Reason: "connection closed"}))
	require.Len(t, second, 1)
	a, b := first[0], second[0]
	require.Equal(t, a.Job.Id, b.Job.Id)
	require.Equal(t, a.Attempt+1, b.Attempt)
	require.True(t, messages.ValidTicket(cfg.LogKey, b.LogTicket, b.Job, b.Attempt, "r2"))
	require.False(t, messages.ValidTicket(cfg.LogKey, a.LogTicket, b.Job, b.Attempt, "r1"), "the lost runner's ticket for the new attempt")
	require.False(t, messages.ValidTicket(cfg.LogKey, b.LogTicket, a.Job, a.Attempt, "r2"), "the new runner's ticket for the old attempt")
}

// TestLogKeyOnlyToAnAcceptedReporter: a registration refused (here for its
// token), or one a runner certificate forges, gets no key.
func TestLogKeyOnlyToAnAcceptedReporter(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	cfg.LogKey = []byte("0123456789abcdef0123456789abcdef")
	cfg.Token = "tok"
	w := newWorld(t, cfg)
	reg := &messages.RegisterReporter{ReporterId: "rep", ProtocolVersion: messages.ProtocolVersion, Token: "wrong"}
	regs := coretest.Sends[*messages.ReporterRegistered](w.step(repAddr, reg))
	require.Len(t, regs, 1)
	require.False(t, regs[0].Accepted)
	require.Empty(t, regs[0].LogKey)

	reg.Token = "tok"
	fx := w.stepAs(actors.From{Addr: repAddr, Who: actors.Identity{Role: actors.RoleRunner, Name: "mallory"}}, reg)
	require.Empty(t, coretest.Sends[*messages.ReporterRegistered](fx), "a runner certificate gets no answer at all")

	regs = coretest.Sends[*messages.ReporterRegistered](w.step(repAddr, reg))
	require.Len(t, regs, 1)
	require.True(t, regs[0].Accepted)
	require.Equal(t, cfg.LogKey, regs[0].LogKey)
}
