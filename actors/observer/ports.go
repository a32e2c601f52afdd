package observer

import (
	"context"

	"github.com/voltci/volt/messages"
)

// RepoReader reads the watched repositories.
type RepoReader interface {
	// Read reads a watched branch: its tip and the commits after since,
	// oldest first, at most max (the newest kept), and whether since is no
	// longer an ancestor of the tip (a force push).
	Read(ctx context.Context, repo, branch, since string, max int) Polled
	// Pipeline is the pipeline of commit: its .volt.yml expanded
	// (jobspec.ExpandPipeline), with no jobs when the commit has none or
	// one in the single-list format, and with Error set when the file is
	// wrong. An error means the file could not be read (the poll is tried
	// again), never that it is wrong.
	Pipeline(ctx context.Context, repo, commit string) (*messages.Pipeline, error)
}
