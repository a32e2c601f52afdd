package dispatcher

import (
	"cmp"
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

// Config holds the dispatcher's timers and limits (docs/contract.md, Liveness and leases).
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
	// LogKey signs each RunJob's log ticket (messages.LogTicket) and is
	// handed to the reporter when it registers, so that it keeps a log
	// chunk only from the runner that was given the attempt. Kept in a
	// file beside the CA, so that tickets survive a dispatcher restart.
	LogKey []byte
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
// durable before carrying out the effects that follow it. It has a Batch's
// fields; the shell gathers many Persists into one Batch.
type Persist Batch

// A job's Job and Result are never changed once made: a change (a new
// branch) makes new ones. Snapshots, RunJob and ResultRecorded share them
// instead of copying them, and neither the shell, the store nor a local
// receiver may change them either.

// copyRecord copies src's fields into dst, sharing Job and Result. Persist
// effects carry such snapshots: the core goes on changing its records
// within the same step (an observed job is assigned at once), and what is
// written must be the state at this point, not a later one.
func copyRecord(dst, src *messages.JobRecord) *messages.JobRecord {
	dst.Job, dst.State, dst.Attempt, dst.RunnerId = src.Job, src.State, src.Attempt, src.RunnerId
	dst.RunnerIncarnation, dst.Result, dst.Forwarded = src.RunnerIncarnation, src.Result, src.Forwarded
	dst.QueuedUnixMs, dst.AssignedUnixMs, dst.LastError, dst.CancelRequested = src.QueuedUnixMs, src.AssignedUnixMs, src.LastError, src.CancelRequested
	dst.Released = src.Released
	return dst
}

// persistOne is a Persist of one job's snapshot, made in one allocation.
func persistOne(cursors []*messages.Cursor, j *job) Persist {
	s := new(struct {
		rec  messages.JobRecord
		jobs [1]*messages.JobRecord
	})
	copyRecord(&s.rec, &j.JobRecord)
	s.jobs[0] = &s.rec
	return Persist{Cursors: cursors, Jobs: s.jobs[:]}
}

// persist is a Persist of the snapshots of jobs.
func persist(cursors []*messages.Cursor, jobs []*job) Persist {
	if len(jobs) == 1 {
		return persistOne(cursors, jobs[0])
	}
	recs := make([]messages.JobRecord, len(jobs))
	p := Persist{Cursors: cursors, Jobs: make([]*messages.JobRecord, len(jobs))}
	for i, j := range jobs {
		p.Jobs[i] = copyRecord(&recs[i], &j.JobRecord)
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

// runnerState is a registered runner: kept small, as a dispatcher holds
// one for each of thousands of mostly idle runners. Its id and address are
// the strings its registration carried, shared with the keys of
// Core.runners and Core.byAddr; its incarnation is the highest seen for
// its id (Core.incarnations holds those of runners not registered).
type runnerState struct {
	id          string
	addr        actors.Addr
	incarnation int64
	job         int64 // 0 when idle
	seen        int64 // last heard from: nanoseconds after Core.base
	alive       links[runnerState]
	idle        links[runnerState]
}

// job is a job record with the core's bookkeeping around it.
type job struct {
	messages.JobRecord
	sent   int64 // when its result was last sent to the reporter: nanoseconds after Core.base
	unsent links[job]
	resent links[job]
	// The arguments of its trace notes, each made an interface once.
	idArg, commitArg, runnerArg any
}

// maxFreeReleases bounds how many graceful releases of one job
// (JobRecord.Released: attempts given back by runners that shut down
// gracefully, durable with the job) are not counted against MaxAttempts, so that runners restarted over and over
// cannot keep a build from ending.
const maxFreeReleases = 10

// noteArgs returns j's id and commit as note arguments.
func (j *job) noteArgs() (id, commit any) {
	if j.idArg == nil {
		j.idArg, j.commitArg = j.Job.Id, j.Job.Commit
	}
	return j.idArg, j.commitArg
}

// statusArgs are the status names as note arguments.
var statusArgs = func() (a [6]any) {
	for s := range a {
		a[s] = messages.Status(s).Name()
	}
	return a
}()

func statusArg(s messages.Status) any {
	if int(s) >= 0 && int(s) < len(statusArgs) {
		return statusArgs[s]
	}
	return s.Name()
}

// newJob returns a job of commit, queued at now, with its Job and its one
// branch made in one allocation.
func newJob(id int64, repo, repoName, commit, branch, subject string, build int32, queuedMs int64) *job {
	b := new(struct {
		job      messages.Job
		branches [1]string
	})
	b.branches[0] = branch
	b.job = messages.Job{Id: id, Repo: repo, RepoName: repoName, Commit: commit, Branches: b.branches[:], Build: build, Subject: subject}
	return &job{JobRecord: messages.JobRecord{Job: &b.job, State: messages.JobState_JOB_STATE_QUEUED, QueuedUnixMs: queuedMs}}
}

type observerState struct {
	id    string
	repos []*messages.WatchedRepo
}

type recentResult struct {
	attempt     int32
	runner      string
	incarnation int64
}

// recentMax bounds Core.recent.
const recentMax = 1024

// pair keys a map by two strings: repo and commit, or repo and branch.
type pair struct{ a, b string }

// Core is the dispatcher's deterministic state machine. No step walks the
// runners or the jobs: runners stand in a line ordered by when they were
// last heard from and idle runners in a line ordered by when they became
// idle; results awaiting the reporter's acknowledgement stand in lines
// ordered by when they were last sent. Deadline and Tick look only at the
// front of each line.
type Core struct {
	cfg Config
	// base is the time runner and result times count from (the first now
	// seen): an int64 is a third of a time.Time.
	base time.Time

	jobs    map[int64]*job            // unfinished, or finished and not forwarded
	byKey   map[pair]int64            // repo, commit -> newest active job id
	queue   ring[int64]               // queued job ids, in order
	cursors map[pair]*messages.Cursor // repo, branch
	nextID  int64

	runners      index             // by id
	alive        line[runnerState] // every runner, the longest unheard first
	idle         line[runnerState] // idle runners in the order they became idle
	byAddr       index             // by address
	incarnations map[string]int64  // highest incarnation seen per runner id not registered (durable)
	lost         map[string]int64  // incarnation of each runner this core declared lost

	orphans   map[int64]time.Time // running jobs recovered without a runner: deadline to be claimed
	orphanDue time.Time           // the earliest of those deadlines (or earlier)
	orphansOf map[string][]int64  // runner id -> its orphans' ids, ascending (some no longer orphans)

	observers map[actors.Addr]*observerState
	reporter  actors.Addr
	unsent    line[job] // finished, not forwarded, never sent to the reporter, in the order they finished
	sent      line[job] // finished, not forwarded, sent: the longest ago first
	// recent remembers the last forwarded results (job id -> attempt and
	// runner), so that a late duplicate JobFinished is acknowledged as the
	// recorded result rather than counted as stale; recentIDs holds their
	// ids, oldest first, from recentHead on.
	recent     map[int64]recentResult
	recentIDs  [recentMax]int64
	recentHead int

	counters [nCounters]int64

	// The last repository name and branch observed, as note arguments.
	repoName, branch       string
	repoNameArg, branchArg any
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
	// CounterForgedRefused counts inputs refused because the identity that
	// sent them may not (see permit).
	CounterForgedRefused = "forged_refused"
)

// counter indexes Core.counters.
type counter int

const (
	cRecorded counter = iota
	cStale
	cReassigned
	cRunnersLost
	cGaveUp
	cRejected
	cJobsQueued
	cResultsAcked
	cStaleMessages
	cForgedRefused
	nCounters
)

var counterNames = [nCounters]string{CounterRecorded, CounterStale, CounterReassigned, CounterRunnersLost,
	CounterGaveUp, CounterRejected, CounterJobsQueued, CounterResultsAcked, CounterStaleMessages, CounterForgedRefused}

// New returns a dispatcher core with nothing recovered yet; call Recover.
func New(cfg Config) *Core {
	c := &Core{
		cfg:          cfg,
		jobs:         map[int64]*job{},
		byKey:        map[pair]int64{},
		cursors:      map[pair]*messages.Cursor{},
		runners:      newIndex(false),
		byAddr:       newIndex(true),
		incarnations: map[string]int64{},
		lost:         map[string]int64{},
		orphans:      map[int64]time.Time{},
		orphansOf:    map[string][]int64{},
		observers:    map[actors.Addr]*observerState{},
		recent:       map[int64]recentResult{},
		nextID:       1,
	}
	c.alive.at = func(r *runnerState) *links[runnerState] { return &r.alive }
	c.idle.at = func(r *runnerState) *links[runnerState] { return &r.idle }
	c.unsent.at = func(j *job) *links[job] { return &j.unsent }
	c.sent.at = func(j *job) *links[job] { return &j.resent }
	return c
}

// at is now as nanoseconds after c.base.
func (c *Core) at(now time.Time) int64 {
	if c.base.IsZero() {
		c.base = now
	}
	return int64(now.Sub(c.base))
}

// time is the inverse of at.
func (c *Core) time(t int64) time.Time { return c.base.Add(time.Duration(t)) }

func seenKey(r *runnerState) int64 { return r.seen }
func sentKey(j *job) int64         { return j.sent }

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

// Recover loads the durable state after a (re)start. Jobs that were running
// wait DeadAfter for their runner to re-register and claim them, then go
// back to the queue.
func (c *Core) Recover(now time.Time, d Durable) []actors.Effect {
	c.at(now)
	recs := d.Jobs
	c.nextID = d.MaxID + 1
	for _, cur := range d.Cursors {
		c.cursors[pair{cur.Repo, cur.Branch}] = cur
	}
	for _, r := range d.Incarnations {
		c.incarnations[r.RunnerId] = r.Incarnation
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Job.Id < recs[j].Job.Id })
	queued, running := 0, 0
	for _, rec := range recs {
		j := &job{}
		copyRecord(&j.JobRecord, rec)
		c.jobs[j.Job.Id] = j
		c.byKey[pair{j.Job.Repo, j.Job.Commit}] = j.Job.Id
		switch j.State {
		case messages.JobState_JOB_STATE_QUEUED:
			if plant.On(plant.QueueNotRestored) {
				delete(c.jobs, j.Job.Id)
				continue
			}
			c.queue.pushBack(j.Job.Id)
			queued++
		case messages.JobState_JOB_STATE_RUNNING:
			c.orphans[j.Job.Id] = now.Add(c.cfg.DeadAfter)
			c.orphanDue = now.Add(c.cfg.DeadAfter)
			c.orphansOf[j.RunnerId] = append(c.orphansOf[j.RunnerId], j.Job.Id)
			running++
		case messages.JobState_JOB_STATE_DONE:
			if !j.Forwarded {
				c.unsent.pushBack(j)
			}
		}
	}
	return []actors.Effect{actors.Info("dispatcher recovered its queue", "queued", queued, "running", running, "next_job_id", c.nextID)}
}

// Step handles one input: a message from a peer, a Tick, a PeerTerminated
// or an Observed. from is its sender: the address replies go to and the
// identity its connection proved. An input that identity may not send (see
// permit) changes nothing and is answered with nothing: it is counted
// (forged_refused) and noted.
func (c *Core) Step(now time.Time, sender actors.From, in any) []actors.Effect {
	if why := c.permit(sender, in); why != "" {
		c.counters[cForgedRefused]++
		return []actors.Effect{actors.Refused(sender, in, why)}
	}
	from := sender.Addr
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
	case SecretAsk, *messages.SecretRequest, *messages.SecretSet, *messages.SecretDelete, *messages.SecretList:
		fx = c.secret(sender, in) // secrets.go
	default:
		c.counters[cRejected]++
		return []actors.Effect{actors.Warn("dispatcher ignored an unknown message", "type", fmt.Sprintf("%T", in), "from", string(from))}
	}
	return c.assign(now, fx)
}

// permit says why the sender may not send in, or "" when it may: issue
// 10's role table, checked against the identity the connection proved, never
// against the sender the message claims. It runs before anything changes.
//
//   - RegisterRunner, Heartbeat, JobFinished, RunnerStopping: only the runner
//     they name (its certificate's name is its runner id). A JobFinished is
//     then fenced by its record: recorded only from the runner, incarnation
//     and attempt the job is assigned to.
//   - RegisterObserver, CommitObserved: an observer. Observer ids are not
//     certificate names (`volt observer` names itself HOST/ADDRESS, its
//     certificate names the host; `volt up`'s is "up"), so only the role is
//     checked.
//   - RegisterReporter, ResultRecordedAck: the reporter.
//   - Notify: notify (a post-receive hook), admin, the reporter (the webhook)
//     or an observer.
//   - StatusRequest, CancelRequest, RebuildRequest: admin, or the reporter
//     on behalf of a web user. Cancel and rebuild still need the token.
//   - Tick and PeerTerminated: only this process makes them.
//   - Anything else: no one but this process (which hears it is unknown),
//     so that a message type added to Step without a rule here is refused,
//     not open to all.
//
// The local role (every role of `volt up` in one process) may send anything;
// the zero Identity (an unauthenticated peer) nothing.
func (c *Core) permit(from actors.From, in any) string {
	if plant.On(plant.DispatcherTrustsClaimedSender) {
		return ""
	}
	who := from.Who
	switch m := in.(type) {
	case actors.Tick, actors.PeerTerminated:
		if !who.IsLocal() {
			return "only this process makes it"
		}
	case *messages.RegisterRunner:
		return asRunner(who, m.RunnerId)
	case *messages.Heartbeat:
		return asRunner(who, m.RunnerId)
	case *messages.JobFinished:
		return asRunner(who, m.RunnerId)
	case *messages.RunnerStopping:
		return asRunner(who, m.RunnerId)
	case *messages.RegisterObserver, *messages.CommitObserved, Observed:
		if !who.Is(actors.RoleObserver) {
			return "only an observer reports commits"
		}
	case *messages.RegisterReporter, *messages.ResultRecordedAck:
		if !who.Is(actors.RoleReporter) {
			return "only the reporter records results"
		}
	case *messages.Notify:
		if !who.IsAny(actors.RoleNotify, actors.RoleAdmin, actors.RoleReporter, actors.RoleObserver) {
			return "only notify, admin, the reporter or an observer may ask for a poll"
		}
	case *messages.StatusRequest:
		if !who.IsAny(actors.RoleAdmin, actors.RoleReporter) {
			return "only admin or the reporter may read the status"
		}
	case *messages.CancelRequest, Rebuild, *messages.RebuildRequest:
		if !who.IsAny(actors.RoleAdmin, actors.RoleReporter) {
			return "only admin or the reporter may cancel or rebuild"
		}
	case SecretAsk, *messages.SecretRequest, *messages.SecretSet, *messages.SecretDelete, *messages.SecretList:
		return secretPermit(who, in) // secrets.go
	default:
		if !who.IsLocal() {
			return "not a message the dispatcher takes from anyone"
		}
	}
	return ""
}

// asRunner says why who may not speak as runner id ("" when it may).
func asRunner(who actors.Identity, id string) string {
	switch {
	case who.IsRunner(id):
		return ""
	case who.Role == actors.RoleRunner:
		return fmt.Sprintf("runner %q may speak only for itself, not for %q", who.Name, id)
	}
	return "only runner " + fmt.Sprintf("%q", id) + " may send it"
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
		c.counters[cRejected]++
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
	case m.Incarnation < c.incarnation(m.RunnerId):
		return reject(fmt.Sprintf("incarnation %d is older than %d, which already registered", m.Incarnation, c.incarnation(m.RunnerId)))
	}
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
	// Adopt what the runner still runs if it is the current attempt; cancel the rest.
	var saves []*job
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
			c.busy(r, ref.JobId)
			continue
		}
		fx = append(fx, actors.Send{To: from, Msg: &messages.CancelJob{Ref: ref, Reason: "superseded: the dispatcher no longer assigns this attempt to you"}})
	}
	if len(saves) > 0 {
		fx = append([]actors.Effect{persist(nil, saves)}, fx...)
	}
	// A job assigned to this runner that the registration does not list is
	// left to the heartbeat check: the registration may have been sent
	// before the RunJob arrived. A job recovered as running on this runner
	// that it no longer reports is lost, though: no RunJob of this epoch
	// exists for it, and the runner ignores those of other epochs.
	if ids, ok := c.orphansOf[r.id]; ok {
		delete(c.orphansOf, r.id)
		for _, id := range ids {
			if _, orphan := c.orphans[id]; !orphan {
				continue
			}
			if j := c.jobs[id]; j != nil && j.RunnerId == r.id && r.job != id {
				fx = append(fx, c.requeue(now, j, fmt.Sprintf("runner %s came back without it", r.id))...)
			}
		}
	}
	if r.job == 0 {
		c.setIdle(r)
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
			fx := c.requeue(now, j, "the runner never started it (RunJob lost in transit?)")
			c.setIdle(r)
			return append(fx, actors.Send{To: from, Msg: ack})
		}
	}
	return []actors.Effect{actors.Send{To: from, Msg: ack}}
}

