package observer

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// Config says what to watch and where the dispatcher is.
type Config struct {
	ID         string
	Dispatcher actors.Addr
	// Nodes are every dispatcher node of a failover group, when there are
	// several: the observer follows the leader among them. Empty: Dispatcher alone.
	Nodes []actors.Addr
	// Repos are the watched repositories with their branches resolved.
	Repos []*messages.WatchedRepo
	// Poll is the interval between looks at every branch.
	Poll time.Duration
	// Grace is how long the dispatcher may be unreachable before the observer exits.
	Grace time.Duration
	// MaxBacklog caps the commits sent for one branch at once (the newest win).
	MaxBacklog int
	Token      string
	// Resend is how long to wait for an acknowledgement before sending again.
	Resend time.Duration
}

// Poll asks the shell to read a branch: its tip and the commits since Since.
// The shell answers with Polled.
type Poll struct {
	Repo, Branch, Since string
	Max                 int
}

// Polled is the answer to Poll.
type Polled struct {
	Repo, Branch string
	Tip          string
	Commits      []string // oldest first, at most Max
	Subjects     []string // subject lines of Commits, where known
	Forced       bool
	Skipped      int
	Err          string
	// Pipelines[i] is the pipeline of Commits[i] (the shell reads them
	// after Read); missing or nil ones are the single-list format.
	Pipelines []*messages.Pipeline
}

type branch struct {
	repo     *messages.WatchedRepo
	name     string
	cursor   string
	polling  bool
	again    bool // a notify arrived while polling: look once more
	inflight *messages.CommitObserved
	sentAt   time.Time
	tries    int
}

// Core is the observer's deterministic state machine.
type Core struct {
	cfg      Config
	link     actors.Link
	branches []*branch // in configuration order
	nextPoll time.Time
	seq      uint64
	exited   bool
	refused  int64 // inputs from identities that may not send them
}

// New returns an observer core; call Start next.
func New(cfg Config) *Core {
	if cfg.Resend <= 0 {
		cfg.Resend = time.Second
	}
	if cfg.MaxBacklog <= 0 {
		cfg.MaxBacklog = 50
	}
	c := &Core{cfg: cfg}
	c.link.Grace = cfg.Grace
	c.link.MinBackoff = 100 * time.Millisecond
	c.link.MaxBackoff = time.Second
	c.link.SetTargets(cfg.Dispatcher, cfg.Nodes)
	for _, r := range cfg.Repos {
		for _, b := range r.Branches {
			c.branches = append(c.branches, &branch{repo: r, name: b})
		}
	}
	return c
}

// Start begins registration.
func (c *Core) Start(now time.Time) []actors.Effect {
	c.link.Start(now)
	return c.tick(now)
}

// Cursor returns the acknowledged cursor of a branch.
func (c *Core) Cursor(repo, branchName string) string {
	for _, b := range c.branches {
		if b.repo.Url == repo && b.name == branchName {
			return b.cursor
		}
	}
	return ""
}

// Step handles one input. from is its sender: the address replies go to and
// the identity its connection proved. An input that identity may not send
// (see permit) changes nothing and is answered with nothing: it is counted
// and noted.
func (c *Core) Step(now time.Time, sender actors.From, in any) []actors.Effect {
	if c.exited {
		return nil
	}
	if why := c.permit(sender, in); why != "" {
		c.refused++
		return []actors.Effect{actors.Refused(sender, in, why)}
	}
	from := sender.Addr
	switch m := in.(type) {
	case actors.Tick:
		return c.tick(now)
	case actors.PeerTerminated:
		if m.Addr != c.link.Target() {
			return nil
		}
		c.link.Lost(now)
		return append([]actors.Effect{actors.Warn("dispatcher connection lost", "dispatcher", string(m.Addr))}, c.tick(now)...)
	case *messages.NotLeader:
		if !c.link.FollowLeader(now, from, m.Leader) {
			return nil
		}
		return append([]actors.Effect{actors.Info("dispatcher node does not lead: following the leader", "node", string(from), "leader", m.Leader, "epoch", m.Epoch)}, c.tick(now)...)
	case *messages.ObserverRegistered:
		return c.registered(now, from, m)
	case *messages.CommitObservedAck:
		return c.acked(now, from, m)
	case *messages.PollNow:
		return c.pollNow(now, m)
	case Polled:
		return c.polled(now, m)
	case *messages.StatusRequest:
		return []actors.Effect{actors.Send{To: from, Msg: c.Status()}}
	}
	return []actors.Effect{actors.Warn("observer ignored an unknown message", "type", fmt.Sprintf("%T", in))}
}

