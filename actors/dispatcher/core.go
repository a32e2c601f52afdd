package dispatcher

import (
	"crypto/subtle"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// Config holds the dispatcher's timers and limits (DESIGN.md, Timers).
type Config struct {
	// Heartbeat is how often runners send a heartbeat.
	Heartbeat time.Duration
	// DeadAfter is how long a runner may go without a heartbeat before it is
	// declared dead and its job reassigned.
	DeadAfter time.Duration
	// Lease is how long a runner keeps its job without an acknowledgement;
	// it must be shorter than DeadAfter minus the network delay.
	Lease time.Duration
	// MaxAttempts caps the attempts of one build; past it the build ends errored.
	MaxAttempts int
	// JobTimeout is the default job timeout runners apply when .volt.yml names none.
	JobTimeout time.Duration
	// ResultRetry is how often an unacknowledged result is sent to the reporter again.
	ResultRetry time.Duration
	// StartGrace is how long a runner may take to confirm (in a heartbeat) a
	// job it was sent before the job is presumed lost in transit.
	StartGrace time.Duration
	// Token, when set, must accompany every registration, notify and status request.
	Token string
	// Epoch identifies this dispatcher incarnation (its start time in
	// nanoseconds); runners ignore RunJob and HeartbeatAck of other epochs.
	Epoch int64
}

// DefaultConfig returns the contract's defaults: heartbeat 1 s, dead after
// 3 s, lease 2 s, 3 attempts, 10 minute jobs.
func DefaultConfig() Config {
	return Config{
		Heartbeat:   time.Second,
		DeadAfter:   3 * time.Second,
		Lease:       2 * time.Second,
		MaxAttempts: 3,
		JobTimeout:  10 * time.Minute,
		ResultRetry: time.Second,
		StartGrace:  2 * time.Second,
	}
}

// Validate reports a configuration that breaks the timer contract.
func (c Config) Validate() error {
	switch {
	case c.Heartbeat <= 0 || c.DeadAfter <= 0 || c.Lease <= 0:
		return fmt.Errorf("heartbeat, dead-after and lease must be positive")
	case c.Lease >= c.DeadAfter:
		return fmt.Errorf("lease (%s) must be shorter than dead-after (%s) so that a runner gives its job up before it is declared dead", c.Lease, c.DeadAfter)
	case c.Heartbeat >= c.Lease:
		return fmt.Errorf("heartbeat (%s) must be shorter than the lease (%s)", c.Heartbeat, c.Lease)
	case c.MaxAttempts < 1:
		return fmt.Errorf("max attempts must be at least 1")
	}
	return nil
}

// Observed is a CommitObserved as the shell hands it to the core, with what
// the durable store knows of its commits that are no longer in memory.
type Observed struct {
	Msg *messages.CommitObserved
	// Archived maps a commit to the id of its finished, forwarded job.
	Archived map[string]int64
}

// Rebuild is a RebuildRequest as the shell hands it to the core, with the
// newest build of the commit from the durable store (nil if none).
type Rebuild struct {
	Msg  *messages.RebuildRequest
	Prev *messages.Job
}

// Persist asks the shell to make jobs, cursors and runner incarnations
// durable before carrying out the effects that follow it.
type Persist struct {
	Jobs         []*messages.JobRecord
	Cursors      []*messages.Cursor
	Incarnations []*messages.RunnerIncarnation
}

// persist snapshots jobs for a Persist effect: the core goes on changing
// its records within the same step (an observed job is assigned at once),
// and what is written must be the state at this point, not a later one.
func persist(cursors []*messages.Cursor, jobs ...*messages.JobRecord) Persist {
	p := Persist{Cursors: cursors, Jobs: make([]*messages.JobRecord, len(jobs))}
	for i, j := range jobs {
		p.Jobs[i] = messages.CloneJobRecord(j)
	}
	return p
}

// Durable is what a restarted dispatcher recovers.
type Durable struct {
	Jobs         []*messages.JobRecord
	Cursors      []*messages.Cursor
	MaxID        int64
	Incarnations []*messages.RunnerIncarnation
}

type runnerState struct {
	id          string
	incarnation int64
	addr        actors.Addr
	hostname    string
	lastSeen    time.Time
	job         int64 // 0 when idle
	idleSince   time.Time
	idleMark    uint64 // its current entry in Core.idle
}

type idleEntry struct {
	r    *runnerState
	mark uint64
}

type observerState struct {
	id    string
	repos []*messages.WatchedRepo
}

type recentResult struct {
	attempt int32
	runner  string
}

// recentMax bounds Core.recent.
const recentMax = 1024

// Core is the dispatcher's deterministic state machine.
type Core struct {
	cfg Config

	jobs    map[int64]*messages.JobRecord // unfinished, or finished and not forwarded
	byKey   map[string]int64              // repo\x00commit -> newest active job id
	queue   []int64                       // queued job ids, in order
	cursors map[string]*messages.Cursor   // repo\x00branch
	nextID  int64

	runners      map[string]*runnerState
	idle         []idleEntry // runners in the order they became idle; stale entries are skipped
	idleSeq      uint64
	byAddr       map[actors.Addr]string
	incarnations map[string]int64 // highest incarnation seen per runner id (durable)
	lost         map[string]int64 // incarnation of each runner this core declared lost

	orphans map[int64]time.Time // running jobs recovered without a runner: deadline to be claimed

	observers map[actors.Addr]*observerState
	reporter  actors.Addr
	lastSend  map[int64]time.Time // last ResultRecorded sent per job
	// recent remembers the last forwarded results (job id -> attempt and
	// runner), so that a late duplicate JobFinished is acknowledged as the
	// recorded result rather than counted as stale.
	recent      map[int64]recentResult
	recentOrder []int64

	counters map[string]int64
}

// Counter names reported in status and metrics.
const (
	CounterRecorded      = "results_recorded"
	CounterStale         = "stale_results_ignored"
	CounterReassigned    = "reassignments"
	CounterRunnersLost   = "runners_lost"
	CounterGaveUp        = "jobs_errored_at_attempt_cap"
	CounterRejected      = "messages_rejected"
	CounterJobsQueued    = "jobs_queued"
	CounterResultsAcked  = "results_forwarded"
	CounterStaleMessages = "stale_messages_ignored"
)

// New returns a dispatcher core with nothing recovered yet; call Recover.
func New(cfg Config) *Core {
	return &Core{
		cfg:          cfg,
		jobs:         map[int64]*messages.JobRecord{},
		byKey:        map[string]int64{},
		cursors:      map[string]*messages.Cursor{},
		runners:      map[string]*runnerState{},
		byAddr:       map[actors.Addr]string{},
		incarnations: map[string]int64{},
		lost:         map[string]int64{},
		orphans:      map[int64]time.Time{},
		observers:    map[actors.Addr]*observerState{},
		lastSend:     map[int64]time.Time{},
		recent:       map[int64]recentResult{},
		counters:     map[string]int64{},
		nextID:       1,
	}
}

func key(a, b string) string { return a + "\x00" + b }

// Recover loads the durable state after a (re)start. Jobs that were running
// wait DeadAfter for their runner to re-register and claim them, then go
// back to the queue.
func (c *Core) Recover(now time.Time, d Durable) []actors.Effect {
	jobs := d.Jobs
	c.nextID = d.MaxID + 1
	for _, cur := range d.Cursors {
		c.cursors[key(cur.Repo, cur.Branch)] = cur
	}
	for _, r := range d.Incarnations {
		c.incarnations[r.RunnerId] = r.Incarnation
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Job.Id < jobs[j].Job.Id })
	queued, running := 0, 0
	for _, j := range jobs {
		c.jobs[j.Job.Id] = j
		c.byKey[key(j.Job.Repo, j.Job.Commit)] = j.Job.Id
		switch j.State {
		case messages.JobState_JOB_STATE_QUEUED:
			if plant.On(plant.QueueNotRestored) {
				delete(c.jobs, j.Job.Id)
				continue
			}
			c.queue = append(c.queue, j.Job.Id)
			queued++
		case messages.JobState_JOB_STATE_RUNNING:
			c.orphans[j.Job.Id] = now.Add(c.cfg.DeadAfter)
			running++
		}
	}
	return []actors.Effect{actors.Info("dispatcher recovered its queue", "queued", queued, "running", running, "next_job_id", c.nextID)}
}