func (c *Core) jobFinished(now time.Time, from actors.Addr, m *messages.JobFinished) []actors.Effect {
	res := m.Result
	if res == nil || res.Job == nil {
		c.counters[cRejected]++
		return []actors.Effect{actors.Warn("malformed JobFinished ignored", "from", string(from))}
	}
	a := new(struct {
		ack messages.JobFinishedAck
		ref messages.JobRef
	})
	a.ref.JobId, a.ref.Attempt = res.Job.Id, res.Attempt
	fin := &a.ack
	fin.Ref = &a.ref
	ack := actors.Send{To: from, Msg: fin}
	j := c.jobs[res.Job.Id]
	r := c.current(m.RunnerId, m.Incarnation)
	if j != nil && j.State == messages.JobState_JOB_STATE_DONE && j.Result != nil &&
		j.Result.Attempt == res.Attempt && j.Result.RunnerId == m.RunnerId && j.RunnerIncarnation == m.Incarnation {
		fin.Recorded = true // a duplicate of what we recorded
		return []actors.Effect{ack}
	}
	if r == nil && c.runners.get(m.RunnerId) == nil && m.Incarnation >= c.incarnation(m.RunnerId) && c.lost[m.RunnerId] != m.Incarnation {
		// Unknown after a restart of ours: have it register first; it keeps
		// the outcome and sends it again once registered (and re-adopted).
		// Like a heartbeat's, the answer carries no epoch.
		return []actors.Effect{actors.Send{To: from, Msg: &messages.HeartbeatAck{
			RunnerId: m.RunnerId, Incarnation: m.Incarnation, Unknown: true}}}
	}
	if rr, ok := c.recent[res.Job.Id]; ok && j == nil && rr.attempt == res.Attempt && rr.runner == m.RunnerId && rr.incarnation == m.Incarnation {
		fin.Recorded = true // a duplicate of what we recorded and forwarded
		return []actors.Effect{ack}
	}
	if j == nil || r == nil || j.State != messages.JobState_JOB_STATE_RUNNING ||
		((j.Attempt != res.Attempt || j.RunnerId != m.RunnerId || j.RunnerIncarnation != m.Incarnation) && !plant.On(plant.ResultsNotFenced)) {
		c.counters[cStale]++
		return []actors.Effect{
			actors.Warn("stale result ignored", "job", res.Job.Id, "attempt", res.Attempt, "runner", m.RunnerId, "incarnation", m.Incarnation),
			ack,
		}
	}
	c.heard(r, now)
	c.setIdle(r)
	final := &messages.Result{
		Job: j.Job, Attempt: j.Attempt, RunnerId: m.RunnerId, Status: res.Status, Reason: res.Reason,
		ExitCode: res.ExitCode, StartedUnixMs: res.StartedUnixMs, FinishedUnixMs: res.FinishedUnixMs,
		FailedStep: res.FailedStep, LogBytes: res.LogBytes, LogDropped: res.LogDropped, QueuedUnixMs: j.QueuedUnixMs,
	}
	fx := c.finish(now, make([]actors.Effect, 0, 6), j, final)
	fin.Recorded = true
	return append(fx, ack)
}