// permit says why the sender may not send in, or "" when it may (issue 10's
// role table), before anything changes: the dispatcher's answers
// (ObserverRegistered, CommitObservedAck) and its PollNow only from the
// dispatcher; a StatusRequest from admin, the dispatcher or the reporter;
// Tick, PeerTerminated and Polled only from this process; anything else
// from no one but this process. The local role may send anything; the zero
// Identity nothing.
func (c *Core) permit(from actors.From, in any) string {
	who := from.Who
	switch in.(type) {
	case actors.Tick, actors.PeerTerminated, Polled:
		if !who.IsLocal() {
			return "only this process makes it"
		}
	case *messages.ObserverRegistered, *messages.CommitObservedAck, *messages.PollNow, *messages.NotLeader:
		if !who.Is(actors.RoleDispatcher) {
			return "only the dispatcher may send it"
		}
	case *messages.StatusRequest:
		if !who.MayAskStatus() {
			return "only admin, the dispatcher or the reporter may read the status"
		}
	default:
		if !who.IsLocal() {
			return "not a message the observer takes from anyone"
		}
	}
	return ""
}

// Refused counts inputs refused because the identity that sent them may
// not (see permit).
func (c *Core) Refused() int64 { return c.refused }

// Digest is a hash of everything that decides what the observer does next:
// its registration, each branch's cursor and message in flight, its timers.
// The simulator compares it before and after an input that must change
// nothing.
func (c *Core) Digest() uint64 {
	d := actors.NewDigest()
	c.link.Digest(d)
	for _, b := range c.branches {
		d.Str(b.repo.Url)
		d.Str(b.name)
		d.Str(b.cursor)
		d.Bool(b.polling)
		d.Bool(b.again)
		d.Proto(b.inflight)
		d.Time(b.sentAt)
		d.Int(int64(b.tries))
	}
	d.Time(c.nextPoll)
	d.Uint(c.seq)
	d.Bool(c.exited)
	return d.Sum()
}

// Status describes the observer for `volt status --role observer`: one
// counter per branch, "cursor <repo> <branch> <commit>" = 1.
func (c *Core) Status() *messages.StatusReply {
	s := &messages.StatusReply{Role: "observer", Counters: map[string]int64{}}
	reg := int64(0)
	if c.link.IsRegistered() {
		reg = 1
	}
	s.Counters["registered"] = reg
	if c.refused > 0 {
		s.Counters["forged_refused"] = c.refused
	}
	for _, b := range c.branches {
		cur := b.cursor
		if cur == "" {
			cur = "(none yet)"
		}
		s.Counters[fmt.Sprintf("cursor %s %s %s", b.repo.Name, b.name, cur)] = 1
	}
	return s
}

// Deadline is the next time the core needs a Tick (zero for none).
func (c *Core) Deadline() time.Time {
	if c.exited {
		return time.Time{}
	}
	if !c.link.IsRegistered() {
		return c.link.Deadline()
	}
	d := c.nextPoll
	for _, b := range c.branches {
		if b.inflight != nil {
			d = actors.Earliest(d, b.sentAt.Add(c.cfg.Resend))
		}
	}
	return d
}

