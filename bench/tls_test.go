package bench

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRemoteTLS is what mutual TLS costs (issue 10, item 8): no-op jobs
// through the real dispatcher and runner actors across processes (as in
// BenchmarkRemoteNoopJobs, bench/internal/noopnode), once over plain
// Proto.Actor remote and once with every connection mutual TLS 1.3 and the
// guard filtering and stamping every message, as volt roles run. Both sets
// run side by side and each iteration times one batch of each, in
// alternating order, so the ratios compare like with like on a noisy
// machine. The plain set still stamps an identity on each stream (the
// cores refuse unstamped messages), trusting the peer's first registration.
//
// Sub-benchmarks: runners=4 (throughput: tls-vs-plain-jobs/s, aim ≥ 0.9) and
// runners=1 (one job in flight: the dispatch round trip, tls-vs-plain-p50,
// aim ≤ 1.15, and p99).
func BenchmarkRemoteTLS(b *testing.B) {
	for _, tc := range []struct {
		runners, jobs, window, chunk int
	}{
		{runners: 4, jobs: 10000, window: 200, chunk: 100},
		{runners: 1, jobs: 3000, window: 1, chunk: 1},
	} {
		b.Run(fmt.Sprintf("runners=%d", tc.runners), func(b *testing.B) {
			bin := noopNodeBin(b)
			dir := b.TempDir()
			creds := filepath.Join(dir, "credentials")
			start := func(set string, extra ...string) (*noopProc, []*noopProc) {
				disp := startNoopNode(b, bin, dir, set+"-dispatcher", append([]string{"-mode", "dispatcher"}, extra...)...)
				procs := []*noopProc{disp}
				for i := range tc.runners {
					name := fmt.Sprintf("%s-runner-%d", set, i)
					procs = append(procs, startNoopNode(b, bin, dir, name, append([]string{"-mode", "runner", "-dispatcher", disp.addr, "-id", name,
						"-log-dir", filepath.Join(dir, name, "logs")}, extra...)...))
				}
				if r := disp.request(b, fmt.Sprintf("wait-runners %d", tc.runners), 30*time.Second); r != "ok" {
					b.Fatalf("%s wait-runners: %s", set, r)
				}
				return disp, procs
			}
			plain, plainProcs := start("plain")
			tls, tlsProcs := start("tls", "-credentials", creds)
			run := fmt.Sprintf("run %d %d %d", tc.jobs, tc.window, tc.chunk)
			warm := fmt.Sprintf("run %d %d %d", min(tc.jobs, 2000), tc.window, tc.chunk)
			plain.batch(b, warm)
			tls.batch(b, warm)

			s := newSamples()
			i := 0
			for b.Loop() {
				var p, t batchResult
				if i%2 == 0 {
					p, t = plain.batch(b, run), tls.batch(b, run)
				} else {
					t, p = tls.batch(b, run), plain.batch(b, run)
				}
				i++
				s.record(b, "plain-jobs/s", p.perSec(), "tls-jobs/s", t.perSec(), "tls-vs-plain-jobs/s", t.perSec()/p.perSec(),
					"plain-rtt-p50-us", p.pct(50), "tls-rtt-p50-us", t.pct(50), "tls-vs-plain-p50", t.pct(50)/p.pct(50),
					"plain-rtt-p99-us", p.pct(99), "tls-rtt-p99-us", t.pct(99), "tls-vs-plain-p99", t.pct(99)/p.pct(99))
			}
			s.report(b)
			for _, p := range append(plainProcs, tlsProcs...) {
				for _, line := range strings.Split(p.logText(), "\n") {
					if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || strings.HasPrefix(line, "panic:") {
						b.Errorf("%s: %s", p.name, line)
					}
				}
			}
		})
	}
}