// finish records the one final result of j and forwards it.
func (c *Core) finish(now time.Time, fx []actors.Effect, j *job, res *messages.Result) []actors.Effect {
	j.State = messages.JobState_JOB_STATE_DONE
	j.Result = res
	delete(c.orphans, j.Job.Id)
	c.counters[cRecorded]++
	c.unsent.pushBack(j)
	id, commit := j.noteArgs()
	runner := j.runnerArg
	if s, ok := runner.(string); !ok || s != res.RunnerId {
		runner = res.RunnerId
	}
	fx = append(fx,
		persistOne(nil, j),
		actors.Info("result recorded", "job", id, "commit", commit, "build", j.Job.Build, "attempt", res.Attempt, "status", statusArg(res.Status), "runner", runner),
	)
	return c.forward(now, fx, j)
}

// forward sends j's result to the reporter, if there is one.
func (c *Core) forward(now time.Time, fx []actors.Effect, j *job) []actors.Effect {
	if c.reporter == "" {
		return fx
	}
	c.unsent.remove(j)
	j.sent = c.at(now)
	c.sent.place(j, sentKey)
	return append(fx, actors.Send{To: c.reporter, Msg: &messages.ResultRecorded{Result: j.Result}})
}

// requeue puts a job whose attempt ended without a result back in the queue,
// or ends it errored at the attempts cap.
func (c *Core) requeue(now time.Time, j *job, why string) []actors.Effect {
	j.LastError = why
	j.RunnerId, j.RunnerIncarnation = "", 0
	delete(c.orphans, j.Job.Id)
	if j.CancelRequested {
		return c.finish(now, nil, j, &messages.Result{
			Job: j.Job, Attempt: j.Attempt, Status: messages.Status_STATUS_CANCELLED, QueuedUnixMs: j.QueuedUnixMs,
			Reason: "cancelled; its runner was lost before it stopped (" + why + ")", FinishedUnixMs: now.UnixMilli(), StartedUnixMs: j.AssignedUnixMs,
		})
	}
	if int(j.Attempt-j.Released) >= c.cfg.MaxAttempts && !plant.On(plant.AttemptCapIgnored) {
		c.counters[cGaveUp]++
		return c.finish(now, nil, j, &messages.Result{
			Job: j.Job, Attempt: j.Attempt, Status: messages.Status_STATUS_ERRORED,
			Reason:         fmt.Sprintf("gave up after %d attempts; the last one ended because %s", j.Attempt, why),
			FinishedUnixMs: now.UnixMilli(), StartedUnixMs: j.AssignedUnixMs, QueuedUnixMs: j.QueuedUnixMs,
		})
	}
	j.State = messages.JobState_JOB_STATE_QUEUED
	c.queue.pushFront(j.Job.Id) // a reassigned job goes first
	c.counters[cReassigned]++
	return []actors.Effect{
		persistOne(nil, j),
		actors.Info("job re-queued", "job", j.Job.Id, "attempt", j.Attempt, "reason", why),
	}
}

