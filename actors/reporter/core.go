package reporter

import (
	"bytes"
	"fmt"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// Config identifies the reporter and its dispatcher.
type Config struct {
	ID         string
	Dispatcher actors.Addr
	// Nodes are every dispatcher node of a failover group, when there are
	// several: the reporter follows the leader among them. Empty: Dispatcher alone.
	Nodes []actors.Addr
	Token string
}

// Record asks the shell to store the final result of one job of a build
// durably, write the build's result file if every job of it now has a
// result, and then acknowledge it to ReplyTo. Each job of a build has its
// own result, attempts and log; a skipped job's result (no runner, no log)
// is recorded like any other. With DropLog set, the stored log of the
// result's attempt is not the output of the runner the result names
// (another runner's certificate wrote it, or more than one identity did):
// the shell drops it first, so that the job keeps no log rather than
// someone else's.
type Record struct {
	Result  *messages.Result
	ReplyTo actors.Addr
	DropLog bool
}

// AppendLog asks the shell to store a log chunk that Writer sent.
type AppendLog struct {
	Chunk  *messages.LogChunk
	Writer actors.Identity
}

// CloseLog asks the shell to answer ReplyTo with a LogAck saying how much of
// the attempt's log it holds.
type CloseLog struct {
	Msg     *messages.LogClosed
	ReplyTo actors.Addr
}

// Status asks the shell to answer ReplyTo with the reporter's status.
type Status struct{ ReplyTo actors.Addr }

// Core is the reporter's deterministic state machine. The reporter never
// gives up on its dispatcher: it keeps trying to register.
//
// The reporter is not told who runs what, yet knows who may write an
// attempt's log: every log chunk (and close) carries the log ticket of the
// RunJob that gave the attempt to its runner, an HMAC, under a key the
// dispatcher hands over only when it accepts this reporter, of the job, the
// attempt and that runner's id (messages.LogTicket). A remote runner's chunk
// is taken only when its ticket verifies for the runner its connection
// proved (see ticket): no runner writes, or claims in advance, the log of an
// attempt it was not given. Until the key arrives no remote chunk is taken
// (the runner resends when it closes the log).
//
// The first identity that writes an attempt's log still claims it (see
// claims): no other may add to it, and when the dispatcher's result arrives
// the log is kept only if the result names that runner (Record.DropLog
// otherwise); a recorded attempt's log takes no more chunks. Since each
// assignment is a new attempt, a remote runner's claim can only be the
// rightful one now; the rule still guards this process's own writes, which
// need no ticket (volt up's runner), and a log written by two identities.
type Core struct {
	cfg  Config
	link actors.Link
	// refresh is when to register again while registered: a dispatcher
	// restarted in place (same address) would otherwise never learn of us.
	refresh time.Time
	// unanswered: the last refresh has had no answer yet.
	unanswered bool

	claims   map[logKey]*claim
	order    []claimRef // claims, oldest first, for forgetting beyond maxClaims
	claimSeq uint64
	refused  int64
	// logKey checks log tickets: the dispatcher hands it over when it
	// accepts this reporter. Until then no remote runner's log is taken.
	logKey []byte
}

// logKey names one attempt's log as the store keys it: each job of a
// build has its own.
type logKey struct {
	repo, commit          string
	build, index, attempt int32
}

func keyOf(j *messages.Job, attempt int32) logKey {
	return logKey{repo: j.GetRepo(), commit: j.GetCommit(), build: j.GetBuild(), index: j.GetIndex(), attempt: attempt}
}

// maxBuildJobs bounds the jobs a build may claim to have (the dispatcher
// makes at most 1,000 per pipeline).
const maxBuildJobs = 10_000

// badPlace says why job's place in its build is impossible ("" when it is
// not): its index must be within its build's jobs, and its id the build's
// id plus its index (docs/pipelines.md). The reporter keys results and
// logs by index, so no message may name one index with another's id.
func badPlace(j *messages.Job) string {
	switch i := j.GetIndex(); {
	case j.GetBuildJobs() < 0 || j.GetBuildJobs() > maxBuildJobs:
		return fmt.Sprintf("a build of %d jobs", j.GetBuildJobs())
	case i < 0 || i >= j.JobsInBuild():
		return fmt.Sprintf("index %d outside a build of %d jobs", i, j.JobsInBuild())
	case j.GetBuildId() == 0 && i != 0:
		return fmt.Sprintf("index %d without a build id", i)
	case j.GetBuildId() != 0 && j.GetId() != j.GetBuildId()+int64(i):
		return fmt.Sprintf("job %d is not index %d of build %d", j.GetId(), i, j.GetBuildId())
	}
	return ""
}

// claim is who wrote an attempt's log.
type claim struct {
	who      actors.Identity // the first writer; zero when the result came first
	mixed    bool            // the local role wrote to another identity's log too
	recorded bool            // the result of this attempt is recorded: no more chunks
	seq      uint64
}

type claimRef struct {
	key logKey
	seq uint64
}

// maxClaims bounds the claims kept: the oldest are forgotten first. A
// forgotten claim lets a runner add to that finished attempt's log (and a
// restarted reporter knows no claims at all): the store should refuse
// chunks for a recorded attempt itself.
const maxClaims = 10_000

// Refresh is how often a registered reporter registers again.
const Refresh = 5 * time.Second

// New returns a reporter core; call Start next.
func New(cfg Config) *Core {
	c := &Core{cfg: cfg, claims: map[logKey]*claim{}}
	c.link.Grace = -1
	c.link.MinBackoff = 100 * time.Millisecond
	c.link.MaxBackoff = 2 * time.Second
	c.link.SetTargets(cfg.Dispatcher, cfg.Nodes)
	return c
}

// Start begins registration.
func (c *Core) Start(now time.Time) []actors.Effect {
	c.link.Start(now)
	return c.tick(now)
}

// Registered reports whether the reporter is registered now.
func (c *Core) Registered() bool { return c.link.IsRegistered() }

// Refused counts inputs refused because the identity that sent them may
// not (see permit), or because the log they add to is another's.
func (c *Core) Refused() int64 { return c.refused }

// Step handles one input. from is its sender: the address replies go to and
// the identity its connection proved. An input that identity may not send
// (see permit) changes nothing and is answered with nothing: it is counted
// and noted.
func (c *Core) Step(now time.Time, sender actors.From, in any) []actors.Effect {
	if why := permit(sender.Who, in); why != "" {
		return c.refuse(sender, in, why)
	}
	from := sender.Addr
	switch m := in.(type) {
	case actors.Tick:
		return c.tick(now)
	case actors.PeerTerminated:
		if m.Addr == c.link.Target() {
			c.link.Lost(now)
			return append([]actors.Effect{actors.Warn("dispatcher connection lost; registering again when it is back", "dispatcher", string(m.Addr))}, c.tick(now)...)
		}
		return nil
	case *messages.NotLeader:
		if !c.link.FollowLeader(now, from, m.Leader) {
			return nil
		}
		return append([]actors.Effect{actors.Info("dispatcher node does not lead: following the leader", "node", string(from), "leader", m.Leader, "epoch", m.Epoch)}, c.tick(now)...)
	case *messages.ReporterRegistered:
		if !c.link.IsTarget(from) {
			return nil
		}
		c.unanswered = false
		if c.link.IsRegistered() {
			// The answer to a refresh. A dispatcher restarted in place
			// (its connection never seen lost) may sign with another key.
			if m.Accepted && !bytes.Equal(c.logKey, m.LogKey) {
				c.logKey = bytes.Clone(m.LogKey)
			}
			return nil
		}
		if !m.Accepted {
			return []actors.Effect{actors.Exit{Code: 1, Reason: fmt.Sprintf("dispatcher %s refused this reporter: %s", from, m.Reason)}}
		}
		c.link.Registered()
		c.logKey = bytes.Clone(m.LogKey)
		c.refresh = now.Add(Refresh)
		return []actors.Effect{actors.Watch{Addr: from}, actors.Info("registered with the dispatcher", "dispatcher", string(from))}
	case *messages.ResultRecorded:
		if m.Result == nil || m.Result.Job == nil || messages.ValidateCommit(m.Result.Job.Commit) != nil {
			return []actors.Effect{actors.Warn("malformed result ignored", "from", string(from))}
		}
		if why := badPlace(m.Result.Job); why != "" {
			return []actors.Effect{actors.Warn("malformed result ignored", "from", string(from), "why", why)}
		}
		return c.record(m.Result, from)
	case *messages.LogChunk:
		if m.Job == nil || messages.ValidateCommit(m.Job.Commit) != nil || m.Offset < 0 || badPlace(m.Job) != "" {
			return []actors.Effect{actors.Warn("malformed log chunk ignored", "from", string(from))}
		}
		if why := c.ticket(sender.Who, m.Job, m.Attempt, m.Ticket); why != "" {
			return c.refuse(sender, in, why)
		}
		if why := c.claim(keyOf(m.Job, m.Attempt), sender.Who); why != "" {
			return c.refuse(sender, in, why)
		}
		return []actors.Effect{AppendLog{Chunk: m, Writer: sender.Who}}
	case *messages.LogClosed:
		if m.Job == nil || messages.ValidateCommit(m.Job.Commit) != nil || badPlace(m.Job) != "" {
			return []actors.Effect{actors.Warn("malformed log close ignored", "from", string(from))}
		}
		if why := c.ticket(sender.Who, m.Job, m.Attempt, m.Ticket); why != "" {
			return c.refuse(sender, in, why)
		}
		if why := c.claim(keyOf(m.Job, m.Attempt), sender.Who); why != "" {
			return c.refuse(sender, in, why)
		}
		return []actors.Effect{CloseLog{Msg: m, ReplyTo: from}}
	case *messages.StatusRequest:
		return []actors.Effect{Status{ReplyTo: from}}
	}
	return []actors.Effect{actors.Warn("reporter ignored an unknown message", "type", fmt.Sprintf("%T", in))}
}

// permit says why who may not send in, or "" when it may (issue 10's role
// table), before anything changes: ReporterRegistered and ResultRecorded
// only from the dispatcher; log chunks and their close only from a runner
// (whose log it is, ticket and claim decide); a StatusRequest from admin, the
// dispatcher or the reporter; Tick and PeerTerminated only from this
// process; anything else from no one but this process. The local role may
// send anything; the zero Identity nothing.
func permit(who actors.Identity, in any) string {
	switch in.(type) {
	case actors.Tick, actors.PeerTerminated:
		if !who.IsLocal() {
			return "only this process makes it"
		}
	case *messages.ResultRecorded:
		if !who.Is(actors.RoleDispatcher) && !plant.On(plant.ReporterTrustsClaimedSender) {
			return "only the dispatcher may send it"
		}
	case *messages.ReporterRegistered, *messages.NotLeader:
		if !who.Is(actors.RoleDispatcher) {
			return "only the dispatcher may send it"
		}
	case *messages.LogChunk, *messages.LogClosed:
		if !who.Is(actors.RoleRunner) {
			return "only a runner streams a job's log"
		}
	case *messages.StatusRequest:
		if !who.MayAskStatus() {
			return "only admin, the dispatcher or the reporter may read the status"
		}
	default:
		if !who.IsLocal() {
			return "not a message the reporter takes from anyone"
		}
	}
	return ""
}

// ticket says why who may not write the log of job's attempt with ticket
// ("" when it may): a runner other than this process's must show the log
// ticket the dispatcher gave it in the RunJob of that very attempt, which
// names it. So a runner cannot write, or squat in advance, the log of an
// attempt it was not given.
func (c *Core) ticket(who actors.Identity, job *messages.Job, attempt int32, ticket []byte) string {
	switch {
	case who.IsLocal() || plant.On(plant.ReporterSkipsLogTicket):
		return ""
	case len(c.logKey) == 0:
		return "no log key yet (not registered with the dispatcher): the runner resends"
	case !messages.ValidTicket(c.logKey, ticket, job, attempt, who.Name):
		return fmt.Sprintf("no valid log ticket of %s for job %d attempt %d", who, job.GetId(), attempt)
	}
	return ""
}

// TicketValid reports whether ticket lets who write the log of job's
// attempt, and whether the core holds a key to tell (it has none before
// the dispatcher first accepts it). It changes nothing: the simulator asks
// it, as each attempt starts, whether that attempt's runner could write
// its log.
func (c *Core) TicketValid(who actors.Identity, job *messages.Job, attempt int32, ticket []byte) (valid, keyHeld bool) {
	return c.ticket(who, job, attempt, ticket) == "", len(c.logKey) > 0
}

func (c *Core) refuse(from actors.From, in any, why string) []actors.Effect {
	c.refused++
	return []actors.Effect{actors.Refused(from, in, why)}
}

// claim lets who write to the log k, claiming it if no one has; it says
// why not otherwise. The local role may write to any log that is still
// open, but a log written by two identities is kept by no result.
func (c *Core) claim(k logKey, who actors.Identity) string {
	cl := c.claims[k]
	switch {
	case cl == nil:
		c.remember(k, &claim{who: who})
	case cl.recorded && !who.IsLocal():
		return "the attempt's result is recorded: its log is complete"
	case cl.who == who:
	case who.IsLocal():
		cl.mixed = true
	default:
		return fmt.Sprintf("the log of %s build %d job %d attempt %d is %s's", k.commit, k.build, k.index, k.attempt, cl.who)
	}
	return ""
}

// record asks the shell to record res, dropping the attempt's log unless
// the runner res names wrote it (or this process did, alone).
func (c *Core) record(res *messages.Result, from actors.Addr) []actors.Effect {
	k := keyOf(res.Job, res.Attempt)
	cl := c.claims[k]
	if cl == nil {
		cl = &claim{}
		c.remember(k, cl)
	}
	cl.recorded = true
	rec := Record{Result: res, ReplyTo: from}
	rec.DropLog = cl.mixed || (cl.who != actors.Identity{} && !cl.who.IsRunner(res.RunnerId))
	if !rec.DropLog {
		return []actors.Effect{rec}
	}
	return []actors.Effect{
		actors.Warn("log dropped: not written by the runner the result names", "job", res.Job.Id, "attempt", res.Attempt,
			"runner", res.RunnerId, "written_by", cl.who.String(), "mixed", cl.mixed),
		rec,
	}
}

// remember keeps cl as k's claim, forgetting the oldest beyond maxClaims.
func (c *Core) remember(k logKey, cl *claim) {
	c.claimSeq++
	cl.seq = c.claimSeq
	c.claims[k] = cl
	c.order = append(c.order, claimRef{k, cl.seq})
	for len(c.claims) > maxClaims {
		old := c.order[0]
		c.order = c.order[1:]
		if cl := c.claims[old.key]; cl != nil && cl.seq == old.seq {
			delete(c.claims, old.key)
		}
	}
}

// Deadline is the next time the core needs a Tick (zero for none).
func (c *Core) Deadline() time.Time {
	if c.link.IsRegistered() {
		return c.refresh
	}
	return c.link.Deadline()
}

// Digest is a hash of everything that decides what the reporter does next:
// its registration and the log claims. The simulator compares it before
// and after an input that must change nothing.
func (c *Core) Digest() uint64 {
	d := actors.NewDigest()
	c.link.Digest(d)
	d.Time(c.refresh)
	d.Bool(c.unanswered)
	d.Str(string(c.logKey))
	for _, r := range c.order {
		cl := c.claims[r.key]
		if cl == nil || cl.seq != r.seq {
			continue
		}
		d.Str(r.key.repo)
		d.Str(r.key.commit)
		d.Int(int64(r.key.build))
		d.Int(int64(r.key.index))
		d.Int(int64(r.key.attempt))
		d.Str(cl.who.String())
		d.Bool(cl.mixed)
		d.Bool(cl.recorded)
	}
	return d.Sum()
}

func (c *Core) tick(now time.Time) []actors.Effect {
	if c.link.IsRegistered() {
		if now.Before(c.refresh) {
			return nil
		}
		c.refresh = now.Add(Refresh)
		if c.unanswered && c.link.Failover() {
			// The last refresh went unanswered: the leader may be gone
			// without a word (paused, cut off); look for it among the nodes.
			c.link.Lost(now)
			if !c.link.Due(now) {
				return nil
			}
		}
		c.unanswered = true
	} else if !c.link.Due(now) {
		return nil
	}
	return []actors.Effect{actors.Register{To: c.link.Target(), Msg: &messages.RegisterReporter{
		ReporterId: c.cfg.ID, ProtocolVersion: messages.ProtocolVersion, Token: c.cfg.Token}}}
}
