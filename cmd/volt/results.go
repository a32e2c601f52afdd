package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/web"
)

func newResultsCommand() *cobra.Command {
	var (
		dataDir string
		limit   int
		repo    string
		status  string
		branch  string
		tests   bool
		srv     serverClient
	)
	cmd := &cobra.Command{
		Use:   "results [COMMIT]",
		Short: "List recorded results, or show one commit's result with its output (exit 3 if unknown)",
		Example: `  volt results
  volt results 3f2a9c1 --data-dir .volt
  volt results 3f2a9c1 --tests
  volt results --server http://127.0.0.1:8080 --status failed --branch main`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if status != "" {
				if _, err := messages.ParseStatus(status); err != nil {
					return usageErr("--status: %v", err)
				}
			}
			if tests && len(args) == 0 {
				return usageErr("--tests lists one commit's tests: give the COMMIT")
			}
			if cmd.Flags().Changed("server") {
				return serverResults(&srv, args, repo, branch, status, limit, tests)
			}
			if branch != "" {
				return usageErr("--branch needs --server (the data-dir mode filters by --repo and --status)")
			}
			db, err := store.OpenReadOnly(dataDir)
			if err != nil {
				return fatal("open results", err)
			}
			defer db.Close()
			if len(args) == 1 {
				return showResult(db, args[0], tests)
			}
			rs, err := db.Results(store.ResultFilter{Repo: repo, Status: status, Limit: limit})
			if err != nil {
				return fatal("list results", err)
			}
			if len(rs) == 0 {
				fmt.Println("no results yet")
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "COMMIT\tSTATUS\tREPO\tBRANCHES\tBUILD\tATTEMPT\tDURATION\tFINISHED")
			for _, r := range rs {
				fmt.Fprintf(tw, "%.12s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.Job.Commit, r.Status.Name(), r.Job.RepoName,
					strings.Join(r.Job.Branches, ","), r.Job.Build, r.Attempt, duration(r), time.UnixMilli(r.FinishedUnixMs).Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dataDir, "data-dir", ".volt", "the reporter's data directory (the one `volt up` or `volt reporter` was given)")
	fs.IntVar(&limit, "limit", 50, "most results listed")
	fs.StringVar(&repo, "repo", "", "only this repository (its URL or path)")
	fs.StringVar(&status, "status", "", "only this status: passed, failed, timed_out, errored or cancelled")
	fs.StringVar(&branch, "branch", "", "only this branch (with --server)")
	fs.BoolVar(&tests, "tests", false, "with COMMIT: list each job's tests (failures first, flaky ones marked) instead of the log")
	srv.register(fs, false)
	srv.server = ""
	fs.Lookup("server").DefValue = ""
	fs.Lookup("server").Usage = "ask this Volt web server (for example " + defaultServer + ") instead of reading --data-dir"
	return cmd
}

func duration(r *messages.Result) string {
	if r.StartedUnixMs == 0 || r.FinishedUnixMs < r.StartedUnixMs {
		return "-"
	}
	return (time.Duration(r.FinishedUnixMs-r.StartedUnixMs) * time.Millisecond).String()
}

func showResult(db *store.DB, commit string, tests bool) error {
	r, err := db.ResultForCommit(commit)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("no result for commit %s in %s (it may still be queued or running: see `volt status`)", commit, db.Dir())
	case errors.Is(err, store.ErrAmbiguous):
		return usageErr("commit prefix %s matches several commits: give more characters", commit)
	case err != nil:
		return fatal("look up "+commit, err)
	}
	fmt.Printf("status: %s\nrepo: %s\nbranches: %s\ncommit: %s\nbuild: %d\nattempt: %d\nrunner: %s\nduration: %s\n",
		r.Status.Name(), r.Job.RepoName, strings.Join(r.Job.Branches, ","), r.Job.Commit, r.Job.Build, r.Attempt, r.RunnerId, duration(r))
	if r.Reason != "" {
		fmt.Printf("reason: %s\n", r.Reason)
	}
	fmt.Println()
	if tests {
		b, err := db.BuildForCommit(commit)
		if err != nil {
			return fatal("look up the newest build of "+commit, err)
		}
		jobs, err := db.BuildTests(b.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fatal("read the tests", err)
		}
		printTests(os.Stdout, web.NewBuildTests(b.ID, jobs))
		return nil
	}
	if _, err := db.CopyLog(os.Stdout, r.Job, r.Attempt); err != nil {
		return fatal("read the log", err)
	}
	return nil
}

// serverResults is `volt results --server`: the same listing and detail,
// from a Volt web server's JSON API.
func serverResults(c *serverClient, args []string, repo, branch, status string, limit int, tests bool) error {
	if len(args) == 1 {
		var r web.JobWithLog
		if err := c.do("GET", "/api/v1/results/"+url.PathEscape(args[0]), &r); err != nil {
			return err
		}
		fmt.Printf("status: %s\nrepo: %s\nbranches: %s\ncommit: %s\nbuild: %d\nattempt: %d\nrunner: %s\nduration: %s\n",
			r.Status, r.RepoName, strings.Join(r.Branches, ","), r.Commit, r.Build, r.Attempt, r.Runner, msDuration(r.DurationMS))
		if r.Reason != "" {
			fmt.Printf("reason: %s\n", r.Reason)
		}
		fmt.Println()
		if tests {
			var bt web.BuildTests
			err := c.do("GET", "/api/v2/commits/"+url.PathEscape(args[0])+"/tests", &bt)
			var ee *exitError
			if err != nil && !(errors.As(err, &ee) && ee.code == exitNotFound) {
				return err
			}
			printTests(os.Stdout, bt)
			return nil
		}
		fmt.Print(r.Log)
		return nil
	}
	if limit < 1 || limit > 500 {
		return usageErr("--limit must be from 1 to 500 with --server")
	}
	q := url.Values{}
	q.Set("limit", fmt.Sprint(limit))
	if repo != "" {
		key := "repo"
		if strings.ContainsAny(repo, "/:") {
			key = "repo_url"
		}
		q.Set(key, repo)
	}
	if branch != "" {
		q.Set("branch", branch)
	}
	if status != "" {
		q.Set("status", status)
	}
	var page web.ResultsPage
	if err := c.do("GET", "/api/v1/results?"+q.Encode(), &page); err != nil {
		return err
	}
	if len(page.Results) == 0 {
		fmt.Println("no results yet")
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "COMMIT\tSTATUS\tREPO\tBRANCHES\tBUILD\tATTEMPT\tDURATION\tFINISHED")
	for _, r := range page.Results {
		finished := "-"
		if r.FinishedAt != nil {
			finished = r.FinishedAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%.12s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.Commit, r.Status, r.RepoName,
			strings.Join(r.Branches, ","), r.Build, r.Attempt, msDuration(r.DurationMS), finished)
	}
	return tw.Flush()
}

func msDuration(ms *int64) string {
	if ms == nil {
		return "-"
	}
	return (time.Duration(*ms) * time.Millisecond).String()
}

// maxMessageLines is how many lines of a test's message --tests shows.
const maxMessageLines = 10

// printTests writes `volt results COMMIT --tests`: each job's tests in
// the commit's newest build, failures first, flaky ones marked, with their
// durations and the end of each failure's message.
func printTests(w io.Writer, bt web.BuildTests) {
	if len(bt.Jobs) == 0 {
		fmt.Fprintln(w, "no test results: no job of this build uploaded a report (declare reports: in .volt.yml, for example reports: {go-test-json: report.json})")
		return
	}
	fmt.Fprintf(w, "tests of build %d (#%d)\n", bt.Build, bt.BuildID)
	for _, j := range bt.Jobs {
		fmt.Fprintln(w)
		var counts []string
		for _, k := range []string{"failed", "errored", "flaky", "skipped", "passed"} {
			if n := j.Counts[k]; n > 0 {
				counts = append(counts, fmt.Sprintf("%d %s", n, k))
			}
		}
		fmt.Fprintf(w, "tests of %s (job %d, attempt %d): %s\n", j.Name, j.JobID, j.Attempt, strings.Join(counts, ", "))
		for _, t := range j.Tests {
			st := t.Status
			if t.Flaky {
				st += " flaky"
			}
			fmt.Fprintf(w, "  %-13s %9s  %s  %s\n", st, msDuration(&t.DurationMS), t.Suite, t.Name)
			if t.Message != "" && t.Status != "passed" {
				lines := strings.Split(strings.TrimRight(t.Message, "\n"), "\n")
				if len(lines) > maxMessageLines {
					lines = append([]string{"…"}, lines[len(lines)-maxMessageLines:]...)
				}
				for _, l := range lines {
					fmt.Fprintf(w, "      %s\n", l)
				}
			}
		}
	}
}
