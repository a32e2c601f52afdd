package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pyTest is a trivial unittest suite: one passing test.
const pyTest = `import unittest
class T(unittest.TestCase):
    def test_ok(self):
        self.assertEqual(1 + 1, 2)
`

// upInst is one `volt up` process and a watch on its result directory.
type upInst struct {
	p       *proc
	addr    string
	data    string
	results *watcher
}

// startUp starts `volt up` on r with extra flags, waits until it listens and
// until the tip it sees at start has its result, and watches test_results.
func startUp(b *testing.B, dir string, r *repo, flags ...string) *upInst {
	b.Helper()
	u := &upInst{addr: freeAddr(b), data: filepath.Join(dir, "data")}
	args := append([]string{"up", "--repo", r.bare, "--data-dir", u.data, "--listen", u.addr}, flags...)
	if upHTTP {
		args = append(args, "--http", freeAddr(b))
	}
	u.p = startVoltProfiled(b, dir, "up", true, args...)
	waitAccepts(b, u.p, u.addr, 30*time.Second)
	tip := r.head()
	poll(b, 120*time.Second, 10*time.Millisecond, func() bool {
		if u.p.exited() {
			b.Fatalf("volt up exited:\n%s", tail(u.p.log, 20))
		}
		return resultStatus(u.resultPath(tip)) != ""
	}, "no result for the tip %s", tip)
	u.results = watchDir(b, filepath.Join(u.data, "test_results"), false)
	return u
}

func (u *upInst) resultPath(commit string) string {
	return filepath.Join(u.data, "test_results", commit)
}

// wantPassed fails unless the result of commit says passed.
func wantPassed(b *testing.B, path string) {
	b.Helper()
	if st := resultStatus(path); st != "passed" {
		raw, _ := os.ReadFile(path)
		b.Fatalf("result %s: status %q, want passed:\n%s", path, st, raw)
	}
}

// BenchmarkPushToResultNotify is target 1: push → result when a post-receive
// hook runs `volt notify`, for a trivial Python unittest suite, against the
// bare test time. `volt up --runners 1 --poll 10m` (the poll never fires);
// each iteration commits, pushes, then runs `volt notify` (t0 = the push
// returned) and waits for test_results/<commit> (inotify). In the same
// iteration it times `python3 -m unittest discover -s tests` in a checkout
// of the same commit (PYTHONDONTWRITEBYTECODE=1: the job's worktree is
// cleaned with git clean -ffdx, so it never has cached bytecode either).
//
// Metrics: ms/push (t0 → result file), bare-ms, overhead-ms (the
// difference, per push; target ≤ 50), notify-ms (the `volt notify`
// process) and the phases read from volt up's log, in ms after t0:
// phase-queued-ms ("commit queued"), phase-started-ms (the runner's "job
// started"), phase-finished-ms ("job finished": checkout + steps done) and
// phase-reported-ms (the reporter's "result recorded").
func BenchmarkPushToResultNotify(b *testing.B) {
	dir := b.TempDir()
	r := newRepo(b, dir, map[string]string{"tests/test_x.py": pyTest})
	up := startUp(b, dir, r, "--poll", "10m", "--runners", "1")
	bareEnv := append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")

	// Warm-up, not measured: the runner's worktree and the page cache.
	warm := r.next()
	r.push()
	notify(b, up.addr)
	up.results.waitFile(b, warm, 30*time.Second)

	s := newSamples()
	for b.Loop() {
		sha := r.next()
		pushed := r.push()
		t0 := time.Now()
		nd := notify(b, up.addr)
		t1 := up.results.waitFile(b, sha, 30*time.Second)
		wantPassed(b, up.resultPath(sha))
		bare := runCmd(b, 30*time.Second, r.work, bareEnv, "python3", "-m", "unittest", "discover", "-s", "tests")
		if bare.code != 0 {
			b.Fatalf("bare unittest: exit %d\n%s", bare.code, bare.stderr)
		}
		total := t1.Sub(t0)
		ph := waitPhases(t0, sha, up.p.log)
		s.record(b, "ms/push", total, "bare-ms", bare.elapsed, "overhead-ms", total-bare.elapsed,
			"notify-ms", nd, "push-ms", pushed,
			"phase-queued-ms", ph.queued, "phase-started-ms", ph.started,
			"phase-finished-ms", ph.finished, "phase-reported-ms", ph.reported)
	}
	s.report(b)
}

// BenchmarkPushToResultPoll1s is target 2: push → result with --poll 1s for
// a one-step `run: "true"` job, no notify. Before each push the benchmark
// waits a random 0–1 s (not a condition: it puts the push at a random phase
// of the poll timer; without it every push would land at the same phase,
// right after the previous result). t0 = the push returned.
//
// One iteration is one push (about 1 s with the random wait): ask for
// samples with -benchtime 20x. Metrics: ms/push (mean; the target is the
// median, see the summary line or pool the sample lines), p50-ms/push (this
// run's median) and the phases as in BenchmarkPushToResultNotify.
func BenchmarkPushToResultPoll1s(b *testing.B) {
	dir := b.TempDir()
	r := newRepo(b, dir, map[string]string{".volt.yml": specTrue})
	up := startUp(b, dir, r, "--poll", "1s", "--runners", "1")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))

	warm := r.next()
	r.push()
	up.results.waitFile(b, warm, 30*time.Second)

	s := newSamples()
	var all []float64
	for b.Loop() {
		<-time.After(time.Duration(rng.Int64N(int64(time.Second))))
		sha := r.next()
		pushed := r.push()
		t0 := time.Now()
		t1 := up.results.waitFile(b, sha, 30*time.Second)
		wantPassed(b, up.resultPath(sha))
		ph := waitPhases(t0, sha, up.p.log)
		all = append(all, ms(t1.Sub(t0)))
		s.record(b, "ms/push", t1.Sub(t0), "push-ms", pushed,
			"phase-queued-ms", ph.queued, "phase-started-ms", ph.started,
			"phase-finished-ms", ph.finished, "phase-reported-ms", ph.reported)
	}
	s.report(b)
	b.ReportMetric(median(all), "p50-ms/push")
}

