package sim

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/actors/observer"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/messages"
)

// maxEvents bounds one world: a run that needs more is livelocked.
const maxEvents = 2_000_000

// Config describes one simulated run.
type Config struct {
	Seed uint64
	// Runners is the size of the pool (default 3).
	Runners int
	// Duration is the fault phase: commits arrive and faults strike (default 60 s).
	Duration time.Duration
	// Settle is the liveness phase after every fault heals (default 60 s).
	Settle time.Duration
	// Faults are the kinds drawn for the schedule when Schedule is nil.
	Faults []FaultKind
	// Schedule, when set, is used instead of a drawn one (property tests draw it).
	Schedule []Fault
	// CommitEvery is the mean time between repository changes (default 4 s).
	CommitEvery time.Duration
	// RunnerGrace is how long runners and the observer wait for a lost dispatcher (default 10 s).
	RunnerGrace time.Duration
	// Trace keeps a readable line per event in Report.Trace.
	Trace bool
	// Dispatchers is how many dispatcher nodes share the store (default
	// 1: the single dispatcher). Two or more make a failover world
	// (failover.go).
	Dispatchers int
	// OneJobBuilds is the world before pipelines: every commit one job,
	// every runner one slot and no labels. The frozen scenarios use it,
	// so that they go on replaying the schedules that found their bugs.
	OneJobBuilds bool
}

func (c *Config) defaults() {
	if c.Runners <= 0 {
		c.Runners = 3
	}
	if c.Duration <= 0 {
		c.Duration = 60 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = 60 * time.Second
	}
	if c.CommitEvery <= 0 {
		c.CommitEvery = 4 * time.Second
	}
	if c.RunnerGrace <= 0 {
		c.RunnerGrace = 10 * time.Second
	}
}

type role uint8

const (
	roleDispatcher role = iota
	roleObserver
	roleReporter
	roleRunner
)

// node is one simulated process.
type node struct {
	idx    int
	role   role
	name   string
	addr   actors.Addr
	host   string
	up     bool
	hung   bool
	exited bool
	gen    uint64
	inbox  []event
	tickAt time.Time

	disp *dispatcher.Core
	obs  *observer.Core
	rep  *reporter.Core
	run  *runner.Core
	// host is the shell the node's core runs in (actors/host), as in
	// production; its platform is the world (platform.go).
	sh *host.Host
	// forging is set while a malicious peer's forgery is handed to the host.
	forging *forgery
	// stale is set while a message from an older runner incarnation is
	// handed to the dispatcher's host: the checker compares the core's
	// digest before and after the step (staleStep).
	stale *staleCheck
	// crashPoints: until then, a step may crash between two of its effects.
	crashPoints time.Time

	// A dispatcher node of a failover world (failover.go): its leadership
	// while it leads, the send time of its last answered keepalive, and
	// what it answers as a standby.
	lead     *simLeadership
	keepSent time.Time
	standby  dispatcher.Standby
	session  int64 // the create revision of its session's key (0: none)

	runnerID  string
	inc       int64   // a runner's incarnation
	epoch     int64   // the dispatcher's epoch
	procs     []*proc // its job processes, oldest first (one per slot taken)
	labels    []string
	slots     int
	exitedAt  time.Time
	hungSince time.Time
	lastTick  time.Time
	zombie    bool // an older incarnation replaced while frozen: never restarted
	bootedAt  time.Time
	hungLost  time.Duration // time spent hung after the dispatcher was lost
}

// proc is a runner's job process (its process group).
type proc struct {
	id      uint64
	ref     *messages.JobRef
	job     *messages.Job
	run     *messages.RunJob
	started time.Time
	result  *messages.Result
	// asked and answered: its request for secrets is sent, and heard.
	asked, answered bool
}

