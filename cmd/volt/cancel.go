package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

func newCancelCommand() *cobra.Command {
	var c serverClient
	cmd := &cobra.Command{
		Use:   "cancel BUILD",
		Short: "Cancel a queued or running build: every job of it that has not ended (see `volt status` or the dashboard for build ids)",
		Long: `Cancel a queued or running build by its id: each of its jobs that has not
ended is cancelled (a running one is stopped on its runner). The id of one
job of a build (shown by ` + "`volt status`" + `) cancels that job alone; the jobs that
need it are then skipped.`,
		Example: `  volt cancel 42
  VOLT_TOKEN=s3cret volt cancel 42 --server http://ci.example.com:8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return usageErr("BUILD %q: want a build id, a positive number", args[0])
			}
			var out struct {
				JobID int64 `json:"job_id"`
			}
			// /api/v1/jobs/ID/cancel takes a build's id (its first job's)
			// or one job's, and older servers have it too.
			if err := c.do("POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", id), &out); err != nil {
				return err
			}
			fmt.Printf("build %d: cancel requested\n", out.JobID)
			return nil
		},
	}
	c.register(cmd.Flags(), true)
	return cmd
}