// Step handles one input: a message from a peer (from is its address), a
// Tick, a PeerTerminated or an Observed.
func (c *Core) Step(now time.Time, from actors.Addr, in any) []actors.Effect {
	var fx []actors.Effect
	switch m := in.(type) {
	case actors.Tick:
		fx = c.tick(now)
	case actors.PeerTerminated:
		fx = c.peerTerminated(now, m)
	case *messages.RegisterRunner:
		fx = c.registerRunner(now, from, m)
	case *messages.Heartbeat:
		fx = c.heartbeat(now, from, m)
	case *messages.JobFinished:
		fx = c.jobFinished(now, from, m)
	case *messages.RunnerStopping:
		fx = c.runnerStopping(now, m)
	case *messages.RegisterReporter:
		fx = c.registerReporter(now, from, m)
	case *messages.ResultRecordedAck:
		fx = c.resultAcked(m)
	case *messages.RegisterObserver:
		fx = c.registerObserver(from, m)
	case Observed:
		fx = c.observed(now, from, m)
	case *messages.CommitObserved:
		fx = c.observed(now, from, Observed{Msg: m})
	case *messages.Notify:
		fx = c.notify(from, m)
	case *messages.StatusRequest:
		fx = c.status(from, m)
	case *messages.CancelRequest:
		fx = c.cancel(now, from, m)
	case Rebuild:
		fx = c.rebuild(now, from, m)
	default:
		c.counters[CounterRejected]++
		return []actors.Effect{actors.Warn("dispatcher ignored an unknown message", "type", fmt.Sprintf("%T", in), "from", string(from))}
	}
	return append(fx, c.assign(now)...)
}

func (c *Core) tokenOK(token string) bool {
	if c.cfg.Token == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(c.cfg.Token)) == 1
}

