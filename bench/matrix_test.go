package bench

import (
	"os"
	"strings"
	"testing"
	"time"
)

// matrix64Spec is a pipeline of one job in a matrix of 8 × 8 cells, each
// running `true`.
const matrix64Spec = `jobs:
  m:
    matrix: {a: [0, 1, 2, 3, 4, 5, 6, 7], b: [0, 1, 2, 3, 4, 5, 6, 7]}
    steps: [{name: t, run: "true"}]
`

// BenchmarkMatrix64 is issue 12's speed target: a 64-job matrix build of
// `run: "true"` jobs on `volt up --runners 4 --runner-slots 4` (16 slots).
// Each iteration commits a one-file change, pushes, runs `volt notify`
// (t0 = the push returned) and waits for the build's result file, which
// the reporter writes once all 64 jobs have their results.
//
// Metrics: push-to-result-ms (t0 → the aggregate result file), jobs/s
// (64 / that), job-ms (the mean of the 64 jobs' own durations on their
// runners, from checkout to the end of the step, read from the result
// file's jobs: block) and overhead-ms/job: the slot time not spent inside
// a job, per job: (push-to-result × 16 slots − Σ job durations) / 64.
// Every job must have passed.
func BenchmarkMatrix64(b *testing.B) {
	const jobs, slots = 64, 16
	dir := b.TempDir()
	r := newRepo(b, dir, map[string]string{".volt.yml": matrix64Spec})
	up := startUp(b, dir, r, "--poll", "10m", "--runners", "4", "--runner-slots", "4")
	s := newSamples()
	for b.Loop() {
		sha := r.next()
		r.push()
		t0 := time.Now()
		notify(b, up.addr)
		at, _ := up.results.waitFiles(b, []string{sha}, 2*time.Minute)
		wall := at[sha].Sub(t0)
		raw, err := os.ReadFile(up.resultPath(sha))
		if err != nil {
			b.Fatal(err)
		}
		durs := jobDurations(b, string(raw))
		if len(durs) != jobs {
			b.Fatalf("the result file lists %d jobs, want %d:\n%s", len(durs), jobs, raw)
		}
		var sum time.Duration
		for _, d := range durs {
			sum += d
		}
		s.record(b, "push-to-result-ms", wall, "jobs/s", float64(jobs)/wall.Seconds(), "job-ms", sum/jobs,
			"overhead-ms/job", (wall*slots-sum)/jobs)
	}
	s.report(b)
}

// jobDurations reads the jobs: block of a pipeline build's result file and
// returns each job's duration; every job must have passed.
func jobDurations(b *testing.B, raw string) []time.Duration {
	head, _, _ := strings.Cut(raw, "\n\n")
	_, block, ok := strings.Cut(head, "jobs:\n")
	if !ok {
		b.Fatalf("no jobs: block in the result file:\n%s", raw)
	}
	var out []time.Duration
	for _, line := range strings.Split(block, "\n") {
		i := strings.LastIndex(line, ": ")
		if i < 0 {
			continue
		}
		fields := strings.Split(line[i+2:], ", ")
		if len(fields) != 4 || fields[0] != "passed" {
			b.Fatalf("job line %q: want passed, attempt, runner, duration", line)
		}
		d, err := time.ParseDuration(fields[3])
		if err != nil {
			b.Fatalf("job line %q: %v", line, err)
		}
		out = append(out, d)
	}
	return out
}
