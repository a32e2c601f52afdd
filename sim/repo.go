package sim

import (
	"encoding/hex"
	"math/rand/v2"
	"slices"

	"github.com/voltci/volt/actors/observer"
	"github.com/voltci/volt/messages"
)

// Repo is a simulated git repository: branches with linear histories that
// grow, get force-pushed, and fast-forward into each other.
type Repo struct {
	URL, Name string
	branches  map[string][]string // oldest first
	order     []string
	commits   map[string]*commitInfo
	seq       uint64
}

// commitInfo is what the simulated executor knows of a commit.
type commitInfo struct {
	seq        uint64 // creation order
	durationMs int64
	fails      bool
	hangs      bool // runs past the job timeout
	poison     bool // kills the runner that starts it
	// pipeline is its .volt.yml's pipeline (nil: the single-list format),
	// and cells what each of its jobs does (pipeline.go).
	pipeline *messages.Pipeline
	cells    []cellPlan
}

func newRepo(branches ...string) *Repo {
	r := &Repo{URL: "/sim/project.git", Name: "project", branches: map[string][]string{}, commits: map[string]*commitInfo{}}
	for _, b := range branches {
		r.branches[b] = nil
		r.order = append(r.order, b)
	}
	return r
}

func (r *Repo) newCommit(rng *rand.Rand, info *commitInfo) string {
	r.seq++
	var b [20]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[0], b[1] = byte(r.seq>>8), byte(r.seq)
	id := hex.EncodeToString(b[:])
	info.seq = r.seq
	r.commits[id] = info
	return id
}

// push appends a commit to a branch.
func (r *Repo) push(branch, id string) { r.branches[branch] = append(r.branches[branch], id) }

// forcePush replaces a branch's history by one new commit off its first one.
func (r *Repo) forcePush(branch, id string) {
	h := r.branches[branch]
	var base []string
	if len(h) > 1 {
		base = append(base, h[0])
	}
	r.branches[branch] = append(base, id)
}

// merge fast-forwards dst to src's history when src contains dst's tip.
func (r *Repo) merge(dst, src string) bool {
	d, s := r.branches[dst], r.branches[src]
	if len(s) <= len(d) {
		return false
	}
	if len(d) > 0 && !slices.Contains(s, d[len(d)-1]) {
		return false
	}
	r.branches[dst] = append([]string(nil), s...)
	return true
}

// read answers an observer's Poll the way gitexec.Repo would.
func (r *Repo) read(p observer.Poll) observer.Polled {
	out := observer.Polled{Repo: p.Repo, Branch: p.Branch}
	h := r.branches[p.Branch]
	if len(h) == 0 {
		out.Err = "branch does not exist"
		return out
	}
	out.Tip = h[len(h)-1]
	if p.Since == out.Tip {
		return out
	}
	switch i := slices.Index(h, p.Since); {
	case p.Since == "":
		out.Commits = []string{out.Tip}
	case i < 0:
		out.Commits, out.Forced = []string{out.Tip}, true
	default:
		out.Commits = append([]string(nil), h[i+1:]...)
	}
	if p.Max > 0 && len(out.Commits) > p.Max {
		out.Skipped = len(out.Commits) - p.Max
		out.Commits = out.Commits[out.Skipped:]
	}
	return out
}