// BenchmarkPerJobOverhead5000Files is target 3: the per-job overhead
// (workspace checkout + process start + report) on a repository of 5,000
// files, beside the bare git operations of the same commits. Every commit
// changes one file (d00/f000.txt, alternating between two contents), so
// consecutive commits are neighbours; `volt up --runners 1 --poll 10m` and
// `volt notify`, on a warm runner (its mirror and worktree exist).
//
// Metrics, per push: ms/push (push returned → result file); job-ms (the
// runner's "job started" log line, when RunJob arrived, → result file);
// overhead-ms = job-ms − true-ms (target ≤ 30), true-ms being a bare
// `sh -c true` started from Go; runner-ms (the result file's own duration:
// fetch + checkout + steps, as the runner timed it). Beside them, on a
// separate bare mirror of the same repository: fetch-ms (fetching the new
// commit), worktree-add-ms (a fresh `git worktree add` of the commit, all
// 5,000 files written) and checkout-ms (`git checkout --force --detach` +
// `git clean -ffdx` from the previous commit: what the runner does), and
// the ratios overhead/worktree-add and overhead/checkout.
func BenchmarkPerJobOverhead5000Files(b *testing.B) {
	dir := b.TempDir()
	files := map[string]string{".volt.yml": specTrue}
	for d := range 50 {
		for f := range 100 {
			files[fmt.Sprintf("d%02d/f%03d.txt", d, f)] = fmt.Sprintf("file %d/%d\n%s\n", d, f, strings.Repeat("x", 200))
		}
	}
	r := newRepo(b, dir, files)
	up := startUp(b, dir, r, "--poll", "10m", "--runners", "1")

	mirror := filepath.Join(dir, "mirror.git")
	git(b, dir, "clone", "-q", "--bare", r.bare, mirror)
	inc := filepath.Join(dir, "inc")
	git(b, mirror, "worktree", "add", "-q", "--detach", inc, r.head())

	alt := 0
	nextCommit := func() string {
		alt++
		r.write("d00/f000.txt", fmt.Sprintf("alternative %d\n", alt%2))
		r.n++
		return r.commit(fmt.Sprintf("neighbour %d", r.n))
	}
	warm := nextCommit()
	r.push()
	notify(b, up.addr)
	up.results.waitFile(b, warm, 30*time.Second)
	git(b, mirror, "fetch", "-q", r.bare, "+refs/heads/*:refs/heads/*")
	git(b, inc, "checkout", "-q", "--force", "--detach", warm)

	s := newSamples()
	for b.Loop() {
		sha := nextCommit()
		r.push()
		t0 := time.Now()
		notify(b, up.addr)
		t1 := up.results.waitFile(b, sha, 30*time.Second)
		wantPassed(b, up.resultPath(sha))
		l := readLogs(up.p.log)
		started, ok := l.find(t0, "job started", "job", l.jobOf(sha))
		if !ok {
			b.Fatalf("no \"job started\" line for %s in %s", sha, up.p.log)
		}
		runnerDur, err := time.ParseDuration(resultField(up.resultPath(sha), "duration"))
		if err != nil {
			b.Fatalf("result of %s: duration: %v", sha, err)
		}
		bareTrue := runCmd(b, 10*time.Second, dir, os.Environ(), "sh", "-c", "true").elapsed

		// The bare git operations, on the separate mirror.
		fetch := timeGit(b, mirror, "fetch", "-q", r.bare, "+refs/heads/*:refs/heads/*")
		fresh := filepath.Join(dir, "fresh")
		add := timeGit(b, mirror, "worktree", "add", "-q", "--detach", fresh, sha)
		if err := os.RemoveAll(fresh); err != nil {
			b.Fatal(err)
		}
		git(b, mirror, "worktree", "prune")
		start := time.Now()
		git(b, inc, "checkout", "-q", "--force", "--detach", sha)
		git(b, inc, "clean", "-ffdxq")
		checkout := time.Since(start)

		job := t1.Sub(started)
		overhead := job - bareTrue
		s.record(b, "ms/push", t1.Sub(t0), "job-ms", job, "overhead-ms", overhead, "true-ms", bareTrue,
			"runner-ms", runnerDur, "fetch-ms", fetch, "worktree-add-ms", add, "checkout-ms", checkout,
			"overhead/worktree-add", float64(overhead)/float64(add), "overhead/checkout", float64(overhead)/float64(checkout))
	}
	s.report(b)
}
