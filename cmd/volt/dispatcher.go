package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/pki"
	"github.com/voltci/volt/store"
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

func newDispatcherCommand() *cobra.Command {
	var (
		c       common
		df      dispatcherFlags
		listen  string
		dataDir string
		metrics string
	)
	cmd := &cobra.Command{
		Use:   "dispatcher",
		Short: "Run the dispatcher: the durable job queue and the runner pool",
		Example: `  volt dispatcher
  volt dispatcher --listen 10.0.0.5:8000 --token s3cret --data-dir /var/lib/volt`,
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
			lock, err := lockDataDir(dataDir, "volt dispatcher", "--data-dir", cluster.DispatcherName)
			if err != nil {
				return err
			}
			defer closeLock(lock, logger)
			db, err := store.Open(dataDir)
			if err != nil {
				return fatal("open the data directory", err)
			}
			defer db.Close()
			credDir, err := c.creds.roleDir("")
			if err != nil {
				return usageErr("%v", err)
			}
			node, err := cluster.Start(cluster.NodeConfig{Listen: listen, Logger: logger, ActorLogLevel: actorLogLevel(c.logLevel),
				CredentialsFor: c.creds.credentialsFor(credDir, pki.RoleDispatcher, constName(hostName()), "", true),
				ServeJoin:      true})
			if err != nil {
				return startErr("start the dispatcher", err)
			}
			if cfg.LogKey, err = pki.KeyFile(credDir, pki.LogTicketKeyFile); err != nil {
				node.Shutdown()
				return startErr("start the dispatcher", credentialsErr(err))
			}
			if _, err := node.StartDispatcher(cfg, db); err != nil {
				node.Shutdown()
				return fatal("start the dispatcher", err)
			}
			m := web.NewMetrics()
			m.WatchDispatcher(node.DispatcherClient(node.Address), 3*time.Second)
			stopMetrics, err := startMetrics(metrics, m, logger)
			if err != nil {
				node.Shutdown()
				return usageErr("%v", err)
			}
			defer stopMetrics()
			logger.Info("dispatcher ready", "address", node.Address, "data_dir", dataDir)
			return serve(node, logger, nil)
		},
	}
	c.register(cmd.Flags())
	df.register(cmd)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8000", "host:port for Proto.Actor remote")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".volt", "directory of the durable queue (SQLite)")
	metricsFlag(cmd, &metrics)
	return cmd
}