func (c *Core) registerRunner(now time.Time, from actors.Addr, m *messages.RegisterRunner) []actors.Effect {
	reply := &messages.RunnerRegistered{
		SupportedVersions: messages.SupportedVersions,
		RunnerId:          m.RunnerId,
		Incarnation:       m.Incarnation,
		Seq:               m.Seq,
	}
	reject := func(reason string) []actors.Effect {
		c.counters[CounterRejected]++
		reply.Reason = reason
		return []actors.Effect{
			actors.Warn("runner refused", "runner", m.RunnerId, "reason", reason),
			actors.Send{To: from, Msg: reply},
		}
	}
	switch {
	case !messages.Supported(m.ProtocolVersion):
		return reject(fmt.Sprintf("protocol version %d is not supported: this dispatcher speaks %v; run the same Volt release on every machine", m.ProtocolVersion, messages.SupportedVersions))
	case !c.tokenOK(m.Token):
		return reject("wrong or missing token: start the runner with the dispatcher's --token (or VOLT_TOKEN)")
	case m.RunnerId == "":
		return reject("empty runner id")
	case m.Incarnation < c.incarnations[m.RunnerId]:
		return reject(fmt.Sprintf("incarnation %d is older than %d, which already registered", m.Incarnation, c.incarnations[m.RunnerId]))
	}
	var fx []actors.Effect
	old := c.runners[m.RunnerId]
	if old != nil && old.incarnation != m.Incarnation {
		fx = append(fx, c.loseRunner(now, old, "replaced by a newer incarnation")...)
		old = nil
	}
	if c.incarnations[m.RunnerId] != m.Incarnation {
		c.incarnations[m.RunnerId] = m.Incarnation
		fx = append(fx, Persist{Incarnations: []*messages.RunnerIncarnation{{RunnerId: m.RunnerId, Incarnation: m.Incarnation}}})
	}
	r := old
	if r == nil {
		r = &runnerState{id: m.RunnerId, incarnation: m.Incarnation}
		c.runners[m.RunnerId] = r
		fx = append(fx, actors.Info("runner registered", "runner", m.RunnerId, "incarnation", m.Incarnation, "addr", string(from)))
	}
	if r.addr != from {
		if r.addr != "" {
			delete(c.byAddr, r.addr)
			fx = append(fx, actors.Unwatch{Addr: r.addr})
		}
		r.addr = from
		c.byAddr[from] = r.id
		fx = append(fx, actors.Watch{Addr: from})
	}
	r.hostname = m.Hostname
	r.lastSeen = now
	// Adopt what the runner still runs if it is the current attempt; cancel the rest.
	var saves []*messages.JobRecord
	for _, ref := range m.Running {
		j := c.jobs[ref.JobId]
		if j != nil && j.State == messages.JobState_JOB_STATE_RUNNING && j.Attempt == ref.Attempt &&
			(j.RunnerId == r.id || j.RunnerId == "") && (r.job == 0 || r.job == ref.JobId) {
			if _, orphan := c.orphans[ref.JobId]; orphan || j.RunnerIncarnation != r.incarnation {
				j.RunnerId, j.RunnerIncarnation = r.id, r.incarnation
				saves = append(saves, j)
				fx = append(fx, actors.Info("job re-adopted", "job", ref.JobId, "attempt", ref.Attempt, "runner", r.id))
			}
			delete(c.orphans, ref.JobId)
			r.job = ref.JobId
			continue
		}
		fx = append(fx, actors.Send{To: from, Msg: &messages.CancelJob{Ref: ref, Reason: "superseded: the dispatcher no longer assigns this attempt to you"}})
	}
	if len(saves) > 0 {
		fx = append([]actors.Effect{persist(nil, saves...)}, fx...)
	}
	// A job assigned to this runner that the registration does not list is
	// left to the heartbeat check: the registration may have been sent
	// before the RunJob arrived. A job recovered as running on this runner
	// that it no longer reports is lost, though: no RunJob of this epoch
	// exists for it, and the runner ignores those of other epochs.
	for _, id := range sortedKeys(c.orphans) {
		if j := c.jobs[id]; j != nil && j.RunnerId == r.id && r.job != id {
			fx = append(fx, c.requeue(now, j, fmt.Sprintf("runner %s came back without it", r.id))...)
		}
	}
	if r.job == 0 {
		c.setIdle(r, now)
	}
	reply.Accepted = true
	reply.Epoch = c.cfg.Epoch
	reply.HeartbeatMs = c.cfg.Heartbeat.Milliseconds()
	reply.DeadAfterMs = c.cfg.DeadAfter.Milliseconds()
	reply.LeaseMs = c.cfg.Lease.Milliseconds()
	return append(fx, actors.Send{To: from, Msg: reply})
}

// current returns the registered runner a message claims to come from, or
// nil when the runner or incarnation is unknown or superseded.
func (c *Core) current(id string, inc int64) *runnerState {
	r := c.runners[id]
	if r == nil || (r.incarnation != inc && !plant.On(plant.OldIncarnationAccepted)) {
		return nil
	}
	return r
}

func (c *Core) heartbeat(now time.Time, from actors.Addr, m *messages.Heartbeat) []actors.Effect {
	r := c.current(m.RunnerId, m.Incarnation)
	ack := &messages.HeartbeatAck{RunnerId: m.RunnerId, Incarnation: m.Incarnation, Seq: m.Seq, Epoch: c.cfg.Epoch}
	if r == nil {
		if m.Incarnation < c.incarnations[m.RunnerId] {
			c.counters[CounterStaleMessages]++
			return []actors.Effect{actors.Debug("heartbeat from an older incarnation ignored", "runner", m.RunnerId, "incarnation", m.Incarnation)}
		}
		ack.Unknown = true
		return []actors.Effect{actors.Send{To: from, Msg: ack}}
	}
	r.lastSeen = now
	var fx []actors.Effect
	listed := false
	for _, ref := range m.Running {
		if j := c.jobs[ref.JobId]; ref.JobId == r.job && j != nil && j.Attempt == ref.Attempt {
			listed = true
			ack.Valid = append(ack.Valid, ref)
		}
	}
	if r.job != 0 && !listed {
		if j := c.jobs[r.job]; j != nil && j.State == messages.JobState_JOB_STATE_RUNNING &&
			now.Sub(time.UnixMilli(j.AssignedUnixMs)) > c.cfg.StartGrace {
			fx = append(fx, c.requeue(now, j, "the runner never started it (RunJob lost in transit?)")...)
			c.setIdle(r, now)
		}
	}
	return append(fx, actors.Send{To: from, Msg: ack})
}