// BenchmarkJoinColdStart is the time from a cold runner with a join token to
// its first job (issue 10, item 8). A dispatcher, reporter and observer run
// as processes (startCluster, no runner left); each iteration queues a
// commit, creates a join token (`volt join-token create`, not timed), then
// starts `volt runner --join TOKEN` with an empty credentials directory and
// a new name (t0 = just before the exec) and measures:
//
//   - ms/first-job: t0 → its "job started" log line;
//   - joined-ms: t0 → "joined the cluster" (key made, certificate request
//     answered, files written);
//   - registered-ms: t0 → "registered with the dispatcher".
func BenchmarkJoinColdStart(b *testing.B) {
	dir := b.TempDir()
	r := newRepo(b, dir, map[string]string{".volt.yml": specTrue})
	c := startCluster(b, dir, r, 1) // the tip needs a runner: built, then stopped
	c.runners[0].stop(10 * time.Second)

	s := newSamples()
	for b.Loop() {
		sha := c.queueNext(r)
		tok := joinToken(b)
		name := fmt.Sprintf("joined-%d", joinSeq.Add(1))
		t0 := time.Now()
		rn := startVolt(b, dir, name, "runner", "--join", tok, "--id", name, "--credentials", filepath.Join(dir, name, "credentials"),
			"--work-dir", filepath.Join(dir, name, "work"), "--listen", "127.0.0.1:0", "--dispatcher-server", c.dispAddr)
		var started, joined, registered time.Time
		poll(b, 30*time.Second, 2*time.Millisecond, func() bool {
			l := readLogs(rn.log)
			var ok1, ok2, ok3 bool
			started, ok1 = l.find(t0, "job started", "commit", sha)
			joined, ok2 = l.find(t0, "joined the cluster")
			registered, ok3 = l.find(t0, "registered with the dispatcher")
			return ok1 && ok2 && ok3
		}, "no \"job started\" line for %s in %s:\n%s", sha, rn.log, lazy(func() string { return tail(rn.log, 10) }))
		c.results.waitFile(b, sha, 30*time.Second)
		rn.stop(10 * time.Second)
		s.record(b, "ms/first-job", sinceMs(started, t0), "joined-ms", sinceMs(joined, t0), "registered-ms", sinceMs(registered, t0))
	}
	s.report(b)
}

// BenchmarkRevokedConnection is how long a revoked node keeps its
// connection (issue 10, item 8): a joined runner is registered and idle;
// t0 = just before `volt ca revoke runner/NAME` starts; the figure is t0 →
// the dispatcher's "runner lost" line for it (its stream is
// closed at its next message once the dispatcher has reread the revocation
// list: a heartbeat every second, the list checked at most once a second).
func BenchmarkRevokedConnection(b *testing.B) {
	dir := b.TempDir()
	r := newRepo(b, dir, map[string]string{".volt.yml": specTrue})
	c := startCluster(b, dir, r, 1)

	s := newSamples()
	for b.Loop() {
		name := fmt.Sprintf("revoked-%d", joinSeq.Add(1))
		rn := startVolt(b, dir, name, "runner", "--join", joinToken(b), "--id", name, "--credentials", filepath.Join(dir, name, "credentials"),
			"--work-dir", filepath.Join(dir, name, "work"), "--listen", "127.0.0.1:0", "--dispatcher-server", c.dispAddr,
			"--dispatcher-grace", "1s")
		poll(b, 30*time.Second, 5*time.Millisecond, func() bool {
			_, ok := readLogs(c.disp.log).find(time.Time{}, "runner registered", "runner", name)
			return ok
		}, "%s did not register", name)
		t0 := time.Now()
		if out, err := exec.Command(voltBin, "ca", "revoke", "runner/"+name).CombinedOutput(); err != nil {
			b.Fatalf("volt ca revoke: %v\n%s", err, out)
		}
		var lost time.Time
		poll(b, 30*time.Second, 2*time.Millisecond, func() bool {
			var ok bool
			lost, ok = readLogs(c.disp.log).find(t0, "runner lost", "runner", name)
			return ok
		}, "the dispatcher kept revoked %s", name)
		rn.stop(10 * time.Second)
		s.record(b, "ms/disconnect", sinceMs(lost, t0))
	}
	s.report(b)
}

// joinSeq numbers joined runners across benchmarks and -count runs: they
// share one CA (the per-user directory TestMain set), and a name joins once.
var joinSeq atomic.Int64

// joinToken creates a one-time runner join token with the credentials of
// the processes the benchmarks start (the per-user directory TestMain set).
func joinToken(b *testing.B) string {
	b.Helper()
	out, err := exec.Command(voltBin, "join-token", "create", "--ttl", "10m").Output()
	if err != nil {
		b.Fatalf("volt join-token create: %v", err)
	}
	return strings.TrimSpace(string(out))
}
