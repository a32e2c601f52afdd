package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/messages"
)

// Failover worlds (Config.Dispatchers > 1, `volt sim --dispatchers 3`):
// several dispatcher nodes share a linearizable store with leases,
// revisions and conditional transactions, the subset of etcd Volt uses
// (docs/failover.md). Each node holds a session: a lease it keeps alive
// every third of the TTL while it runs and reaches the store. The node
// whose session key has the lowest create revision leads: it runs the
// production dispatcher Shell in its Host with a Leadership whose fence is
// its key and whose own reckoning of the lease is the send time of its
// last keepalive plus the TTL. The others are standbys, answering every
// role with dispatcher.Standby. A batch commits only if the writer's key
// still exists with the revision it won with. The faults: a leader
// crashed (its key lives until its lease expires), paused past its lease
// (it wakes up believing it leads), resigning (SIGTERM), and the store
// without a quorum for a while.

// Failover fault kinds, drawn only in failover worlds.
const (
	// FaultLeaderPause freezes the leading node (SIGSTOP) for longer than
	// its lease, or not: it wakes up believing it leads.
	FaultLeaderPause FaultKind = "leader-pause"
	// FaultLeaderResign stops the leading node gracefully (SIGTERM): it
	// resigns, a standby leads at once; it comes back as a standby.
	FaultLeaderResign FaultKind = "leader-resign"
	// FaultStoreOutage takes the store's quorum away for a while: no
	// keepalive, no write, no election.
	FaultStoreOutage FaultKind = "store-outage"
	// FaultStoreSlow makes the store slow for a while: each of the
	// leader's writes takes 50–800 ms (a disk under load, a member far away).
	FaultStoreSlow FaultKind = "store-slow"
)

// FailoverFaults are the kinds a failover world draws from by default.
var FailoverFaults = []FaultKind{FaultCrash, FaultHang, FaultRestart, FaultPartition, FaultDrop, FaultDup, FaultDelay,
	FaultDispatcher, FaultObserver, FaultReporter, FaultLeaderPause, FaultLeaderResign, FaultStoreOutage, FaultStoreSlow}

// Invariants of failover worlds.
const (
	InvFencedWrites = "at most one leader's writes succeed for each epoch, and only while it holds its key"
	InvNewerEpoch   = "runners never obey a leader of an older epoch than one they registered with"
	InvStaleLeader  = "a leader whose lease ran out by its own clock acts on nothing"
)

// electionTTL is the session lease of a failover world's nodes.
const electionTTL = 3 * time.Second

// election is the linearizable store's part that elects: session keys,
// their leases, and the revision counter.
type election struct {
	ttl  time.Duration
	rev  int64
	keys map[int64]*sessionKey // create revision -> the session key
	// outage: the store has no quorum until then; slow: its writes are
	// slow until then.
	outage, slow time.Time
	// writer is, for each fence revision under which a batch committed,
	// the node that wrote it.
	writer map[int64]int
	// expiry is when the next lease expiry event is scheduled (zero: none).
	expiry time.Time
}

// sessionKey is a node's session key. A node that closed its session
// while the store had no quorum (its revoke failed) or crashed leaves its
// key behind until the lease expires: the election waits for it.
type sessionKey struct {
	rev     int64
	owner   int // the dispatcher node that opened it
	expires time.Time
}

func (w *World) failover() bool { return w.el != nil }

// dispatcherNodes are every dispatcher node, the first one first.
func (w *World) dispatcherNodes() []*node { return w.nodes[:w.nDisp] }

// dispAddrs are the dispatcher nodes' addresses, for the roles' Nodes.
func (w *World) dispAddrs() []actors.Addr {
	if !w.failover() {
		return nil
	}
	var out []actors.Addr
	for _, n := range w.dispatcherNodes() {
		out = append(out, n.addr)
	}
	return out
}

// leaderNode is the node that leads and runs its core, or nil.
func (w *World) leaderNode() *node {
	for _, n := range w.dispatcherNodes() {
		if n.lead != nil && n.up && n.disp != nil {
			return n
		}
	}
	return nil
}

// storeUp reports whether the store has a quorum now.
func (w *World) storeUp() bool { return !w.now.Before(w.el.outage) }

