package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/pki"
)

// NodeConfig describes one Volt process's actor system.
type NodeConfig struct {
	// Listen is host:port for Proto.Actor remote; port 0 picks any free
	// port. Empty means no remote: a purely local actor system.
	Listen string
	// PortRange, when Listen's port is 0 and the range is set, picks the
	// first free port in [PortRange[0], PortRange[1]] by binding it.
	PortRange [2]int
	// Advertise, if set, is the host others use to reach this node.
	Advertise string
	// Logger receives the node's and Proto.Actor's logs.
	Logger *slog.Logger
	// ActorLogLevel filters Proto.Actor's own logs (it is chatty at info).
	ActorLogLevel slog.Level
	// Credentials make every remote connection mutual TLS with the cluster
	// CA and deliver only what each peer's certificate role may send, as
	// that peer (guard.go). Every volt command sets them; nil is plain,
	// unauthenticated remote, left for benchmarks that measure what TLS
	// costs.
	Credentials *pki.Credentials
	// CredentialsFor, when Credentials is nil, opens them once the node's
	// address (host:port, the port chosen) is known: a runner's default
	// name contains its port. Its error is returned by Start as it is.
	CredentialsFor func(address string) (*pki.Credentials, error)
	// ServeJoin serves the join endpoint (JoinMethod) when the node has the
	// CA key: the dispatcher and `volt up` do.
	ServeJoin bool
	// RenewFrom is the dispatcher (host:port) a node whose certificate was
	// issued to it (it has no CA key) renews that certificate from, at two
	// thirds of its life. Empty: no renewal.
	RenewFrom string
	// ServerOptions are extra gRPC server options for the remote (the
	// benchmarks' plain-remote comparison stamps identities with one).
	ServerOptions []grpc.ServerOption
}

// Node is a running actor system with its supervised role actors.
type Node struct {
	System  *actor.ActorSystem
	Remote  *remote.Remote
	Address string
	// Credentials are the node's TLS identity (nil without remote).
	Credentials *pki.Credentials
	logger      *slog.Logger

	mu       sync.Mutex
	roles    []*actor.PID
	drainers map[*actor.PID]any // roles asked to settle (this message) before they stop
	failures map[string]string  // role name → its last failure (supervisor)
	stopping bool
	done     chan struct{}
	code     int
	reason   string
	monitor  *actor.PID
	links    *endpoints // nil without remote

	bg     sync.WaitGroup // background work the node owns (workspace pruning)
	stopBG chan struct{}
}

// levelHandler drops records below a level.
type levelHandler struct {
	slog.Handler
	min slog.Level
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

// Handle demotes to debug the error Proto.Actor logs when a peer closes its
// connection cleanly (every `volt notify` or `volt status` does, on its way
// out): an ordinary event, which Volt's own logs report where it matters
// ("runner lost").
func (h levelHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError && peerClosed(r) {
		r.Level = slog.LevelDebug
		if !h.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

// peerClosed reports whether r is Proto.Actor's "EndpointWriter lost
// connection" for a connection the peer ended (EOF).
func peerClosed(r slog.Record) bool {
	if r.Message != "EndpointWriter lost connection" {
		return false
	}
	eof := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" && strings.HasSuffix(a.Value.String(), "EOF") {
			eof = true
		}
		return !eof
	})
	return eof
}

func (h levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(a), h.min}
}
func (h levelHandler) WithGroup(g string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(g), h.min}
}

// Start creates the actor system and, when cfg.Listen is set, starts remote.
func Start(cfg NodeConfig) (*Node, error) {
	actorLog := slog.New(levelHandler{cfg.Logger.Handler(), cfg.ActorLogLevel}).With("component", "protoactor")
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return actorLog }))
	n := &Node{System: sys, logger: cfg.Logger, done: make(chan struct{}), Address: sys.Address(), stopBG: make(chan struct{})}
	n.monitor = sys.Root.Spawn(actor.PropsFromFunc(n.watch))
	if cfg.Listen == "" {
		return n, nil
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: want host:port: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: port is not a number", cfg.Listen)
	}
	candidates := []int{port}
	if port == 0 && cfg.PortRange[1] > 0 {
		candidates = nil
		for p := cfg.PortRange[0]; p <= cfg.PortRange[1]; p++ {
			candidates = append(candidates, p)
		}
	}
	var lastErr error
	for _, p := range candidates {
		r, addr, creds, err := startRemote(sys, host, p, cfg)
		var ce credentialsError
		if errors.As(err, &ce) {
			return nil, ce.err
		}
		if err == nil {
			n.Remote, n.Address, n.Credentials = r, addr, creds
			n.links = trackEndpoints(sys, actorLog)
			if creds != nil && creds.CA() == nil && cfg.RenewFrom != "" {
				n.renewLoop(cfg.RenewFrom)
			}
			if creds != nil && creds.CA() != nil && cfg.ServeJoin {
				n.announceRevocations()
			}
			cfg.Logger.Info("listening", "address", addr)
			return n, nil
		}
		lastErr = err
	}
	if len(candidates) > 1 {
		return nil, fmt.Errorf("no free port in %d-%d on %s (%v): pass --listen %s:0 for any free port", cfg.PortRange[0], cfg.PortRange[1], host, lastErr, host)
	}
	return nil, fmt.Errorf("listen on %s: %w (is another Volt already running there? pass another --listen)", cfg.Listen, lastErr)
}

