package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/store/etcdstore"
)

// FailoverConfig is a dispatcher node of a failover group (docs/failover.md).
type FailoverConfig struct {
	// Dispatcher is the leader's configuration (WithFailover applied).
	Dispatcher dispatcher.Config
	// DB is the etcd store: the queue, and the client the election uses.
	DB *etcdstore.DB
	// TTL is the session lease of the election (5 s by default).
	TTL time.Duration
}

// Failover runs this node's part in the election: a standby under the
// dispatcher's name while another node leads, the dispatcher role while
// this one does.
type Failover struct {
	n    *Node
	cfg  FailoverConfig
	log  *slog.Logger
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	state dispatcher.Standby // what the standby answers (Leader, Epoch, Since)
	role  string             // "standby" or "leader"
}

// DefaultElectionTTL is the session lease of the election unless set.
const DefaultElectionTTL = 5 * time.Second

// leaseMargin is taken off a leader's own reckoning of its lease: clocks
// drift, and a keepalive's answer is not instant.
const leaseMargin = 250 * time.Millisecond

// StartFailover makes this node a member of the failover group in cfg.DB:
// it campaigns at once, as a standby until it wins. Node.Shutdown hands
// the lead over (when it leads) before the node stops.
func (n *Node) StartFailover(cfg FailoverConfig) (*Failover, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultElectionTTL
	}
	if cfg.TTL < time.Second {
		return nil, fmt.Errorf("election TTL %s: etcd leases count whole seconds; use 1s or more", cfg.TTL)
	}
	f := &Failover{n: n, cfg: cfg, log: n.logger.With("role", "dispatcher"), stop: make(chan struct{}), done: make(chan struct{}),
		state: dispatcher.Standby{Node: n.Address, Since: time.Now()}, role: "standby"}
	if err := f.spawnStandby(); err != nil {
		return nil, err
	}
	f.syncRevocations()
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		defer close(f.done)
		go func() {
			<-n.stopBG
			close(f.stop)
		}()
		f.run()
	}()
	return f, nil
}

// Role is "leader" or "standby".
func (f *Failover) Role() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.role
}

// Standby is what the node answers as a standby: the leader it knows of,
// that leader's epoch, and since when it stands by.
func (f *Failover) Standby() dispatcher.Standby { return f.standby() }

func (f *Failover) standby() dispatcher.Standby {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

func (f *Failover) setLeader(leader string, rev int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state.Leader, f.state.Epoch = leader, rev
}

// run campaigns, leads, steps down and campaigns again until the node stops.
func (f *Failover) run() {
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-f.stop:
			f.stopActor()
			return
		default:
		}
		err := f.term()
		if err == nil {
			return // stopped
		}
		f.log.Warn("dispatcher node: election round ended; campaigning again", "error", err, "retry_in", backoff)
		select {
		case <-f.stop:
			f.stopActor()
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// term is one session: campaign as a standby, lead when won, until the
// session ends (nil when the node stops).
func (f *Failover) term() error {
	cli := f.cfg.DB.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	ttl := int(f.cfg.TTL / time.Second)
	session, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("open an etcd session: %w", err)
	}
	defer session.Close()
	election := concurrency.NewElection(session, f.cfg.DB.Prefix()+"/election")
	go f.observe(ctx, election)

	start := time.Now()
	if err := election.Campaign(ctx, f.n.Address); err != nil {
		if f.stopping() {
			return nil
		}
		return fmt.Errorf("campaign: %w", err)
	}
	fence := dispatcher.Fence{Key: election.Key(), Revision: election.Rev()}
	lead := &leadership{fence: fence, fencedC: make(chan struct{})}
	if !lead.renew(ctx, cli, session.Lease(), f.cfg.TTL) {
		return errors.New("the session's lease could not be renewed right after winning")
	}
	go lead.keepAlive(ctx, cli, session.Lease(), f.cfg.TTL)
	won := time.Now()
	f.log.Info("dispatcher node leads", "epoch", fence.Revision, "key", fence.Key, "campaign", won.Sub(start).Round(time.Millisecond))
	pid, err := f.spawnLeader(lead)
	if err != nil {
		_ = election.Resign(context.Background())
		return err
	}
	f.setLeader(f.n.Address, fence.Revision)

	// Lead until the session ends, the lease lapses by our own clock, a
	// write is fenced, or the node stops.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-f.stop:
			f.handOver(pid, election)
			return nil
		case <-session.Done():
			f.stepDown(pid, "its etcd session ended (lease expired or etcd unreachable)", fence)
			return errors.New("session ended")
		case <-lead.fencedC:
			f.stepDown(pid, "etcd refused a write: another node won the election", fence)
			return errors.New("fenced")
		case <-tick.C:
			if !lead.Valid(time.Now()) {
				f.stepDown(pid, "its lease ran out by its own clock (paused, or etcd unreachable)", fence)
				return errors.New("lease lapsed")
			}
		}
	}
}

