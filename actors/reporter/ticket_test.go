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

// TestLogTicketDecides: a remote runner's log chunk, and its close, are
// taken only with the ticket the dispatcher gave that runner for that very
// job and attempt, under the key the reporter was handed; anything else is
// a forgery: no state changes, no LogAck, one warning, the refusal counted.
func TestLogTicketDecides(t *testing.T) {
	r2 := actors.Identity{Role: actors.RoleRunner, Name: "r2"}
	rebuilt := job(1)
	rebuilt.Build = 2
	otherKey := []byte("another cluster's log-ticket key")
	valid := ticket(r1, job(1), 1)
	chunk := func(tk []byte) *messages.LogChunk {
		return &messages.LogChunk{Job: job(1), Attempt: 1, Data: []byte("ok\n"), Ticket: tk}
	}
	closed := func(tk []byte) *messages.LogClosed {
		return &messages.LogClosed{Job: job(1), Attempt: 1, Size: 3, Ticket: tk}
	}
	cases := []struct {
		name string
		key  []byte // handed over at registration; nil: not registered yet
		who  actors.Identity
		in   any
		take bool
	}{
		{"valid chunk", testKey, r1, chunk(valid), true},
		{"valid close", testKey, r1, closed(valid), true},
		{"this process needs no ticket (volt up's runner)", testKey, actors.Local, chunk(nil), true},
		{"this process, before the key", nil, actors.Local, closed(nil), true},

		{"no ticket", testKey, r1, chunk(nil), false},
		{"close without a ticket", testKey, r1, closed(nil), false},
		{"garbage ticket", testKey, r1, chunk([]byte("0123456789abcdef0123456789abcdef")), false},
		{"valid ticket cut short", testKey, r1, chunk(valid[:16]), false},
		{"valid ticket, a byte changed", testKey, r1, chunk(append(append([]byte{}, valid[:31]...), valid[31]^1)), false},
		{"ticket under another key", testKey, r1, chunk(messages.LogTicket(otherKey, job(1), 1, "r1")), false},
		{"ticket for another runner", testKey, r1, chunk(ticket(r2, job(1), 1)), false},
		{"another runner with r1's ticket", testKey, r2, chunk(valid), false},
		{"another runner closes with r1's ticket", testKey, r2, closed(valid), false},
		{"ticket for another attempt", testKey, r1, chunk(ticket(r1, job(1), 2)), false},
		{"ticket for another job", testKey, r1, chunk(ticket(r1, job(2), 1)), false},
		{"ticket for another build of the commit", testKey, r1, chunk(ticket(r1, rebuilt, 1)), false},
		{"before the key arrives", nil, r1, chunk(valid), false},
		{"close before the key arrives", nil, r1, closed(valid), false},
		{"the dispatcher handed over no key", []byte{}, r1, chunk(messages.LogTicket(nil, job(1), 1, "r1")), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newCore(t)
			if tc.key != nil {
				step(c, coretest.T0, dispAddr, &messages.ReporterRegistered{Accepted: true, LogKey: tc.key})
				require.True(t, c.Registered())
			}
			before, refused := c.Digest(), c.Refused()

			fx := c.Step(coretest.T0, actors.From{Addr: runnerAddr, Who: tc.who}, tc.in)

			if tc.take {
				assert.Equal(t, 1, len(coretest.EffectsOf[reporter.AppendLog](fx))+len(coretest.EffectsOf[reporter.CloseLog](fx)), "%v", fx)
				assert.Equal(t, refused, c.Refused())
				return
			}
			require.Len(t, fx, 1, "a note and nothing else: %v", fx)
			note, ok := fx[0].(actors.Note)
			require.True(t, ok, "%T", fx[0])
			assert.Equal(t, slog.LevelWarn, note.Level)
			assert.Contains(t, fmt.Sprint(note.Args...), actors.TypeName(tc.in), "the note names the message type")
			assert.Equal(t, before, c.Digest(), "no state changed (no claim either)")
			assert.Equal(t, refused+1, c.Refused(), "the refusal is counted (forged_refused)")
		})
	}
}