// World is one simulated run.
type World struct {
	cfg   Config
	rng   *rand.Rand
	start time.Time
	now   time.Time
	q     queue
	seq   uint64

	nodes    []*node
	byAddr   map[actors.Addr]int
	watchers map[actors.Addr][]actors.Addr
	store    *durable
	results  *results
	repo     *Repo
	check    *checker

	dropP, dupP float64
	extraDelay  time.Duration
	slowGit     time.Duration
	blocked     map[[2]string]int
	schedule    []Fault
	nextFault   int
	lostAt      time.Time // dispatcher lost for good
	procs       uint64
	dispCfg     dispatcher.Config
	report      Report
	hash        uint64

	// The malicious peer (see malicious.go): its own random stream, its
	// identity, and when its current burst ends.
	mal      *rand.Rand
	malWho   actors.Identity
	malUntil time.Time

	// Secrets (see secrets.go): the dispatcher's store, what each commit's
	// .volt.yml asks for, and their own streams: sec for the runners and
	// the operator, malSec for the malicious peer's secret forgeries.
	// noSecrets turns them off (a test compares the two worlds).
	secrets *secretStore
	asks    map[string][]string
	sec     *rand.Rand
	malSec  *rand.Rand
	user    *rand.Rand // the simulated user's stream (user.go)
	pipes   *rand.Rand // pipelines' stream (pipeline.go)
	// labelled: the runners have labels (one has "gpu"), so pipelines may
	// ask for them.
	labelled  bool
	knobs     *rand.Rand // timers, swarm and aim (search.go)
	armed     []Fault    // aimed partitions waiting for a job to start (search.go)
	poll      time.Duration
	noSecrets bool

	// Store faults and crash points (fault kinds storefail, crashpoint,
	// batchcrash): when each role's store refuses writes until, and
	// whether the next batch or result file is struck by a crash.
	storeFaults map[role]time.Time
	batchCrash  bool
	fileCrash   bool

	// Failover worlds (failover.go): the election, how many dispatcher
	// nodes there are (the first nDisp nodes), and a leader pause armed to
	// strike at the leader's next batch.
	el         *election
	nDisp      int
	pauseArmed time.Duration

	// net, when set, is the stream the network draws on instead of rng:
	// while a forgery's effects are carried out (mal, or malSec for a
	// secret forgery) and while secret traffic is (sec), so that they
	// shift no draw of the world's.
	net *rand.Rand
}

// New builds a world from cfg; Run runs it.
func New(cfg Config) *World {
	graceGiven := cfg.RunnerGrace > 0
	cfg.defaults()
	w := &World{
		cfg:      cfg,
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		start:    time.Unix(1_700_000_000, 0).UTC(),
		byAddr:   map[actors.Addr]int{},
		watchers: map[actors.Addr][]actors.Addr{},
		store:    newDurable(),
		results:  newResults(),
		repo:     newRepo("main", "dev"),
		blocked:  map[[2]string]int{},
		hash:     fnv.New64a().Sum64(),
	}
	w.now = w.start
	w.check = newChecker(w)
	w.dispCfg = dispatcher.DefaultConfig()
	w.dispCfg.JobTimeout = 10 * time.Second
	// The log-ticket key the dispatcher shares with the reporter (in
	// production a file beside the CA).
	w.dispCfg.LogKey = []byte("volt-sim-log-ticket-key-32-bytes")
	w.mal = newMalRand(cfg.Seed)
	w.malWho = malIdentities[w.mal.IntN(len(malIdentities))]
	w.sec, w.malSec = newSecRand(cfg.Seed, 0), newSecRand(cfg.Seed, 1)
	w.user = newUserRand(cfg.Seed)
	w.pipes = newPipelineRand(cfg.Seed)
	w.secrets = newSecretStore(initialSecrets(w.repo))
	w.asks = map[string][]string{}
	w.poll = time.Second
	w.knobs = newKnobRand(cfg.Seed)
	w.schedule = cfg.Schedule
	w.nDisp = 1
	if cfg.Dispatchers > 1 {
		w.nDisp = cfg.Dispatchers
		w.el = &election{ttl: electionTTL, keys: map[int64]*sessionKey{}, writer: map[int64]int{}}
		w.noSecrets = true
		cfg.Faults = failoverKinds(cfg.Faults)
	}
	if w.schedule == nil {
		w.varyTimers(w.knobs, !graceGiven)
		w.cfg.Faults = swarm(w.knobs, cfg.Faults)
		w.schedule = drawSchedule(w.rng, w.mal, w.cfg.Faults, cfg.Runners, cfg.Duration, true)
	}
	if w.failover() {
		w.dispCfg = w.dispCfg.WithFailover(electionTTL + 3*time.Second)
		for i := range w.nDisp {
			w.addNode(roleDispatcher, "dispatcher", fmt.Sprintf("d%d:8000", i+1))
		}
	} else {
		w.addNode(roleDispatcher, "dispatcher", "disp")
	}
	w.addNode(roleObserver, "observer", "obs")
	w.addNode(roleReporter, "reporter", "rep")
	for i := 0; i < cfg.Runners; i++ {
		w.addNode(roleRunner, "runner", fmt.Sprintf("r%d", i+1))
	}
	// Runners have one to three slots, and the first has the label "gpu"
	// (pipelines ask for it now and then, and for "tpu", which none has).
	w.labelled = !cfg.OneJobBuilds
	for i, r := range w.runners() {
		if cfg.OneJobBuilds {
			break
		}
		r.slots = 1 + w.pipes.IntN(3)
		r.labels = []string{"os=linux"}
		if i == 0 {
			r.labels = append(r.labels, "gpu")
		}
	}
	return w
}

