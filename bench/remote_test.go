package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/voltci/volt/internal/voltbin"
)

// BenchmarkRemoteNoopJobs is the cross-process part of target 8: no-op jobs
// through the real dispatcher and runner actors over Proto.Actor remote,
// beside a bare Proto.Actor remote ping-pong measured in the same iteration
// (the machine is shared and noisy: compare the two as ratios).
//
// Every process is bench/internal/noopnode on 127.0.0.1:
//
//   - the dispatcher process runs the real dispatcher actor
//     (actors/dispatcher.NewActor, set up as cluster.StartDispatcher does but
//     with a no-op store: the store is OUT of the path), a fake observer
//     that feeds CommitObserved and a fake reporter that acknowledges
//     ResultRecorded and LogClosed at once;
//   - each runner process runs the real runner actor (actors/runner, set up
//     as cluster.StartRunner does) with a JobExecutor that returns a passed
//     result at once and writes no output. Everything else of the runner's
//     job path is real: the log stream (an empty log skips the
//     LogClosed/LogAck round trip that a real job, which always writes a
//     step header, makes before JobFinished), the JobFinishedAck,
//     heartbeats, and info-level slog lines to a file;
//   - the bare comparison is one ping process and one echo process per
//     runner, one message outstanding per echo (messages.JobRef, answered
//     with Respond), on the same cluster.Start remote set-up.
//
// A round trip (rtt-*) is timed inside the dispatcher process by sender and
// receiver middleware on the dispatcher actor: from its Receive handing a
// RunJob to Proto.Actor (before serialisation) to its mailbox delivering
// that job's JobFinished (before the core sees it). The bare round trip is
// from the pinger's Request to its Receive of the answer.
//
// Sub-benchmarks:
//
//   - runners=4: throughput. The observer keeps 100–200 jobs unfinished
//     (CommitObserved of 100 commits whenever that many results came in),
//     so each of the 4 runners always has its one job. jobs/s is a batch's
//     jobs over its first RunJob → last JobFinished (target ≥ 15,000);
//     rtt-* here are round trips under that load, not the target's.
//   - runners=1: the unloaded round trip. One commit at a time: the next is
//     announced only after the previous result reached the reporter, so
//     exactly one job is in flight in the whole system. rtt-p50-us and
//     rtt-p99-us are the target's figures (≤ 150 and ≤ 300).
//
// cpu-us/job is the CPU time of all the processes of the set (dispatcher
// and runners, or ping and echoes), from /proc/PID/task/*/schedstat over the
// batch, per job (per round trip for bare): what a job costs, whatever share
// of the shared machine the processes got. 2 cores × 10⁶ / cpu-us/job is
// the most jobs a second this machine could do with nothing else running.
//
// The -vs-bare units are real/bare within the same iteration. Set
// VOLT_BENCH_PPROF=DIR to get a CPU profile of every process
// (DIR/<benchmark>.<process>.pprof, the process's whole life), and
// VOLT_BENCH_TRACE=DIR for the wall-clock time of each job's points in the
// dispatcher and runner processes (DIR/<benchmark>.<process>.trace; the
// runner's actor is then wrapped to mark its RunJob and JobDone deliveries).
// VOLT_BENCH_NOOPNODE=PATH uses a noopnode built beforehand (A/B runs).
func BenchmarkRemoteNoopJobs(b *testing.B) {
	for _, tc := range []struct {
		runners, jobs, window, chunk int
	}{
		{runners: 4, jobs: 10000, window: 200, chunk: 100},
		{runners: 1, jobs: 3000, window: 1, chunk: 1},
	} {
		b.Run(fmt.Sprintf("runners=%d", tc.runners), func(b *testing.B) {
			bin := noopNodeBin(b)
			dir := b.TempDir()
			disp := startNoopNode(b, bin, dir, "dispatcher", "-mode", "dispatcher")
			realProcs := []*noopProc{disp}
			var echoes []string
			var bareProcs []*noopProc
			for i := range tc.runners {
				name := fmt.Sprintf("runner-%d", i)
				realProcs = append(realProcs, startNoopNode(b, bin, dir, name, "-mode", "runner", "-dispatcher", disp.addr, "-id", name,
					"-log-dir", filepath.Join(dir, name, "logs")))
				echo := startNoopNode(b, bin, dir, fmt.Sprintf("echo-%d", i), "-mode", "echo")
				echoes = append(echoes, echo.addr)
				bareProcs = append(bareProcs, echo)
			}
			ping := startNoopNode(b, bin, dir, "ping", "-mode", "ping", "-peers", strings.Join(echoes, ","))
			bareProcs = append(bareProcs, ping)
			if r := disp.request(b, fmt.Sprintf("wait-runners %d", tc.runners), 30*time.Second); r != "ok" {
				b.Fatalf("wait-runners: %s", r)
			}
			runJobs := fmt.Sprintf("run %d %d %d", tc.jobs, tc.window, tc.chunk)
			runPings := fmt.Sprintf("run %d", tc.jobs)
			// Warm up both: connections, goroutines, heaps.
			disp.batch(b, fmt.Sprintf("run %d %d %d", min(tc.jobs, 2000), tc.window, tc.chunk))
			ping.batch(b, fmt.Sprintf("run %d", min(tc.jobs, 2000)))

			s := newSamples()
			for b.Loop() {
				r0 := cpuOf(b, realProcs)
				jobs := disp.batch(b, runJobs)
				r1 := cpuOf(b, realProcs)
				b0 := cpuOf(b, bareProcs)
				bare := ping.batch(b, runPings)
				b1 := cpuOf(b, bareProcs)
				jobCPU := float64((r1 - r0).Nanoseconds()) / 1e3 / float64(jobs.n)
				bareCPU := float64((b1 - b0).Nanoseconds()) / 1e3 / float64(bare.n)
				s.record(b, "jobs/s", jobs.perSec(), "rtt-p50-us", jobs.pct(50), "rtt-p99-us", jobs.pct(99), "cpu-us/job", jobCPU,
					"bare-jobs/s", bare.perSec(), "bare-rtt-p50-us", bare.pct(50), "bare-rtt-p99-us", bare.pct(99), "bare-cpu-us/job", bareCPU,
					"jobs/s-vs-bare", jobs.perSec()/bare.perSec(), "rtt-p50-vs-bare", jobs.pct(50)/bare.pct(50),
					"rtt-p99-vs-bare", jobs.pct(99)/bare.pct(99), "cpu-vs-bare", jobCPU/bareCPU)
			}
			s.report(b)
			// One job per runner at a time, each passed at its first attempt:
			// nothing warned (a RunJob while busy, a stale result, a lease
			// lapsed, a job that did not pass) and nothing was re-queued.
			for _, p := range append(realProcs, bareProcs...) {
				for _, line := range strings.Split(p.logText(), "\n") {
					bad := strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") ||
						strings.Contains(line, `msg="job re-queued"`) || strings.Contains(line, "DATA RACE") || strings.HasPrefix(line, "panic:")
					if bad {
						b.Errorf("%s: %s", p.name, line)
					}
				}
			}
		})
	}
}