func (c *Core) jobFinished(now time.Time, from actors.Addr, m *messages.JobFinished) []actors.Effect {
	res := m.Result
	if res == nil || res.Job == nil {
		c.counters[CounterRejected]++
		return []actors.Effect{actors.Warn("malformed JobFinished ignored", "from", string(from))}
	}
	ref := &messages.JobRef{JobId: res.Job.Id, Attempt: res.Attempt}
	ack := actors.Send{To: from, Msg: &messages.JobFinishedAck{Ref: ref}}
	j := c.jobs[res.Job.Id]
	r := c.current(m.RunnerId, m.Incarnation)
	if j != nil && j.State == messages.JobState_JOB_STATE_DONE && j.Result != nil &&
		j.Result.Attempt == res.Attempt && j.Result.RunnerId == m.RunnerId {
		ack.Msg.(*messages.JobFinishedAck).Recorded = true // a duplicate of what we recorded
		return []actors.Effect{ack}
	}
	if r == nil && c.runners[m.RunnerId] == nil && m.Incarnation >= c.incarnations[m.RunnerId] && c.lost[m.RunnerId] != m.Incarnation {
		// Unknown after a restart of ours: have it register first; it keeps
		// the outcome and sends it again once registered (and re-adopted).
		return []actors.Effect{actors.Send{To: from, Msg: &messages.HeartbeatAck{
			RunnerId: m.RunnerId, Incarnation: m.Incarnation, Unknown: true, Epoch: c.cfg.Epoch}}}
	}
	if rr, ok := c.recent[res.Job.Id]; ok && j == nil && rr.attempt == res.Attempt && rr.runner == m.RunnerId {
		ack.Msg.(*messages.JobFinishedAck).Recorded = true // a duplicate of what we recorded and forwarded
		return []actors.Effect{ack}
	}
	if j == nil || r == nil || j.State != messages.JobState_JOB_STATE_RUNNING ||
		((j.Attempt != res.Attempt || j.RunnerId != m.RunnerId || j.RunnerIncarnation != m.Incarnation) && !plant.On(plant.ResultsNotFenced)) {
		c.counters[CounterStale]++
		return []actors.Effect{
			actors.Warn("stale result ignored", "job", res.Job.Id, "attempt", res.Attempt, "runner", m.RunnerId, "incarnation", m.Incarnation),
			ack,
		}
	}
	r.lastSeen = now
	c.setIdle(r, now)
	final := &messages.Result{
		Job: j.Job, Attempt: j.Attempt, RunnerId: m.RunnerId, Status: res.Status, Reason: res.Reason,
		ExitCode: res.ExitCode, StartedUnixMs: res.StartedUnixMs, FinishedUnixMs: res.FinishedUnixMs,
		FailedStep: res.FailedStep, LogBytes: res.LogBytes, LogDropped: res.LogDropped, QueuedUnixMs: j.QueuedUnixMs,
	}
	fx := c.finish(now, j, final)
	ack.Msg.(*messages.JobFinishedAck).Recorded = true
	return append(fx, ack)
}

// finish records the one final result of j and forwards it.
func (c *Core) finish(now time.Time, j *messages.JobRecord, res *messages.Result) []actors.Effect {
	j.State = messages.JobState_JOB_STATE_DONE
	j.Result = res
	delete(c.orphans, j.Job.Id)
	c.counters[CounterRecorded]++
	fx := []actors.Effect{
		persist(nil, j),
		actors.Info("result recorded", "job", j.Job.Id, "commit", j.Job.Commit, "build", j.Job.Build, "attempt", res.Attempt, "status", res.Status.Name(), "runner", res.RunnerId),
	}
	return append(fx, c.forward(now, j)...)
}

func (c *Core) forward(now time.Time, j *messages.JobRecord) []actors.Effect {
	if c.reporter == "" {
		return nil
	}
	c.lastSend[j.Job.Id] = now
	return []actors.Effect{actors.Send{To: c.reporter, Msg: &messages.ResultRecorded{Result: messages.CloneResult(j.Result)}}}
}