func (w *World) addNode(r role, name, host string) {
	n := &node{idx: len(w.nodes), role: r, name: host, host: host, addr: actors.NewAddr(host, name)}
	if r == roleRunner {
		n.runnerID = host
	}
	w.nodes = append(w.nodes, n)
	w.byAddr[n.addr] = n.idx
}

// dispatcherNode is the dispatcher: in a failover world the node that
// leads now, or the first one when none does.
func (w *World) dispatcherNode() *node {
	if w.failover() {
		if l := w.leaderNode(); l != nil {
			return l
		}
	}
	return w.nodes[0]
}
func (w *World) observerNode() *node { return w.nodes[w.nDisp] }
func (w *World) reporterNode() *node { return w.nodes[w.nDisp+1] }
func (w *World) runners() []*node    { return w.nodes[w.nDisp+2:] }

func (w *World) push(e event) {
	w.seq++
	e.seq = w.seq
	w.q.push(e)
}

// vt is a time as the queue orders it.
func (w *World) vt(t time.Time) int64 { return int64(t.Sub(w.start)) }

func (w *World) after(d time.Duration, e event) {
	e.at = w.vt(w.now) + int64(d)
	w.push(e)
}

// Run runs the world to the end of the settle phase and checks it.
func (w *World) Run() *Report {
	w.report.Seed = w.cfg.Seed
	w.report.Schedule = w.schedule
	for _, n := range w.nodes {
		w.boot(n)
	}
	w.after(w.commitGap(), event{kind: evCommit})
	if len(w.schedule) > 0 {
		w.push(event{at: int64(w.schedule[0].At), kind: evFault})
	}
	if !w.noSecrets && w.cfg.Duration >= 10*time.Second {
		w.drawAdmin()
	}
	w.drawUser()
	healAt := int64(w.cfg.Duration)
	end := healAt + int64(w.cfg.Settle)
	healed := false
	for len(w.q) > 0 {
		if !healed && w.q[0].at >= healAt {
			w.now = w.start.Add(time.Duration(healAt))
			w.heal()
			healed = true
			continue
		}
		if w.q[0].at > end {
			break
		}
		e := w.q.pop()
		w.now = w.start.Add(time.Duration(e.at))
		w.report.Events++
		if w.report.Events > maxEvents {
			w.check.fail(InvProgress, "more than %d events by %s: a livelock", maxEvents, w.now.Sub(w.start))
			break
		}
		w.handle(e)
	}
	w.now = w.start.Add(time.Duration(end))
	w.check.end(w)
	w.report.VirtualTime = time.Duration(end)
	w.report.TraceHash = w.hash
	w.report.Malicious = identityLabel(w.malWho)
	w.report.Timers, w.report.Kinds = w.timers(), w.cfg.Faults
	w.report.Checked = w.check.checked
	w.report.Commits = len(w.check.observed)
	w.report.Results, w.report.Jobs = w.check.wholeBuilds(), len(w.check.reported)
	return &w.report
}

func (w *World) commitGap() time.Duration {
	return time.Duration(w.rng.ExpFloat64() * float64(w.cfg.CommitEvery))
}

