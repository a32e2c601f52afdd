package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/pki"
	"github.com/voltci/volt/web"
)

// Runner defaults (docs/contract.md, Addresses, ports and defaults).
const (
	runnerPortFirst  = 8900
	runnerPortLast   = 9000
	defaultOutputCap = 16 << 20
)

func newRunnerCommand() *cobra.Command {
	var (
		c          common
		dispServer string
		listen     string
		advertise  string
		workDir    string
		grace      time.Duration
		fallback   string
		id         string
		outputCap  = sizeValue(defaultOutputCap)
		metrics    string
		join       string
		jf         jobFlags
		sf         slotFlags
	)
	cmd := &cobra.Command{
		Use:   "runner",
		Short: "Run a test runner: registers with the dispatcher and runs up to --slots jobs at once",
		Example: `  volt runner
  volt runner --labels gpu,arch=arm64 --slots 4
  volt runner --work-dir /var/lib/volt-runner --dispatcher-server ci.example.com:8000 \
      --listen 0.0.0.0:8900 --advertise runner-7.example.com --token s3cret`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(c.logLevel)
			if err != nil {
				return err
			}
			if err := c.requireToken(metrics); err != nil {
				return err
			}
			labels, slots, err := sf.resolve()
			if err != nil {
				return err
			}
			nodes, err := cluster.ResolveAll(dispServer)
			if err != nil {
				return usageErr("--dispatcher-server: %v", err)
			}
			disp := nodes[0]
			if fallback != "" {
				if st, err := os.Stat(fallback); err != nil || !st.IsDir() {
					return usageErr("--repo %s: not a directory; pass a local clone to fetch from first, or leave it out", fallback)
				}
			}
			wrapper, err := wrapperArgv()
			if err != nil {
				return fatal("start the runner", err)
			}
			credDir, err := c.creds.roleDir("")
			if err != nil {
				return usageErr("%v", err)
			}
			host, _ := os.Hostname()
			if join != "" {
				if err := joinCluster(logger, join, disp, credDir, pki.RoleRunner, id, listen, advertise); err != nil {
					return err
				}
			}
			nc := cluster.NodeConfig{Listen: listen, Advertise: advertise, Logger: logger, ActorLogLevel: actorLogLevel(c.logLevel),
				CredentialsFor: c.creds.credentialsFor(credDir, pki.RoleRunner, runnerName(credDir, id, host), advertise, cluster.IsLoopback(disp)),
				RenewFrom:      disp}
			if listen == "" {
				nc.Listen = "127.0.0.1:0"
				nc.PortRange = [2]int{runnerPortFirst, runnerPortLast}
			}
			node, err := cluster.Start(nc)
			if err != nil {
				return startErr("start the runner", err)
			}
			_, port, _ := strings.Cut(node.Address, ":")
			// The runner is who its certificate says: the id given, the name
			// of a certificate issued for it, or HOST:PORT.
			id = node.Credentials.Identity().Name
			if workDir == "" {
				workDir = filepath.Join(".volt", "runner-"+port)
			}
			if workDir, err = filepath.Abs(workDir); err != nil {
				node.Shutdown()
				return fatal("start the runner", err)
			}
			// Two runners in one work directory would move each other's
			// worktrees under running jobs.
			lock, err := lockDataDir(workDir, "volt runner", "--work-dir", cluster.RunnerName)
			if err != nil {
				node.Shutdown()
				return err
			}
			defer closeLock(lock, logger)
			cfg := runner.Config{
				ID: id, Incarnation: time.Now().UnixNano(), Hostname: host,
				Dispatcher: actors.NewAddr(disp, cluster.DispatcherName), Grace: grace,
				Labels: labels, Slots: slots,
			}
			if len(nodes) > 1 {
				cfg.Nodes = cluster.DispatcherAddrs(nodes)
			}
			pid, err := node.StartRunner(cluster.RunnerName, cfg, jf.apply(cluster.RunnerSetup{
				WorkDir: workDir, Fallback: fallback, OutputCap: int64(outputCap), Wrapper: wrapper}, credDir))
			if err != nil {
				node.Shutdown()
				return fatal("start the runner", err)
			}
			stopMetrics, err := startMetrics(metrics, web.NewMetrics(), logger)
			if err != nil {
				node.Shutdown()
				return usageErr("%v", err)
			}
			defer stopMetrics()
			logger.Info("runner started", "runner", id, "address", node.Address, "dispatcher", disp, "work_dir", workDir, "dispatcher_grace", grace.String(),
				"labels", strings.Join(labels, ","), "slots", slots)
			return serve(node, logger, func(s os.Signal) {
				runner.Stop(node.System.Root, pid, fmt.Sprintf("received %s", s))
			})
		},
	}
	c.register(cmd.Flags())
	fs := cmd.Flags()
	fs.StringVar(&dispServer, "dispatcher-server", "localhost:8000", "the dispatcher's host:port, or every node of a failover group separated by commas")
	fs.StringVar(&listen, "listen", "", "host:port for Proto.Actor remote (default 127.0.0.1 and the first free port in 8900-9000; port 0 for any)")
	fs.StringVar(&advertise, "advertise", "", "host name or IP the dispatcher and reporter use to reach this runner")
	fs.StringVar(&workDir, "work-dir", "", "directory of repository mirrors and the workspaces, one per slot (default .volt/runner-PORT)")
	fs.Var(newDuration(&grace, 10*time.Second), "dispatcher-grace", "exit when no dispatcher node has answered for this long (0 = at once)")
	fs.StringVar(&fallback, "repo", "", "a local clone to fetch commits from before the job's repository URL")
	fs.StringVar(&id, "id", "", "runner id (default HOST:PORT); a restarted runner with the same id is a new incarnation")
	fs.Var(&outputCap, "output-cap", "bytes of a job's output kept; the rest is dropped with a marker")
	fs.StringVar(&join, "join", "", "join the cluster with a token from `volt join-token create` (once: the certificate is kept in --credentials)")
	jf.register(fs)
	sf.register(fs, "")
	metricsFlag(cmd, &metrics)
	return cmd
}
