package bench

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// window is how long the idle benchmarks sample CPU time.
const window = 5 * time.Second

// cpuSample is a process's CPU time at one moment: its live threads'
// (schedstat, ns) and, from /proc/PID/stat, its own and its reaped
// children's (clock ticks).
type cpuSample struct {
	at       time.Time
	sched    time.Duration
	slices   int64 // times a thread was put on a CPU
	own      time.Duration
	children time.Duration
}

func sampleCPU(b *testing.B, pid int) cpuSample {
	b.Helper()
	st, ok := readStat(pid)
	sched, slices, ok2 := schedStats(pid)
	if !ok || !ok2 {
		b.Fatalf("process %d is gone", pid)
	}
	return cpuSample{at: time.Now(), sched: sched, slices: slices, own: st.cpuTime(), children: st.childTime()}
}

// wakeups is the rate at which threads were put on a CPU between samples.
func wakeups(a, z cpuSample) float64 {
	return float64(z.slices-a.slices) / z.at.Sub(a.at).Seconds()
}

// pctCPU is the share of one core used between two samples (schedstat).
func pctCPU(a, z cpuSample) float64 {
	return 100 * float64(z.sched-a.sched) / float64(z.at.Sub(a.at))
}

// BenchmarkIdle is target 9: an idle `volt dispatcher` (its SQLite store
// open) with one registered `volt runner` exchanging heartbeats (every 1 s,
// the default). After a one-second settling period each iteration samples
// both processes over a 5 s window: CPU from /proc/PID/task/*/schedstat
// (nanoseconds; /proc/PID/stat's 10 ms ticks are too coarse for 0.1 % over
// 5 s: dispatcher-%CPU-ticks is that figure, for comparison) and VmRSS at the
// end of the window.
//
// Metrics: dispatcher-%CPU (target < 0.1), dispatcher-MiB-RSS (≤ 32),
// runner-%CPU, runner-MiB-RSS (≤ 24), and the wake-ups behind the CPU time:
// dispatcher-wakeups/s and runner-wakeups/s (times a thread was put on a
// CPU, from schedstat).
func BenchmarkIdle(b *testing.B) {
	dir := b.TempDir()
	addr := freeAddr(b)
	disp := startVoltProfiled(b, dir, "dispatcher", true, "dispatcher", "--listen", addr, "--data-dir", filepath.Join(dir, "disp"))
	waitAccepts(b, disp, addr, 30*time.Second)
	runner := startVoltProfiled(b, dir, "runner", true, "runner", "--id", "idle-runner", "--work-dir", filepath.Join(dir, "runner"),
		"--listen", "127.0.0.1:0", "--dispatcher-server", addr)
	poll(b, 30*time.Second, 20*time.Millisecond, func() bool {
		st, ok := status(b, addr)
		return ok && idleRunners(st, "idle-runner")
	}, "the runner did not register")
	<-time.After(time.Second) // settle: not a condition, a discarded window

	s := newSamples()
	for b.Loop() {
		d0, r0 := sampleCPU(b, disp.pid()), sampleCPU(b, runner.pid())
		<-time.After(window) // the sampling window
		d1, r1 := sampleCPU(b, disp.pid()), sampleCPU(b, runner.pid())
		ticks := 100 * float64(d1.own-d0.own) / float64(d1.at.Sub(d0.at))
		s.record(b, "dispatcher-%CPU", pctCPU(d0, d1), "dispatcher-MiB-RSS", rssMiB(disp.pid()),
			"runner-%CPU", pctCPU(r0, r1), "runner-MiB-RSS", rssMiB(runner.pid()),
			"dispatcher-%CPU-ticks", ticks, "dispatcher-wakeups/s", wakeups(d0, d1), "runner-wakeups/s", wakeups(r0, r1))
	}
	s.report(b)
}

