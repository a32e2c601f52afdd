package gitexec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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

// BenchmarkTrivialJob is the runner's part of a trivial build (issue 12):
// Prepare of a commit that changes one file of a small repository, then
// Execute of a one-step job `true`, as a runner does it: steps start
// through the exec wrapper (the volt binary in VOLT_BIN, else this test
// binary, a smaller program with the same wrapper), and with
// isolation=bwrap in a bubblewrap sandbox hiding the work directory. Each
// iteration makes its commit first (not timed, not counted).
//
// Metrics: child-cpu-ms/job, the user and system time of the processes
// below this one during the jobs (git, the wrapper, bwrap, sh), per job:
// what it reaped (getrusage(RUSAGE_CHILDREN)) plus what its live children
// used and reaped (a kept wrapper reaps each step's shell; /proc, 10 ms
// ticks); cpu-ms/job, the same plus this process's own; jobs/s, one job at
// a time.
func BenchmarkTrivialJob(b *testing.B) {
	for _, iso := range []Isolation{IsolationBwrap, IsolationNone} {
		b.Run("isolation="+string(iso), func(b *testing.B) {
			if iso == IsolationBwrap {
				if err := ProbeBwrap(nil); err != nil {
					b.Skip(err)
				}
			}
			benchTrivialJob(b, iso)
		})
	}
}

func benchTrivialJob(b *testing.B, iso Isolation) {
	ctx := context.Background()
	origin := newRepo(b)
	commitFiles(b, origin, "seed", map[string]string{".volt.yml": "steps: [{run: \"true\"}]\n", "counter.txt": "0\n"})
	n := 0
	next := func() string {
		n++
		return commitFiles(b, origin, fmt.Sprintf("commit %d", n), map[string]string{"counter.txt": fmt.Sprintf("%d\n", n)})
	}

	work := b.TempDir()
	e := &Executor{Isolation: iso, Hide: []string{work}}
	if bin := os.Getenv("VOLT_BIN"); bin != "" {
		e.Wrapper = []string{bin, "exec-wrapper", "--"}
	} else {
		exe, err := os.Executable()
		if err != nil {
			b.Fatal(err)
		}
		e.Wrapper, e.WrapperEnv = []string{exe, "--"}, []string{envWrapper + "=1"}
	}
	e.Warm()
	b.Cleanup(e.Close)
	w := NewWorkspace(work, "")
	env := []string{"CI=true"}
	job := func(commit string) {
		dir, err := w.Prepare(ctx, origin, commit, 0)
		if err != nil {
			b.Fatal(err)
		}
		if o := e.Execute(ctx, Run{Dir: dir, Env: env, Steps: []Step{{Run: "true"}}}); o.Status != Passed {
			b.Fatalf("job: %+v", o)
		}
	}
	job(next()) // the mirror and the worktree exist from here on

	var kids, all time.Duration
	for b.Loop() {
		b.StopTimer()
		c := next()
		k0, a0 := childCPU(b), cpuTime(b)
		b.StartTimer()
		job(c)
		b.StopTimer()
		kids += childCPU(b) - k0
		all += cpuTime(b) - a0
		b.StartTimer()
	}
	b.ReportMetric(float64(kids.Microseconds())/1e3/float64(b.N), "child-cpu-ms/job")
	b.ReportMetric(float64(all.Microseconds())/1e3/float64(b.N), "cpu-ms/job")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
	b.ReportMetric(0, "ns/op")
}

// childCPU is the user and system time of this process's reaped children,
// and of its live children with what they reaped (as a kept wrapper has).
func childCPU(tb testing.TB) time.Duration {
	var kids syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids); err != nil {
		tb.Fatal(err)
	}
	total := time.Duration(kids.Utime.Nano() + kids.Stime.Nano())
	live, _ := childrenOf(os.Getpid())
	for _, pid := range live {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone
		}
		_, rest, _ := strings.Cut(string(stat), ") ")
		// state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
		f := strings.Fields(rest)
		for _, i := range []int{11, 12, 13, 14} {
			if i < len(f) {
				ticks, _ := strconv.ParseInt(f[i], 10, 64)
				total += time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
			}
		}
	}
	return total
}
