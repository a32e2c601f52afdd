package observer

import "context"

// RepoReader reads a watched branch: its tip and the commits after since,
// oldest first, at most max (the newest kept), and whether since is no
// longer an ancestor of the tip (a force push).
type RepoReader interface {
	Read(ctx context.Context, repo, branch, since string, max int) Polled
}
