package actors_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/internal/coretest"
)

const ms = time.Millisecond

// dueTimes ticks l every 10 ms for d and returns when Due said yes, relative to from.
func dueTimes(l *actors.Link, from time.Time, d time.Duration) []time.Duration {
	var out []time.Duration
	for at := time.Duration(0); at <= d; at += 10 * ms {
		if l.Due(from.Add(at)) {
			out = append(out, at)
		}
	}
	return out
}

func TestLinkBackoffDoublesAndIsCapped(t *testing.T) {
	tests := []struct {
		name     string
		min, max time.Duration
		want     []time.Duration
	}{
		{"defaults: 100 ms to 1 s", 0, 0, []time.Duration{0, 100 * ms, 300 * ms, 700 * ms, 1500 * ms, 2500 * ms, 3500 * ms}},
		{"100 ms to 500 ms", 100 * ms, 500 * ms, []time.Duration{0, 100 * ms, 300 * ms, 700 * ms, 1200 * ms, 1700 * ms, 2200 * ms, 2700 * ms, 3200 * ms, 3700 * ms}},
		{"250 ms to 2 s", 250 * ms, 2 * time.Second, []time.Duration{0, 250 * ms, 750 * ms, 1750 * ms, 3750 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &actors.Link{Grace: -1, MinBackoff: tt.min, MaxBackoff: tt.max}
			l.Start(coretest.T0)
			assert.Equal(t, tt.want, dueTimes(l, coretest.T0, 4*time.Second))
		})
	}
}

func TestLinkRegisteredResetsBackoffAndLostRestartsIt(t *testing.T) {
	l := &actors.Link{Grace: time.Minute, MinBackoff: 100 * ms, MaxBackoff: time.Second}
	l.Start(coretest.T0)
	dueTimes(l, coretest.T0, 5*time.Second) // backoff grows to the cap

	at := coretest.T0.Add(10 * time.Second)
	l.Registered()
	assert.True(t, l.IsRegistered())
	assert.True(t, l.LostSince().IsZero(), "zero while registered")
	assert.False(t, l.Due(at), "no registration while registered")

	lost := at.Add(time.Second)
	l.Lost(lost)
	assert.False(t, l.IsRegistered())
	assert.Equal(t, lost, l.LostSince())
	l.Lost(lost.Add(5 * time.Second))
	assert.Equal(t, lost, l.LostSince(), "a second Lost keeps the earlier time")
	assert.Equal(t, []time.Duration{0, 100 * ms, 300 * ms, 700 * ms}, dueTimes(l, lost, 1000*ms), "backoff starts over")
}

func TestLinkExpired(t *testing.T) {
	tests := []struct {
		name  string
		grace time.Duration
		at    time.Duration // after the loss
		want  bool
	}{
		{"zero grace: at once", 0, 0, true},
		{"zero grace: later", 0, time.Hour, true},
		{"within grace", 10 * time.Second, 10*time.Second - ms, false},
		{"grace reached", 10 * time.Second, 10 * time.Second, true},
		{"negative grace: never", -1, 1000 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &actors.Link{Grace: tt.grace}
			l.Start(coretest.T0)
			l.Registered()
			lost := coretest.T0.Add(time.Minute)
			l.Lost(lost)
			assert.Equal(t, tt.want, l.Expired(lost.Add(tt.at)))
		})
	}

	t.Run("never while registered", func(t *testing.T) {
		l := &actors.Link{Grace: 0}
		l.Start(coretest.T0)
		l.Registered()
		assert.False(t, l.Expired(coretest.T0.Add(time.Hour)))
	})
	t.Run("grace runs from Start before any registration", func(t *testing.T) {
		l := &actors.Link{Grace: 5 * time.Second}
		l.Start(coretest.T0)
		assert.False(t, l.Expired(coretest.T0.Add(5*time.Second-ms)))
		assert.True(t, l.Expired(coretest.T0.Add(5*time.Second)))
	})
}

func TestLinkOfAGroupRotatesAndFollowsTheLeader(t *testing.T) {
	a, b, c := actors.Addr("10.0.0.1:8000/dispatcher"), actors.Addr("10.0.0.2:8000/dispatcher"), actors.Addr("10.0.0.3:8000/dispatcher")
	l := &actors.Link{Grace: 10 * time.Second, MinBackoff: 100 * ms, MaxBackoff: time.Second}
	l.SetTargets("", []actors.Addr{a, b, c})
	require.True(t, l.Failover())
	l.Start(coretest.T0)
	var to []actors.Addr
	for at := time.Duration(0); at <= 800*ms; at += 10 * ms {
		if l.Due(coretest.T0.Add(at)) {
			to = append(to, l.Target())
		}
	}
	assert.Equal(t, []actors.Addr{a, b, c, a}, to[:4], "an unanswered registration moves on")

	// A standby names the leader: the next registration goes there at once,
	// and the grace period starts again (a node answered).
	now := coretest.T0.Add(9 * time.Second)
	require.True(t, l.FollowLeader(now, l.Target(), "10.0.0.3:8000"))
	assert.Equal(t, c, l.Target())
	assert.True(t, l.Due(now))
	assert.False(t, l.Expired(now.Add(9*time.Second)), "the grace runs from the standby's answer")
	assert.True(t, l.Expired(now.Add(10*time.Second)))

	// An answer from a node the link has left changes nothing.
	assert.False(t, l.FollowLeader(now, a, "10.0.0.2:8000"))
	assert.Equal(t, c, l.Target())

	// A leader it was not given (another spelling) is added; garbage is not.
	require.True(t, l.FollowLeader(now, c, "ci-2.example.com:8000"))
	assert.Equal(t, actors.Addr("ci-2.example.com:8000/dispatcher"), l.Target())
	require.True(t, l.FollowLeader(now, l.Target(), "no port/../x"))
	assert.Contains(t, []actors.Addr{a, b, c}, l.Target(), "a malformed leader only moves on to the next node")
}

func TestLinkWithOneTargetNeverMoves(t *testing.T) {
	a := actors.Addr("10.0.0.1:8000/dispatcher")
	l := &actors.Link{Grace: -1}
	l.SetTargets(a, nil)
	assert.False(t, l.Failover())
	l.Start(coretest.T0)
	for range dueTimes(l, coretest.T0, 3*time.Second) {
		assert.Equal(t, a, l.Target())
	}
	assert.True(t, l.FollowLeader(coretest.T0, a, ""))
	assert.Equal(t, a, l.Target())
}