func (w *World) handle(e event) {
	switch e.kind {
	case evDeliver:
		n := w.nodes[e.node]
		if !n.up || e.gen != n.gen {
			detail := "(down)"
			if e.forged && w.cfg.Trace {
				detail = "(down; forged by " + identityLabel(e.from.Who) + ")"
			}
			w.trace(n, "drop", e.msg, detail)
			return
		}
		if n.hung {
			n.inbox = append(n.inbox, e)
			return
		}
		if n.role == roleDispatcher && w.failover() && n.sh == nil {
			w.standbyAnswers(n, e)
			return
		}
		if g, ok := e.msg.(*messages.SecretGrant); ok && n.role == roleRunner {
			w.secretAnswer(n, g) // the job's request hears it, not the core
			return
		}
		if e.forged {
			w.stepForged(n, e.from, e.msg)
			return
		}
		if isSecretInput(e.msg) {
			w.net = w.sec
		}
		w.step(n, e.from, e.msg)
		w.net = nil
	case evTick:
		n := w.nodes[e.node]
		if !n.up || n.hung || e.gen != n.gen || e.at != w.vt(n.tickAt) || n.sh == nil {
			return
		}
		n.tickAt = time.Time{}
		n.lastTick = w.now
		w.step(n, local, actors.Tick{})
	case evWork:
		n := w.nodes[e.node]
		switch {
		case !n.up || e.gen != n.gen:
			// The process died before its work ended: a write in flight is lost.
		case n.hung:
			n.inbox = append(n.inbox, e)
		default:
			w.step(n, local, e.msg.(func() any)())
		}
	case evJobEnd:
		n := w.nodes[e.node]
		i := slices.IndexFunc(n.procs, func(p *proc) bool { return p.id == uint64(e.arg) })
		if i < 0 || e.gen != n.gen {
			return
		}
		p := n.procs[i]
		n.procs = slices.Delete(n.procs, i, i+1)
		w.check.attemptEnded(n, p)
		w.deliverLocal(n, runner.JobDone{Ref: p.ref, Result: p.result})
	case evCommit:
		if w.now.Sub(w.start) >= w.cfg.Duration {
			return // the repository is quiet in the liveness phase
		}
		w.commit()
		w.after(w.commitGap(), event{kind: evCommit})
	case evFault:
		f := w.schedule[w.nextFault]
		w.nextFault++
		if w.nextFault < len(w.schedule) {
			w.push(event{at: int64(w.schedule[w.nextFault].At), kind: evFault})
		}
		w.inject(f)
	case evRestart:
		n := w.nodes[e.node]
		if e.arg == crashNow {
			if n.up && e.gen == n.gen {
				w.crash(n, time.Duration(w.rng.Int64N(int64(2*time.Second))))
			}
			return
		}
		if !n.up && !w.isLost(n) && !n.zombie {
			w.boot(n)
		}
	case evUnhang:
		n := w.nodes[e.node]
		if n.up && n.hung && e.gen == n.gen {
			w.unhang(n)
		}
	case evHeal:
		w.healOne(e)
	case evMalice:
		w.malice()
	case evAsk:
		n := w.nodes[e.node]
		p, _ := e.msg.(*proc)
		switch {
		case !n.up || e.gen != n.gen || !slices.Contains(n.procs, p):
		case n.hung:
			n.inbox = append(n.inbox, e) // the runner asks when it resumes
		default:
			w.askSecrets(n, p)
		}
	case evAdmin:
		w.adminSends(e.msg)
	case evSnoop:
		w.secretMalice()
	case evUser:
		w.userSends(e.msg)
	case evKeepalive:
		n := w.nodes[e.node]
		if n.up && e.gen == n.gen {
			w.keepalive(n)
		}
	case evExpire:
		w.expire()
	}
}

// isLost reports whether n must stay down because the dispatcher is gone for good.
func (w *World) isLost(n *node) bool {
	return !w.lostAt.IsZero() && (n.role == roleDispatcher || n.role == roleRunner || n.role == roleObserver)
}

// deliverLocal hands a shell's answer to its own node (no network).
func (w *World) deliverLocal(n *node, msg any) {
	w.push(event{at: w.vt(w.now), kind: evDeliver, node: n.idx, gen: n.gen, from: local, msg: msg})
}

// local is the sender of what a node's own shell hands its core: a tick, a
// poll's answer, a job's end, a watched peer's termination.
var local = actors.From{Who: actors.Local}

// identity is what a node's certificate proves to whoever it sends to.
func (n *node) identity() actors.Identity {
	switch n.role {
	case roleDispatcher:
		return actors.Identity{Role: actors.RoleDispatcher, Name: n.host}
	case roleObserver:
		return actors.Identity{Role: actors.RoleObserver, Name: n.host}
	case roleReporter:
		return actors.Identity{Role: actors.RoleReporter, Name: n.host}
	}
	return actors.Identity{Role: actors.RoleRunner, Name: n.runnerID}
}

// boot starts (or restarts) a node with a fresh core.
func (w *World) boot(n *node) {
	n.up, n.hung, n.exited = true, false, false
	n.bootedAt = w.now
	n.gen++
	n.inbox = nil
	n.tickAt = time.Time{}
	n.forging = nil
	n.crashPoints = time.Time{}
	disp := w.nodes[0].addr
	nodes := w.dispAddrs()
	p := &platform{w: w, n: n, gen: n.gen}
	// The roles' own shells, on fakes of their ports (ports.go).
	var role host.Role
	switch n.role {
	case roleDispatcher:
		if w.failover() {
			// A node of a failover group campaigns; it leads when it wins.
			w.trace(n, "start", nil, fmt.Sprintf("generation %d", n.gen))
			n.disp, n.sh, n.lead = nil, nil, nil
			n.standby = dispatcher.Standby{Node: n.host, Since: w.now}
			w.openSession(n)
			return
		}
		n.epoch = w.now.UnixNano() // the shell's epoch: its start time
		role = dispatcher.NewShell(w.dispCfg, &dispStore{p: p, d: w.store, secretStore: w.secrets})
		w.check.dispatcherBooted()
	case roleObserver:
		role = observer.NewShell(observer.Config{ID: "observer", Dispatcher: disp, Nodes: nodes, Poll: w.poll, Grace: w.cfg.RunnerGrace,
			MaxBacklog: 5, Repos: []*messages.WatchedRepo{{Url: w.repo.URL, Name: w.repo.Name, Branches: w.repo.order}}}, repoReader{w})
	case roleReporter:
		role = reporter.NewShell(reporter.Config{ID: "reporter", Dispatcher: disp, Nodes: nodes}, &resultStore{p: p, r: w.results})
	case roleRunner:
		// Each incarnation is its own actor (as in production), so a late
		// PeerTerminated for the previous one cannot be mistaken for this one.
		n.addr = actors.NewAddr(n.host, fmt.Sprintf("runner-%d-%d", n.idx, n.gen))
		w.byAddr[n.addr] = n.idx
		// A process's incarnation is unique to it, even when a runner
		// restarts at the very instant it started (a replaced runner's
		// twin crashed by the same tick): never the one before.
		n.inc = max(w.now.UnixNano()+int64(n.idx), n.inc+int64(len(w.nodes)))
		role = runner.NewShell(runner.Config{ID: n.runnerID, Incarnation: n.inc, Hostname: n.host,
			Dispatcher: disp, Nodes: nodes, Grace: w.cfg.RunnerGrace, Labels: n.labels, Slots: n.slots}, jobs{p})
	}
	w.trace(n, "start", nil, fmt.Sprintf("generation %d", n.gen))
	n.disp = nil
	n.sh = host.New(p, role)
	n.sh.Start()
}

