package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pipelineSpec is the example with its languages swapped for the
// shell: lint, then a matrix of three cells (one excluded) in two shards
// each on runners with os=linux, one cell's second shard failing its first
// attempt (a flaky test, retried), package on main only with what the
// cells produced, a job only the gpu runner may take, and a failing job
// whose dependent must end skipped.
const pipelineSpec = `jobs:
  lint:
    steps: [{name: vet, run: "test -f app.sh"}]
  test:
    needs: [lint]
    runs-on: [os=linux]
    matrix: {shell: [sh, bash], mode: [fast, slow]}
    exclude: [{shell: sh, mode: slow}]
    parallel: 2
    retry: 1
    env: {GREETING: hello}
    steps:
      - name: test
        run: |
          mkdir -p out cov
          cell="$VOLT_MATRIX_SHELL-$VOLT_MATRIX_MODE-$VOLT_SHARD_INDEX-of-$VOLT_SHARD_TOTAL"
          echo "$GREETING from $cell" > "cov/$cell.out"
          st=""; code=0
          if [ "$cell" = bash-slow-1-of-2 ] && [ "$VOLT_ATTEMPT" = 1 ]; then
            st='<failure message="first try">boom</failure>'; code=1
          fi
          printf '<testsuite name="app"><testcase classname="app" name="TestAdd" time="0.01"/><testcase classname="app" name="TestFlaky" time="0.02">%s</testcase></testsuite>\n' "$st" > "out/$cell.xml"
          exit $code
    reports: {junit: 'out/*.xml'}
    artifacts: [cov/]
  package:
    needs: [test]
    branches: [main]
    steps:
      - name: build
        run: |
          mkdir -p dist && cat cov/*.out > dist/coverage.txt && ls cov | wc -l | tr -d ' ' > dist/count.txt
          printf '#!/bin/sh\necho smoke ok\n' > dist/app && chmod +x dist/app
    artifacts: [dist/]
  smoke:
    needs: [package]
    steps: [{name: run, run: ./dist/app}]
  gpu:
    runs-on: [gpu]
    steps: [{name: gpu, run: "true"}]
  broken:
    needs: [lint]
    steps: [{name: fail, run: "exit 3"}]
  after-broken:
    needs: [broken]
    steps: [{name: never, run: "true"}]
`

