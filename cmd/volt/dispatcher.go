package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/pki"
	"github.com/voltci/volt/store/etcdstore"
	"github.com/voltci/volt/web"
)

// dispatcherFlags are the dispatcher's timers and limits.
type dispatcherFlags struct {
	heartbeat, deadAfter, lease, jobTimeout time.Duration
	maxAttempts                             int
}

func (f *dispatcherFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	d := dispatcher.DefaultConfig()
	fs.Var(newDuration(&f.heartbeat, d.Heartbeat), "heartbeat", "how often runners send a heartbeat")
	fs.Var(newDuration(&f.deadAfter, d.DeadAfter), "dead-after", "a runner without a heartbeat for this long is dead and its job reassigned")
	fs.Var(newDuration(&f.lease, d.Lease), "lease", "a runner gives its job up after this long without the dispatcher's acknowledgement (< dead-after)")
	fs.Var(newDuration(&f.jobTimeout, d.JobTimeout), "job-timeout", "default timeout of a job whose .volt.yml names none")
	fs.IntVar(&f.maxAttempts, "max-attempts", d.MaxAttempts, "attempts of one build before it ends errored")
}

// config is the dispatcher's configuration. Its Token stays empty: every
// peer proves its role with its certificate (cluster/guard.go and the
// cores' identity checks), and the web server checks the HTTP token before
// it forwards a cancel or a rebuild.
func (f *dispatcherFlags) config() (dispatcher.Config, error) {
	cfg := dispatcher.DefaultConfig()
	cfg.Heartbeat, cfg.DeadAfter, cfg.Lease, cfg.JobTimeout = f.heartbeat, f.deadAfter, f.lease, f.jobTimeout
	cfg.MaxAttempts = f.maxAttempts
	if err := cfg.Validate(); err != nil {
		return cfg, usageErr("%v", err)
	}
	return cfg, nil
}

// etcdFlags are a failover node's: where etcd is, and the election's timers.
type etcdFlags struct {
	endpoints, ca, cert, key, prefix string
	ttl, failoverGrace               time.Duration
}

func (f *etcdFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.endpoints, "etcd", "", "run as a node of a failover group: etcd's HOST:PORT, comma-separated (the queue then lives in etcd, not --data-dir)")
	fs.StringVar(&f.ca, "etcd-ca", "", "CA certificate (PEM) that signed etcd's server certificates (mutual TLS to etcd)")
	fs.StringVar(&f.cert, "etcd-cert", "", "client certificate (PEM) this node presents to etcd")
	fs.StringVar(&f.key, "etcd-key", "", "private key (PEM) of --etcd-cert")
	fs.StringVar(&f.prefix, "etcd-prefix", etcdstore.DefaultPrefix, "where Volt's keys live in etcd")
	fs.Var(newDuration(&f.ttl, cluster.DefaultElectionTTL), "election-ttl", "the leader's session lease: a dead leader is replaced about this long after it died")
	fs.Var(newDuration(&f.failoverGrace, 0), "failover-grace", "how long a runner keeps its job while it looks for a new leader, and a new leader waits for runners to come back (default election-ttl + 3s)")
}