func (c *Core) tick(now time.Time) []actors.Effect {
	if !c.link.IsRegistered() {
		if c.link.Expired(now) {
			c.exited = true
			return []actors.Effect{actors.Exit{Code: 1, Reason: fmt.Sprintf(
				"dispatcher %s unreachable for %s (--dispatcher-grace %s): giving up with every cursor where the dispatcher last acknowledged it; start the dispatcher and run the observer again",
				host(c.link.Target()), now.Sub(c.link.LostSince()).Round(time.Millisecond), c.cfg.Grace)}}
		}
		if c.link.Due(now) {
			return []actors.Effect{actors.Register{To: c.link.Target(), Msg: &messages.RegisterObserver{
				ObserverId: c.cfg.ID, ProtocolVersion: messages.ProtocolVersion, Token: c.cfg.Token, Repos: c.cfg.Repos}}}
		}
		return nil
	}
	var fx []actors.Effect
	for _, b := range c.branches {
		if b.inflight != nil && now.Sub(b.sentAt) >= c.cfg.Resend {
			if c.link.Failover() && b.tries >= silentTries {
				// The leader has not answered for a while: look for the
				// leader among the nodes, and send again once registered.
				c.link.Lost(now)
				return append(fx, c.tick(now)...)
			}
			b.sentAt = now
			b.tries++
			fx = append(fx, actors.Send{To: c.link.Target(), Msg: b.inflight})
		}
	}
	if !now.Before(c.nextPoll) {
		c.nextPoll = now.Add(c.cfg.Poll)
		for _, b := range c.branches {
			fx = append(fx, c.poll(b)...)
		}
	}
	return fx
}

func host(a actors.Addr) string {
	h, _ := a.Split()
	return h
}

func (c *Core) poll(b *branch) []actors.Effect {
	if b.polling {
		b.again = true
		return nil
	}
	if b.inflight != nil || !c.link.IsRegistered() {
		return nil
	}
	b.polling = true
	return []actors.Effect{Poll{Repo: b.repo.Url, Branch: b.name, Since: b.cursor, Max: c.cfg.MaxBacklog}}
}

func (c *Core) registered(now time.Time, from actors.Addr, m *messages.ObserverRegistered) []actors.Effect {
	if !c.link.IsTarget(from) {
		return nil
	}
	if !m.Accepted {
		c.exited = true
		return []actors.Effect{actors.Exit{Code: 1, Reason: fmt.Sprintf("dispatcher %s refused this observer: %s", host(from), m.Reason)}}
	}
	if c.link.IsRegistered() {
		return nil
	}
	c.link.Registered()
	// The dispatcher's cursors are the truth: whatever was in flight is
	// looked at again from there.
	for _, b := range c.branches {
		b.cursor = ""
		b.inflight = nil
		for _, cur := range m.Cursors {
			if cur.Repo == b.repo.Url && cur.Branch == b.name {
				b.cursor = cur.Commit
			}
		}
	}
	c.nextPoll = now
	fx := []actors.Effect{actors.Watch{Addr: from}, actors.Info("registered with the dispatcher", "dispatcher", string(from), "cursors", len(m.Cursors))}
	return append(fx, c.tick(now)...)
}

func (c *Core) acked(now time.Time, from actors.Addr, m *messages.CommitObservedAck) []actors.Effect {
	if !c.link.IsTarget(from) {
		return nil
	}
	if m.Unknown {
		c.link.Lost(now)
		return append([]actors.Effect{actors.Info("dispatcher does not know this observer: registering again")}, c.tick(now)...)
	}
	for _, b := range c.branches {
		if b.inflight == nil || b.inflight.Seq != m.Seq || b.repo.Url != m.Repo || b.name != m.Branch {
			continue
		}
		last := b.inflight.Commits[len(b.inflight.Commits)-1]
		b.cursor = last
		if m.Cursor != "" {
			b.cursor = m.Cursor
		}
		b.inflight = nil
		fx := []actors.Effect{actors.Debug("commits acknowledged", "repo", b.repo.Name, "branch", b.name, "cursor", b.cursor, "jobs", len(m.JobIds))}
		return append(fx, c.poll(b)...) // more may have arrived meanwhile
	}
	return nil // a duplicate or stale ack
}

func (c *Core) pollNow(now time.Time, m *messages.PollNow) []actors.Effect {
	var fx []actors.Effect
	for _, b := range c.branches {
		if (m.Repo == "" || m.Repo == b.repo.Url || m.Repo == b.repo.Name) && (m.Branch == "" || m.Branch == b.name) {
			fx = append(fx, c.poll(b)...)
		}
	}
	return fx
}