// BenchmarkObserverPoll is target 10: the cost of one observer poll that
// finds nothing new. Two `volt observer` processes watch two idle
// repositories of one commit through one dispatcher, at the same time: the
// measured one with --poll 100ms, a baseline with --poll 10m (it never polls
// in the window, but has the same actor system, ticks and heartbeats).
// Per 5 s window:
//
//   - polls: for repo=path, the opens of refs/heads/main in the watched
//     repository (inotify IN_OPEN: the observer reads the ref file once a
//     poll); for repo=file-url, the `git fetch` processes seen as the
//     observer's own children (one a poll);
//   - ms-CPU/poll: (measured − baseline) CPU time, own threads (schedstat)
//     plus reaped children (/proc/PID/stat cutime+cstime: the git processes),
//     divided by polls (target ≤ 5 for a local path); ms-CPU/poll-gross is
//     the measured observer's CPU alone over polls;
//   - procs/poll and git-procs/poll: processes seen below the measured
//     observer by scanning /proc every 2 ms, all of them and those whose
//     comm starts with "git", over polls (lower bounds: a process that lives
//     less than 2 ms can be missed); polls/s.
//
// The repo=file-url variant (a file:// URL: the code path of every remote
// URL, without a network) answers "for a URL, say what a poll costs".
func BenchmarkObserverPoll(b *testing.B) {
	b.Run("repo=path", func(b *testing.B) { benchObserverPoll(b, false) })
	b.Run("repo=file-url", func(b *testing.B) { benchObserverPoll(b, true) })
}

func benchObserverPoll(b *testing.B, url bool) {
	dir := b.TempDir()
	addr := freeAddr(b)
	disp := startVolt(b, dir, "dispatcher", "dispatcher", "--listen", addr, "--data-dir", filepath.Join(dir, "disp"))
	waitAccepts(b, disp, addr, 30*time.Second)
	base := newRepo(b, filepath.Join(dir, "base"), map[string]string{".volt.yml": specTrue})
	meas := newRepo(b, filepath.Join(dir, "meas"), map[string]string{".volt.yml": specTrue})
	where := func(r *repo) string {
		if url {
			return "file://" + r.bare
		}
		return r.bare
	}
	opens := watchDir(b, filepath.Join(meas.bare, "refs", "heads"), true)
	obsBase := startVolt(b, dir, "observer-base", "observer", "--repo", where(base), "--poll", "10m",
		"--data-dir", filepath.Join(dir, "obs-base"), "--dispatcher-server", addr)
	obs := startVolt(b, dir, "observer", "observer", "--repo", where(meas), "--poll", "100ms",
		"--data-dir", filepath.Join(dir, "obs"), "--dispatcher-server", addr)
	poll(b, 30*time.Second, 20*time.Millisecond, func() bool {
		st, ok := status(b, addr)
		return ok && strings.Contains(st, "observers: 2")
	}, "the observers did not register")
	<-time.After(time.Second) // settle: not a condition, a discarded window

	s := newSamples()
	for b.Loop() {
		kids := countChildren(obs.pid(), 2*time.Millisecond)
		o0, b0 := opens.openCount("main"), sampleCPU(b, obsBase.pid())
		m0 := sampleCPU(b, obs.pid())
		<-time.After(window) // the sampling window
		m1 := sampleCPU(b, obs.pid())
		b1, o1 := sampleCPU(b, obsBase.pid()), opens.openCount("main")
		nAll, nGit := kids.finish()
		polls := float64(o1 - o0)
		if url {
			polls = 0
			for cl, n := range kids.cmds {
				if strings.HasPrefix(cl, "child ") && strings.Contains(cl, " fetch") {
					polls += float64(n)
				}
			}
		}
		if polls == 0 {
			b.Fatalf("no poll seen in %s", window)
		}
		measured := (m1.sched - m0.sched) + (m1.children - m0.children)
		baseline := (b1.sched - b0.sched) + (b1.children - b0.children)
		s.record(b, "ms-CPU/poll", ms(measured-baseline)/polls, "ms-CPU/poll-gross", ms(measured)/polls,
			"git-procs/poll", float64(nGit)/polls, "procs/poll", float64(nAll)/polls, "polls/s", polls/m1.at.Sub(m0.at).Seconds())
		if nAll > 0 {
			b.Logf("processes below the observer (comm: command line): %v", kids.cmds)
		}
	}
	s.report(b)
}
