package main

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"
)

func newRebuildCommand() *cobra.Command {
	var c serverClient
	cmd := &cobra.Command{
		Use:   "rebuild COMMIT",
		Short: "Queue a new build of a commit Volt has built before (full id or a unique prefix), with every job of its pipeline",
		Example: `  volt rebuild 3f2a9c1
  VOLT_TOKEN=s3cret volt rebuild 3f2a9c1 --server http://ci.example.com:8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				JobID  int64  `json:"job_id"`
				Build  int32  `json:"build"`
				Commit string `json:"commit"`
			}
			base, err := c.base()
			if err != nil {
				return err
			}
			if err := c.do("POST", "/api/v1/commits/"+url.PathEscape(args[0])+"/rebuild", &out); err != nil {
				return err
			}
			// job_id is the new build's id (its first job's): /api/v1 words.
			fmt.Printf("commit %s: build %d queued (its build number %d); follow it at %s/builds/%d, cancel it with `volt cancel %d`\n",
				out.Commit, out.JobID, out.Build, base, out.JobID, out.JobID)
			return nil
		},
	}
	c.register(cmd.Flags(), true)
	return cmd
}
