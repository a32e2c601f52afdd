package runner

import (
	"fmt"
	"slices"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// Config identifies a runner incarnation and where its dispatcher is.
type Config struct {
	ID          string
	Incarnation int64
	Hostname    string
	Dispatcher  actors.Addr
	// Nodes are every dispatcher node of a failover group, when there are
	// several: the runner follows the leader among them and never obeys a
	// leader of an older epoch than one it registered with. Empty:
	// Dispatcher alone.
	Nodes []actors.Addr
	// Grace is how long the dispatcher may be gone before the runner exits (0: at once).
	Grace time.Duration
	Token string
	// Labels are the runner's labels as it registers them, os= and arch=
	// included (Labels builds them from the user's).
	Labels []string
	// Slots is how many jobs the runner runs at once; 0 means 1.
	Slots int
}

// StartJob asks the shell to run one attempt; it answers with JobDone.
type StartJob struct{ Run *messages.RunJob }

// CancelRun asks the shell to kill a running attempt (its process group).
// The shell still answers with JobDone once the processes are gone.
type CancelRun struct {
	Ref    *messages.JobRef
	Reason string
}

// JobDone is the shell's answer to StartJob: the attempt's processes are gone.
type JobDone struct {
	Ref    *messages.JobRef
	Result *messages.Result
}

// Shutdown asks the runner to stop (SIGINT/SIGTERM): it gives its jobs back.
type Shutdown struct{ Reason string }

// job is one attempt the runner holds: from its RunJob until the
// dispatcher acknowledges its outcome, or until its processes are gone
// when it was given up.
type job struct {
	run       *messages.RunJob
	ref       *messages.JobRef
	seq       uint64 // heartbeat seq when the job arrived: older acks do not judge it
	done      bool
	abandoned bool // lease lapsed or superseded: killed, never reported
	cancelled bool // a user cancelled it: killed, reported as cancelled
	result    *messages.Result
	lastSent  time.Time
}

// live reports whether j's processes run and the runner still means to
// report its outcome.
func (j *job) live() bool { return !j.done && !j.abandoned }

// recentMax bounds Core.recent, the attempts finished and acknowledged
// that a late duplicate RunJob must not start again.
const recentMax = 64

// MaxSlots is the most jobs a runner runs at once.
const MaxSlots = 64

type sentAt struct {
	seq uint64
	at  time.Time
}

// acked returns when message seq was sent and forgets it and older ones.
func (c *Core) acked(seq uint64) (time.Time, bool) {
	var at time.Time
	found := false
	i := 0
	for ; i < len(c.sent) && c.sent[i].seq <= seq; i++ {
		if c.sent[i].seq == seq {
			at, found = c.sent[i].at, true
		}
	}
	c.sent = c.sent[i:]
	return at, found
}

func (c *Core) send(now time.Time) uint64 {
	c.seq++
	c.sent = append(c.sent, sentAt{c.seq, now})
	return c.seq
}

// Core is the runner's deterministic state machine.
type Core struct {
	cfg  Config
	link actors.Link

	// silence is how long the runner waits for any answer before it
	// looks for the dispatcher again (RunnerRegistered.silence_ms, else
	// dead_after_ms).
	heartbeat, lease, silence time.Duration
	lastContact               time.Time // last message from the dispatcher
	lastAck                   time.Time // send time of the last acknowledged message: the lease runs from it
	sent                      []sentAt  // send times of unacknowledged registrations and heartbeats
	nextHeartbeat             time.Time
	seq                       uint64
	slots                     int
	jobs                      []*job             // the attempts held, in the order they came
	recent                    []*messages.JobRef // attempts finished and acknowledged, the newest last
	epoch                     int64              // the dispatcher incarnation we registered with
	newestEpoch               int64              // the newest epoch registered with: a failover group's older leaders are not obeyed
	exited                    bool
	stale                     int64
	refused                   int64 // inputs from identities that may not send them
}

// New returns a runner core; call Start next.
func New(cfg Config) *Core {
	c := &Core{cfg: cfg, heartbeat: time.Second, lease: 2 * time.Second, silence: 3 * time.Second, slots: max(cfg.Slots, 1)}
	c.link.Grace = cfg.Grace
	c.link.MinBackoff = 100 * time.Millisecond
	c.link.MaxBackoff = 500 * time.Millisecond
	c.link.SetTargets(cfg.Dispatcher, cfg.Nodes)
	return c
}

// Start begins registration.
func (c *Core) Start(now time.Time) []actors.Effect {
	c.link.Start(now)
	return c.tick(now)
}

// Busy reports whether the runner holds a job: one running, being killed,
// or whose outcome the dispatcher has not acknowledged yet.
func (c *Core) Busy() bool { return len(c.jobs) > 0 }

// Running counts the jobs whose processes run (those being killed
// included): never more than Slots.
func (c *Core) Running() int {
	n := 0
	for _, j := range c.jobs {
		if !j.done {
			n++
		}
	}
	return n
}

// Slots is how many jobs the runner runs at once.
func (c *Core) Slots() int { return c.slots }

// find returns the attempt ref the runner holds, or nil.
func (c *Core) find(ref *messages.JobRef) *job {
	for _, j := range c.jobs {
		if sameRef(j.ref, ref) {
			return j
		}
	}
	return nil
}

// drop forgets the attempt j.
func (c *Core) drop(j *job) {
	if i := slices.Index(c.jobs, j); i >= 0 {
		c.jobs = slices.Delete(c.jobs, i, i+1)
	}
}

// Registered reports whether the runner is registered now.
func (c *Core) Registered() bool { return c.link.IsRegistered() }

// Stale counts messages ignored as stale.
func (c *Core) Stale() int64 { return c.stale }

// Refused counts inputs refused because the identity that sent them may
// not (see permit).
func (c *Core) Refused() int64 { return c.refused }

// Step handles one input. from is its sender: the address replies go to and
// the identity its connection proved. An input that identity may not send
// (see permit) changes nothing, not even the timers, and is answered with
// nothing: it is counted and noted.
func (c *Core) Step(now time.Time, sender actors.From, in any) []actors.Effect {
	if c.exited {
		return nil
	}
	if why := c.permit(sender, in); why != "" {
		c.refused++
		return []actors.Effect{actors.Refused(sender, in, why)}
	}
	switch in.(type) {
	case actors.Tick:
		return c.tick(now)
	case actors.PeerTerminated, *messages.RunnerRegistered, *messages.HeartbeatAck, *messages.RunJob,
		*messages.JobFinishedAck, *messages.CancelJob, JobDone, Shutdown, *messages.StatusRequest, *messages.NotLeader:
	default:
		// Not a runner's input (a stray answer, a peer's mistake): it moves
		// no timer either.
		c.stale++
		return []actors.Effect{actors.Warn("runner ignored an unknown message", "type", fmt.Sprintf("%T", in))}
	}
	// Timers first: after a freeze (SIGSTOP) the runner must notice that its
	// lease lapsed before it acts on messages that queued up meanwhile.
	fx := c.tick(now)
	if c.exited {
		return fx
	}
	return append(fx, c.handle(now, sender.Addr, in)...)
}

// permit says why the sender may not send in, or "" when it may (issue 10's
// role table), before anything changes:
//
//   - RunJob, CancelJob, RunnerRegistered, HeartbeatAck, JobFinishedAck: only
//     the dispatcher (and still only from the address this runner registered
//     with, of its epoch, for this incarnation: see the handlers). A RunJob
//     must name this runner.
//   - StatusRequest: admin, the dispatcher or the reporter.
//   - Tick, PeerTerminated, JobDone, Shutdown: only this process makes them.
//   - Anything else: no one but this process (which hears it is unknown).
//
// The reporter's answers to a job's log (LogAck) go to the log stream's
// own request, not to the core. The local role may send anything; the
// zero Identity nothing.
func (c *Core) permit(from actors.From, in any) string {
	who := from.Who
	switch m := in.(type) {
	case actors.Tick, actors.PeerTerminated, JobDone, Shutdown:
		if !who.IsLocal() {
			return "only this process makes it"
		}
	case *messages.RunJob:
		if m.RunnerId != c.cfg.ID {
			return fmt.Sprintf("a RunJob for runner %q, not this one", m.RunnerId)
		}
		return fromDispatcher(who)
	case *messages.CancelJob, *messages.RunnerRegistered, *messages.HeartbeatAck, *messages.JobFinishedAck, *messages.NotLeader:
		return fromDispatcher(who)
	case *messages.StatusRequest:
		if !who.MayAskStatus() {
			return "only admin, the dispatcher or the reporter may read the status"
		}
	default:
		if !who.IsLocal() {
			return "not a message a runner takes from anyone"
		}
	}
	return ""
}

func fromDispatcher(who actors.Identity) string {
	if who.Is(actors.RoleDispatcher) || plant.On(plant.RunnerTrustsClaimedSender) {
		return ""
	}
	return "only the dispatcher may send it"
}

func (c *Core) handle(now time.Time, from actors.Addr, in any) []actors.Effect {
	switch m := in.(type) {
	case actors.PeerTerminated:
		if m.Addr != c.link.Target() {
			return nil
		}
		c.link.Lost(now)
		fx := []actors.Effect{actors.Warn("dispatcher connection lost", "dispatcher", string(m.Addr), "grace", c.cfg.Grace.String())}
		return append(fx, c.tick(now)...)
	case *messages.NotLeader:
		if !c.link.FollowLeader(now, from, m.Leader) {
			return nil
		}
		fx := []actors.Effect{actors.Info("dispatcher node does not lead: following the leader", "node", string(from), "leader", m.Leader, "epoch", m.Epoch)}
		return append(fx, c.tick(now)...)
	case *messages.RunnerRegistered:
		return c.registered(now, from, m)
	case *messages.HeartbeatAck:
		return c.heartbeatAck(now, from, m)
	case *messages.RunJob:
		return c.runJob(now, from, m)
	case *messages.JobFinishedAck:
		j := c.find(m.Ref)
		if !c.link.IsTarget(from) || j == nil || !j.done {
			return nil
		}
		c.lastContact = now
		c.finished(j)
		return []actors.Effect{actors.Debug("outcome acknowledged", "job", m.Ref.GetJobId(), "recorded", m.Recorded)}
	case *messages.CancelJob:
		j := c.find(m.Ref)
		if !c.link.IsTarget(from) || j == nil {
			return nil
		}
		if m.Report {
			if !j.live() || j.cancelled {
				return nil
			}
			j.cancelled = true // killed, and reported as cancelled
			return []actors.Effect{actors.Info("job cancelled", "job", m.Ref.JobId, "reason", m.Reason), CancelRun{Ref: j.ref, Reason: m.Reason}}
		}
		return c.abandon(j, m.Reason)
	case JobDone:
		return c.jobDone(now, m)
	case Shutdown:
		return c.shutdown(m.Reason)
	case *messages.StatusRequest:
		return []actors.Effect{actors.Send{To: from, Msg: c.Status(now)}}
	}
	return nil // Step let through only the inputs handled above
}

// Status describes the runner for `volt status --role runner`.
func (c *Core) Status(now time.Time) *messages.StatusReply {
	rs := &messages.RunnerStatus{RunnerId: c.cfg.ID, Incarnation: c.cfg.Incarnation, State: "idle",
		Labels: c.cfg.Labels, Slots: int32(c.slots), Running: int32(c.Running())}
	if len(c.jobs) > 0 {
		rs.State, rs.Job = "busy", c.jobs[0].ref
	}
	reg := int64(0)
	if c.link.IsRegistered() {
		reg = 1
	}
	return &messages.StatusReply{Role: "runner", Runners: []*messages.RunnerStatus{rs},
		Counters: map[string]int64{"registered": reg, "stale_messages_ignored": c.stale, "forged_refused": c.refused}}
}

// Deadline is the next time the core needs a Tick (zero for none).
func (c *Core) Deadline() time.Time {
	if c.exited {
		return time.Time{}
	}
	d := c.link.Deadline()
	if c.link.IsRegistered() {
		d = actors.Earliest(d, c.nextHeartbeat)
		d = actors.Earliest(d, c.lastContact.Add(c.silence+time.Nanosecond))
	}
	for _, j := range c.jobs {
		switch {
		case j.live():
			d = actors.Earliest(d, c.leaseFrom().Add(c.lease+time.Nanosecond))
		case j.done && c.link.IsRegistered():
			d = actors.Earliest(d, j.lastSent.Add(time.Second))
		}
	}
	return d
}

func sameRef(a, b *messages.JobRef) bool {
	return a != nil && b != nil && a.JobId == b.JobId && a.Attempt == b.Attempt
}

// running lists the attempts this runner holds, including those it has
// given up until their processes are gone, so that the dispatcher does not
// start them elsewhere while they are still being killed (a dispatcher that
// adopts such an attempt requeues it once heartbeats stop listing it).
func (c *Core) running() []*messages.JobRef {
	if len(c.jobs) == 0 {
		return nil
	}
	refs := make([]*messages.JobRef, len(c.jobs))
	for i, j := range c.jobs {
		refs[i] = j.ref
	}
	return refs
}

// leaseFrom is when the lease on the jobs last renewed: the send time of
// the last registration or heartbeat the dispatcher acknowledged. It is
// one lease for every job: an acknowledgement renews each job it can judge
// (one that lists it, or that answers a message sent before the job came)
// and gives up each other one (heartbeatAck), so the jobs still held all
// renewed at the last one. A RunJob that finds it lapsed is not started.
func (c *Core) leaseFrom() time.Time {
	if plant.On(plant.LeaseFromLastContact) {
		return c.lastContact
	}
	return c.lastAck
}

func (c *Core) tick(now time.Time) []actors.Effect {
	var fx []actors.Effect
	if c.link.IsRegistered() && now.Sub(c.lastContact) > c.silence {
		fx = append(fx, actors.Warn("dispatcher stopped answering", "dispatcher", string(c.link.Target()), "silent_for", now.Sub(c.lastContact).String()))
		c.link.Lost(c.lastContact)
	}
	for _, j := range c.jobs {
		if j.live() && now.Sub(c.leaseFrom()) > c.lease && !plant.On(plant.LeaseIgnored) {
			fx = append(fx, c.abandon(j, fmt.Sprintf("lease lapsed: no acknowledgement from the dispatcher for %s", c.lease))...)
		}
	}
	if !c.link.IsRegistered() {
		if c.link.Expired(now) && !plant.On(plant.RunnerIgnoresDispatcherLoss) {
			return append(fx, c.exit(1, fmt.Sprintf("dispatcher %s unreachable for %s (--dispatcher-grace %s): giving up; start the dispatcher, or point --dispatcher-server at it",
				dispatcherHost(c.link.Target()), now.Sub(c.link.LostSince()).Round(time.Millisecond), c.cfg.Grace))...)
		}
		if c.link.Due(now) {
			fx = append(fx, actors.Register{To: c.link.Target(), Msg: &messages.RegisterRunner{
				RunnerId: c.cfg.ID, Incarnation: c.cfg.Incarnation, ProtocolVersion: messages.ProtocolVersion,
				Token: c.cfg.Token, Hostname: c.cfg.Hostname, Running: c.running(), Seq: c.send(now),
				Labels: c.cfg.Labels, Slots: int32(c.slots),
			}})
		}
		return fx
	}
	if !now.Before(c.nextHeartbeat) {
		c.nextHeartbeat = now.Add(c.heartbeat)
		fx = append(fx, actors.Send{To: c.link.Target(), Msg: &messages.Heartbeat{
			RunnerId: c.cfg.ID, Incarnation: c.cfg.Incarnation, Seq: c.send(now), Running: c.running()}})
	}
	for _, j := range c.jobs {
		if j.done && now.Sub(j.lastSent) >= time.Second {
			fx = append(fx, c.sendResult(now, j))
		}
	}
	return fx
}

func dispatcherHost(a actors.Addr) string {
	host, _ := a.Split()
	return host
}

func (c *Core) exit(code int, reason string) []actors.Effect {
	var fx []actors.Effect
	for _, j := range c.jobs {
		if j.live() {
			fx = append(fx, CancelRun{Ref: j.ref, Reason: "runner exiting"})
		}
	}
	c.exited = true
	return append(fx, actors.Exit{Code: code, Reason: reason})
}

func (c *Core) registered(now time.Time, from actors.Addr, m *messages.RunnerRegistered) []actors.Effect {
	if !c.link.IsTarget(from) || m.RunnerId != c.cfg.ID || m.Incarnation != c.cfg.Incarnation {
		c.stale++
		return nil
	}
	if m.Accepted && c.link.Failover() && m.Epoch < c.newestEpoch && !plant.On(plant.RunnerAcceptsOlderEpoch) {
		// A deposed leader that has not noticed yet: the runner has
		// registered with a newer one.
		c.stale++
		return []actors.Effect{actors.Warn("registration from an older epoch ignored", "dispatcher", string(from), "epoch", m.Epoch, "newest", c.newestEpoch)}
	}
	if !m.Accepted {
		return c.exit(1, fmt.Sprintf("dispatcher %s refused this runner: %s", dispatcherHost(from), m.Reason))
	}
	if c.link.IsRegistered() {
		return nil // a duplicate reply
	}
	c.link.Registered()
	c.epoch = m.Epoch
	c.newestEpoch = max(c.newestEpoch, m.Epoch)
	if m.HeartbeatMs > 0 {
		c.heartbeat = time.Duration(m.HeartbeatMs) * time.Millisecond
	}
	if m.LeaseMs > 0 {
		c.lease = time.Duration(m.LeaseMs) * time.Millisecond
	}
	switch {
	case m.SilenceMs > 0:
		c.silence = time.Duration(m.SilenceMs) * time.Millisecond
	case m.DeadAfterMs > 0:
		c.silence = time.Duration(m.DeadAfterMs) * time.Millisecond
	}
	c.lastContact = now
	if at, ok := c.acked(m.Seq); ok && at.After(c.lastAck) {
		c.lastAck = at
	}
	c.nextHeartbeat = now
	for _, j := range c.jobs {
		j.seq = c.seq // judge the adopted jobs only by heartbeats sent from now on
	}
	fx := []actors.Effect{
		actors.Watch{Addr: from},
		actors.Info("registered with the dispatcher", "dispatcher", string(from), "runner", c.cfg.ID, "incarnation", c.cfg.Incarnation, "epoch", m.Epoch),
	}
	return append(fx, c.tick(now)...)
}

func (c *Core) heartbeatAck(now time.Time, from actors.Addr, m *messages.HeartbeatAck) []actors.Effect {
	if !c.link.IsTarget(from) || m.RunnerId != c.cfg.ID || m.Incarnation != c.cfg.Incarnation || (m.Epoch != c.epoch && !m.Unknown) {
		c.stale++
		return nil
	}
	c.lastContact = now
	if m.Unknown {
		c.link.Lost(now)
		return append([]actors.Effect{actors.Info("dispatcher does not know this runner: registering again")}, c.tick(now)...)
	}
	at, ok := c.acked(m.Seq)
	if ok && at.After(c.lastAck) {
		c.lastAck = at
	}
	var fx []actors.Effect
	for _, j := range c.jobs {
		// An ack of a message sent before the job came cannot list it; a
		// finished job's outcome has its own ack.
		if j.abandoned || j.done || m.Seq <= j.seq || slices.ContainsFunc(m.Valid, func(v *messages.JobRef) bool { return sameRef(v, j.ref) }) {
			continue
		}
		fx = append(fx, c.abandon(j, "the dispatcher no longer assigns this attempt to this runner")...)
	}
	return fx
}

// Digest is a hash of everything that decides what the runner does next:
// its registration, timers, the attempts it holds and those it remembers
// as finished, its slots and the dispatcher epoch. Counters are left out.
// The simulator compares it before and after an input that must change
// nothing.
func (c *Core) Digest() uint64 {
	d := actors.NewDigest()
	c.link.Digest(d)
	d.Int(int64(c.heartbeat))
	d.Int(int64(c.lease))
	d.Int(int64(c.silence))
	d.Time(c.lastContact)
	d.Time(c.lastAck)
	for _, s := range c.sent {
		d.Uint(s.seq)
		d.Time(s.at)
	}
	d.Int(-1)
	d.Time(c.nextHeartbeat)
	d.Uint(c.seq)
	d.Int(int64(c.slots))
	d.Int(int64(len(c.jobs)))
	for _, j := range c.jobs {
		d.Proto(j.run)
		d.Proto(j.ref)
		d.Uint(j.seq)
		d.Bool(j.done)
		d.Bool(j.abandoned)
		d.Bool(j.cancelled)
		d.Proto(j.result)
		d.Time(j.lastSent)
	}
	d.Int(int64(len(c.recent)))
	for _, r := range c.recent {
		d.Proto(r)
	}
	d.Int(c.epoch)
	d.Int(c.newestEpoch)
	d.Bool(c.exited)
	return d.Sum()
}
