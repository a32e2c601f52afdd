package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/pki"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/web"
)

func newUpCommand() *cobra.Command {
	var (
		c         common
		w         watchFlags
		df        dispatcherFlags
		runners   int
		dataDir   string
		listen    string
		outputCap = sizeValue(defaultOutputCap)
		wf        webFlags
		jf        jobFlags
		sf        slotFlags
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run every role in one process: observer, dispatcher, runners and reporter",
		Long: `Run every role in one process: observer, dispatcher, runners and reporter, with
SQLite in the data directory. Results land in DATA-DIR/test_results/<commit> and in
` + "`volt results`" + `. Runners on other machines can join with --dispatcher-server.`,
		Example: `  volt up --repo .
  volt up --repo /srv/git/project.git --runners 4 --poll 1s --data-dir /var/lib/volt`,
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
			if runners < 0 {
				return usageErr("--runners must be 0 or more")
			}
			labels, slots, err := sf.resolve()
			if err != nil {
				return err
			}
			dcfg, err := df.config()
			if err != nil {
				return err
			}
			// One process runs both roles that keep state in dataDir: it
			// holds both locks, so neither a second `volt up` nor a separate
			// `volt dispatcher` or `volt reporter` can open it meanwhile.
			lock, err := lockDataDir(dataDir, "volt up", "--data-dir", cluster.DispatcherName, cluster.ReporterName)
			if err != nil {
				return err
			}
			defer closeLock(lock, logger)
			repos, watched, err := w.open(context.Background(), filepath.Join(dataDir, "observer"))
			if err != nil {
				return err
			}
			wrapper, err := wrapperArgv()
			if err != nil {
				return fatal("start", err)
			}
			db, err := store.Open(dataDir)
			if err != nil {
				return fatal("open the data directory", err)
			}
			defer db.Close()
			credDir, err := c.creds.roleDir(upCredentialsDir(dataDir))
			if err != nil {
				return usageErr("%v", err)
			}
			node, err := cluster.Start(cluster.NodeConfig{Listen: listen, Logger: logger, ActorLogLevel: actorLogLevel(c.logLevel),
				CredentialsFor: c.creds.credentialsFor(credDir, pki.RoleDispatcher, constName(hostName()), "", true),
				ServeJoin:      true})
			if err != nil {
				return startErr("start", err)
			}
			// The CLI finds this CA by itself, wherever the data directory is.
			if user, err := userCredentialsDir(); err == nil && c.creds.dir == "" {
				if err := pki.Remember(user, credDir); err != nil {
					logger.Warn("the CLI will need --credentials "+credDir, "error", err)
				}
			}
			disp := node.Addr(cluster.DispatcherName)
			metrics := web.NewMetrics()
			if dcfg.LogKey, err = pki.KeyFile(credDir, pki.LogTicketKeyFile); err != nil {
				node.Shutdown()
				return startErr("start", credentialsErr(err))
			}
			start := func() error {
				if _, err := node.StartDispatcher(dcfg, db); err != nil {
					return err
				}
				if _, err := node.StartReporter(reporter.Config{ID: "up", Dispatcher: disp}, db); err != nil {
					return err
				}
				host, _ := os.Hostname()
				for i := 1; i <= runners; i++ {
					name := fmt.Sprintf("%s-%d", cluster.RunnerName, i)
					abs, err := filepath.Abs(filepath.Join(dataDir, "runners", name))
					if err != nil {
						return err
					}
					cfg := runner.Config{ID: fmt.Sprintf("%s/%s", host, name), Incarnation: time.Now().UnixNano(), Hostname: host,
						Dispatcher: disp, Grace: -1, Labels: labels, Slots: slots}
					if _, err := node.StartRunner(name, cfg, jf.apply(cluster.RunnerSetup{WorkDir: abs, OutputCap: int64(outputCap), Wrapper: wrapper}, dataDir, credDir)); err != nil {
						return err
					}
				}
				_, err := node.StartObserverTimed(w.config("up", disp, watched, -1), repos, metrics.ObservePoll)
				return err
			}
			if err := start(); err != nil {
				node.Shutdown()
				return fatal("start", err)
			}
			stopWeb, err := startWeb(cmd, wf, db, node.DispatcherClient(node.Address), node.ReporterStatus(node.Address), c.token, metrics, logger)
			if err != nil {
				node.Shutdown()
				return fatal("start the web UI", err)
			}
			defer stopWeb()
			defer startRetention(wf, db, logger)()
			logger.Info("volt is up", "address", node.Address, "repos", repoList(watched), "runners", runners,
				"results", filepath.Join(dataDir, "test_results"), "poll", w.poll.String())
			return serve(node, logger, nil)
		},
	}
	c.register(cmd.Flags())
	w.register(cmd)
	df.register(cmd)
	fs := cmd.Flags()
	fs.IntVar(&runners, "runners", 2, "runners started in this process")
	fs.StringVar(&dataDir, "data-dir", ".volt", "directory of the queue, results, logs, test_results/ and runner workspaces")
	fs.StringVar(&listen, "listen", "127.0.0.1:8000", "host:port for Proto.Actor remote, where extra runners join")
	fs.Var(&outputCap, "output-cap", "bytes of a job's output kept; the rest is dropped with a marker")
	jf.register(fs)
	sf.register(fs, "runner-")
	wf.register(cmd)
	return cmd
}