func (w *World) deadline(n *node) time.Time {
	if n.sh == nil || n.sh.Core() == nil {
		return time.Time{}
	}
	return n.sh.Deadline()
}

func (w *World) scheduleTick(n *node) {
	if !n.up || n.hung {
		return
	}
	d := w.deadline(n)
	if d.IsZero() {
		return
	}
	if d.Before(w.now) {
		d = w.now
	}
	if !d.After(n.lastTick) {
		// A core that asks for a tick at the instant it just ticked would
		// spin without time passing: give it the next millisecond.
		d = n.lastTick.Add(time.Millisecond)
	}
	if !n.tickAt.IsZero() && !n.tickAt.After(d) && !n.tickAt.Before(w.now) {
		return
	}
	n.tickAt = d
	w.push(event{at: w.vt(d), kind: evTick, node: n.idx, gen: n.gen})
}

// step hands one input to a node's host, which feeds it to the core and
// carries out the effects (the platform traces and checks the step).
func (w *World) step(n *node, from actors.From, in any) {
	if w.check.stale(n, in) {
		n.stale = &staleCheck{before: w.digest(n)}
	}
	n.sh.Receive(from, in)
	n.stale = nil
}

// staleCheck is the dispatcher core's digest before a step on a message
// from an older runner incarnation.
type staleCheck struct{ before uint64 }

// forgery is what the checker needs of a forged step: the core's digest
// before it, and the input as the core saw it.
type forgery struct {
	before  uint64
	in      any
	stepped bool
}

// stepForged hands a malicious peer's forgery to a node's host; the
// platform checks that the step changed nothing (InvMalicious) before its
// effects are carried out. A forgery the host holds (a rebuild waiting for
// a batch) is checked as an ordinary step when it is released.
func (w *World) stepForged(n *node, from actors.From, in any) {
	w.report.Forged++
	f := &forgery{before: w.digest(n)}
	secrets := w.secrets.version
	w.net = w.mal
	if isSecretInput(in) {
		w.net = w.malSec
	}
	n.forging = f
	n.sh.Receive(from, in)
	n.forging = nil
	w.net = nil
	if f.stepped {
		w.check.forgedSecrets(n, from, f.in, secrets, w.secrets.version)
	}
}

// digest is the state digest of n's core.
func (w *World) digest(n *node) uint64 {
	switch n.role {
	case roleDispatcher:
		return n.disp.Digest()
	case roleObserver:
		return n.obs.Digest()
	case roleReporter:
		return n.rep.Digest()
	}
	return n.run.Digest()
}

// send puts a message on the simulated network.
func (w *World) send(src *node, to actors.Addr, msg proto.Message) {
	di, ok := w.byAddr[to]
	if !ok {
		return
	}
	dst := w.nodes[di]
	if dst.addr != to {
		return // an earlier incarnation's actor: nobody is there any more
	}
	// What a forgery makes a node send draws on the malicious peer's
	// stream, secret traffic on the secrets' (see net), so that they shift
	// no draw of the world's.
	rng := w.rng
	switch {
	case w.net != nil:
		rng = w.net
	case isSecretReply(msg):
		// Secret traffic the dispatcher's shell sends after a batch lands
		// (held behind it), out of the step that made it.
		rng = w.sec
	}
	if w.blocked[[2]string{src.host, dst.host}] > 0 || (w.dropP > 0 && rng.Float64() < w.dropP) {
		w.trace(src, "lost", msg, string(to))
		return
	}
	delay := 200*time.Microsecond + time.Duration(rng.Int64N(int64(2*time.Millisecond)))
	if w.extraDelay > 0 {
		delay += time.Duration(rng.Int64N(int64(w.extraDelay)))
	}
	from := actors.From{Addr: src.addr, Who: src.identity()}
	w.push(event{at: w.vt(w.now) + int64(delay), kind: evDeliver, node: di, gen: dst.gen, from: from, msg: msg})
	if w.dupP > 0 && rng.Float64() < w.dupP {
		w.push(event{at: w.vt(w.now) + int64(delay) + rng.Int64N(int64(50*time.Millisecond)), kind: evDeliver,
			node: di, gen: dst.gen, from: from, msg: msg})
	}
}