// requeue puts a job whose attempt ended without a result back in the queue,
// or ends it errored at the attempts cap.
func (c *Core) requeue(now time.Time, j *messages.JobRecord, why string) []actors.Effect {
	j.LastError = why
	j.RunnerId, j.RunnerIncarnation = "", 0
	delete(c.orphans, j.Job.Id)
	if j.CancelRequested {
		return c.finish(now, j, &messages.Result{
			Job: j.Job, Attempt: j.Attempt, Status: messages.Status_STATUS_CANCELLED, QueuedUnixMs: j.QueuedUnixMs,
			Reason: "cancelled; its runner was lost before it stopped (" + why + ")", FinishedUnixMs: now.UnixMilli(), StartedUnixMs: j.AssignedUnixMs,
		})
	}
	if int(j.Attempt) >= c.cfg.MaxAttempts && !plant.On(plant.AttemptCapIgnored) {
		c.counters[CounterGaveUp]++
		return c.finish(now, j, &messages.Result{
			Job: j.Job, Attempt: j.Attempt, Status: messages.Status_STATUS_ERRORED,
			Reason:         fmt.Sprintf("gave up after %d attempts; the last one ended because %s", j.Attempt, why),
			FinishedUnixMs: now.UnixMilli(), StartedUnixMs: j.AssignedUnixMs, QueuedUnixMs: j.QueuedUnixMs,
		})
	}
	j.State = messages.JobState_JOB_STATE_QUEUED
	c.queue = append([]int64{j.Job.Id}, c.queue...) // a reassigned job goes first
	c.counters[CounterReassigned]++
	return []actors.Effect{
		persist(nil, j),
		actors.Info("job re-queued", "job", j.Job.Id, "attempt", j.Attempt, "reason", why),
	}
}

func (c *Core) loseRunner(now time.Time, r *runnerState, why string) []actors.Effect {
	if plant.On(plant.DeadRunnerStaysIdle) {
		defer c.setIdle(r, now)
	} else {
		delete(c.runners, r.id)
		delete(c.byAddr, r.addr)
	}
	c.counters[CounterRunnersLost]++
	c.lost[r.id] = r.incarnation
	fx := []actors.Effect{actors.Unwatch{Addr: r.addr}, actors.Warn("runner lost", "runner", r.id, "incarnation", r.incarnation, "reason", why)}
	if j := c.jobs[r.job]; j != nil && j.State == messages.JobState_JOB_STATE_RUNNING && j.RunnerId == r.id && !plant.On(plant.LostJobNotRequeued) {
		fx = append(fx, c.requeue(now, j, fmt.Sprintf("runner %s was lost (%s)", r.id, why))...)
	}
	return fx
}

func (c *Core) peerTerminated(now time.Time, m actors.PeerTerminated) []actors.Effect {
	if id, ok := c.byAddr[m.Addr]; ok {
		return c.loseRunner(now, c.runners[id], "connection closed")
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
		c.counters[CounterStaleMessages]++
		return nil
	}
	return c.loseRunner(now, r, "runner shut down: "+m.Reason)
}

func (c *Core) tick(now time.Time) []actors.Effect {
	var fx []actors.Effect
	for _, id := range sortedKeys(c.runners) {
		r := c.runners[id]
		if now.Sub(r.lastSeen) > c.cfg.DeadAfter {
			fx = append(fx, c.loseRunner(now, r, fmt.Sprintf("no heartbeat for %s", c.cfg.DeadAfter))...)
		}
	}
	for _, id := range sortedKeys(c.orphans) {
		if deadline := c.orphans[id]; !now.Before(deadline) {
			if j := c.jobs[id]; j != nil && j.State == messages.JobState_JOB_STATE_RUNNING {
				fx = append(fx, c.requeue(now, j, "its runner did not come back after the dispatcher restarted")...)
			}
			delete(c.orphans, id)
		}
	}
	if c.reporter != "" {
		for _, id := range sortedKeys(c.jobs) {
			j := c.jobs[id]
			if j.State == messages.JobState_JOB_STATE_DONE && !j.Forwarded && now.Sub(c.lastSend[id]) >= c.cfg.ResultRetry {
				fx = append(fx, c.forward(now, j)...)
			}
		}
	}
	return fx
}

// setIdle marks r idle and puts it at the back of the idle line.
func (c *Core) setIdle(r *runnerState, now time.Time) {
	r.job = 0
	r.idleSince = now
	c.idleSeq++
	r.idleMark = c.idleSeq
	c.idle = append(c.idle, idleEntry{r: r, mark: r.idleMark})
}

// nextIdle returns the runner idle the longest without taking it off the
// line, skipping entries that no longer hold (lost, busy, or re-queued).
func (c *Core) nextIdle() *runnerState {
	for len(c.idle) > 0 {
		e := c.idle[0]
		if c.runners[e.r.id] == e.r && e.r.job == 0 && e.r.idleMark == e.mark {
			return e.r
		}
		c.idle[0] = idleEntry{}
		c.idle = c.idle[1:]
	}
	return nil
}

// assign hands queued jobs to idle runners, the longest idle first, in time
// independent of the pool's size.
func (c *Core) assign(now time.Time) []actors.Effect {
	var saves []*messages.JobRecord
	var sends []actors.Effect
	for len(c.queue) > 0 {
		r := c.nextIdle()
		if r == nil {
			break
		}
		id := c.queue[0]
		c.queue = c.queue[1:]
		j := c.jobs[id]
		if j == nil || j.State != messages.JobState_JOB_STATE_QUEUED {
			continue
		}
		c.idle[0] = idleEntry{}
		c.idle = c.idle[1:]
		j.State = messages.JobState_JOB_STATE_RUNNING
		j.Attempt++
		j.RunnerId, j.RunnerIncarnation = r.id, r.incarnation
		j.AssignedUnixMs = now.UnixMilli()
		r.job = id
		saves = append(saves, j)
		// Messages get copies: a local receiver must not share what the core mutates.
		run := &messages.RunJob{Job: messages.CloneJob(j.Job), Attempt: j.Attempt, RunnerId: r.id, Incarnation: r.incarnation,
			LogSink: string(c.reporter), TimeoutMs: c.cfg.JobTimeout.Milliseconds(), Epoch: c.cfg.Epoch}
		sends = append(sends, actors.Send{To: r.addr, Msg: run},
			actors.Info("job assigned", "job", id, "commit", j.Job.Commit, "attempt", j.Attempt, "runner", r.id))
	}
	if len(saves) == 0 {
		return nil
	}
	return append([]actors.Effect{persist(nil, saves...)}, sends...)
}

