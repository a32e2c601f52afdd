package dispatcher_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors/dispatcher"
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
	regs := sends[*messages.ReporterRegistered](w.addReporter())
	require.Len(t, regs, 1)
	require.Equal(t, cfg.LogKey, regs[0].LogKey)

	w.addRunner("r1", 1)
	runs := sends[*messages.RunJob](w.observe("main", "", commit(1)))
	require.Len(t, runs, 1)
	run := runs[0]
	require.True(t, messages.ValidTicket(regs[0].LogKey, run.LogTicket, run.Job, run.Attempt, "r1"))
	require.False(t, messages.ValidTicket(regs[0].LogKey, run.LogTicket, run.Job, run.Attempt, "r2"))
	require.False(t, messages.ValidTicket(regs[0].LogKey, run.LogTicket, run.Job, run.Attempt+1, "r1"))
}