// startRemote binds host:port for Proto.Actor remote. remote.Start panics
// when the port is taken; that panic becomes an error here, which makes
// choosing the first free port of a range safe when several start at once.
func startRemote(sys *actor.ActorSystem, host string, port int, cfg NodeConfig) (r *remote.Remote, addr string, creds *pki.Credentials, err error) {
	advertise, logger := cfg.Advertise, cfg.Logger
	// Probe first so a taken port costs no panic in the common case.
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, "", nil, err
	}
	if port == 0 {
		port = l.Addr().(*net.TCPAddr).Port
	}
	l.Close()
	creds = cfg.Credentials
	if creds == nil && cfg.CredentialsFor != nil {
		if creds, err = cfg.CredentialsFor(net.JoinHostPort(host, strconv.Itoa(port))); err != nil {
			return nil, "", nil, credentialsError{err}
		}
	}
	serverOpts := append([]grpc.ServerOption{grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true})}, cfg.ServerOptions...)
	dialOpts := []grpc.DialOption{grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 2 * time.Second, PermitWithoutStream: true})}
	if creds != nil {
		s, d := tlsOptions(creds, logger.With("component", "guard"), cfg.ServeJoin && creds.CA() != nil)
		serverOpts, dialOpts = append(serverOpts, s...), append(dialOpts, d...)
	} else {
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	opts := []remote.ConfigOption{remote.WithDialOptions(dialOpts...), remote.WithServerOptions(serverOpts...)}
	if advertise != "" {
		opts = append(opts, remote.WithAdvertisedHost(net.JoinHostPort(advertise, strconv.Itoa(port))))
	}
	r = remote.NewRemote(sys, remote.Configure(host, port, opts...))
	defer func() {
		if p := recover(); p != nil {
			r, addr, creds, err = nil, "", nil, fmt.Errorf("%v", p)
		}
	}()
	r.Start()
	return r, sys.Address(), creds, nil
}

// credentialsError is a credential fault: Start stops at once instead of
// trying the next port.
type credentialsError struct{ err error }

func (e credentialsError) Error() string { return e.err.Error() }

// Restart budget of a role: past restartBudget failures within
// restartWithin the role is stopped and the node exits.
const (
	restartBudget = 3
	restartWithin = 10 * time.Second
)

// supervisor restarts the role name when it fails, within the restart
// budget. Each failure is logged as an error naming its cause (Proto.Actor
// logs it only at info, which its log level hides) and kept, so that the
// node's exit reason can name the last one.
func (n *Node) supervisor(name string) actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(restartBudget, restartWithin, func(reason any) actor.Directive {
		cause := fmt.Sprint(reason)
		n.logger.Error("role failed; restarting it", "role", name, "error", cause,
			"budget", fmt.Sprintf("%d restarts in %s", restartBudget, restartWithin))
		n.mu.Lock()
		if n.failures == nil {
			n.failures = map[string]string{}
		}
		n.failures[name] = cause
		n.mu.Unlock()
		return actor.RestartDirective
	})
}

// Spawn starts a supervised role actor under name.
func (n *Node) Spawn(name string, produce func() actor.Actor) (*actor.PID, error) {
	props := actor.PropsFromProducer(produce, actor.WithGuardian(n.supervisor(name)))
	pid, err := n.System.Root.SpawnNamed(props, name)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	n.mu.Lock()
	n.roles = append(n.roles, pid)
	n.mu.Unlock()
	n.System.Root.Send(n.monitor, watchRole{pid})
	return pid, nil
}

type watchRole struct{ pid *actor.PID }

func (n *Node) watch(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case watchRole:
		ctx.Watch(m.pid)
	case *actor.Terminated:
		n.mu.Lock()
		stopping, cause := n.stopping, n.failures[m.Who.Id]
		n.mu.Unlock()
		if stopping {
			return
		}
		if cause == "" {
			cause = "it stopped without an error"
		}
		n.Exit(1, fmt.Sprintf("%s failed repeatedly (more than %d restarts in %s) and was stopped; its last error: %s",
			m.Who.Id, restartBudget, restartWithin, cause))
	}
}