// TestRightfulRunnerAfterRefusedTickets: refused chunks claim nothing, so
// the runner the attempt was given writes its log after any number of
// squatters, and the result naming it keeps the log.
func TestRightfulRunnerAfterRefusedTickets(t *testing.T) {
	c := newRegistered(t)
	for _, tk := range [][]byte{nil, ticket(mallory, job(1), 2), ticket(r1, job(1), 1)} {
		fx := c.Step(coretest.T0, actors.From{Addr: runnerAddr, Who: mallory}, &messages.LogChunk{Job: job(1), Attempt: 1, Data: []byte("squat"), Ticket: tk})
		require.Empty(t, coretest.EffectsOf[reporter.AppendLog](fx))
	}
	require.Len(t, coretest.EffectsOf[reporter.AppendLog](step(c, coretest.T0, runnerAddr, &messages.LogChunk{Job: job(1), Attempt: 1, Data: []byte("real"),
		Ticket: ticket(r1, job(1), 1)})), 1)
	require.Len(t, coretest.EffectsOf[reporter.CloseLog](step(c, coretest.T0, runnerAddr, &messages.LogClosed{Job: job(1), Attempt: 1, Size: 4,
		Ticket: ticket(r1, job(1), 1)})), 1)
	recs := coretest.EffectsOf[reporter.Record](step(c, coretest.T0, dispAddr, &messages.ResultRecorded{Result: &messages.Result{Job: job(1), Attempt: 1, RunnerId: "r1"}}))
	require.Len(t, recs, 1)
	assert.False(t, recs[0].DropLog)
}

// TestLogKeyFollowsTheDispatcher: the reporter checks tickets with the key
// of the dispatcher's last acceptance, also one that answers a refresh (a
// dispatcher restarted in place, with another key); an answer from anyone
// else, or a refusal, changes no key.
func TestLogKeyFollowsTheDispatcher(t *testing.T) {
	newKey := []byte("the key after a restart, 32 byte")
	takes := func(c *reporter.Core, key []byte) bool {
		m := &messages.LogChunk{Job: job(1), Attempt: 1, Data: []byte("x"), Ticket: messages.LogTicket(key, job(1), 1, "r1")}
		return len(coretest.EffectsOf[reporter.AppendLog](step(c, coretest.T0, runnerAddr, m))) == 1
	}
	c := newRegistered(t)
	require.True(t, takes(c, testKey))

	// Not the dispatcher: another address, or the dispatcher's address
	// claimed by a runner certificate.
	step(c, coretest.T0, otherAddr, &messages.ReporterRegistered{Accepted: true, LogKey: newKey})
	c.Step(coretest.T0, actors.From{Addr: dispAddr, Who: mallory}, &messages.ReporterRegistered{Accepted: true, LogKey: newKey})
	assert.False(t, takes(c, newKey))
	assert.True(t, takes(c, testKey))

	// The answer to a refresh, from a dispatcher that now signs with newKey.
	require.Len(t, registers(step(c, coretest.T0.Add(time.Minute), "", actors.Tick{})), 1)
	step(c, coretest.T0.Add(time.Minute), dispAddr, &messages.ReporterRegistered{Accepted: true, LogKey: newKey})
	assert.True(t, takes(c, newKey))
	assert.False(t, takes(c, testKey), "tickets under the old key no longer verify")

	// Registering again after the dispatcher was lost.
	step(c, coretest.T0.Add(2*time.Minute), "", actors.PeerTerminated{Addr: dispAddr})
	assert.True(t, takes(c, newKey), "the key is kept while the dispatcher is away")
	step(c, coretest.T0.Add(2*time.Minute), dispAddr, &messages.ReporterRegistered{Accepted: true, LogKey: testKey})
	assert.True(t, takes(c, testKey))
}
