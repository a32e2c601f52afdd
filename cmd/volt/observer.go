package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/observer"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/gitexec"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/pki"
	"github.com/voltci/volt/web"
)

// watchFlags are the observer's flags, shared by `volt observer` and `volt up`.
type watchFlags struct {
	repos      []string
	branches   []string
	poll       time.Duration
	maxBacklog int
}

func (w *watchFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringArrayVar(&w.repos, "repo", nil, "repository to watch: a local path or a URL (repeatable)")
	fs.StringArrayVar(&w.branches, "branch", nil, "branch to build (repeatable; default the branch the repository's HEAD names)")
	fs.Var(newDuration(&w.poll, 5*time.Second), "poll", "interval between looks at the repositories (5 or 5s)")
	fs.IntVar(&w.maxBacklog, "max-backlog", 50, "most commits built per branch at once; beyond it only the newest are built")
}

// open checks every repository and resolves the branches to watch. A
// repository that is not there is a usage error naming the path.
func (w *watchFlags) open(ctx context.Context, cacheDir string) ([]*gitexec.Repo, []*messages.WatchedRepo, error) {
	if len(w.repos) == 0 {
		return nil, nil, usageErr("--repo is required: the path or URL of a git repository to watch")
	}
	if w.poll <= 0 {
		return nil, nil, usageErr("--poll must be positive")
	}
	for _, b := range w.branches {
		if err := messages.ValidateRef(b); err != nil {
			return nil, nil, usageErr("--branch: %v", err)
		}
	}
	var repos []*gitexec.Repo
	var watched []*messages.WatchedRepo
	for _, url := range w.repos {
		r, err := gitexec.OpenRepo(ctx, url, cacheDir)
		if err != nil {
			return nil, nil, usageErr("--repo %s: %v", url, err)
		}
		branches := w.branches
		if len(branches) == 0 {
			b, err := r.DefaultBranch(ctx)
			if err != nil {
				return nil, nil, usageErr("--repo %s: %v (pass --branch)", url, err)
			}
			branches = []string{b}
		}
		repos = append(repos, r)
		watched = append(watched, &messages.WatchedRepo{Url: r.URL(), Name: r.Name(), Branches: branches})
	}
	return repos, watched, nil
}

func (w *watchFlags) config(id string, disp actors.Addr, watched []*messages.WatchedRepo, grace time.Duration) observer.Config {
	return observer.Config{ID: id, Dispatcher: disp, Repos: watched, Poll: w.poll, Grace: grace, MaxBacklog: w.maxBacklog}
}

func newObserverCommand() *cobra.Command {
	var (
		c          common
		w          watchFlags
		dispServer string
		listen     string
		grace      time.Duration
		dataDir    string
		metrics    string
	)
	cmd := &cobra.Command{
		Use:   "observer",
		Short: "Run the observer: polls repositories and tells the dispatcher about every new commit",
		Example: `  volt observer --repo /srv/git/project.git
  volt observer --repo /srv/git/project.git --poll 1s --branch main --branch release`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(c.logLevel)
			if err != nil {
				return err
			}
			if err := c.requireToken(metrics); err != nil {
				return err
			}
			nodes, err := cluster.ResolveAll(dispServer)
			if err != nil {
				return usageErr("--dispatcher-server: %v", err)
			}
			disp := nodes[0]
			repos, watched, err := w.open(context.Background(), filepath.Join(dataDir, "observer"))
			if err != nil {
				return err
			}
			credDir, err := c.creds.roleDir("")
			if err != nil {
				return usageErr("%v", err)
			}
			node, err := cluster.Start(cluster.NodeConfig{Listen: listen, Logger: logger, ActorLogLevel: actorLogLevel(c.logLevel),
				CredentialsFor: c.creds.credentialsFor(credDir, pki.RoleObserver, constName(hostName()), "", cluster.IsLoopback(disp))})
			if err != nil {
				return startErr("start the observer", err)
			}
			host, _ := os.Hostname()
			cfg := w.config(host+"/"+node.Address, actors.NewAddr(disp, cluster.DispatcherName), watched, grace)
			if len(nodes) > 1 {
				cfg.Nodes = cluster.DispatcherAddrs(nodes)
			}
			m := web.NewMetrics()
			if _, err := node.StartObserverTimed(cfg, repos, m.ObservePoll); err != nil {
				node.Shutdown()
				return fatal("start the observer", err)
			}
			stopMetrics, err := startMetrics(metrics, m, logger)
			if err != nil {
				node.Shutdown()
				return usageErr("%v", err)
			}
			defer stopMetrics()
			logger.Info("observer started", "dispatcher", disp, "repos", repoList(watched), "poll", w.poll.String())
			return serve(node, logger, nil)
		},
	}
	c.register(cmd.Flags())
	w.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&dispServer, "dispatcher-server", "localhost:8000", "the dispatcher's host:port, or every node of a failover group separated by commas")
	fs.StringVar(&listen, "listen", "127.0.0.1:0", "host:port for Proto.Actor remote (the dispatcher answers here)")
	fs.Var(newDuration(&grace, 10*time.Second), "dispatcher-grace", "exit when the dispatcher has been unreachable this long")
	fs.StringVar(&dataDir, "data-dir", ".volt", "directory for mirrors of repositories given as URLs")
	metricsFlag(cmd, &metrics)
	return cmd
}

func repoList(watched []*messages.WatchedRepo) []string {
	var out []string
	for _, r := range watched {
		out = append(out, fmt.Sprintf("%s %v", r.Url, r.Branches))
	}
	return out
}