// leaderKey is the live key with the lowest revision, and its node.
func (e *election) leaderKey() (int, *sessionKey) {
	var best *sessionKey
	for _, k := range e.keys {
		if best == nil || k.rev < best.rev {
			best = k
		}
	}
	if best == nil {
		return -1, nil
	}
	return best.owner, best
}

// revoke deletes n's session key, if the store takes it, and forgets it.
func (w *World) revoke(n *node) {
	if n.session != 0 && w.storeUp() {
		w.el.rev++
		delete(w.el.keys, n.session)
	}
	n.session = 0
}

// simLeadership is a node's dispatcher.Leadership while it leads.
type simLeadership struct {
	w      *World
	n      *node
	fence  dispatcher.Fence
	lapsed bool
}

func (l *simLeadership) Fence() dispatcher.Fence { return l.fence }

// Valid implements dispatcher.Leadership: the last keepalive sent and
// answered, plus the TTL, is not past.
// Once false it stays false, as in production (cluster/failover.go).
func (l *simLeadership) Valid(now time.Time) bool {
	if !now.Before(l.n.keepSent.Add(l.w.el.ttl - 100*time.Millisecond)) {
		l.lapsed = true
	}
	return !l.lapsed
}

// openSession gives n a new session key (at boot, and after its old one
// expired) and keeps it alive from now on.
func (w *World) openSession(n *node) {
	if !w.storeUp() {
		w.after(200*time.Millisecond, event{kind: evKeepalive, node: n.idx, gen: n.gen})
		return
	}
	w.el.rev++
	w.el.keys[w.el.rev] = &sessionKey{rev: w.el.rev, owner: n.idx, expires: w.now.Add(w.el.ttl)}
	n.session = w.el.rev
	n.keepSent = w.now
	w.traceWorld(fmt.Sprintf("%s campaigns (key revision %d)", n.name, w.el.rev))
	w.scheduleExpiry()
	w.after(w.el.ttl/3, event{kind: evKeepalive, node: n.idx, gen: n.gen})
	w.elect()
}

// keepalive renews n's lease, or finds its session gone and steps down.
func (w *World) keepalive(n *node) {
	if n.hung {
		w.after(w.el.ttl/3, event{kind: evKeepalive, node: n.idx, gen: n.gen})
		return
	}
	if n.lead != nil && !n.lead.Valid(w.now) {
		// Its lease ran out by its own clock: it closes its session (the
		// key goes, if the store takes the revoke) and campaigns afresh.
		w.stepDown(n, "its lease ran out by its own clock")
		w.revoke(n)
	}
	k := w.el.keys[n.session]
	switch {
	case !w.storeUp():
		// No answer: the lease is not renewed.
	case n.session == 0 || k == nil:
		if n.lead != nil {
			w.stepDown(n, "its session ended")
		}
		w.openSession(n)
		return
	default:
		k.expires = w.now.Add(w.el.ttl)
		n.keepSent = w.now
		w.scheduleExpiry()
	}
	w.after(w.el.ttl/3, event{kind: evKeepalive, node: n.idx, gen: n.gen})
}

// scheduleExpiry makes sure an event comes at the earliest lease expiry.
func (w *World) scheduleExpiry() {
	var first time.Time
	for _, k := range w.el.keys {
		if first.IsZero() || k.expires.Before(first) {
			first = k.expires
		}
	}
	if first.IsZero() || (!w.el.expiry.IsZero() && !w.el.expiry.After(first) && !w.el.expiry.Before(w.now)) {
		return
	}
	w.el.expiry = first
	w.push(event{at: w.vt(first), kind: evExpire})
}

// expire deletes the keys whose leases ran out, and elects.
func (w *World) expire() {
	w.el.expiry = time.Time{}
	var gone []int64
	for rev, k := range w.el.keys {
		if !w.now.Before(k.expires) {
			gone = append(gone, rev)
		}
	}
	slices.Sort(gone) // map order must not reach the trace
	for _, rev := range gone {
		w.el.rev++
		w.traceWorld(fmt.Sprintf("the lease of %s's key %d expired: the key is deleted", w.nodes[w.el.keys[rev].owner].name, rev))
		delete(w.el.keys, rev)
	}
	w.scheduleExpiry()
	w.elect()
}