func (w *World) outcome(p *proc, s messages.Status, reason string) *messages.Result {
	return &messages.Result{Job: p.job, Attempt: p.ref.Attempt, Status: s, Reason: reason,
		StartedUnixMs: p.started.UnixMilli(), FinishedUnixMs: w.now.UnixMilli()}
}

func (w *World) startJob(n *node, run *messages.RunJob) {
	info := w.repo.commits[run.Job.Commit]
	if info == nil {
		info = &commitInfo{durationMs: 500}
	}
	w.procs++
	p := &proc{id: w.procs, ref: &messages.JobRef{JobId: run.Job.Id, Attempt: run.Attempt}, job: run.Job, run: run, started: w.now}
	n.procs = append(n.procs, p)
	w.check.slotsUsed(n)
	w.check.attemptStarted(w, n, p)
	w.check.ticketStarted(w, n, run) // tickets.go
	w.strikeArmed(n)                 // search.go
	if info.poison {
		w.trace(n, "poison", nil, run.Job.Commit)
		w.crash(n, 500*time.Millisecond)
		return
	}
	d := time.Duration(info.durationMs) * time.Millisecond
	timeout := time.Duration(run.TimeoutMs) * time.Millisecond
	status := messages.Status_STATUS_PASSED
	if info.fails {
		status = messages.Status_STATUS_FAILED
	}
	if info.pipeline != nil {
		status = cellStatus(info, run)
	}
	if info.hangs || d > timeout {
		d, status = timeout, messages.Status_STATUS_TIMED_OUT
	}
	p.result = &messages.Result{Job: run.Job, Attempt: run.Attempt, Status: status,
		StartedUnixMs: w.now.UnixMilli(), FinishedUnixMs: w.now.Add(d).UnixMilli()}
	w.after(d, event{kind: evJobEnd, node: n.idx, gen: n.gen, arg: int(p.id)})
	w.secretsAfterStart(n, p)
}

// down takes a node down: its job processes die with it (parent-death
// signal), watchers hear of it, its own watches end.
func (w *World) down(n *node) {
	n.up, n.hung = false, false
	if n.lead != nil {
		w.traceWorld(fmt.Sprintf("%s is down: it leads no more (its key lives until its lease expires)", n.name))
		n.lead, n.sh, n.disp = nil, nil, nil
	}
	n.session = 0 // a new process opens a new session
	n.gen++
	n.inbox = nil
	for _, p := range n.procs {
		w.check.attemptEnded(n, p)
	}
	n.procs = nil
	for t, ws := range w.watchers {
		w.watchers[t] = slices.DeleteFunc(ws, func(a actors.Addr) bool { return a == n.addr })
	}
	for _, wa := range w.watchers[n.addr] {
		wn := w.nodes[w.byAddr[wa]]
		w.after(time.Duration(2+w.rng.IntN(8))*time.Millisecond, event{kind: evDeliver, node: wn.idx, gen: wn.gen,
			from: local, msg: actors.PeerTerminated{Addr: n.addr, Reason: "AddressTerminated"}})
	}
	delete(w.watchers, n.addr)
}

// crash kills a node; the supervisor restarts it after restart (never if negative).
func (w *World) crash(n *node, restart time.Duration) {
	if !n.up {
		return
	}
	w.trace(n, "crash", nil, "")
	w.down(n)
	if restart >= 0 {
		w.after(restart, event{kind: evRestart, node: n.idx})
	}
}

func (w *World) unhang(n *node) {
	n.hung = false
	if !w.lostAt.IsZero() {
		from := n.hungSince
		if from.Before(w.lostAt) {
			from = w.lostAt
		}
		n.hungLost += w.now.Sub(from)
	}
	w.trace(n, "resume", nil, "")
	inbox := n.inbox
	n.inbox = nil
	for _, e := range inbox {
		e.at = w.vt(w.now)
		w.push(e)
	}
	w.scheduleTick(n)
	if n.role == roleDispatcher && w.failover() {
		w.unhangDispatcher(n)
	}
}

