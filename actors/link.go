package actors

import (
	"slices"
	"strings"
	"time"
)

// Link is the registration state machine shared by the roles that register
// with the dispatcher (runner, observer, reporter). It decides when to send a
// registration, with backoff, and when the dispatcher has been gone longer
// than the grace period. It is part of a core: time is always an argument.
//
// A failover group has several dispatcher nodes (Targets): the link sends
// to one of them (Target), moves on to the next when a registration goes
// unanswered, and goes straight to the leader a standby names (Redirect).
// Any node's answer, a standby's included, counts as a dispatcher reachable:
// the grace period runs only while no node answers at all.
type Link struct {
	// Grace is how long the dispatcher may be unreachable before the role
	// gives up. Zero means at once; negative means never.
	Grace time.Duration
	// MinBackoff and MaxBackoff bound the delay between registration attempts.
	MinBackoff, MaxBackoff time.Duration
	// Targets are the dispatcher nodes, the first tried first.
	Targets []Addr

	cur        int  // index of Target in Targets
	asked      bool // a registration went to Target and no node has answered since
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
func (l *Link) Registered() { l.registered, l.ever, l.asked = true, true, false; l.backoff = l.min() }

// SetTargets makes the link talk to nodes, or to dispatcher alone when
// nodes is empty.
func (l *Link) SetTargets(dispatcher Addr, nodes []Addr) {
	if len(nodes) > 0 {
		l.Targets = slices.Clone(nodes)
	} else {
		l.Targets = []Addr{dispatcher}
	}
	l.cur = 0
}

// Target is the dispatcher node the role talks to now ("" with no Targets).
func (l *Link) Target() Addr {
	if len(l.Targets) == 0 {
		return ""
	}
	return l.Targets[l.cur]
}

// IsTarget reports whether a is the node the role talks to now.
func (l *Link) IsTarget(a Addr) bool { return a != "" && a == l.Target() }

// Failover reports whether the role was given several dispatcher nodes.
func (l *Link) Failover() bool { return len(l.Targets) > 1 }

// maxTargets bounds Targets: a leader a standby names that is not among the
// nodes the role was given (another spelling of one, or a node added since)
// is added, up to this many.
const maxTargets = 16

// Redirect handles a standby's answer (NotLeader) at now: a dispatcher node
// is reachable, so the grace period starts again; the role goes to leader
// at once, or, when the standby knows of none (an election is under way),
// to its next node after the usual backoff. The link must not be
// registered (the caller calls Lost first).
func (l *Link) Redirect(now time.Time, leader Addr) {
	if l.registered {
		return
	}
	l.lostSince, l.asked = now, false
	if leader == "" || leader == l.Target() {
		l.rotate()
		return
	}
	i := slices.Index(l.Targets, leader)
	if i < 0 {
		if len(l.Targets) >= maxTargets {
			l.rotate()
			return
		}
		l.Targets = append(slices.Clip(l.Targets), leader)
		i = len(l.Targets) - 1
	}
	l.cur, l.next, l.backoff = i, now, l.min()
}

func (l *Link) rotate() {
	if len(l.Targets) > 1 {
		l.cur = (l.cur + 1) % len(l.Targets)
	}
}

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
	if l.asked {
		l.rotate() // the last registration went unanswered: try the next node
	}
	l.asked = true
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

// FollowLeader handles a standby's NotLeader answer from from at now, for a
// role whose link targets from: the link is lost (the node no longer leads,
// if it ever did), a dispatcher node is reachable, and the next
// registration goes to the leader the standby names (same actor id as
// from), or to the next node when it names none. It reports false, and
// changes nothing, for an answer from a node the role does not talk to now
// (a late answer from a node it has left).
func (l *Link) FollowLeader(now time.Time, from Addr, leader string) bool {
	if !l.IsTarget(from) {
		return false
	}
	l.Lost(now)
	var to Addr
	if validHostPort(leader) {
		_, id := from.Split()
		to = NewAddr(leader, id)
	}
	l.Redirect(now, to)
	return true
}

// validHostPort reports whether s looks like host:port: a NotLeader's
// leader comes off the network.
func validHostPort(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return false
	}
	for _, r := range s[i+1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return !strings.ContainsAny(s, "/ \t\n")
}