// cpuOf is the CPU time the processes have used so far (schedstat of their
// threads, nanosecond resolution).
func cpuOf(b *testing.B, ps []*noopProc) time.Duration {
	b.Helper()
	var sum time.Duration
	for _, p := range ps {
		t, ok := schedTime(p.pid())
		if !ok {
			b.Fatalf("%s (pid %d) is gone:\n%s", p.name, p.pid(), tail(p.log, 20))
		}
		sum += t
	}
	return sum
}

var noopNode struct {
	once sync.Once
	bin  string
	err  error
}

// noopNodeBin builds bench/internal/noopnode once, beside the volt binary
// (TestMain removes that directory at the end). $VOLT_BENCH_NOOPNODE, when
// set, names a noopnode binary built beforehand instead: to compare two
// versions of the actors alternately, run by run.
func noopNodeBin(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("VOLT_BENCH_NOOPNODE"); bin != "" {
		return bin
	}
	noopNode.once.Do(func() {
		noopNode.bin = filepath.Join(filepath.Dir(voltBin), "noopnode")
		noopNode.err = voltbin.BuildPackage("..", "./bench/internal/noopnode", noopNode.bin) // as volt is built
	})
	if noopNode.err != nil {
		b.Fatal(noopNode.err)
	}
	return noopNode.bin
}

// noopProc is a noopnode process: its control pipe and remote address.
type noopProc struct {
	*proc
	in    io.WriteCloser
	lines chan string // its standard output, line by line
	addr  string
}

