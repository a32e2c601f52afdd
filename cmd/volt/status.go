package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/pki"
	"github.com/voltci/volt/web"
)

func newStatusCommand() *cobra.Command {
	var (
		c      common
		server string
		role   string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a role's state: the dispatcher lists runners, their jobs, and the jobs of the builds it holds",
		Example: `  volt status
  volt status --dispatcher-server 127.0.0.1:8001 --role reporter
  volt status --dispatcher-server 127.0.0.1:8900 --role runner
  volt status --dispatcher-server 127.0.0.1:8000,127.0.0.1:8010,127.0.0.1:8020   # a failover group`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.requireToken(); err != nil {
				return err
			}
			switch role {
			case cluster.DispatcherName, cluster.ReporterName, cluster.RunnerName, cluster.ObserverName:
			default:
				return usageErr("--role %q: want dispatcher, reporter, runner or observer", role)
			}
			if role == cluster.DispatcherName && strings.Contains(server, ",") {
				return groupStatus(&c.creds, server)
			}
			res, err := ask(&c.creds, pki.RoleAdmin, server, role, &messages.StatusRequest{}, 3*time.Second)
			if err != nil {
				return err
			}
			st, ok := res.(*messages.StatusReply)
			if !ok {
				return fmt.Errorf("unexpected answer %T", res)
			}
			var rep *messages.StatusReply
			if st.Role == cluster.DispatcherName && st.Reporter != "" {
				rep = reporterStatus(&c.creds, actors.Addr(st.Reporter))
			}
			printStatus(os.Stdout, st, rep)
			return nil
		},
	}
	c.register(cmd.Flags())
	cmd.Flags().StringVar(&server, "dispatcher-server", "localhost:8000", "host:port of the role to ask; every node of a failover group, comma-separated, to see which leads")
	cmd.Flags().StringVar(&role, "role", "dispatcher", "which role listens there: dispatcher, reporter, runner or observer")
	return cmd
}

// reporterStatus asks the reporter a dispatcher names for its status, so
// that `volt status` shows the reporter's store too; nil when it does not
// answer (the dispatcher's answer is what was asked for, and it names the
// reporter).
func reporterStatus(creds *credentialFlags, reporter actors.Addr) *messages.StatusReply {
	addr, name := reporter.Split()
	res, err := ask(creds, pki.RoleAdmin, addr, name, &messages.StatusRequest{}, time.Second)
	if err != nil {
		return nil
	}
	st, _ := res.(*messages.StatusReply)
	return st
}

// printStatus writes a role's status for `volt status`: its health (and
// its store's, and the reporter's store's when rep is the reporter's
// answer, when their writes fail), then what the role keeps, then its
// counters.
func printStatus(w io.Writer, st, rep *messages.StatusReply) {
	if line := web.StoreCondition(st); line != "" {
		fmt.Fprintf(w, "%s: store failing\n%s\n", st.Role, line)
	} else {
		fmt.Fprintf(w, "%s: ok\n", st.Role)
	}
	if line := web.StoreCondition(rep); line != "" {
		fmt.Fprintln(w, line)
	}
	for _, r := range st.Runners {
		if st.Role == "runner" {
			job := "-"
			if r.Job != nil {
				job = fmt.Sprintf("%d (attempt %d)", r.Job.JobId, r.Job.Attempt)
			}
			fmt.Fprintf(w, "runner: %s\nincarnation: %d\nstate: %s\njob: %s\n", r.RunnerId, r.Incarnation, r.State, job)
		}
	}
	if st.Role == "dispatcher" {
		rep := st.Reporter
		if rep == "" {
			rep = "(none registered: results wait for one)"
		}
		fmt.Fprintf(w, "reporter: %s\nobservers: %d\n\n", rep, len(st.Observers))
		tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "RUNNER\tSTATE\tSLOTS\tJOB\tATTEMPT\tLAST HEARTBEAT\tLABELS\tADDRESS")
		for _, r := range st.Runners {
			job, attempt := "-", "-"
			if r.Job != nil {
				job, attempt = fmt.Sprint(r.Job.JobId), fmt.Sprint(r.Job.Attempt)
			}
			labels := strings.Join(r.Labels, ",")
			if labels == "" {
				labels = "-"
			}
			ago := time.Since(time.UnixMilli(r.LastHeartbeatUnixMs)).Round(time.Millisecond)
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s ago\t%s\t%s\n", r.RunnerId, r.State, r.Running, max(r.Slots, 1), job, attempt, ago, labels, r.Address)
		}
		tw.Flush()
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
		fmt.Fprintln(tw, "BUILD\tJOB\tNAME\tSTATE\tREPO\tCOMMIT\tNUMBER\tATTEMPT\tRUNNER\tWAITING")
		for _, j := range st.Jobs {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%.12s\t%d\t%d\t%s\t%s\n", j.Job.BuildID(), j.Job.Id, j.Job.DisplayName(), j.State.Name(),
				j.Job.RepoName, j.Job.Commit, j.Job.Build, j.Attempt, j.RunnerId, j.Waiting)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	keys := make([]string, 0, len(st.Counters))
	for k := range st.Counters {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s: %d\n", k, st.Counters[k])
	}
}

// groupStatus asks every node of a failover group for its status and
// prints one line per node (its state, the leader it knows, the epoch and
// since when), then the leader's status as for a single dispatcher.
func groupStatus(creds *credentialFlags, servers string) error {
	addrs, err := cluster.ResolveAll(servers)
	if err != nil {
		return usageErr("--dispatcher-server: %v", err)
	}
	// One client node asks every node (not one process start per node).
	node, err := clientNode(creds, pki.RoleAdmin, addrs[0])
	if err != nil {
		return err
	}
	defer node.Shutdown()
	var leader *messages.StatusReply
	fmt.Println("dispatcher nodes:")
	for _, a := range addrs {
		var st *messages.StatusReply
		if cluster.Probe(a) {
			res, err := node.System.Root.RequestFuture(actorPID(a, cluster.DispatcherName), &messages.StatusRequest{}, 2*time.Second).Result()
			if err == nil {
				st, _ = res.(*messages.StatusReply)
			}
		}
		if st == nil {
			fmt.Printf("  %s  unreachable\n", a)
			continue
		}
		n := st.Node
		if n == nil {
			fmt.Printf("  %s  single       (not a node of a failover group)\n", a)
			continue
		}
		since := time.UnixMilli(n.SinceUnixMs).UTC().Format(time.RFC3339)
		switch n.State {
		case "leader":
			fmt.Printf("  %s  leader       epoch %d  since %s\n", a, n.Epoch, since)
			leader = st
		default:
			who := n.Leader
			if who == "" {
				who = "none (an election is under way, or etcd has no quorum)"
			}
			fmt.Printf("  %s  %-11s  leader %s  epoch %d  since %s\n", a, n.State, who, n.Epoch, since)
		}
	}
	if leader == nil {
		fmt.Println("no node leads now")
		return nil
	}
	fmt.Println()
	var rep *messages.StatusReply
	if leader.Reporter != "" {
		rep = reporterStatus(creds, actors.Addr(leader.Reporter))
	}
	printStatus(os.Stdout, leader, rep)
	return nil
}