func (c *Core) loseRunner(now time.Time, r *runnerState, why string) []actors.Effect {
	if plant.On(plant.DeadRunnerStaysIdle) {
		defer c.setIdle(r)
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
	if j := c.jobs[r.job]; j != nil && j.State == messages.JobState_JOB_STATE_RUNNING && j.RunnerId == r.id && !plant.On(plant.LostJobNotRequeued) {
		fx = append(fx, c.requeue(now, j, fmt.Sprintf("runner %s was lost (%s)", r.id, why))...)
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
	if j := c.jobs[r.job]; j != nil && j.State == messages.JobState_JOB_STATE_RUNNING && j.RunnerId == r.id && j.Released < maxFreeReleases {
		gaveBack := slices.ContainsFunc(m.Released, func(ref *messages.JobRef) bool {
			return ref.GetJobId() == j.Job.Id && ref.GetAttempt() == j.Attempt
		})
		if gaveBack {
			j.Released++ // made durable by the requeue's Persist
		}
	}
	return c.loseRunner(now, r, "runner shut down: "+m.Reason)
}

// tick acts on the deadlines that have passed. It looks only at the fronts
// of the lines, so a tick with nothing due costs O(1).
func (c *Core) tick(now time.Time) []actors.Effect {
	var fx []actors.Effect
	t := c.at(now)
	var dead []*runnerState
	for r := c.alive.head; r != nil && t-r.seen > int64(c.cfg.DeadAfter); r = r.alive.next {
		dead = append(dead, r)
	}
	slices.SortFunc(dead, func(a, b *runnerState) int { return strings.Compare(a.id, b.id) })
	for _, r := range dead {
		fx = append(fx, c.loseRunner(now, r, fmt.Sprintf("no heartbeat for %s", c.cfg.DeadAfter))...)
	}
	if len(c.orphans) > 0 && !now.Before(c.orphanDue) {
		var next time.Time
		for _, id := range sortedKeys(c.orphans) {
			if deadline := c.orphans[id]; !now.Before(deadline) {
				if j := c.jobs[id]; j != nil && j.State == messages.JobState_JOB_STATE_RUNNING {
					fx = append(fx, c.requeue(now, j, "its runner did not come back after the dispatcher restarted")...)
				}
				delete(c.orphans, id)
			} else {
				next = actors.Earliest(next, deadline)
			}
		}
		c.orphanDue = next
	}
	if c.reporter != "" {
		var due []*job
		for j := c.unsent.head; j != nil; j = j.unsent.next {
			due = append(due, j) // never sent: due at once
		}
		for j := c.sent.head; j != nil && t-j.sent >= int64(c.cfg.ResultRetry); j = j.resent.next {
			due = append(due, j)
		}
		slices.SortFunc(due, func(a, b *job) int { return cmp.Compare(a.Job.Id, b.Job.Id) })
		for _, j := range due {
			fx = c.forward(now, fx, j)
		}
	}
	return fx
}

// setIdle marks r idle and puts it at the back of the idle line.
func (c *Core) setIdle(r *runnerState) {
	r.job = 0
	c.idle.remove(r)
	c.idle.pushBack(r)
}

// busy marks r as running job id.
func (c *Core) busy(r *runnerState, id int64) {
	r.job = id
	c.idle.remove(r)
}

// nextIdle returns the runner idle the longest without taking it off the
// line, dropping runners that no longer hold (replaced by a newer
// incarnation while left in the line).
func (c *Core) nextIdle() *runnerState {
	for r := c.idle.head; r != nil; r = c.idle.head {
		if c.runners.get(r.id) == r && r.job == 0 {
			return r
		}
		c.idle.remove(r)
	}
	return nil
}

// assign hands queued jobs to idle runners, the longest idle first, in time
// independent of the pool's size, and appends its effects to fx.
func (c *Core) assign(now time.Time, fx []actors.Effect) []actors.Effect {
	if c.queue.len() == 0 || c.idle.head == nil {
		return fx
	}
	var one *job
	var saves []*job
	slot := len(fx)
	for c.queue.len() > 0 {
		r := c.nextIdle()
		if r == nil {
			break
		}
		id := c.queue.popFront()
		j := c.jobs[id]
		if j == nil || j.State != messages.JobState_JOB_STATE_QUEUED {
			continue
		}
		c.busy(r, id)
		j.State = messages.JobState_JOB_STATE_RUNNING
		j.Attempt++
		j.RunnerId, j.RunnerIncarnation = r.id, r.incarnation
		j.AssignedUnixMs = now.UnixMilli()
		switch {
		case one == nil:
			one = j
			fx = append(fx, nil) // the Persist, filled in below
		case saves == nil:
			saves = append(make([]*job, 0, c.queue.len()+2), one, j)
		default:
			saves = append(saves, j)
		}
		// Job is shared: the core never changes it (see snapshot).
		run := &messages.RunJob{Job: j.Job, Attempt: j.Attempt, RunnerId: r.id, Incarnation: r.incarnation,
			LogSink: string(c.reporter), TimeoutMs: c.cfg.JobTimeout.Milliseconds(), Epoch: c.cfg.Epoch,
			LogTicket: messages.LogTicket(c.cfg.LogKey, j.Job, j.Attempt, r.id)}
		idArg, commitArg := j.noteArgs()
		j.runnerArg = r.id
		fx = append(fx, actors.Send{To: r.addr, Msg: run},
			actors.Info("job assigned", "job", idArg, "commit", commitArg, "attempt", j.Attempt, "runner", j.runnerArg))
	}
	switch {
	case one == nil:
	case saves == nil:
		fx[slot] = persistOne(nil, one)
	default:
		fx[slot] = persist(nil, saves)
	}
	return fx
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
		c.counters[cRejected]++
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
	reply.LogKey = c.cfg.LogKey // only ever to the proven reporter: permit
	fx = append(fx, actors.Send{To: from, Msg: reply})
	// Every result not yet acknowledged, in job order: one send each.
	var pending []*job
	for j := c.unsent.head; j != nil; j = j.unsent.next {
		pending = append(pending, j)
	}
	for j := c.sent.head; j != nil; j = j.resent.next {
		pending = append(pending, j)
	}
	slices.SortFunc(pending, func(a, b *job) int { return cmp.Compare(a.Job.Id, b.Job.Id) })
	for _, j := range pending {
		fx = c.forward(now, fx, j)
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
	c.unsent.remove(j)
	c.sent.remove(j)
	c.remember(m.JobId, recentResult{attempt: j.Result.GetAttempt(), runner: j.Result.GetRunnerId(), incarnation: j.RunnerIncarnation})
	k := pair{j.Job.Repo, j.Job.Commit}
	if id, ok := c.byKey[k]; ok && id == j.Job.Id {
		delete(c.byKey, k)
	}
	c.counters[cResultsAcked]++
	// The record leaves the core: it is written as it is, not copied.
	b := new(struct {
		fx   [1]actors.Effect
		jobs [1]*messages.JobRecord
	})
	b.jobs[0] = &j.JobRecord
	b.fx[0] = Persist{Jobs: b.jobs[:]}
	return b.fx[:]
}

// remember adds a forwarded result to c.recent, forgetting the oldest
// beyond recentMax.
func (c *Core) remember(id int64, rr recentResult) {
	n := len(c.recent)
	c.recent[id] = rr
	if n < recentMax {
		c.recentIDs[(c.recentHead+n)%recentMax] = id
		return
	}
	delete(c.recent, c.recentIDs[c.recentHead])
	c.recentIDs[c.recentHead] = id
	c.recentHead = (c.recentHead + 1) % recentMax
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
		c.counters[cRejected]++
		return []actors.Effect{actors.Send{To: from, Msg: reply}}
	}
	var fx []actors.Effect
	if _, known := c.observers[from]; !known {
		fx = append(fx, actors.Watch{Addr: from}, actors.Info("observer registered", "observer", m.ObserverId, "repos", len(m.Repos)))
	}
	c.observers[from] = &observerState{id: m.ObserverId, repos: m.Repos}
	for _, repo := range m.Repos {
		for _, b := range repo.Branches {
			if cur := c.cursors[pair{repo.Url, b}]; cur != nil {
				reply.Cursors = append(reply.Cursors, cur)
			}
		}
	}
	reply.Accepted = true
	return append(fx, actors.Send{To: from, Msg: reply})
}

// withBranch gives j a new Job that also names branch (Job is never
// changed in place: see snapshot), and its result, if it names the old one,
// a new Result with the new Job.
func withBranch(j *job, branch string) {
	old := j.Job
	nj := messages.CloneJob(old)
	nj.Branches = append(nj.Branches, branch)
	j.Job = nj
	if j.Result != nil && j.Result.Job == old {
		res := messages.CloneResult(j.Result)
		res.Job = nj
		j.Result = res
	}
}

func (c *Core) observed(now time.Time, from actors.Addr, o Observed) []actors.Effect {
	m := o.Msg
	if _, ok := c.observers[from]; !ok {
		c.counters[cRejected]++
		return []actors.Effect{
			actors.Warn("CommitObserved from an unregistered observer: asking it to register", "from", string(from)),
			actors.Send{To: from, Msg: &messages.CommitObservedAck{ObserverId: m.ObserverId, Seq: m.Seq, Repo: m.Repo, Branch: m.Branch, Unknown: true}},
		}
	}
	if err := messages.ValidateRef(m.Branch); err != nil {
		c.counters[cRejected]++
		return []actors.Effect{actors.Warn("CommitObserved rejected", "error", err.Error())}
	}
	for _, commit := range m.Commits {
		if err := messages.ValidateCommit(commit); err != nil {
			c.counters[cRejected]++
			return []actors.Effect{actors.Warn("CommitObserved rejected", "error", err.Error())}
		}
	}
	a := new(struct {
		ack messages.CommitObservedAck
		ids [1]int64
	})
	ack := &a.ack
	ack.ObserverId, ack.Seq, ack.Repo, ack.Branch = m.ObserverId, m.Seq, m.Repo, m.Branch
	if len(m.Commits) <= 1 {
		ack.JobIds = a.ids[:0]
	} else {
		ack.JobIds = make([]int64, 0, len(m.Commits))
	}
	var one [1]*job
	saves := one[:0]
	// The Persist first, then a note per new job, the ack, and the
	// assignments (a Persist, then a send and a note per job).
	fx := make([]actors.Effect, 1, 4+3*len(m.Commits))
	// The notes' arguments that every job shares, made once.
	if c.repoNameArg == nil || m.RepoName != c.repoName {
		c.repoName, c.repoNameArg = m.RepoName, m.RepoName
	}
	if c.branchArg == nil || m.Branch != c.branch {
		c.branch, c.branchArg = m.Branch, m.Branch
	}
	queuedMs := now.UnixMilli()
	for i, commit := range m.Commits {
		if plant.On(plant.DuplicateObservedCreatesJobs) {
			o.Archived = nil
		} else if id, ok := c.byKey[pair{m.Repo, commit}]; ok {
			j := c.jobs[id]
			if !slices.Contains(j.Job.Branches, m.Branch) {
				withBranch(j, m.Branch)
				saves = append(saves, j)
			}
			ack.JobIds = append(ack.JobIds, id)
			continue
		}
		if id, ok := o.Archived[commit]; ok {
			ack.JobIds = append(ack.JobIds, id)
			continue
		}
		j := newJob(c.nextID, m.Repo, m.RepoName, commit, m.Branch, subject(m.Subjects, i), 1, queuedMs)
		c.nextID++
		c.jobs[j.Job.Id] = j
		c.byKey[pair{m.Repo, commit}] = j.Job.Id
		c.queue.pushBack(j.Job.Id)
		c.counters[cJobsQueued]++
		saves = append(saves, j)
		ack.JobIds = append(ack.JobIds, j.Job.Id)
		idArg, commitArg := j.noteArgs()
		fx = append(fx, actors.Info("commit queued", "job", idArg, "repo", c.repoNameArg, "branch", c.branchArg, "commit", commitArg))
	}
	var curs []*messages.Cursor
	cur := c.cursors[pair{m.Repo, m.Branch}]
	if len(m.Commits) > 0 {
		tip := m.Commits[len(m.Commits)-1]
		// Move the cursor only from where the observer computed; a reordered
		// older message must not move it back.
		if cur == nil || cur.Commit == m.Previous || m.Forced {
			if cur == nil || cur.Commit != tip {
				b := new(struct {
					cur  messages.Cursor
					curs [1]*messages.Cursor
				})
				cur = &b.cur
				cur.Repo, cur.Branch, cur.Commit = m.Repo, m.Branch, tip
				c.cursors[pair{m.Repo, m.Branch}] = cur
				b.curs[0] = cur
				curs = b.curs[:]
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
		fx[0] = persist(curs, saves)
	} else {
		fx = fx[1:]
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
		c.counters[cRejected]++
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
		fx := c.finish(now, nil, j, &messages.Result{Job: j.Job, Attempt: j.Attempt, Status: messages.Status_STATUS_CANCELLED,
			Reason: "cancelled by " + who + " while queued", FinishedUnixMs: now.UnixMilli(), QueuedUnixMs: j.QueuedUnixMs})
		return append(fx, actors.Send{To: from, Msg: reply})
	}
	j.CancelRequested = true
	var fx []actors.Effect
	fx = append(fx, persistOne(nil, j), actors.Info("cancel requested", "job", j.Job.Id, "attempt", j.Attempt, "by", who))
	if r := c.runners.get(j.RunnerId); r != nil && r.job == j.Job.Id {
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
	k := pair{m.Msg.Repo, m.Msg.Commit}
	if id, ok := c.byKey[k]; ok {
		if j := c.jobs[id]; j != nil && j.State != messages.JobState_JOB_STATE_DONE {
			reply.Error = fmt.Sprintf("commit %s is already %s as job %d", m.Msg.Commit, j.State.Name(), id)
			return send()
		}
	}
	build := m.Prev.Build + 1
	if id, ok := c.byKey[k]; ok && c.jobs[id] != nil && c.jobs[id].Job.Build >= build {
		build = c.jobs[id].Job.Build + 1
	}
	j := &job{JobRecord: messages.JobRecord{
		Job: &messages.Job{Id: c.nextID, Repo: m.Prev.Repo, RepoName: m.Prev.RepoName, Commit: m.Prev.Commit,
			Branches: append([]string(nil), m.Prev.Branches...), Build: build, Subject: m.Prev.Subject},
		State: messages.JobState_JOB_STATE_QUEUED, QueuedUnixMs: now.UnixMilli(),
	}}
	c.nextID++
	c.jobs[j.Job.Id] = j
	c.byKey[pair{j.Job.Repo, j.Job.Commit}] = j.Job.Id
	c.queue.pushBack(j.Job.Id)
	c.counters[cJobsQueued]++
	reply.JobId, reply.Build = j.Job.Id, build
	return []actors.Effect{
		persistOne(nil, j),
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
	for _, r := range c.runners.sorted() {
		rs := &messages.RunnerStatus{RunnerId: r.id, Incarnation: r.incarnation, Address: string(r.addr),
			State: "idle", LastHeartbeatUnixMs: c.time(r.seen).UnixMilli()}
		if j := c.jobs[r.job]; r.job != 0 && j != nil {
			rs.State = "busy"
			rs.Job = &messages.JobRef{JobId: r.job, Attempt: j.Attempt}
		}
		s.Runners = append(s.Runners, rs)
	}
	for _, id := range sortedKeys(c.jobs) {
		s.Jobs = append(s.Jobs, messages.CloneJobRecord(&c.jobs[id].JobRecord))
	}
	for _, a := range sortedKeys(c.observers) {
		s.Observers = append(s.Observers, c.observers[a].id)
	}
	for i, v := range c.counters {
		if v != 0 { // counters only grow: a zero one was never counted
			s.Counters[counterNames[i]] = v
		}
	}
	s.Counters["queued"] = int64(c.queue.len())
	return s
}

// Deadline is the next time the core needs a Tick (zero for none), from the
// fronts of its lines: O(1) however many runners and jobs it keeps.
func (c *Core) Deadline() time.Time {
	var d time.Time
	if r := c.alive.head; r != nil {
		d = c.time(r.seen).Add(c.cfg.DeadAfter + time.Nanosecond)
	}
	if len(c.orphans) > 0 {
		d = actors.Earliest(d, c.orphanDue)
	}
	if c.reporter != "" {
		if c.unsent.head != nil {
			d = actors.Earliest(d, time.Time{}.Add(c.cfg.ResultRetry))
		}
		if j := c.sent.head; j != nil {
			d = actors.Earliest(d, c.time(j.sent).Add(c.cfg.ResultRetry))
		}
	}
	return d
}

// Counter returns one counter's value.
func (c *Core) Counter(name string) int64 {
	for i, n := range counterNames {
		if n == name {
			return c.counters[i]
		}
	}
	return 0
}

func sortedKeys[K ~string | ~int64, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
