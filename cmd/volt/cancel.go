package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

func newCancelCommand() *cobra.Command {
	var c serverClient
	cmd := &cobra.Command{
		Use:   "cancel JOB",
		Short: "Cancel a queued or running build by its job id (see `volt status` or the dashboard)",
		Example: `  volt cancel 42
  VOLT_TOKEN=s3cret volt cancel 42 --server http://ci.example.com:8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return usageErr("JOB %q: want a job id, a positive number", args[0])
			}
			var out struct {
				JobID int64 `json:"job_id"`
			}
			if err := c.do("POST", fmt.Sprintf("/api/v1/jobs/%d/cancel", id), &out); err != nil {
				return err
			}
			fmt.Printf("job %d: cancel requested\n", out.JobID)
			return nil
		},
	}
	c.register(cmd.Flags(), true)
	return cmd
}