func (f *Failover) stopping() bool {
	select {
	case <-f.stop:
		return true
	default:
		return false
	}
}

// observe keeps the standby's answer naming the current leader.
func (f *Failover) observe(ctx context.Context, e *concurrency.Election) {
	for resp := range e.Observe(ctx) {
		if len(resp.Kvs) == 0 {
			continue
		}
		kv := resp.Kvs[0]
		f.setLeader(string(kv.Value), kv.CreateRevision)
	}
}

// handOver is the graceful stop of a leader: stop assigning (what is being
// written lands first), then resign, so that a standby leads at once.
func (f *Failover) handOver(pid *actor.PID, e *concurrency.Election) {
	root := f.n.System.Root
	if _, err := root.RequestFuture(pid, dispatcher.Drain{}, drainTimeout).Result(); err != nil {
		f.log.Warn("stopping the leader: it did not settle", "error", err)
	}
	_ = root.PoisonFuture(pid).Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Resign(ctx); err != nil {
		f.log.Warn("resign the election", "error", err)
		return
	}
	f.log.Info("dispatcher node resigned the lead: a standby takes over")
}

// stepDown stops the leader role at once and serves as a standby again.
func (f *Failover) stepDown(pid *actor.PID, why string, fence dispatcher.Fence) {
	_ = f.n.System.Root.StopFuture(pid).Wait()
	f.log.Warn("dispatcher node no longer leads: it assigns nothing more and serves as a standby", "why", why, "epoch", fence.Revision)
	f.mu.Lock()
	f.role, f.state.Since = "standby", time.Now()
	if f.state.Leader == f.n.Address {
		f.state.Leader, f.state.Epoch = "", 0
	}
	f.mu.Unlock()
	if err := f.spawnStandby(); err != nil {
		f.log.Error("start the standby", "error", err)
	}
}

// stopActor stops whichever actor serves under the dispatcher's name.
func (f *Failover) stopActor() {
	_ = f.n.System.Root.PoisonFuture(actor.NewPID(f.n.System.Address(), DispatcherName)).Wait()
}

func (f *Failover) spawnStandby() error {
	props := actor.PropsFromProducer(func() actor.Actor { return &standbyActor{f: f} })
	_, err := f.n.System.Root.SpawnNamed(props, DispatcherName)
	if err != nil {
		return fmt.Errorf("start the standby: %w", err)
	}
	return nil
}

func (f *Failover) spawnLeader(lead *leadership) (*actor.PID, error) {
	_ = f.n.System.Root.PoisonFuture(actor.NewPID(f.n.System.Address(), DispatcherName)).Wait() // the standby
	f.cfg.DB.Lead(etcdstore.Fence{Key: lead.fence.Key, Revision: lead.fence.Revision})
	var st dispatcher.Store = fencedStore{Store: EtcdQueue(f.cfg.DB), lead: lead}
	if f.n.Credentials != nil {
		fence := etcdstore.Fence{Key: lead.fence.Key, Revision: lead.fence.Revision}
		st = secretStore{Store: st, sealed: etcdSecrets{db: f.cfg.DB, fence: fence},
			keyFile: filepath.Join(f.n.Credentials.Dir(), store.SecretKeyFile)}
	}
	env := f.n.Env("dispatcher")
	props := actor.PropsFromProducer(func() actor.Actor {
		shell := dispatcher.NewShell(f.cfg.Dispatcher, st)
		shell.SetLeadership(lead)
		return host.NewActor(shell, env)
	}, actor.WithGuardian(f.n.supervisor(DispatcherName)))
	pid, err := f.n.System.Root.SpawnNamed(props, DispatcherName)
	if err != nil {
		return nil, fmt.Errorf("start the dispatcher: %w", err)
	}
	f.mu.Lock()
	f.role, f.state.Since = "leader", time.Now()
	f.mu.Unlock()
	return pid, nil
}