// Exit records why the process should end and wakes Done. The first call wins.
func (n *Node) Exit(code int, reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.done:
		return
	default:
	}
	n.code, n.reason = code, reason
	close(n.done)
}

// Done is closed once a role asked the process to exit.
func (n *Node) Done() <-chan struct{} { return n.done }

// ExitStatus is the code and reason passed to the first Exit.
func (n *Node) ExitStatus() (int, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.code, n.reason
}

// drainTimeout bounds how long Shutdown waits for a role to settle.
const drainTimeout = 5 * time.Second

// DrainBeforeStop makes Shutdown send msg to the role pid, and wait for
// its answer, before stopping it.
func (n *Node) DrainBeforeStop(pid *actor.PID, msg any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.drainers == nil {
		n.drainers = map[*actor.PID]any{}
	}
	n.drainers[pid] = msg
}

// Shutdown stops the roles (each waits for its goroutines and child
// processes), newest first, then remote.
func (n *Node) Shutdown() {
	n.mu.Lock()
	if !n.stopping {
		close(n.stopBG)
	}
	n.stopping = true
	roles := append([]*actor.PID(nil), n.roles...)
	drainers := maps.Clone(n.drainers)
	n.mu.Unlock()
	n.bg.Wait()
	for i := len(roles) - 1; i >= 0; i-- {
		if drain, ok := drainers[roles[i]]; ok {
			// Let what is being made durable land and be sent: a graceful
			// stop should lose no more than it must.
			if _, err := n.System.Root.RequestFuture(roles[i], drain, drainTimeout).Result(); err != nil {
				n.logger.Warn("stopping role: it did not settle", "role", roles[i].Id, "error", err)
			}
		}
		if err := n.System.Root.PoisonFuture(roles[i]).Wait(); err != nil && !errors.Is(err, actor.ErrTimeout) {
			n.logger.Warn("stopping role", "role", roles[i].Id, "error", err)
		}
	}
	if n.Remote != nil {
		n.Remote.Shutdown(false)
	}
	n.System.Shutdown()
}

// Probe reports whether address accepts TCP connections within 300 ms.
func Probe(address string) bool {
	c, err := net.DialTimeout("tcp", address, 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Resolve turns host:port into ip:port once, so that a peer is always named
// by the same string (Proto.Actor keys connections by address string).
func Resolve(hostport string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("%q: want host:port: %w", hostport, err)
	}
	if net.ParseIP(host) != nil {
		return hostport, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return "", fmt.Errorf("resolve %s: %v", host, err)
	}
	ip := ips[0]
	for _, c := range ips {
		if c.To4() != nil {
			ip = c
			break
		}
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// ResolveAll resolves a comma-separated list of host:port (every
// dispatcher node of a failover group, or one dispatcher), in order and
// without repeats.
func ResolveAll(list string) ([]string, error) {
	var out []string
	for _, hp := range strings.Split(list, ",") {
		hp = strings.TrimSpace(hp)
		if hp == "" {
			continue
		}
		a, err := Resolve(hp)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: want host:port, or several separated by commas", list)
	}
	return out, nil
}

// DispatcherAddrs are the dispatcher actors of the nodes at addresses.
func DispatcherAddrs(addresses []string) []actors.Addr {
	out := make([]actors.Addr, len(addresses))
	for i, a := range addresses {
		out[i] = actors.NewAddr(a, DispatcherName)
	}
	return out
}

// IsLoopback reports whether host:port names a loopback address.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// renewCheckEvery bounds how often a node looks at its certificate's age.
const renewCheckEvery = time.Minute

// renewLoop renews the node's certificate from the dispatcher at address
// once two thirds of its life have passed, retrying on failure, until the
// node shuts down. Connections that are up are not touched.
func (n *Node) renewLoop(address string) {
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		for {
			// A twentieth of the certificate's life (NotBefore is back-dated
			// by pki.ClockSkew): renewal lands well before expiry.
			leaf := n.Credentials.Leaf()
			every := leaf.NotAfter.Sub(leaf.NotBefore.Add(pki.ClockSkew)) / 20
			t := time.NewTimer(min(max(every, 200*time.Millisecond), renewCheckEvery))
			select {
			case <-n.stopBG:
				t.Stop()
				return
			case <-t.C:
			}
			if !n.Credentials.RenewDue() {
				continue
			}
			leaf, err := Renew(address, n.Credentials, 10*time.Second)
			if err != nil {
				n.logger.Warn("renew this node's certificate; retrying", "dispatcher", address, "expires", n.Credentials.Leaf().NotAfter, "error", err)
				continue
			}
			if _, err := n.Credentials.Certificate(); err != nil {
				n.logger.Error("load the renewed certificate", "error", err)
				continue
			}
			n.logger.Info("certificate renewed", "identity", n.Credentials.Identity().String(), "until", leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}()
}
