package bench

import (
	"os"
	"testing"
	"time"
)

// BenchmarkTrivialBuildChildCPU measures what issue 12 asks of a trivial
// build: the CPU time of the processes a build starts (git, the exec
// wrapper, bwrap, sh), with the default isolation (bwrap) and without it.
// Each sub-benchmark is Throughput200Commits's setting, `volt up --runners
// 4 --poll 10m --max-backlog 200` on a repository whose `.volt.yml` runs
// `true`, with `--isolation bwrap` or `--isolation none`: per iteration 200
// one-file commits pushed at once, `volt notify`, and a wait for the 200
// result files (every one must say passed).
//
// With VOLT_BENCH_BASELINE set to another volt binary (an older build:
// `git worktree add /tmp/base REV && cd /tmp/base && CGO_ENABLED=0 go build
// -o /tmp/volt-base ./cmd/volt`), each isolation also runs with it
// (volt=baseline), in the same run, so that the ratio compares like with
// like on a machine whose speed varies.
//
// Metrics: child-cpu-ms/build (the CPU time of volt up's descendants over
// the 200 builds, per build: descendantsCPU),
// builds/s, up-cpu-ms/build (volt up's own) and children-%CPU.
func BenchmarkTrivialBuildChildCPU(b *testing.B) {
	bins := []struct{ name, path string }{{"new", voltBin}}
	if base := os.Getenv("VOLT_BENCH_BASELINE"); base != "" {
		bins = append(bins, struct{ name, path string }{"baseline", base})
	}
	for _, iso := range []string{"bwrap", "none"} {
		for _, bin := range bins {
			b.Run("isolation="+iso+"/volt="+bin.name, func(b *testing.B) {
				defer func(built string) { voltBin = built }(voltBin)
				voltBin = bin.path
				trivialBuilds(b, iso)
			})
		}
	}
}

func trivialBuilds(b *testing.B, iso string) {
	const n = 200
	dir := b.TempDir()
	r := newRepo(b, dir, map[string]string{".volt.yml": specTrue})
	up := startUp(b, dir, r, "--poll", "10m", "--runners", "4", "--max-backlog", "200", "--isolation", iso)
	s := newSamples()
	for b.Loop() {
		shas := r.commits(n)
		r.push()
		t0 := time.Now()
		cpu0, ok := readStat(up.p.pid())
		if !ok {
			b.Fatal("volt up is gone")
		}
		kids0 := descendantsCPU(up.p.pid())
		notify(b, up.addr)
		at, _ := up.results.waitFiles(b, shas, 3*time.Minute)
		cpu1, _ := readStat(up.p.pid())
		var last time.Time
		for _, t := range at {
			if t.After(last) {
				last = t
			}
		}
		wall := last.Sub(t0)
		kids := descendantsCPU(up.p.pid()) - kids0
		s.record(b, "child-cpu-ms/build", float64(kids.Microseconds())/1e3/n, "builds/s", float64(n)/wall.Seconds(),
			"up-cpu-ms/build", float64((cpu1.cpuTime()-cpu0.cpuTime()).Microseconds())/1e3/n,
			"children-%CPU", 100*float64(kids)/float64(wall))
		for _, sha := range shas {
			wantPassed(b, up.resultPath(sha))
		}
	}
	s.report(b)
}

// descendantsCPU is the CPU time of every process below pid so far: pid's
// reaped children's (cutime+cstime, which include what they reaped), plus,
// for each live process below it, its own and its reaped children's. A
// process that lives across the interval (a kept exec wrapper) has its
// reaped children (the steps' shells) counted here before it is reaped
// itself. The difference of two readings is the CPU time of the processes
// below pid in between (10 ms ticks per process and reading).
func descendantsCPU(pid int) time.Duration {
	ps := allProcs()
	root, ok := ps[pid]
	if !ok {
		return 0
	}
	total := root.childTime()
	for p, st := range ps {
		if p != pid && descendsFrom(ps, p, pid) {
			total += st.cpuTime() + st.childTime()
		}
	}
	return total
}