// fencedStore is the etcd store as a leader writes to it: a write refused
// by the fence tells the election loop at once.
type fencedStore struct {
	dispatcher.Store
	lead *leadership
}

// Path names the store for the ERROR a failing write logs.
func (s fencedStore) Path() string { return host.PathOf(s.Store) }

// Save implements dispatcher.Queue.
func (s fencedStore) Save(b dispatcher.Batch) error {
	err := s.Store.Save(b)
	if errors.Is(err, dispatcher.ErrFenced) {
		s.lead.fenced()
	}
	return err
}

// leadership is this node's dispatcher.Leadership while it leads.
type leadership struct {
	fence   dispatcher.Fence
	mu      sync.Mutex
	until   time.Time
	lapsed  bool
	once    sync.Once
	fencedC chan struct{}
}

func (l *leadership) Fence() dispatcher.Fence { return l.fence }

// Valid implements dispatcher.Leadership. Once false it stays false: a
// keepalive answered after the lease ran out by this node's clock does not
// make it lead again; it steps down and campaigns afresh.
func (l *leadership) Valid(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !now.Before(l.until) {
		l.lapsed = true
	}
	return !l.lapsed
}

func (l *leadership) fenced() { l.once.Do(func() { close(l.fencedC) }) }

// renew sends one keepalive and, when etcd answers, moves the end of this
// node's own reckoning of its lease: the keepalive's send time plus the
// TTL etcd granted, minus a margin.
func (l *leadership) renew(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID, ttl time.Duration) bool {
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, ttl/3)
	defer cancel()
	resp, err := cli.KeepAliveOnce(rctx, lease)
	if err != nil || resp.TTL <= 0 {
		return false
	}
	l.mu.Lock()
	l.until = sent.Add(time.Duration(resp.TTL)*time.Second - leaseMargin)
	l.mu.Unlock()
	return true
}

// keepAlive renews the lease every third of its TTL (see renew).
func (l *leadership) keepAlive(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID, ttl time.Duration) {
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.renew(ctx, cli, lease, ttl)
	}
}

// standbyActor answers every role under the dispatcher's name while this
// node does not lead (dispatcher.Standby.Answer).
type standbyActor struct{ f *Failover }

func (s *standbyActor) Receive(ctx actor.Context) {
	in, from, ok := actors.Received(ctx)
	if !ok {
		return
	}
	for _, e := range s.f.standby().Answer(from, in) {
		if send, ok := e.(actors.Send); ok {
			ctx.Request(actors.PID(send.To), send.Msg)
		}
	}
}

// revocationsEvery is how often a node of a failover group reconciles its
// revocation list with etcd's.
const revocationsEvery = time.Second

// syncRevocations keeps the group's revocation list in etcd: what this
// node's credentials directory revokes (`volt ca revoke` here) is added to
// etcd, and what another node added is learned here (and so announced to
// the peers this node talks to, and enforced by its guard).
func (f *Failover) syncRevocations() {
	creds := f.n.Credentials
	if creds == nil {
		return
	}
	f.n.bg.Add(1)
	go func() {
		defer f.n.bg.Done()
		t := time.NewTicker(revocationsEvery)
		defer t.Stop()
		for {
			select {
			case <-f.n.stopBG:
				return
			case <-t.C:
			}
			shared, err := f.cfg.DB.Revocations()
			if err != nil {
				continue // etcd unreachable: next time
			}
			have := map[string]bool{}
			for _, e := range shared {
				have[e] = true
			}
			for _, e := range creds.RevokedList() {
				if !have[e] {
					if err := f.cfg.DB.Revoke(e); err == nil {
						f.log.Info("revocation shared with the failover group", "entry", e)
					}
				}
			}
			if n := creds.Learn(shared); n > 0 {
				f.log.Info("revocations learned from the failover group", "new", n)
			}
		}
	}()
}