// startNoopNode starts `noopnode args...` (stderr, its slog lines, to
// dir/<name>.log) and waits for its "ready ADDR" line. Cleanup closes its
// standard input, which stops it, then stops it by pid if need be.
func startNoopNode(b *testing.B, bin, dir, name string, args ...string) *noopProc {
	b.Helper()
	if pd := os.Getenv("VOLT_BENCH_PPROF"); pd != "" {
		out := filepath.Join(pd, strings.NewReplacer("/", "_", "=", "-").Replace(b.Name())+"."+name+".pprof")
		args = append(args, "-cpuprofile", out)
	}
	if td := os.Getenv("VOLT_BENCH_TRACE"); td != "" && (name == "dispatcher" || strings.HasPrefix(name, "runner-")) {
		out := filepath.Join(td, strings.NewReplacer("/", "_", "=", "-").Replace(b.Name())+"."+name+".trace")
		args = append(args, "-trace", out)
	}
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stderr = f
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		b.Fatalf("start %s: %v", name, err)
	}
	p := &noopProc{proc: &proc{name: name, args: args, cmd: cmd, vpid: cmd.Process.Pid, log: logPath, done: make(chan struct{})},
		in: in, lines: make(chan string, 16)}
	go func() {
		// Read to the end of its output before Wait, which closes the pipe.
		br := bufio.NewReaderSize(out, 1<<20)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				break
			}
			p.lines <- strings.TrimSuffix(line, "\n")
		}
		close(p.lines)
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	b.Cleanup(func() {
		go func() {
			for range p.lines {
			}
		}()
		in.Close() // its end of standard input stops it
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
		p.stop(5 * time.Second)
		if b.Failed() {
			b.Logf("--- last lines of %s (pid %d) log %s:\n%s", name, p.pid(), logPath, tail(logPath, 30))
		}
	})
	line := p.read(b, 15*time.Second)
	addr, ok := strings.CutPrefix(line, "ready ")
	if !ok {
		b.Fatalf("%s: want \"ready ADDR\", got %q\n%s", name, line, tail(logPath, 20))
	}
	p.addr = addr
	return p
}

// read returns its next output line, failing after timeout.
func (p *noopProc) read(b *testing.B, timeout time.Duration) string {
	b.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			b.Fatalf("%s exited:\n%s", p.name, tail(p.log, 20))
		}
		return line
	case <-time.After(timeout):
		b.Fatalf("%s: no answer within %s", p.name, timeout)
	}
	return ""
}

// request sends one control command and returns the answer line.
func (p *noopProc) request(b *testing.B, cmd string, timeout time.Duration) string {
	b.Helper()
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		b.Fatalf("%s: %v", p.name, err)
	}
	return p.read(b, timeout)
}

// batchResult is one "done" answer: a batch's size, first send → last
// answer, and every round trip in microseconds, sorted.
type batchResult struct {
	n       int
	elapsed time.Duration
	rtts    []float64
}

// batch runs one "run ..." command and parses its answer.
func (p *noopProc) batch(b *testing.B, cmd string) batchResult {
	b.Helper()
	line := p.request(b, cmd, 5*time.Minute)
	var r batchResult
	for _, f := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "n":
			r.n, _ = strconv.Atoi(v)
		case "elapsed_ns":
			ns, _ := strconv.ParseInt(v, 10, 64)
			r.elapsed = time.Duration(ns)
		case "rtt_ns":
			for _, x := range strings.Split(v, ",") {
				ns, err := strconv.ParseInt(x, 10, 64)
				if err == nil {
					r.rtts = append(r.rtts, float64(ns)/1e3)
				}
			}
		}
	}
	if !strings.HasPrefix(line, "done ") || r.n == 0 || len(r.rtts) != r.n || r.elapsed <= 0 {
		b.Fatalf("%s %q: bad answer %.200q", p.name, cmd, line)
	}
	slices.Sort(r.rtts)
	return r
}

func (r batchResult) perSec() float64 { return float64(r.n) / r.elapsed.Seconds() }

// pct is the q-th percentile of the round trips (nearest rank), in µs.
func (r batchResult) pct(q float64) float64 {
	i := int(q/100*float64(len(r.rtts))+0.5) - 1
	return r.rtts[max(0, min(i, len(r.rtts)-1))]
}
