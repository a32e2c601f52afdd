package main

import (
	cmap "github.com/orcaman/concurrent-map"

	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/gitexec"
)

// Exit codes (docs/contract.md, Formats).
const (
	exitOK       = 0
	exitRuntime  = 1
	exitUsage    = 2
	exitNotFound = 3
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &exitError{code: exitNotFound, err: fmt.Errorf(format, args...)}
}

func main() {
	// The job wrapper must start before anything else: it is a tiny process
	// that sits between a runner and a job's process group.
	if len(os.Args) > 1 && os.Args[1] == wrapperCommand {
		os.Exit(gitexec.WrapperMain(os.Args[2:]))
	}
	// Proto.Actor's process registry makes 1,024 concurrent maps of
	// SHARD_COUNT shards each: 32,768 Go maps by default, 2.7 MiB of live
	// heap in every process (a third of an idle runner's) and garbage
	// collection work for a one-shot `volt notify`. One shard per map keeps
	// the 1,024-way split, which is plenty for a role's few actors. It must
	// be set before any actor system exists and never changed afterwards:
	// a map finds a key's shard by SHARD_COUNT.
	cmap.SHARD_COUNT = 1
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCommand()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "volt:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitRuntime
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "volt",
		Short: "Volt CI: watches git repositories and runs every new commit's tests on a pool of runners",
		Long: `Volt CI watches git repositories and runs every new commit's tests on a pool of
runners, surviving runner and dispatcher crashes with no lost and no duplicated result.

Run everything on one machine:
  volt up --repo /path/to/repo

Or run the four roles as separate processes (see the README):
  volt dispatcher
  volt runner
  volt reporter
  volt observer --repo /path/to/repo`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr("%v (see `%s --help`)", err, c.CommandPath())
	})
	root.AddCommand(newUpCommand())
	root.AddCommand(newDispatcherCommand())
	root.AddCommand(newMigrateCommand())
	root.AddCommand(newRunnerCommand())
	root.AddCommand(newReporterCommand())
	root.AddCommand(newObserverCommand())
	root.AddCommand(newNotifyCommand())
	root.AddCommand(newStatusCommand())
	root.AddCommand(newResultsCommand())
	root.AddCommand(newArtifactsCommand())
	root.AddCommand(newRunnersCommand())
	root.AddCommand(newCancelCommand())
	root.AddCommand(newRebuildCommand())
	root.AddCommand(newSimCommand())
	root.AddCommand(newCACommand())
	root.AddCommand(newJoinTokenCommand())
	root.AddCommand(newSecretCommand())
	return root
}