// TestPipelineEndToEnd runs the example on a real repository with
// two runners of different labels: every job is listed in the result file
// with its status, the job after a failed one is skipped, the gpu job ran
// on the gpu runner, package saw what every test cell produced and its
// artifacts download, and the test that failed once and passed on retry
// is flaky.
func TestPipelineEndToEnd(t *testing.T) {
	r := newRepo(t, map[string]string{".volt.yml": "steps:\n  - run: echo seed\n"})
	c := startCluster(t, r, clusterOpts{runners: 2, runnerArgs: [][]string{
		{"--labels", "gpu", "--slots", "2"},
		{"--slots", "4"},
	}})
	// The pipeline comes once the reporter is registered (startCluster
	// waits for it): a job assigned before the reporter registers has no
	// log sink, so its artifacts would be lost (a known gap: see the
	// closing note of issue 13).
	waitResult(t, c.repData, r.head(), resultTimeout).wantStatus(t, "passed")
	sha := r.commitPush("the pipeline", map[string]string{".volt.yml": pipelineSpec, "app.sh": "echo app\n"})
	rf := waitResult(t, c.repData, sha, 2*resultTimeout)
	t.Logf("result file:\n%s", rf.raw)
	rf.wantStatus(t, "failed") // broken fails the build

	cells := []string{}
	for _, m := range []string{"shell=sh, mode=fast", "shell=bash, mode=fast", "shell=bash, mode=slow"} {
		for shard := 1; shard <= 2; shard++ {
			cells = append(cells, fmt.Sprintf("test (%s) %d/2", m, shard))
		}
	}
	want := map[string]string{"lint": "passed", "package": "passed", "smoke": "passed", "gpu": "passed", "broken": "failed", "after-broken": "skipped"}
	for _, cell := range cells {
		want[cell] = "passed"
	}
	if len(rf.jobs) != len(want) {
		t.Errorf("the result file lists %d jobs, want %d", len(rf.jobs), len(want))
	}
	for name, status := range want {
		line, ok := rf.jobs[name]
		if !ok {
			t.Errorf("the result file does not list job %q", name)
			continue
		}
		if !strings.HasPrefix(line, status+",") {
			t.Errorf("job %q: %q, want %s", name, line, status)
		}
	}
	if line := rf.jobs["gpu"]; !strings.Contains(line, "runner runner-a,") {
		t.Errorf("the gpu job ran elsewhere than on the gpu runner: %q", line)
	}
	if line := rf.jobs["after-broken"]; !strings.Contains(line, "runner -,") {
		t.Errorf("the skipped job names a runner: %q", line)
	}
	if line := rf.jobs["test (shell=bash, mode=slow) 2/2"]; !strings.Contains(line, "attempt 2,") {
		t.Errorf("the flaky cell passed without its retry: %q", line)
	}

	// package saw what test produced, and its artifacts download.
	out := t.TempDir()
	res := runVolt(t, 30*time.Second, "artifacts", sha, "package", "--data-dir", c.repData, "--out", out)
	if res.code != 0 {
		t.Fatalf("volt artifacts: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	count, err := os.ReadFile(filepath.Join(out, "dist", "count.txt"))
	if err != nil {
		t.Fatalf("package's dist/count.txt was not downloaded: %v\n%s", err, res.stdout)
	}
	if got := strings.TrimSpace(string(count)); got != fmt.Sprint(len(cells)) {
		t.Errorf("package saw %s coverage files, want one per test cell (%d)", got, len(cells))
	}
	if fi, err := os.Stat(filepath.Join(out, "dist", "app")); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("package's dist/app is not downloaded as an executable: %v %v", fi, err)
	}
	cov, _ := os.ReadFile(filepath.Join(out, "dist", "coverage.txt"))
	if !strings.Contains(string(cov), "hello from bash-slow-1-of-2") {
		t.Errorf("package's coverage lacks the cells' output:\n%s", cov)
	}
	list := runVolt(t, 30*time.Second, "artifacts", sha, "--data-dir", c.repData)
	if list.code != 0 || !strings.Contains(list.stdout, "dist/count.txt") || !strings.Contains(list.stdout, "cov/") {
		t.Errorf("volt artifacts does not list package's and the cells' files (exit %d):\n%s%s", list.code, list.stdout, list.stderr)
	}

	// Each test is listed; the one that failed and then passed is flaky.
	// (The reporter parses reports off its actor: give it a moment.)
	flaky := regexp.MustCompile(`(?m)TestFlaky.*flaky|flaky.*TestFlaky`)
	var tests result
	eventually(t, 10*time.Second, func() bool {
		tests = runVolt(t, 30*time.Second, "results", sha, "--tests", "--data-dir", c.repData)
		return flaky.MatchString(tests.stdout)
	}, "volt results --tests does not mark TestFlaky flaky (exit %s):\n%s%s", lazy(func() string { return fmt.Sprint(tests.code) }),
		lazy(func() string { return tests.stdout }), lazy(func() string { return tests.stderr }))
	t.Logf("volt results --tests:\n%s", tests.stdout)
	if tests.code != 1 && tests.code != 0 {
		t.Errorf("volt results --tests: exit %d", tests.code)
	}
	if !strings.Contains(tests.stdout, "TestAdd") {
		t.Errorf("volt results --tests does not list TestAdd")
	}
}

// matrixSpec is eight cells that each take a few seconds, all asking for
// the label big.
const matrixSpec = `jobs:
  m:
    runs-on: [big]
    matrix: {n: [1, 2, 3, 4, 5, 6, 7, 8]}
    steps: [{name: work, run: "sleep 3"}]
`

// TestKillASlotsRunnerMidMatrix kills -9 a --slots 4 runner while it runs
// four cells of a matrix: every cell ends exactly once, passed, on a runner
// whose labels match (never on the third runner, which lacks big).
func TestKillASlotsRunnerMidMatrix(t *testing.T) {
	r := newRepo(t, map[string]string{".volt.yml": "steps: [{name: ok, run: \"true\"}]\n"})
	c := startCluster(t, r, clusterOpts{runners: 3, runnerArgs: [][]string{
		{"--labels", "big", "--slots", "4"},
		{"--labels", "big", "--slots", "4"},
		{"--slots", "4"},
	}})
	waitResult(t, c.repData, r.head(), resultTimeout).wantStatus(t, "passed")
	sha := r.commitPush("matrix", map[string]string{".volt.yml": matrixSpec})
	busy := -1
	eventually(t, resultTimeout, func() bool {
		for i := range 2 {
			if len(descendants(c.runners[i].pid(), "sleep 3")) >= 4 {
				busy = i
				return true
			}
		}
		return false
	}, "no runner ran four cells at once")
	t.Logf("%s runs four cells; kill -9", c.ids[busy])
	c.runners[busy].kill9(t)

	rf := waitResult(t, c.repData, sha, 3*resultTimeout)
	t.Logf("result file:\n%s", rf.raw)
	rf.wantStatus(t, "passed")
	if len(rf.jobs) != 8 {
		t.Errorf("the result file lists %d jobs, want 8", len(rf.jobs))
	}
	moved := 0
	for n := 1; n <= 8; n++ {
		line, ok := rf.jobs[fmt.Sprintf("m (n=%d)", n)]
		switch {
		case !ok:
			t.Errorf("cell %d is not listed", n)
		case !strings.HasPrefix(line, "passed,"):
			t.Errorf("cell %d: %q, want passed", n, line)
		case strings.Contains(line, "runner "+c.ids[2]+","):
			t.Errorf("cell %d ran on %s, which lacks the label big: %q", n, c.ids[2], line)
		case strings.Contains(line, "attempt 2,"):
			moved++
		}
	}
	if moved < 4 {
		t.Errorf("%d cells ran a second attempt, want at least the 4 the killed runner held", moved)
	}
	res := runVolt(t, 20*time.Second, "results", "--data-dir", c.repData)
	if n := countLines(res.stdout, sha[:12]); n != 1 {
		t.Errorf("volt results lists %s %d times, want once:\n%s", sha[:12], n, res.stdout)
	}
}