// endpointList splits --etcd.
func (f *etcdFlags) endpointList() []string {
	var out []string
	for _, e := range strings.Split(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// failover validates the flags and returns the leader's configuration.
func (f *etcdFlags) failover(cfg dispatcher.Config) (dispatcher.Config, error) {
	if f.ttl < time.Second || f.ttl%time.Second != 0 {
		return cfg, usageErr("--election-ttl %s: etcd leases count whole seconds; give 1s or more, in seconds", f.ttl)
	}
	grace := f.failoverGrace
	if grace == 0 {
		grace = f.ttl + 3*time.Second
	}
	if grace <= f.ttl {
		return cfg, usageErr("--failover-grace %s must be longer than --election-ttl %s: runners must keep their jobs until a new leader is elected", grace, f.ttl)
	}
	cfg = cfg.WithFailover(grace)
	if err := cfg.Validate(); err != nil {
		return cfg, usageErr("%v", err)
	}
	return cfg, nil
}

func newDispatcherCommand() *cobra.Command {
	var (
		c       common
		df      dispatcherFlags
		ef      etcdFlags
		listen  string
		dataDir string
		metrics string
	)
	cmd := &cobra.Command{
		Use:   "dispatcher",
		Short: "Run the dispatcher: the durable job queue and the runner pool",
		Example: `  volt dispatcher
  volt dispatcher --listen 10.0.0.5:8000 --token s3cret --data-dir /var/lib/volt
  volt dispatcher --listen 10.0.0.5:8000 --etcd 10.0.0.5:2379,10.0.0.6:2379,10.0.0.7:2379   # a node of a failover group`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(c.logLevel)
			if err != nil {
				return err
			}
			if err := c.requireToken(metrics); err != nil {
				return err
			}
			cfg, err := df.config()
			if err != nil {
				return err
			}
			if ef.endpoints != "" {
				return runFailoverNode(&c, cfg, &ef, listen, metrics, logger)
			}
			db, closeStore, err := openLockedStore(dataDir, "volt dispatcher", cluster.DispatcherName, logger)
			if err != nil {
				return err
			}
			defer closeStore()
			node, err := startDispatcherNode(&c, &cfg, listen, logger)
			if err != nil {
				return err
			}
			if _, err := node.StartDispatcher(cfg, db); err != nil {
				node.Shutdown()
				return fatal("start the dispatcher", err)
			}
			return serveDispatcher(node, metrics, logger, "dispatcher ready", "address", node.Address, "data_dir", dataDir)
		},
	}
	c.register(cmd.Flags())
	df.register(cmd)
	ef.register(cmd)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8000", "host:port for Proto.Actor remote")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".volt", "directory of the durable queue (SQLite)")
	metricsFlag(cmd, &metrics)
	return cmd
}

// runFailoverNode runs a dispatcher node of a failover group: the queue in
// etcd, leading when it wins the election, a standby otherwise.
func runFailoverNode(c *common, cfg dispatcher.Config, ef *etcdFlags, listen, metrics string, logger *slog.Logger) error {
	cfg, err := ef.failover(cfg)
	if err != nil {
		return err
	}
	node, err := startDispatcherNode(c, &cfg, listen, logger)
	if err != nil {
		return err
	}
	// etcd's gRPC client starts after the node's remote: Proto.Actor sets
	// gRPC's global logger when its remote starts, which must not race
	// with a client already logging.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	db, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: ef.endpointList(), CA: ef.ca, Cert: ef.cert, Key: ef.key, Prefix: ef.prefix})
	cancel()
	if err != nil {
		node.Shutdown()
		return startErr("start the dispatcher", err)
	}
	defer db.Close()
	if _, err := node.StartFailover(cluster.FailoverConfig{Dispatcher: cfg, DB: db, TTL: ef.ttl}); err != nil {
		node.Shutdown()
		return fatal("start the dispatcher", err)
	}
	return serveDispatcher(node, metrics, logger, "dispatcher node ready: campaigning", "address", node.Address, "etcd", ef.endpoints,
		"election_ttl", ef.ttl.String(), "failover_grace", cfg.FailoverGrace.String())
}

// startDispatcherNode starts the node a dispatcher (single or of a
// failover group) runs on, with its dispatcher certificate, and reads the
// log-ticket key into cfg.
func startDispatcherNode(c *common, cfg *dispatcher.Config, listen string, logger *slog.Logger) (*cluster.Node, error) {
	credDir, err := c.creds.roleDir("")
	if err != nil {
		return nil, usageErr("%v", err)
	}
	node, err := cluster.Start(cluster.NodeConfig{Listen: listen, Logger: logger, ActorLogLevel: actorLogLevel(c.logLevel),
		CredentialsFor: c.creds.credentialsFor(credDir, pki.RoleDispatcher, constName(hostName()), "", true),
		ServeJoin:      true})
	if err != nil {
		return nil, startErr("start the dispatcher", err)
	}
	if cfg.LogKey, err = pki.KeyFile(credDir, pki.LogTicketKeyFile); err != nil {
		node.Shutdown()
		return nil, startErr("start the dispatcher", credentialsErr(err))
	}
	return node, nil
}

// serveDispatcher serves /metrics (when asked) from the dispatcher on node,
// logs that it is ready and runs the node until it stops.
func serveDispatcher(node *cluster.Node, metrics string, logger *slog.Logger, ready string, args ...any) error {
	m := web.NewMetrics()
	m.WatchDispatcher(node.DispatcherClient(node.Address), 3*time.Second)
	stopMetrics, err := startMetrics(metrics, m, logger)
	if err != nil {
		node.Shutdown()
		return usageErr("%v", err)
	}
	defer stopMetrics()
	logger.Info(ready, args...)
	return serve(node, logger, nil)
}
