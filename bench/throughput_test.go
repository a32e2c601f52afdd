package bench

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkThroughput200Commits is target 6: sustained throughput with real
// git and real processes. `volt up --runners 4 --poll 10m --max-backlog 200`
// on a repository whose `.volt.yml` runs `true`. Each iteration makes 200
// commits in advance (one `git fast-import`; each changes one file), pushes
// them at once, runs `volt notify` and waits for all 200 result files
// (inotify). t0 = the push returned.
//
// Metrics: builds/s (200 / (t0 → last result file); target ≥ 50),
// ms/200-builds, first-result-ms, enqueued-ms (the last "commit queued" log
// line: the observer and the dispatcher's durable queue have taken all 200),
// up-%CPU and children-%CPU (volt up's own CPU and its reaped children's —
// git, the job wrapper, sh — over the interval, in % of one core; the
// machine has two). Afterwards every result file must say passed and
// `volt results` (the SQLite store) must list all 200 commits.
func BenchmarkThroughput200Commits(b *testing.B) {
	const n = 200
	dir := b.TempDir()
	r := newRepo(b, dir, map[string]string{".volt.yml": specTrue})
	up := startUp(b, dir, r, "--poll", "10m", "--runners", "4", "--max-backlog", "200")

	s := newSamples()
	for b.Loop() {
		shas := r.commits(n)
		pushed := r.push()
		t0 := time.Now()
		cpu0, ok := readStat(up.p.pid())
		if !ok {
			b.Fatal("volt up is gone")
		}
		notify(b, up.addr)
		at, fallbacks := up.results.waitFiles(b, shas, 3*time.Minute)
		cpu1, _ := readStat(up.p.pid())
		var times []time.Time
		for _, t := range at {
			times = append(times, t)
		}
		last := slices.MaxFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		firstRes := slices.MinFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		wall := last.Sub(t0)
		l := readLogs(up.p.log)
		enqueued, ok := l.find(t0, "commit queued", "commit", shas[n-1])
		enq := time.Duration(0)
		if ok {
			for _, sha := range shas {
				if t, ok := l.find(t0, "commit queued", "commit", sha); ok && t.After(enqueued) {
					enqueued = t
				}
			}
			enq = enqueued.Sub(t0)
		}
		s.record(b, "builds/s", float64(n)/wall.Seconds(), "ms/200-builds", wall, "first-result-ms", firstRes.Sub(t0),
			"enqueued-ms", enq, "push-ms", pushed,
			"up-%CPU", 100*float64(cpu1.cpuTime()-cpu0.cpuTime())/float64(wall),
			"children-%CPU", 100*float64(cpu1.childTime()-cpu0.childTime())/float64(wall))
		if fallbacks > 0 {
			b.Logf("%d result files timed by stat, not inotify", fallbacks)
		}

		// Durability: every result passed, and the store lists each commit.
		for _, sha := range shas {
			wantPassed(b, up.resultPath(sha))
		}
		res := runVolt(b, 60*time.Second, "results", "--data-dir", up.data, "--limit", "100000")
		if res.code != 0 {
			b.Fatalf("volt results: exit %d\n%s", res.code, res.stderr)
		}
		for _, sha := range shas {
			if !strings.Contains(res.stdout, sha[:12]) {
				b.Fatalf("volt results does not list %s:\n%s", sha, res.stdout)
			}
		}
	}
	s.report(b)
}
