package main

import (
	"github.com/spf13/cobra"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/pki"
	"github.com/voltci/volt/web"
)

func newReporterCommand() *cobra.Command {
	var (
		c          common
		listen     string
		dispServer string
		dataDir    string
		wf         webFlags
	)
	cmd := &cobra.Command{
		Use:   "reporter",
		Short: "Run the reporter: records results and logs, writes test_results/<commit>",
		Example: `  volt reporter
  volt reporter --data-dir /var/lib/volt-results --dispatcher-server ci.example.com:8000 --token s3cret`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(c.logLevel)
			if err != nil {
				return err
			}
			if err := c.requireToken(wf.http); err != nil {
				return err
			}
			if err := wf.validate(); err != nil {
				return err
			}
			nodes, err := cluster.ResolveAll(dispServer)
			if err != nil {
				return usageErr("--dispatcher-server: %v", err)
			}
			disp := nodes[0]
			db, closeStore, err := openLockedStore(dataDir, "volt reporter", cluster.ReporterName, logger)
			if err != nil {
				return err
			}
			defer closeStore()
			credDir, err := c.creds.roleDir("")
			if err != nil {
				return usageErr("%v", err)
			}
			node, err := cluster.Start(cluster.NodeConfig{Listen: listen, Logger: logger, ActorLogLevel: actorLogLevel(c.logLevel),
				CredentialsFor: c.creds.credentialsFor(credDir, pki.RoleReporter, constName(hostName()), "", cluster.IsLoopback(disp))})
			if err != nil {
				return startErr("start the reporter", err)
			}
			cfg := reporter.Config{ID: node.Address, Dispatcher: actors.NewAddr(disp, cluster.DispatcherName)}
			if len(nodes) > 1 {
				cfg.Nodes = cluster.DispatcherAddrs(nodes)
			}
			if _, err := node.StartReporter(cfg, db); err != nil {
				node.Shutdown()
				return fatal("start the reporter", err)
			}
			stopWeb, err := startWeb(cmd, wf, db, node.DispatcherGroupClient(nodes), node.ReporterStatus(node.Address), c.token, web.NewMetrics(), logger)
			if err != nil {
				node.Shutdown()
				return fatal("start the web UI", err)
			}
			defer stopWeb()
			defer startRetention(wf, db, logger)()
			logger.Info("reporter ready", "address", node.Address, "dispatcher", disp, "results", dataDir+"/test_results")
			return serve(node, logger, nil)
		},
	}
	c.register(cmd.Flags())
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8001", "host:port for Proto.Actor remote")
	cmd.Flags().StringVar(&dispServer, "dispatcher-server", "localhost:8000", "the dispatcher's host:port, or every node of a failover group separated by commas")
	cmd.Flags().StringVar(&dataDir, "data-dir", ".volt", "directory of results, logs and test_results/")
	wf.register(cmd)
	return cmd
}