// elect makes the node with the lowest live key lead, if it is not
// leading already and can (up, not frozen).
func (w *World) elect() {
	i, k := w.el.leaderKey()
	for _, n := range w.dispatcherNodes() {
		n.standby.Leader, n.standby.Epoch = "", 0
		if i >= 0 {
			n.standby.Leader, n.standby.Epoch = w.nodes[i].host, k.rev
		}
	}
	if i < 0 {
		return
	}
	n := w.nodes[i]
	if n.lead != nil || !n.up || n.hung || n.session != k.rev {
		return // leading already, or its key is left behind: the election waits for it
	}
	w.lead(n, k.rev)
}

// lead starts the production dispatcher Shell on n as the leader of
// epoch rev.
func (w *World) lead(n *node, rev int64) {
	p := &platform{w: w, n: n, gen: n.gen}
	l := &simLeadership{w: w, n: n, fence: dispatcher.Fence{Key: fmt.Sprintf("/volt/election/%s", n.host), Revision: rev}}
	n.lead = l
	shell := dispatcher.NewShell(w.dispCfg, &dispStore{p: p, d: w.store, secretStore: w.secrets, lead: l})
	shell.SetLeadership(l)
	n.epoch = dispatcher.FailoverEpoch(rev, 0)
	w.traceWorld(fmt.Sprintf("%s leads with epoch %d", n.name, rev))
	w.report.Failovers++
	w.check.dispatcherBooted()
	n.disp = nil
	n.sh = host.New(p, shell)
	n.sh.Start()
	w.scheduleTick(n)
}

// stepDown stops n's leader core: it serves as a standby again. Its
// watchers hear that the dispatcher actor is gone, as in production when
// the standby replaces it.
func (w *World) stepDown(n *node, why string) {
	if n.lead == nil {
		return
	}
	w.traceWorld(fmt.Sprintf("%s no longer leads: %s", n.name, why))
	if n.sh != nil {
		n.sh.Stop()
	}
	n.sh, n.disp, n.lead = nil, nil, nil
	n.gen++ // what its host had in flight is dropped
	n.inbox = nil
	n.standby.Since = w.now
	for _, wa := range w.watchers[n.addr] {
		wn := w.nodes[w.byAddr[wa]]
		w.after(time.Duration(2+w.rng.IntN(8))*time.Millisecond, event{kind: evDeliver, node: wn.idx, gen: wn.gen,
			from: local, msg: actors.PeerTerminated{Addr: n.addr, Reason: "Stopped"}})
	}
	delete(w.watchers, n.addr)
	// Its keepalives go on under the new generation.
	w.after(w.el.ttl/3, event{kind: evKeepalive, node: n.idx, gen: n.gen})
}

// standbyAnswers hands a message for a standby node to dispatcher.Standby.
func (w *World) standbyAnswers(n *node, e event) {
	w.trace(n, "standby", e.msg, string(e.from.Addr))
	for _, fx := range n.standby.Answer(e.from, e.msg) {
		if s, ok := fx.(actors.Send); ok {
			w.send(n, s.To, s.Msg)
		}
	}
}

// fencedSave commits b if its fence holds (or, for the unfenced write
// planted in a shell, whatever it says), and checks the invariant: the
// writer holds the key of the epoch it writes under.
func (w *World) fencedSave(n *node, l *simLeadership, b dispatcher.Batch) error {
	if !w.storeUp() {
		w.traceWorld("the store has no quorum: a write fails")
		return errNoQuorum
	}
	if !b.Fence.IsZero() {
		k := w.el.keys[b.Fence.Revision]
		if k == nil || k.owner != n.idx || n.session != k.rev {
			w.traceWorld(fmt.Sprintf("%s's write is fenced: its key (revision %d) is gone", n.name, b.Fence.Revision))
			return fmt.Errorf("epoch %d: %w", b.Fence.Revision, dispatcher.ErrFenced)
		}
	}
	w.check.checked[InvFencedWrites] = true
	if k := w.el.keys[l.fence.Revision]; k == nil || k.owner != n.idx || n.session != k.rev {
		w.check.fail(InvFencedWrites, "%s committed a batch under epoch %d after losing its key (fence %v)", n.name, l.fence.Revision, !b.Fence.IsZero())
	}
	if i, ok := w.el.writer[l.fence.Revision]; ok && i != n.idx {
		w.check.fail(InvFencedWrites, "two nodes (%s and %s) committed batches under epoch %d", w.nodes[i].name, n.name, l.fence.Revision)
	}
	w.el.writer[l.fence.Revision] = n.idx
	return nil
}

