package actors

import "time"

// Link is the registration state machine shared by the roles that register
// with the dispatcher (runner, observer, reporter). It decides when to send a
// registration, with backoff, and when the dispatcher has been gone longer
// than the grace period. It is part of a core: time is always an argument.
type Link struct {
	// Grace is how long the dispatcher may be unreachable before the role
	// gives up. Zero means at once; negative means never.
	Grace time.Duration
	// MinBackoff and MaxBackoff bound the delay between registration attempts.
	MinBackoff, MaxBackoff time.Duration

	registered bool
	ever       bool // registered at least once
	lostSince  time.Time
	next       time.Time
	backoff    time.Duration
}

// Start begins with no registration: the grace period runs from now.
func (l *Link) Start(now time.Time) {
	l.registered = false
	l.lostSince = now
	l.next = now
	l.backoff = l.min()
}

func (l *Link) min() time.Duration {
	if l.MinBackoff > 0 {
		return l.MinBackoff
	}
	return 100 * time.Millisecond
}

func (l *Link) max() time.Duration {
	if l.MaxBackoff > 0 {
		return l.MaxBackoff
	}
	return time.Second
}

// Registered records a successful registration.
func (l *Link) Registered() { l.registered, l.ever = true, true; l.backoff = l.min() }

// IsRegistered reports whether the role is registered now.
func (l *Link) IsRegistered() bool { return l.registered }

// LostSince is when the link was lost (zero while registered).
func (l *Link) LostSince() time.Time {
	if l.registered {
		return time.Time{}
	}
	return l.lostSince
}

// Lost records that the dispatcher is gone as of now. A second call while
// already lost keeps the earlier time.
func (l *Link) Lost(now time.Time) {
	if !l.registered {
		return
	}
	l.registered = false
	l.lostSince = now
	l.next = now
	l.backoff = l.min()
}

// Due reports whether a registration attempt should be sent now, and if so
// schedules the next one with doubled backoff.
func (l *Link) Due(now time.Time) bool {
	if l.registered || now.Before(l.next) {
		return false
	}
	l.next = now.Add(l.backoff)
	l.backoff *= 2
	if l.backoff > l.max() {
		l.backoff = l.max()
	}
	return true
}

// StartWindow is the least time a role gets for its first registration,
// so that a grace period of zero ("give up at once when the dispatcher is
// lost") still lets it register with a dispatcher that is up.
const StartWindow = 2 * time.Second

func (l *Link) grace() time.Duration {
	if !l.ever && l.Grace < StartWindow {
		return StartWindow
	}
	return l.Grace
}

// Expired reports whether the dispatcher has been gone longer than Grace.
func (l *Link) Expired(now time.Time) bool {
	if l.registered || l.Grace < 0 {
		return false
	}
	return now.Sub(l.lostSince) >= l.grace()
}

// Deadline is the next time the link needs a Tick: the next registration
// attempt or the end of the grace period, whichever is sooner (zero while
// registered).
func (l *Link) Deadline() time.Time {
	if l.registered {
		return time.Time{}
	}
	d := l.next
	if l.Grace >= 0 {
		d = Earliest(d, l.lostSince.Add(l.grace()))
	}
	return d
}

// Earliest returns the earlier of two deadlines, ignoring zero ones.
func Earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero():
		return a
	case b.Before(a):
		return b
	}
	return a
}