func (c *Core) registerReporter(now time.Time, from actors.Addr, m *messages.RegisterReporter) []actors.Effect {
	reply := &messages.ReporterRegistered{SupportedVersions: messages.SupportedVersions}
	switch {
	case !messages.Supported(m.ProtocolVersion):
		reply.Reason = fmt.Sprintf("protocol version %d is not supported: this dispatcher speaks %v", m.ProtocolVersion, messages.SupportedVersions)
	case !c.tokenOK(m.Token):
		reply.Reason = "wrong or missing token: start the reporter with the dispatcher's --token (or VOLT_TOKEN)"
	}
	if reply.Reason != "" {
		c.counters[CounterRejected]++
		return []actors.Effect{actors.Send{To: from, Msg: reply}}
	}
	var fx []actors.Effect
	if c.reporter != from {
		if c.reporter != "" {
			fx = append(fx, actors.Unwatch{Addr: c.reporter})
		}
		c.reporter = from
		fx = append(fx, actors.Watch{Addr: from}, actors.Info("reporter registered", "addr", string(from)))
	}
	reply.Accepted = true
	fx = append(fx, actors.Send{To: from, Msg: reply})
	for _, id := range sortedKeys(c.jobs) {
		if j := c.jobs[id]; j.State == messages.JobState_JOB_STATE_DONE && !j.Forwarded {
			fx = append(fx, c.forward(now, j)...)
		}
	}
	return fx
}

func (c *Core) resultAcked(m *messages.ResultRecordedAck) []actors.Effect {
	j := c.jobs[m.JobId]
	if j == nil || j.State != messages.JobState_JOB_STATE_DONE || j.Job.Commit != m.Commit || j.Job.Build != m.Build {
		return nil // a duplicate ack
	}
	j.Forwarded = true
	delete(c.jobs, m.JobId)
	c.recent[m.JobId] = recentResult{attempt: j.Result.GetAttempt(), runner: j.Result.GetRunnerId()}
	c.recentOrder = append(c.recentOrder, m.JobId)
	if len(c.recentOrder) > recentMax {
		delete(c.recent, c.recentOrder[0])
		c.recentOrder = c.recentOrder[1:]
	}
	if id, ok := c.byKey[key(j.Job.Repo, j.Job.Commit)]; ok && id == j.Job.Id {
		delete(c.byKey, key(j.Job.Repo, j.Job.Commit))
	}
	delete(c.lastSend, m.JobId)
	c.counters[CounterResultsAcked]++
	return []actors.Effect{persist(nil, j)}
}

func (c *Core) registerObserver(from actors.Addr, m *messages.RegisterObserver) []actors.Effect {
	reply := &messages.ObserverRegistered{SupportedVersions: messages.SupportedVersions}
	switch {
	case !messages.Supported(m.ProtocolVersion):
		reply.Reason = fmt.Sprintf("protocol version %d is not supported: this dispatcher speaks %v", m.ProtocolVersion, messages.SupportedVersions)
	case !c.tokenOK(m.Token):
		reply.Reason = "wrong or missing token: start the observer with the dispatcher's --token (or VOLT_TOKEN)"
	}
	if reply.Reason != "" {
		c.counters[CounterRejected]++
		return []actors.Effect{actors.Send{To: from, Msg: reply}}
	}
	var fx []actors.Effect
	if _, known := c.observers[from]; !known {
		fx = append(fx, actors.Watch{Addr: from}, actors.Info("observer registered", "observer", m.ObserverId, "repos", len(m.Repos)))
	}
	c.observers[from] = &observerState{id: m.ObserverId, repos: m.Repos}
	for _, repo := range m.Repos {
		for _, b := range repo.Branches {
			if cur := c.cursors[key(repo.Url, b)]; cur != nil {
				reply.Cursors = append(reply.Cursors, cur)
			}
		}
	}
	reply.Accepted = true
	return append(fx, actors.Send{To: from, Msg: reply})
}

