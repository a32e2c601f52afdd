package dispatcher

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// Observed is a CommitObserved as the shell hands it to the core, with what
// the durable store knows of its commits that are no longer in memory.
type Observed struct {
	Msg *messages.CommitObserved
	// Archived maps a commit to the record of its finished, forwarded job
	// (the newest build): such a commit is answered with that job's id and
	// not built again, and one seen on a branch its record does not name (a
	// fast-forward or a merge made it the tip of another branch) gets the
	// branch recorded, durably, and sent to the reporter again.
	Archived map[string]*messages.JobRecord
}

// Rebuild is a RebuildRequest as the shell hands it to the core, with the
// jobs of the newest build of the commit from the durable store, in index
// order (none if it was never built).
type Rebuild struct {
	Msg  *messages.RebuildRequest
	Prev []*messages.Job
}

// Durable is what a restarted dispatcher recovers.
type Durable struct {
	Jobs         []*messages.JobRecord
	Cursors      []*messages.Cursor
	MaxID        int64
	Incarnations []*messages.RunnerIncarnation
}

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

	jobs   map[int64]*job   // unfinished, or finished and not forwarded
	builds map[int64]*build // the builds with a job in jobs, or one not ended
	byKey  map[pair]int64   // repo, commit -> newest active build id
	// turn holds the ids of the builds with ready jobs, each once, in the
	// order they take turns (round robin: a build queued after a large
	// matrix starts before the matrix ends). A build goes to the back when
	// one of its jobs starts, and only then: a step that starts nothing
	// leaves the order as it was.
	turn    []int64
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
	// unsent holds the results finished while no reporter was registered
	// (or recovered, before one could be), in the order they finished. It
	// is empty whenever a reporter is registered: a result goes to the
	// reporter as it is recorded (forward), and registerReporter sends all
	// of unsent; so nothing waits in it for a retry.
	unsent line[job]
	sent   line[job] // finished, not forwarded, sent: the longest ago first
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
		builds:       map[int64]*build{},
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
	var fx []actors.Effect
	var recovered []*build
	for _, rec := range recs {
		b := c.recoverBuild(rec.Job, &recovered)
		if rec.State == messages.JobState_JOB_STATE_DONE && rec.Forwarded {
			// Ended and forwarded: only its outcome matters, to the jobs of
			// its build that wait.
			if i := rec.Job.Index; int(i) < len(b.ended) && b.ended[i] == messages.Status_STATUS_UNSPECIFIED {
				b.ended[i] = rec.Result.GetStatus()
				b.left--
			}
			continue
		}
		j := &job{}
		copyRecord(&j.JobRecord, rec)
		if j.State == messages.JobState_JOB_STATE_QUEUED && plant.On(plant.QueueNotRestored) {
			continue
		}
		c.hold(j)
		switch j.State {
		case messages.JobState_JOB_STATE_QUEUED:
			queued++
		case messages.JobState_JOB_STATE_RUNNING:
			c.orphans[j.Job.Id] = now.Add(c.cfg.DeadAfter)
			c.orphanDue = now.Add(c.cfg.DeadAfter)
			c.orphansOf[j.RunnerId] = append(c.orphansOf[j.RunnerId], j.Job.Id)
			running++
		case messages.JobState_JOB_STATE_DONE:
			if i := j.Job.Index; int(i) < len(b.ended) && b.ended[i] == messages.Status_STATUS_UNSPECIFIED {
				b.ended[i] = j.Result.GetStatus()
				b.left--
			}
			if !j.Forwarded {
				c.unsent.pushBack(j)
			}
		}
	}
	for _, b := range recovered {
		fx = c.resume(now, fx, b)
	}
	return append([]actors.Effect{actors.Info("dispatcher recovered its queue", "queued", queued, "running", running, "next_job_id", c.nextID)}, fx...)
}

// recoverBuild returns the build of job, made on first sight from the job
// (each carries its build's size and its own cell) and added to recovered.
func (c *Core) recoverBuild(job *messages.Job, recovered *[]*build) *build {
	id := job.BuildID()
	b := c.builds[id]
	if b == nil {
		n := int(job.JobsInBuild())
		b = &build{id: id, cells: make([]*messages.PipelineJob, n), ended: make([]messages.Status, n), left: n}
		c.builds[id] = b
		*recovered = append(*recovered, b)
		c.byKey[pair{job.Repo, job.Commit}] = id
	}
	if i := job.Index; int(i) < len(b.cells) {
		b.cells[i] = job.Cell
	}
	return b
}

// resume settles a recovered build: a job the store no longer has counts
// as errored (its dependents must not wait for ever), and each queued job
// starts, waits or is skipped by its needs, as when they ended (a crash
// may have come between a need's end and its dependents').
func (c *Core) resume(now time.Time, fx []actors.Effect, b *build) []actors.Effect {
	for k := range int32(len(b.cells)) {
		if c.jobs[b.id+int64(k)] == nil && b.ended[k] == messages.Status_STATUS_UNSPECIFIED {
			b.ended[k] = messages.Status_STATUS_ERRORED
			b.left--
			fx = append(fx, actors.Warn("a job of a recovered build is missing from the store: its dependents take it as errored", "build", b.id, "job", b.id+int64(k)))
		}
	}
	if b.held == 0 && b.left <= 0 {
		delete(c.builds, b.id)
		return fx
	}
	for k := range int32(len(b.cells)) {
		j := c.jobs[b.id+int64(k)]
		if j == nil || j.State != messages.JobState_JOB_STATE_QUEUED {
			continue
		}
		switch met, blockedBy := b.needsOf(k); {
		case blockedBy >= 0:
			fx = c.finish(now, fx, j, c.skipped(now, j, fmt.Sprintf("%s ended %s", b.name(blockedBy), b.ended[blockedBy].Name())))
		case met || plant.On(plant.NeedsNotAwaited):
			c.makeReady(b, j, false)
		}
	}
	return fx
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

// tick acts on the deadlines that have passed. It looks only at the fronts
// of the lines, so a tick with nothing due costs O(1).
func (c *Core) tick(now time.Time) []actors.Effect {
	var fx []actors.Effect
	t := c.at(now)
	var dead []*runnerState
	for r := c.alive.head; r != nil && t-r.seen > int64(c.deadAfter()); r = r.alive.next {
		dead = append(dead, r)
	}
	slices.SortFunc(dead, func(a, b *runnerState) int { return strings.Compare(a.id, b.id) })
	for _, r := range dead {
		fx = append(fx, c.loseRunner(now, r, fmt.Sprintf("no heartbeat for %s", c.deadAfter()))...)
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
	if c.reporter != "" { // then unsent is empty: see Core.unsent
		var due []*job
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

// Deadline is the next time the core needs a Tick (zero for none), from the
// fronts of its lines: O(1) however many runners and jobs it keeps.
func (c *Core) Deadline() time.Time {
	var d time.Time
	if r := c.alive.head; r != nil {
		d = c.time(r.seen).Add(c.deadAfter() + time.Nanosecond)
	}
	if len(c.orphans) > 0 {
		d = actors.Earliest(d, c.orphanDue)
	}
	if j := c.sent.head; j != nil && c.reporter != "" {
		d = actors.Earliest(d, c.time(j.sent).Add(c.cfg.ResultRetry))
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