func (w *World) commit() {
	info := &commitInfo{durationMs: 300 + w.rng.Int64N(3700)}
	switch x := w.rng.IntN(100); {
	case x < 15:
		info.fails = true
	case x < 17:
		info.hangs = true
	case x < 22 && slices.Contains(w.cfg.Faults, FaultPoison):
		info.poison = true
	}
	stuck := false
	if !w.cfg.OneJobBuilds {
		stuck = drawPipeline(w.pipes, info, w.labelled)
	}
	branch := w.repo.order[w.rng.IntN(len(w.repo.order))]
	switch x := w.rng.IntN(100); {
	case x < 10 && w.repo.merge("main", "dev"):
		w.traceWorld("merge dev into main")
		return
	case x < 18 && slices.Contains(w.cfg.Faults, FaultForcePush) && len(w.repo.branches[branch]) > 1:
		id := w.repo.newCommit(w.rng, info)
		w.check.stuck[id] = stuck
		w.repo.forcePush(branch, id)
		w.traceWorld("force push " + branch + " " + id)
		return
	}
	id := w.repo.newCommit(w.rng, info)
	w.check.stuck[id] = stuck
	w.repo.push(branch, id)
	w.traceWorld("commit " + branch + " " + id)
}

func (w *World) inject(f Fault) {
	if f.Aim && w.arm(f) {
		return
	}
	w.report.Faults = append(w.report.Faults, f)
	w.traceWorld("fault: " + f.String())
	if w.failover() && w.injectFailover(f) {
		return
	}
	var pool []*node
	for _, n := range w.runners() {
		if !n.zombie {
			pool = append(pool, n)
		}
	}
	r := pool[f.Target%len(pool)]
	if f.Aim {
		if a := w.aim(&f, pool); a != nil {
			r = a
			f.Target = slices.Index(pool, a)
			w.report.Faults[len(w.report.Faults)-1] = f
			w.traceWorld("aimed: " + f.String())
		}
	}
	switch f.Kind {
	case FaultCrash:
		w.crash(r, f.Length)
	case FaultRestart:
		w.crash(r, 0)
	case FaultHang:
		if r.up && !r.hung {
			r.hung = true
			r.hungSince = w.now
			w.check.hung(r)
			w.after(f.Length, event{kind: evUnhang, node: r.idx, gen: r.gen})
		}
	case FaultReplace:
		if r.up && !r.hung && !r.zombie {
			r.hung, r.zombie = true, true
			r.hungSince = w.now
			w.check.hung(r)
			w.after(f.Length, event{kind: evUnhang, node: r.idx, gen: r.gen})
			twin := &node{idx: len(w.nodes), role: roleRunner, name: r.name, host: r.host, runnerID: r.runnerID, gen: r.gen,
				labels: r.labels, slots: r.slots}
			w.nodes = append(w.nodes, twin)
			w.boot(twin)
		}
	case FaultDispatcher:
		w.crash(w.dispatcherNode(), f.Length)
		w.cancelAfterRestart(f.Length) // user.go
	case FaultDispatcherLoss:
		w.lostAt = w.now
		w.crash(w.dispatcherNode(), -1)
	case FaultObserver:
		w.crash(w.observerNode(), f.Length)
	case FaultReporter:
		w.crash(w.reporterNode(), f.Length)
	case FaultPartition:
		d := w.dispatcherNode().host
		w.blocked[[2]string{d, r.host}]++
		if !f.OneWay {
			w.blocked[[2]string{r.host, d}]++
		}
		w.after(f.Length, event{kind: evHeal, node: r.idx, arg: boolInt(f.OneWay) + 1, msg: d})
	case FaultDrop:
		w.dropP = 0.05 + w.rng.Float64()*0.3
		w.after(f.Length, event{kind: evHeal, node: -1, msg: FaultDrop})
	case FaultDup:
		w.dupP = 0.1 + w.rng.Float64()*0.4
		w.after(f.Length, event{kind: evHeal, node: -1, msg: FaultDup})
	case FaultDelay:
		w.extraDelay = time.Duration(50+w.rng.IntN(250)) * time.Millisecond
		w.after(f.Length, event{kind: evHeal, node: -1, msg: FaultDelay})
	case FaultSlowGit:
		w.slowGit = time.Duration(200+w.rng.IntN(3000)) * time.Millisecond
		w.after(f.Length, event{kind: evHeal, node: -1, msg: FaultSlowGit})
	case FaultForcePush:
		if b := w.repo.order[w.rng.IntN(len(w.repo.order))]; len(w.repo.branches[b]) > 0 {
			w.repo.forcePush(b, w.repo.newCommit(w.rng, &commitInfo{durationMs: 500}))
		}
	case FaultPoison:
		id := w.repo.newCommit(w.rng, &commitInfo{poison: true})
		w.repo.push("main", id)
	case FaultMalicious:
		w.startMalice(f)
	case FaultCrashPoint:
		// The target's steps may crash between two effects for a while;
		// the reporter's next result file is struck between its insert
		// and the file.
		t := w.shellTarget(f.Target, pool)
		t.crashPoints = w.now.Add(f.Length)
		if t.role == roleReporter {
			w.fileCrash = true
		}
	case FaultBatchCrash:
		w.batchCrash = true
	case FaultStoreFail:
		r := roleDispatcher
		if f.Target%2 == 1 {
			r = roleReporter
		}
		if w.storeFaults == nil {
			w.storeFaults = map[role]time.Time{}
		}
		w.storeFaults[r] = w.now.Add(f.Length)
	}
}