func (c *Core) observed(now time.Time, from actors.Addr, o Observed) []actors.Effect {
	m := o.Msg
	if _, ok := c.observers[from]; !ok {
		c.counters[CounterRejected]++
		return []actors.Effect{
			actors.Warn("CommitObserved from an unregistered observer: asking it to register", "from", string(from)),
			actors.Send{To: from, Msg: &messages.CommitObservedAck{ObserverId: m.ObserverId, Seq: m.Seq, Repo: m.Repo, Branch: m.Branch, Unknown: true}},
		}
	}
	if err := messages.ValidateRef(m.Branch); err != nil {
		c.counters[CounterRejected]++
		return []actors.Effect{actors.Warn("CommitObserved rejected", "error", err.Error())}
	}
	for _, commit := range m.Commits {
		if err := messages.ValidateCommit(commit); err != nil {
			c.counters[CounterRejected]++
			return []actors.Effect{actors.Warn("CommitObserved rejected", "error", err.Error())}
		}
	}
	ack := &messages.CommitObservedAck{ObserverId: m.ObserverId, Seq: m.Seq, Repo: m.Repo, Branch: m.Branch}
	var saves []*messages.JobRecord
	var fx []actors.Effect
	for i, commit := range m.Commits {
		if plant.On(plant.DuplicateObservedCreatesJobs) {
			o.Archived = nil
		} else if id, ok := c.byKey[key(m.Repo, commit)]; ok {
			j := c.jobs[id]
			if !slices.Contains(j.Job.Branches, m.Branch) {
				j.Job.Branches = append(j.Job.Branches, m.Branch)
				saves = append(saves, j)
			}
			ack.JobIds = append(ack.JobIds, id)
			continue
		}
		if id, ok := o.Archived[commit]; ok {
			ack.JobIds = append(ack.JobIds, id)
			continue
		}
		j := &messages.JobRecord{
			Job: &messages.Job{Id: c.nextID, Repo: m.Repo, RepoName: m.RepoName, Commit: commit,
				Branches: []string{m.Branch}, Build: 1, Subject: subject(m.Subjects, i)},
			State:        messages.JobState_JOB_STATE_QUEUED,
			QueuedUnixMs: now.UnixMilli(),
		}
		c.nextID++
		c.jobs[j.Job.Id] = j
		c.byKey[key(m.Repo, commit)] = j.Job.Id
		c.queue = append(c.queue, j.Job.Id)
		c.counters[CounterJobsQueued]++
		saves = append(saves, j)
		ack.JobIds = append(ack.JobIds, j.Job.Id)
		fx = append(fx, actors.Info("commit queued", "job", j.Job.Id, "repo", m.RepoName, "branch", m.Branch, "commit", commit))
	}
	var curs []*messages.Cursor
	cur := c.cursors[key(m.Repo, m.Branch)]
	if len(m.Commits) > 0 {
		tip := m.Commits[len(m.Commits)-1]
		// Move the cursor only from where the observer computed; a reordered
		// older message must not move it back.
		if cur == nil || cur.Commit == m.Previous || m.Forced {
			if cur == nil || cur.Commit != tip {
				cur = &messages.Cursor{Repo: m.Repo, Branch: m.Branch, Commit: tip}
				c.cursors[key(m.Repo, m.Branch)] = cur
				curs = append(curs, cur)
			}
		}
	}
	if cur != nil {
		ack.Cursor = cur.Commit
	}
	if m.Skipped > 0 {
		fx = append(fx, actors.Warn("backlog capped: older commits skipped", "repo", m.RepoName, "branch", m.Branch, "skipped", m.Skipped))
	}
	if len(saves) > 0 || len(curs) > 0 {
		fx = append([]actors.Effect{persist(curs, saves...)}, fx...)
	}
	return append(fx, actors.Send{To: from, Msg: ack})
}

