package gitexec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkJobPath5000Files is the runner's own part of target 3 (per-job
// overhead, issue 5) without the actors: Prepare of a new commit that is a
// neighbour of the previous one (one file of 5,000 differs), then Execute
// of a one-step job `true`. Each iteration makes a new commit in the origin
// first (not timed), as a push would. With VOLT_BIN set to a built volt
// binary, steps start through `volt exec-wrapper` as in production;
// without it, directly.
//
// Metrics: ms/job (wall) and cpu-ms/job (user+system time of the benchmark
// process and every child it reaped, which a loaded machine disturbs much
// less than wall time).
func BenchmarkJobPath5000Files(b *testing.B) {
	ctx := context.Background()
	origin := filepath.Join(b.TempDir(), "origin")
	gitT(b, "", "init", "--quiet", "--initial-branch=main", origin)
	for d := range 50 {
		dir := filepath.Join(origin, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			content := fmt.Sprintf("file %d/%d\n%s\n", d, f, strings.Repeat("x", 200))
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.txt", f)), []byte(content), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	gitT(b, origin, "add", "--all")
	gitT(b, origin, "commit", "--quiet", "-m", "5,000 files")
	treeA := gitT(b, origin, "rev-parse", "HEAD^{tree}")
	if err := os.WriteFile(filepath.Join(origin, "d00", "f000.txt"), []byte("alternative\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	gitT(b, origin, "commit", "--quiet", "-am", "neighbour")
	treeB := gitT(b, origin, "rev-parse", "HEAD^{tree}")
	parent := gitT(b, origin, "rev-parse", "HEAD")
	next := func(i int) string {
		tree := treeA
		if i%2 == 1 {
			tree = treeB
		}
		c := gitT(b, origin, "commit-tree", tree, "-p", parent, "-m", fmt.Sprintf("neighbour %d", i))
		gitT(b, origin, "update-ref", "refs/heads/main", c)
		parent = c
		return c
	}

	e := &Executor{}
	if bin := os.Getenv("VOLT_BIN"); bin != "" {
		e.Wrapper = []string{bin, "exec-wrapper", "--"}
	}
	e.Warm()
	b.Cleanup(e.Close)
	w := NewWorkspace(b.TempDir(), "")
	env := []string{"PATH=" + os.Getenv("PATH")}
	job := func(commit string) {
		dir, err := w.Prepare(ctx, origin, commit, 0)
		if err != nil {
			b.Fatal(err)
		}
		if o := e.Execute(ctx, Run{Dir: dir, Env: env, Steps: []Step{{Run: "true"}}}); o.Status != Passed {
			b.Fatalf("job: %+v", o)
		}
	}
	job(next(0)) // the mirror and the worktree exist from here on

	var cpu time.Duration
	i := 1
	for b.Loop() {
		b.StopTimer()
		c := next(i)
		i++
		before := cpuTime(b)
		b.StartTimer()
		job(c)
		b.StopTimer()
		cpu += cpuTime(b) - before
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/job")
	b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/job")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the user and system time of this process and its reaped children.
func cpuTime(tb testing.TB) time.Duration {
	var self, kids syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids); err != nil {
		tb.Fatal(err)
	}
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}
