package dispatcher

import (
	"fmt"
	"slices"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// runnerState is a registered runner: kept small, as a dispatcher holds
// one for each of thousands of mostly idle runners. Its id and address are
// the strings its registration carried, shared with the keys of
// Core.runners and Core.byAddr; its incarnation is the highest seen for
// its id (Core.incarnations holds those of runners not registered).
type runnerState struct {
	id          string
	addr        actors.Addr
	incarnation int64
	jobs        []int64  // the jobs it runs, in the order they were given
	slots       int32    // how many jobs it runs at once (at least 1)
	labels      []string // what its jobs' runs-on may ask for
	seen        int64    // last heard from: nanoseconds after Core.base
	alive       links[runnerState]
	idle        links[runnerState]
}

func seenKey(r *runnerState) int64 { return r.seen }

// heard records that r was heard from now.
func (c *Core) heard(r *runnerState, now time.Time) {
	r.seen = c.at(now)
	c.alive.place(r, seenKey)
}

// incarnation is the highest incarnation seen of runner id.
func (c *Core) incarnation(id string) int64 {
	if r := c.runners.get(id); r != nil {
		return r.incarnation
	}
	return c.incarnations[id]
}

func (c *Core) registerRunner(now time.Time, from actors.Addr, m *messages.RegisterRunner) []actors.Effect {
	reply := &messages.RunnerRegistered{
		SupportedVersions: messages.SupportedVersions,
		RunnerId:          m.RunnerId,
		Incarnation:       m.Incarnation,
		Seq:               m.Seq,
	}
	if reason := c.refuseRunner(m); reason != "" {
		c.counters[cRejected]++
		reply.Reason = reason
		return []actors.Effect{
			actors.Warn("runner refused", "runner", m.RunnerId, "reason", reason),
			actors.Send{To: from, Msg: reply},
		}
	}
	r, fx := c.enrol(now, from, m)
	fx = c.adopt(r, from, m.Running, fx)
	fx = append(fx, c.requeueOrphansOf(now, r)...)
	if !r.full() && !c.idle.has(r) {
		c.idle.pushBack(r)
	}
	reply.Accepted = true
	reply.Epoch = c.cfg.Epoch
	reply.HeartbeatMs = c.cfg.Heartbeat.Milliseconds()
	reply.DeadAfterMs = c.cfg.DeadAfter.Milliseconds()
	reply.LeaseMs = c.cfg.Lease.Milliseconds()
	reply.SilenceMs = c.cfg.Silence.Milliseconds()
	return append(fx, actors.Send{To: from, Msg: reply})
}

// refuseRole says why a registration of role (runner, observer, reporter)
// is refused for its protocol version or token, or "" when it is not.
func (c *Core) refuseRole(role string, version int32, token string) string {
	switch {
	case !messages.Supported(version):
		return fmt.Sprintf("protocol version %d is not supported: this dispatcher speaks %v; run the same Volt release on every machine", version, messages.SupportedVersions)
	case !c.tokenOK(token):
		return "wrong or missing token: start the " + role + " with the dispatcher's --token (or VOLT_TOKEN)"
	}
	return ""
}

// refuseRunner says why a registration is refused, or "" when it is not.
func (c *Core) refuseRunner(m *messages.RegisterRunner) string {
	if why := c.refuseRole("runner", m.ProtocolVersion, m.Token); why != "" {
		return why
	}
	switch {
	case m.RunnerId == "":
		return "empty runner id"
	case m.Incarnation < c.incarnation(m.RunnerId):
		return fmt.Sprintf("incarnation %d is older than %d, which already registered", m.Incarnation, c.incarnation(m.RunnerId))
	}
	return ""
}

// maxSlots and maxLabels bound what a runner's registration may claim.
const (
	maxSlots  = 64
	maxLabels = 64
)

// enrol makes m's incarnation the registered runner of its id, at from,
// losing an older incarnation, and returns it with the effects so far.
func (c *Core) enrol(now time.Time, from actors.Addr, m *messages.RegisterRunner) (*runnerState, []actors.Effect) {
	var fx []actors.Effect
	old := c.runners.get(m.RunnerId)
	if old != nil && old.incarnation != m.Incarnation {
		fx = append(fx, c.loseRunner(now, old, "replaced by a newer incarnation")...)
		old = nil
	}
	if c.incarnation(m.RunnerId) != m.Incarnation {
		fx = append(fx, Persist{Incarnations: []*messages.RunnerIncarnation{{RunnerId: m.RunnerId, Incarnation: m.Incarnation}}})
	}
	r := old
	if r == nil {
		if prev := c.runners.get(m.RunnerId); prev != nil {
			// Left registered by a planted bug: replaced, it stands in no line.
			c.alive.remove(prev)
			c.idle.remove(prev)
		}
		r = &runnerState{id: m.RunnerId, incarnation: m.Incarnation}
		c.runners.set(r)
		fx = append(fx, actors.Info("runner registered", "runner", m.RunnerId, "incarnation", m.Incarnation, "addr", string(from)))
	}
	delete(c.incarnations, m.RunnerId) // r holds it now
	r.slots = min(max(m.Slots, 1), maxSlots)
	if !slices.Equal(r.labels, m.Labels) {
		r.labels = slices.Clone(m.Labels)
		if len(r.labels) > maxLabels {
			r.labels = r.labels[:maxLabels]
		}
	}
	if r.addr != from {
		if r.addr != "" {
			c.byAddr.del(string(r.addr))
			fx = append(fx, actors.Unwatch{Addr: r.addr})
		}
		r.addr = from
		c.byAddr.set(r)
		fx = append(fx, actors.Watch{Addr: from})
	}
	c.heard(r, now)
	return r, fx
}

// adopt takes back what a registering runner still runs if it is the
// current attempt, and cancels the rest. The Persist of the jobs it adopts
// goes ahead of fx, the effects so far.
func (c *Core) adopt(r *runnerState, from actors.Addr, running []*messages.JobRef, fx []actors.Effect) []actors.Effect {
	var saves []*job
	for _, ref := range running {
		j := c.jobs[ref.JobId]
		if j != nil && j.State == messages.JobState_JOB_STATE_RUNNING && j.Attempt == ref.Attempt &&
			(j.RunnerId == r.id || j.RunnerId == "") && (!r.full() || r.runs(ref.JobId)) {
			if _, orphan := c.orphans[ref.JobId]; orphan || j.RunnerIncarnation != r.incarnation {
				j.RunnerId, j.RunnerIncarnation = r.id, r.incarnation
				saves = append(saves, j)
				fx = append(fx, actors.Info("job re-adopted", "job", ref.JobId, "attempt", ref.Attempt, "runner", r.id))
			}
			delete(c.orphans, ref.JobId)
			c.busy(r, ref.JobId)
			if j.cancelPending() {
				fx = append(fx, cancelJob(from, j, resentReason))
			}
			continue
		}
		fx = append(fx, actors.Send{To: from, Msg: &messages.CancelJob{Ref: ref, Reason: "superseded: the dispatcher no longer assigns this attempt to you"}})
	}
	if len(saves) > 0 {
		fx = append([]actors.Effect{persist(nil, saves)}, fx...)
	}
	return fx
}

// requeueOrphansOf requeues the jobs recovered as running on r that r,
// registering, did not report. A job assigned to r that the registration
// does not list is left to the heartbeat check: the registration may have
// been sent before the RunJob arrived. A job recovered as running on r that
// it no longer reports is lost, though: no RunJob of this epoch exists for
// it, and the runner ignores those of other epochs.
func (c *Core) requeueOrphansOf(now time.Time, r *runnerState) []actors.Effect {
	ids, ok := c.orphansOf[r.id]
	if !ok {
		return nil
	}
	delete(c.orphansOf, r.id)
	var fx []actors.Effect
	for _, id := range ids {
		if _, orphan := c.orphans[id]; !orphan {
			continue
		}
		if j := c.jobs[id]; j != nil && j.RunnerId == r.id && !r.runs(id) {
			fx = append(fx, c.requeue(now, j, fmt.Sprintf("runner %s came back without it", r.id))...)
		}
	}
	return fx
}

// current returns the registered runner a message claims to come from, or
// nil when the runner or incarnation is unknown or superseded.
func (c *Core) current(id string, inc int64) *runnerState {
	r := c.runners.get(id)
	if r == nil || (r.incarnation != inc && !plant.On(plant.OldIncarnationAccepted)) {
		return nil
	}
	return r
}

func (c *Core) heartbeat(now time.Time, from actors.Addr, m *messages.Heartbeat) []actors.Effect {
	r := c.current(m.RunnerId, m.Incarnation)
	ack := &messages.HeartbeatAck{RunnerId: m.RunnerId, Incarnation: m.Incarnation, Seq: m.Seq}
	if r == nil {
		if m.Incarnation < c.incarnation(m.RunnerId) {
			c.counters[cStaleMessages]++
			return []actors.Effect{actors.Debug("heartbeat from an older incarnation ignored", "runner", m.RunnerId, "incarnation", m.Incarnation)}
		}
		// Register again, it is told; not the epoch, which only a
		// registered runner learns (it ignores the epoch of this answer).
		ack.Unknown = true
		return []actors.Effect{actors.Send{To: from, Msg: ack}}
	}
	ack.Epoch = c.cfg.Epoch
	c.heard(r, now)
	var cancels []actors.Effect // a cancel the runner may have missed, again
	var listed []int64
	for _, ref := range m.Running {
		if j := c.jobs[ref.JobId]; r.runs(ref.JobId) && j != nil && j.Attempt == ref.Attempt {
			listed = append(listed, ref.JobId)
			ack.Valid = append(ack.Valid, ref)
			if j.cancelPending() && j.State == messages.JobState_JOB_STATE_RUNNING {
				cancels = append(cancels, cancelJob(from, j, resentReason))
			}
		}
	}
	var fx []actors.Effect
	// Backwards: free takes the job out of r.jobs, and each requeued job
	// goes first, so they keep their order (as in loseRunner).
	for i := len(r.jobs) - 1; i >= 0; i-- {
		id := r.jobs[i]
		if slices.Contains(listed, id) {
			continue
		}
		if j := c.jobs[id]; j != nil && j.State == messages.JobState_JOB_STATE_RUNNING &&
			now.Sub(time.UnixMilli(j.AssignedUnixMs)) > c.startGrace() {
			fx = append(fx, c.requeue(now, j, "the runner never started it (RunJob lost in transit?)")...)
			c.free(r, id)
		}
	}
	fx = append(fx, cancels...)
	return append(fx, actors.Send{To: from, Msg: ack})
}

// startGrace is how long a runner may take to confirm a job it was sent:
// the configured StartGrace, but never less than the lease. A runner may
// still start a RunJob that reaches it late (it was frozen, say) while its
// lease lives, so a job requeued sooner could run twice at once.
func (c *Core) startGrace() time.Duration { return max(c.cfg.StartGrace, c.cfg.Lease) }

func (c *Core) loseRunner(now time.Time, r *runnerState, why string) []actors.Effect {
	if plant.On(plant.DeadRunnerStaysIdle) {
		defer func() {
			r.jobs = nil
			c.idle.remove(r)
			c.idle.pushBack(r)
		}()
	} else {
		c.runners.del(r.id)
		c.byAddr.del(string(r.addr))
		c.alive.remove(r)
		c.idle.remove(r)
		c.incarnations[r.id] = r.incarnation
	}
	c.counters[cRunnersLost]++
	c.lost[r.id] = r.incarnation
	fx := []actors.Effect{actors.Unwatch{Addr: r.addr}, actors.Warn("runner lost", "runner", r.id, "incarnation", r.incarnation, "reason", why)}
	for i := len(r.jobs) - 1; i >= 0; i-- { // each goes first: in reverse, they keep their order
		if j := c.jobs[r.jobs[i]]; j != nil && j.State == messages.JobState_JOB_STATE_RUNNING && j.RunnerId == r.id && !plant.On(plant.LostJobNotRequeued) {
			fx = append(fx, c.requeue(now, j, fmt.Sprintf("runner %s was lost (%s)", r.id, why))...)
		}
	}
	if !plant.On(plant.DeadRunnerStaysIdle) {
		r.jobs = nil
	}
	return fx
}

func (c *Core) peerTerminated(now time.Time, m actors.PeerTerminated) []actors.Effect {
	if r := c.byAddr.get(string(m.Addr)); r != nil {
		return c.loseRunner(now, c.runners.get(r.id), "connection closed")
	}
	if m.Addr == c.reporter {
		c.reporter = ""
		return []actors.Effect{actors.Warn("reporter lost; results wait for it to register again", "addr", string(m.Addr))}
	}
	if o, ok := c.observers[m.Addr]; ok {
		delete(c.observers, m.Addr)
		return []actors.Effect{actors.Info("observer gone", "observer", o.id)}
	}
	return nil
}

func (c *Core) runnerStopping(now time.Time, m *messages.RunnerStopping) []actors.Effect {
	r := c.current(m.RunnerId, m.Incarnation)
	if r == nil {
		c.counters[cStaleMessages]++
		return nil
	}
	// An attempt the runner gave back on its way down did not fail: the
	// build keeps its attempts (a deploy that restarts runners must not
	// error builds).
	for _, id := range r.jobs {
		j := c.jobs[id]
		if j == nil || j.State != messages.JobState_JOB_STATE_RUNNING || j.RunnerId != r.id || j.Released >= maxFreeReleases {
			continue
		}
		gaveBack := slices.ContainsFunc(m.Released, func(ref *messages.JobRef) bool {
			return ref.GetJobId() == j.Job.Id && ref.GetAttempt() == j.Attempt
		})
		if gaveBack {
			j.Released++ // made durable by the requeue's Persist
		}
	}
	return c.loseRunner(now, r, "runner shut down: "+m.Reason)
}

// deadAfter is how long a runner may stay silent before it is declared dead.
func (c *Core) deadAfter() time.Duration {
	if plant.On(plant.DeadAfterIsLease) {
		return c.cfg.Lease
	}
	return c.cfg.DeadAfter
}
