package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/spf13/cobra"

	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/pki"
)

func actorPID(addr, name string) *actor.PID { return actor.NewPID(addr, name) }

func newNotifyCommand() *cobra.Command {
	var (
		c          common
		dispServer string
		repo       string
		branch     string
	)
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Tell the observers to look at the repositories now (for a post-receive hook); always exits 0",
		Example: `  volt notify
  volt notify --repo project --branch main     # from hooks/post-receive (see contrib/post-receive)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.requireToken(); err != nil {
				return err
			}
			// A hook's one-shot process: its few megabytes need no collection.
			debug.SetGCPercent(-1)
			// A notify must never fail a push: every problem is a warning.
			// The process exits right after the answer: no shutdown.
			res, err := askThen(&c.creds, pki.RoleNotify, dispServer, cluster.DispatcherName, &messages.Notify{Repo: repo, Branch: branch}, 2*time.Second, false)
			if err != nil {
				fmt.Fprintf(os.Stderr, "volt notify: warning: Volt was not told (%v); the next poll will still find the commit\n", err)
				return nil
			}
			if ack, ok := res.(*messages.NotifyAck); ok {
				switch {
				case ack.Observers < 0:
					fmt.Fprintln(os.Stderr, "volt notify: warning: the dispatcher refused the token: pass --token or set VOLT_TOKEN")
				case ack.Observers == 0:
					fmt.Fprintln(os.Stderr, "volt notify: warning: no observer is registered with the dispatcher")
				}
			}
			return nil
		},
	}
	c.register(cmd.Flags())
	cmd.Flags().StringVar(&dispServer, "dispatcher-server", "localhost:8000", "the dispatcher's host:port")
	cmd.Flags().StringVar(&repo, "repo", "", "repository path, URL or name to look at (default all)")
	cmd.Flags().StringVar(&branch, "branch", "", "branch to look at (default all watched)")
	return cmd
}
