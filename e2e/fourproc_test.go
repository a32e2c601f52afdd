package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFourProcesses runs the original four-shell workflow: dispatcher,
// reporter, two runners and an observer as separate processes. Passing and
// failing commits get the right result files, every commit of a multi-commit
// push is built, the CLI shows the runners and the results, and each runner
// keeps one worktree that it reuses from job to job.
func TestFourProcesses(t *testing.T) {
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	c := startCluster(t, r, clusterOpts{runners: 2})

	// The observer builds the tip of a branch it sees for the first time.
	seed := r.head()
	rf := waitResult(t, c.repData, seed, resultTimeout)
	rf.wantStatus(t, "passed")
	built := []string{seed}

	// A passing commit: its output is the unittest output.
	pass := r.commitPush("pass", nil)
	rf = waitResult(t, c.repData, pass, resultTimeout)
	rf.wantStatus(t, "passed")
	built = append(built, pass)
	for _, want := range []string{"test_add", "test_workspace_is_clean", "Ran 2 tests", "OK"} {
		if !strings.Contains(rf.output, want) {
			t.Errorf("output of a passing commit lacks %q:\n%s", want, rf.raw)
		}
	}
	if rf.header["repo"] == "" || !strings.Contains(rf.header["branches"], "main") || rf.header["build"] != "1" {
		t.Errorf("result header: repo %q, branches %q, build %q; want a repo, main, 1", rf.header["repo"], rf.header["branches"], rf.header["build"])
	}

	// A failing commit.
	fail := r.commitPush("failing", map[string]string{"tests/test_fail.py": failingTest})
	rf = waitResult(t, c.repData, fail, resultTimeout)
	rf.wantStatus(t, "failed")
	built = append(built, fail)
	if !strings.Contains(rf.output, "deliberate failure") {
		t.Errorf("output of a failing commit lacks the assertion message:\n%s", rf.raw)
	}

	// Three commits in one push: every one is built.
	r.write(map[string]string{"tests/test_fail.py": ""})
	var batch []string
	for _, msg := range []string{"batch a", "batch b", "batch c"} {
		batch = append(batch, r.commit(msg))
	}
	r.push()
	for _, sha := range batch {
		waitResult(t, c.repData, sha, resultTimeout).wantStatus(t, "passed")
	}
	built = append(built, batch...)

	// volt status lists both runners.
	st, ok := c.status()
	if !ok {
		t.Fatalf("volt status failed:\n%s", st)
	}
	for _, id := range c.ids {
		if n := countLines(st, id+" "); n != 1 {
			t.Errorf("volt status lists runner %s %d times, want once:\n%s", id, n, st)
		}
	}

	// volt results: one commit's result, and an unknown commit.
	res := runVolt(t, 20*time.Second, "results", pass, "--data-dir", c.repData)
	if res.code != 0 || !strings.Contains(res.stdout, "passed") {
		t.Errorf("volt results %s: exit %d, want 0 and passed\nstdout: %s\nstderr: %s", pass, res.code, res.stdout, res.stderr)
	}
	res = runVolt(t, 20*time.Second, "results", strings.Repeat("0", 40), "--data-dir", c.repData)
	if res.code != 3 {
		t.Errorf("volt results of an unknown commit: exit %d, want 3\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	res = runVolt(t, 20*time.Second, "results", "--data-dir", c.repData)
	for _, sha := range built {
		if n := countLines(res.stdout, sha[:12]); n != 1 {
			t.Errorf("volt results lists %s %d times, want once:\n%s", sha[:12], n, res.stdout)
		}
	}

	// One worktree per runner slot, reused: no clone per job. The basic test
	// also fails if the worktree kept a file from an earlier job.
	jobs := map[string]int{}
	for _, sha := range built {
		rf, _ := readResult(t, c.repData, sha)
		jobs[rf.header["runner"]]++
	}
	most := 0
	for i, id := range c.ids {
		if jobs[id] == 0 {
			continue
		}
		most = max(most, jobs[id])
		slots := dirNames(t, filepath.Join(c.workDirs[i], "slots"))
		if len(slots) != 1 || slots[0] != "0" {
			t.Errorf("runner %s ran %d jobs and has slots %v, want [0]", id, jobs[id], slots)
		}
		if wts := dirNames(t, filepath.Join(c.workDirs[i], "slots", "0")); len(wts) != 1 {
			t.Errorf("runner %s ran %d jobs of one repository and has worktrees %v in slots/0, want one", id, jobs[id], wts)
		}
		if ms := dirNames(t, filepath.Join(c.workDirs[i], "mirrors")); len(ms) != 1 {
			t.Errorf("runner %s ran %d jobs of one repository and has mirrors %v, want one", id, jobs[id], ms)
		}
	}
	if most < 2 {
		t.Errorf("no runner ran two jobs (jobs per runner %v): worktree reuse not exercised", jobs)
	}
	t.Logf("jobs per runner: %v", jobs)
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("list %s: %v", dir, err)
		return nil
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