func (c *Core) polled(now time.Time, m Polled) []actors.Effect {
	var b *branch
	for _, x := range c.branches {
		if x.repo.Url == m.Repo && x.name == m.Branch {
			b = x
		}
	}
	if b == nil {
		return nil
	}
	b.polling = false
	var fx []actors.Effect
	switch {
	case m.Err != "":
		fx = append(fx, actors.Warn("poll failed", "repo", b.repo.Name, "branch", b.name, "error", m.Err))
	case !c.link.IsRegistered() || b.inflight != nil:
	case len(m.Commits) > 0 && m.Tip != b.cursor && b.cursor == "" && !m.Forced && plant.On(plant.FirstCommitSkipped):
		b.cursor = m.Tip // as if the branch's first commit were already built
	case len(m.Commits) > 0 && m.Tip != b.cursor:
		c.seq++
		commits, subjects, pipelines := fit(m)
		b.inflight = &messages.CommitObserved{
			ObserverId: c.cfg.ID, Seq: c.seq, Repo: b.repo.Url, RepoName: b.repo.Name, Branch: b.name,
			Previous: b.cursor, Commits: commits, Subjects: subjects, Pipelines: pipelines, Forced: m.Forced, Skipped: int32(m.Skipped)}
		if len(commits) < len(m.Commits) {
			fx = append(fx, actors.Info("large pipelines: sending the oldest commits first", "repo", b.repo.Name, "branch", b.name, "sent", len(commits), "left", len(m.Commits)-len(commits)))
		}
		b.sentAt = now
		b.tries = 1
		if m.Skipped > 0 {
			fx = append(fx, actors.Warn("backlog capped: only the newest commits are built", "repo", b.repo.Name, "branch", b.name, "skipped", m.Skipped, "kept", len(m.Commits)))
		}
		if m.Forced {
			fx = append(fx, actors.Info("force push: building only the new tip", "repo", b.repo.Name, "branch", b.name, "tip", m.Tip))
		}
		fx = append(fx, actors.Send{To: c.link.Target(), Msg: b.inflight})
		if plant.On(plant.ObserverAdvancesEarly) {
			b.cursor, b.inflight = m.Tip, nil
		}
	}
	if b.again {
		b.again = false
		fx = append(fx, c.poll(b)...)
	}
	return fx
}

// MaxPipelineBytes caps the encoded pipelines of one CommitObserved, far
// below the wire's 4 MiB per message; a pipeline is at most 1 MiB
// (jobspec), so one commit always fits.
const MaxPipelineBytes = 2 << 20

// fit returns the commits of m to send now, oldest first, with their
// subjects and pipelines: as many as fit in MaxPipelineBytes of pipelines,
// at least one. The rest are sent after the acknowledgement, from the new
// cursor. Pipelines hold no trailing empty ones (a missing pipeline is the
// single-list format), so single-list commits send what they always have.
func fit(m Polled) (commits, subjects []string, pipelines []*messages.Pipeline) {
	n, size := len(m.Commits), 0
	for i := 0; i < len(m.Commits) && i < len(m.Pipelines); i++ {
		size += proto.Size(m.Pipelines[i])
		if size > MaxPipelineBytes && i > 0 {
			n = i
			break
		}
	}
	commits = m.Commits[:n]
	subjects = m.Subjects
	if len(subjects) > n {
		subjects = subjects[:n]
	}
	last := min(n, len(m.Pipelines))
	for last > 0 && proto.Size(m.Pipelines[last-1]) == 0 {
		last--
	}
	if last == 0 {
		return commits, subjects, nil
	}
	pipelines = make([]*messages.Pipeline, last)
	for i, p := range m.Pipelines[:last] {
		if p == nil {
			p = &messages.Pipeline{}
		}
		pipelines[i] = p
	}
	return commits, subjects, pipelines
}

// silentTries is how many sends of one batch of commits may go unanswered
// before an observer of a failover group looks for the leader elsewhere.
const silentTries = 3