// runnerRegistered notes the epoch a runner registered with, and
// runJobStarted checks a job it starts against it (InvNewerEpoch).
func (c *checker) runnerEpoch(n *node, from actors.From, in any, fx []actors.Effect) {
	if c.w.el == nil {
		return
	}
	if c.epochs == nil {
		c.epochs, c.registered = map[int]int64{}, map[int]bool{}
	}
	was := c.registered[n.idx]
	c.registered[n.idx] = n.run != nil && n.run.Registered()
	if n.forging != nil || was || !c.registered[n.idx] {
		return // only a registration this step made counts
	}
	switch m := in.(type) {
	case *messages.RunnerRegistered:
		{
			c.checked[InvNewerEpoch] = true
			if m.Epoch < c.epochs[n.idx] && dispatcher.EpochRevision(m.Epoch) != dispatcher.EpochRevision(c.epochs[n.idx]) {
				c.fail(InvNewerEpoch, "%s registered with epoch %d after epoch %d", n.name, dispatcher.EpochRevision(m.Epoch), dispatcher.EpochRevision(c.epochs[n.idx]))
			}
			c.epochs[n.idx] = max(c.epochs[n.idx], m.Epoch)
		}
	}
}

var errNoQuorum = fmt.Errorf("etcd has no quorum: %w", errNoSpaceLike)

// errNoSpaceLike is the kind of failure a store outage is to the host: a
// write that fails and is retried.
var errNoSpaceLike = fmt.Errorf("store unavailable")

// injectFailover carries out a failover fault.
func (w *World) injectFailover(f Fault) bool {
	l := w.leaderNode()
	switch f.Kind {
	case FaultLeaderPause:
		// It strikes when the leader next writes a batch: the write is in
		// flight while the process sleeps, and reaches the store when it
		// wakes (fencing must refuse it if it no longer leads).
		w.pauseArmed = f.Length
	case FaultLeaderResign:
		if l != nil {
			// It stops assigning, resigns (its key goes at once), and its
			// supervisor starts it again as a standby.
			w.revoke(l)
			w.crash(l, f.Length)
			w.elect()
		}
	case FaultStoreSlow:
		w.el.slow = w.now.Add(f.Length)
	case FaultStoreOutage:
		// Without a quorum no lease is renewed and none expires; the new
		// etcd leader renews every lease when the quorum is back (etcd's
		// lessor does), so none expires within a TTL of it.
		w.el.outage = w.now.Add(f.Length)
		for _, k := range w.el.keys {
			k.expires = maxTime(k.expires, w.el.outage.Add(w.el.ttl))
		}
		w.el.expiry = time.Time{}
		w.scheduleExpiry()
	default:
		return false
	}
	return true
}

// unhangDispatcher is a frozen dispatcher node waking up: what queued up
// while it slept is handed to its host first (whose gate must drop it if
// the lease ran out), and the node notices at its next keepalive (as the
// production node does within 100 ms) that it no longer leads; a node
// that won while frozen leads now.
func (w *World) unhangDispatcher(n *node) { w.elect() }

// staleLeaderStep checks a step of a leading node: a leader whose lease
// ran out by its own clock acts on nothing (InvStaleLeader).
func (w *World) staleLeaderStep(n *node, in any, fx []actors.Effect) {
	if n.lead == nil {
		return
	}
	w.check.checked[InvStaleLeader] = true
	if !n.lead.Valid(w.now) {
		w.check.fail(InvStaleLeader, "%s handled %s %s after its lease ran out by its own clock (epoch %d)",
			n.name, inputName(in), w.now.Sub(n.keepSent.Add(w.el.ttl)).Round(time.Millisecond), n.lead.fence.Revision)
	}
}

// failoverOnly are the kinds only a failover world has.
var failoverOnly = []FaultKind{FaultLeaderPause, FaultLeaderResign, FaultStoreOutage, FaultStoreSlow}

// failoverKinds are the fault kinds a failover world draws from: those
// asked for (FailoverFaults when none are) with the failover kinds added,
// and without dispatcher-loss (another node takes over) and the secret
// traffic (a failover world runs without secrets).
func failoverKinds(asked []FaultKind) []FaultKind {
	if len(asked) == 0 {
		return nil
	}
	var out []FaultKind
	for _, k := range asked {
		if k != FaultDispatcherLoss && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	for _, k := range failoverOnly {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
