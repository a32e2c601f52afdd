package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/web"
)

func newRunnersCommand() *cobra.Command {
	var c serverClient
	cmd := &cobra.Command{
		Use:   "runners",
		Short: "List the runners a Volt web server's dispatcher knows: idle, busy with which job, or lost",
		Example: `  volt runners
  volt runners --server http://ci.example.com:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Runners []web.Runner `json:"runners"`
			}
			if err := c.do("GET", "/api/v1/runners", &out); err != nil {
				return err
			}
			if len(out.Runners) == 0 {
				fmt.Println("no runner registered")
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "RUNNER\tSTATE\tJOB\tATTEMPT\tLAST HEARTBEAT\tADDRESS")
			for _, r := range out.Runners {
				job, attempt, ago := "-", "-", "-"
				if r.JobID != 0 {
					job, attempt = fmt.Sprint(r.JobID), fmt.Sprint(r.Attempt)
				}
				if r.LastHeartbeat != nil {
					ago = time.Since(*r.LastHeartbeat).Round(time.Millisecond).String() + " ago"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, job, attempt, ago, r.Address)
			}
			return tw.Flush()
		},
	}
	c.register(cmd.Flags(), false)
	return cmd
}