// subject returns subjects[i] cut to one line of at most 200 bytes.
func subject(subjects []string, i int) string {
	if i >= len(subjects) {
		return ""
	}
	s := subjects[i]
	if n := strings.IndexAny(s, "\r\n"); n >= 0 {
		s = s[:n]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func (c *Core) notify(from actors.Addr, m *messages.Notify) []actors.Effect {
	if !c.tokenOK(m.Token) {
		c.counters[CounterRejected]++
		return []actors.Effect{actors.Send{To: from, Msg: &messages.NotifyAck{Observers: -1}}}
	}
	var fx []actors.Effect
	addrs := sortedKeys(c.observers)
	for _, a := range addrs {
		fx = append(fx, actors.Send{To: a, Msg: &messages.PollNow{Repo: m.Repo, Branch: m.Branch}})
	}
	return append(fx, actors.Send{To: from, Msg: &messages.NotifyAck{Observers: int32(len(addrs))}})
}

func (c *Core) cancel(now time.Time, from actors.Addr, m *messages.CancelRequest) []actors.Effect {
	reply := &messages.CancelReply{JobId: m.JobId}
	j := c.jobs[m.JobId]
	switch {
	case !c.tokenOK(m.Token):
		reply.Error = "wrong or missing token: cancelling needs the dispatcher's --token"
	case j == nil || j.State == messages.JobState_JOB_STATE_DONE:
		reply.Error = fmt.Sprintf("job %d is not queued or running", m.JobId)
	}
	if reply.Error != "" {
		return []actors.Effect{actors.Send{To: from, Msg: reply}}
	}
	who := m.Who
	if who == "" {
		who = "a user"
	}
	if j.State == messages.JobState_JOB_STATE_QUEUED {
		fx := c.finish(now, j, &messages.Result{Job: j.Job, Attempt: j.Attempt, Status: messages.Status_STATUS_CANCELLED,
			Reason: "cancelled by " + who + " while queued", FinishedUnixMs: now.UnixMilli(), QueuedUnixMs: j.QueuedUnixMs})
		return append(fx, actors.Send{To: from, Msg: reply})
	}
	j.CancelRequested = true
	var fx []actors.Effect
	fx = append(fx, persist(nil, j), actors.Info("cancel requested", "job", j.Job.Id, "attempt", j.Attempt, "by", who))
	if r := c.runners[j.RunnerId]; r != nil && r.job == j.Job.Id {
		fx = append(fx, actors.Send{To: r.addr, Msg: &messages.CancelJob{
			Ref: &messages.JobRef{JobId: j.Job.Id, Attempt: j.Attempt}, Reason: "cancelled by " + who, Report: true}})
	}
	return append(fx, actors.Send{To: from, Msg: reply})
}

func (c *Core) rebuild(now time.Time, from actors.Addr, m Rebuild) []actors.Effect {
	reply := &messages.RebuildReply{}
	send := func() []actors.Effect { return []actors.Effect{actors.Send{To: from, Msg: reply}} }
	switch {
	case !c.tokenOK(m.Msg.Token):
		reply.Error = "wrong or missing token: rebuilding needs the dispatcher's --token"
		return send()
	case messages.ValidateCommit(m.Msg.Commit) != nil:
		reply.Error = messages.ValidateCommit(m.Msg.Commit).Error()
		return send()
	case m.Prev == nil:
		reply.Error = fmt.Sprintf("commit %s of %s was never built here: nothing to rebuild", m.Msg.Commit, m.Msg.Repo)
		return send()
	}
	if id, ok := c.byKey[key(m.Msg.Repo, m.Msg.Commit)]; ok {
		if j := c.jobs[id]; j != nil && j.State != messages.JobState_JOB_STATE_DONE {
			reply.Error = fmt.Sprintf("commit %s is already %s as job %d", m.Msg.Commit, j.State.Name(), id)
			return send()
		}
	}
	build := m.Prev.Build + 1
	if id, ok := c.byKey[key(m.Msg.Repo, m.Msg.Commit)]; ok && c.jobs[id] != nil && c.jobs[id].Job.Build >= build {
		build = c.jobs[id].Job.Build + 1
	}
	j := &messages.JobRecord{
		Job: &messages.Job{Id: c.nextID, Repo: m.Prev.Repo, RepoName: m.Prev.RepoName, Commit: m.Prev.Commit,
			Branches: append([]string(nil), m.Prev.Branches...), Build: build, Subject: m.Prev.Subject},
		State: messages.JobState_JOB_STATE_QUEUED, QueuedUnixMs: now.UnixMilli(),
	}
	c.nextID++
	c.jobs[j.Job.Id] = j
	c.byKey[key(j.Job.Repo, j.Job.Commit)] = j.Job.Id
	c.queue = append(c.queue, j.Job.Id)
	c.counters[CounterJobsQueued]++
	reply.JobId, reply.Build = j.Job.Id, build
	return []actors.Effect{
		persist(nil, j),
		actors.Info("rebuild queued", "job", j.Job.Id, "commit", j.Job.Commit, "build", build, "by", m.Msg.Who),
		actors.Send{To: from, Msg: reply},
	}
}

func (c *Core) status(from actors.Addr, m *messages.StatusRequest) []actors.Effect {
	s := c.Status()
	if m.OpenOnly {
		s.Jobs = slices.DeleteFunc(s.Jobs, func(j *messages.JobRecord) bool { return j.State == messages.JobState_JOB_STATE_DONE })
	}
	return []actors.Effect{actors.Send{To: from, Msg: s}}
}

// Status describes the runners, the jobs in memory and the counters.
func (c *Core) Status() *messages.StatusReply {
	s := &messages.StatusReply{Role: "dispatcher", Reporter: string(c.reporter), Counters: map[string]int64{}}
	for _, id := range sortedKeys(c.runners) {
		r := c.runners[id]
		rs := &messages.RunnerStatus{RunnerId: r.id, Incarnation: r.incarnation, Address: string(r.addr),
			State: "idle", LastHeartbeatUnixMs: r.lastSeen.UnixMilli()}
		if j := c.jobs[r.job]; r.job != 0 && j != nil {
			rs.State = "busy"
			rs.Job = &messages.JobRef{JobId: r.job, Attempt: j.Attempt}
		}
		s.Runners = append(s.Runners, rs)
	}
	for _, id := range sortedKeys(c.jobs) {
		s.Jobs = append(s.Jobs, messages.CloneJobRecord(c.jobs[id]))
	}
	for _, a := range sortedKeys(c.observers) {
		s.Observers = append(s.Observers, c.observers[a].id)
	}
	for k, v := range c.counters {
		s.Counters[k] = v
	}
	s.Counters["queued"] = int64(len(c.queue))
	return s
}

// Deadline is the next time the core needs a Tick (zero for none). The
// simulator ticks only then; production ticks on a fixed interval.
func (c *Core) Deadline() time.Time {
	var d time.Time
	for _, r := range c.runners {
		d = actors.Earliest(d, r.lastSeen.Add(c.cfg.DeadAfter+time.Nanosecond))
	}
	for _, at := range c.orphans {
		d = actors.Earliest(d, at)
	}
	if c.reporter != "" {
		for id, j := range c.jobs {
			if j.State == messages.JobState_JOB_STATE_DONE && !j.Forwarded {
				d = actors.Earliest(d, c.lastSend[id].Add(c.cfg.ResultRetry))
			}
		}
	}
	return d
}

// Counter returns one counter's value.
func (c *Core) Counter(name string) int64 { return c.counters[name] }

func sortedKeys[K ~string | ~int64, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