// shellTarget is the node a crash-point fault strikes: the dispatcher,
// the reporter, the observer or a runner.
func (w *World) shellTarget(t int, pool []*node) *node {
	switch t % 4 {
	case 0:
		return w.dispatcherNode()
	case 1:
		return w.reporterNode()
	case 2:
		return w.observerNode()
	}
	return pool[(t/4)%len(pool)]
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (w *World) healOne(e event) {
	if e.node >= 0 {
		r := w.nodes[e.node]
		d, _ := e.msg.(string) // the dispatcher the partition cut off
		if w.blocked[[2]string{d, r.host}] > 0 {
			w.blocked[[2]string{d, r.host}]--
		}
		if e.arg == 1 && w.blocked[[2]string{r.host, d}] > 0 {
			w.blocked[[2]string{r.host, d}]--
		}
		return
	}
	switch e.msg.(FaultKind) {
	case FaultDrop:
		w.dropP = 0
	case FaultDup:
		w.dupP = 0
	case FaultDelay:
		w.extraDelay = 0
	case FaultSlowGit:
		w.slowGit = 0
	}
}

// heal ends the fault phase: the network heals, hung nodes resume, and the
// supervisors bring back what is down (unless the dispatcher is gone for good).
func (w *World) heal() {
	w.traceWorld("heal: faults end, liveness phase begins")
	w.nextFault = len(w.schedule)
	w.dropP, w.dupP, w.extraDelay, w.slowGit = 0, 0, 0, 0
	clear(w.storeFaults)
	w.batchCrash, w.fileCrash = false, false
	if w.failover() {
		w.el.outage, w.el.slow, w.pauseArmed = time.Time{}, time.Time{}, 0
	}
	for _, n := range w.nodes {
		n.crashPoints = time.Time{}
	}
	w.malUntil = time.Time{}
	clear(w.blocked)
	for _, n := range w.nodes {
		if n.up && n.hung {
			w.unhang(n)
		}
	}
	if !w.lostAt.IsZero() {
		return
	}
	for _, n := range w.nodes {
		if !n.up && !n.zombie {
			w.boot(n)
		}
	}
}

// trace folds an event into the trace hash and, when asked, the text trace.
func (w *World) trace(n *node, what string, msg any, detail string) {
	h := w.hash
	mix := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
	}
	t := uint64(w.now.Sub(w.start))
	for i := 0; i < 8; i++ {
		h ^= t & 0xff
		h *= 1099511628211
		t >>= 8
	}
	h ^= uint64(n.idx)
	h *= 1099511628211
	mix(what)
	name := inputName(msg)
	mix(name)
	w.hash = h
	if w.cfg.Trace {
		w.report.Trace = append(w.report.Trace, fmt.Sprintf("%10.3fs  %-5s %-6s %-20s %s",
			w.now.Sub(w.start).Seconds(), n.name, what, name, detail))
	}
}

func (w *World) traceWorld(s string) {
	h := w.hash
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	w.hash = h
	if w.cfg.Trace {
		w.report.Trace = append(w.report.Trace, fmt.Sprintf("%10.3fs  %-5s %s", w.now.Sub(w.start).Seconds(), "world", s))
	}
}

func inputName(in any) string {
	switch m := in.(type) {
	case nil:
		return ""
	case string:
		return m
	case *messages.Heartbeat:
		return "Heartbeat"
	case *messages.HeartbeatAck:
		return "HeartbeatAck"
	case proto.Message:
		return string(m.ProtoReflect().Descriptor().Name())
	case actors.Tick:
		return "Tick"
	case actors.PeerTerminated:
		return "PeerTerminated"
	case dispatcher.Observed:
		return "CommitObserved"
	case dispatcher.Rebuild:
		return "RebuildRequest"
	case dispatcher.SecretAsk:
		return "SecretRequest"
	case runner.JobDone:
		return "JobDone"
	case observer.Polled:
		return "Polled"
	}
	return fmt.Sprintf("%T", in)
}

func formatArgs(args []any) string {
	var b strings.Builder
	for i := 0; i+1 < len(args); i += 2 {
		fmt.Fprintf(&b, " %v=%v", args[i], args[i+1])
	}
	return b.String()
}
