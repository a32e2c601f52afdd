package cluster

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/gitexec"
	"github.com/voltci/volt/messages"
)

func TestSlotPoolGivesEachJobItsOwnSlot(t *testing.T) {
	var p slotPool
	s0, free0 := p.take()
	s1, free1 := p.take()
	s2, free2 := p.take()
	assert.Equal(t, []int{0, 1, 2}, []int{s0, s1, s2})

	free1()
	s, free := p.take()
	assert.Equal(t, 1, s, "the lowest free slot")
	free()
	free0()
	free2()
	s, _ = p.take()
	assert.Equal(t, 0, s)
}

func TestSlotPoolConcurrentJobsNeverShare(t *testing.T) {
	var p slotPool
	var mu sync.Mutex
	inUse := map[int]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				s, free := p.take()
				mu.Lock()
				if inUse[s] {
					t.Errorf("slot %d handed out twice at once", s)
				}
				inUse[s] = true
				mu.Unlock()
				runtime.Gosched()
				mu.Lock()
				delete(inUse, s)
				mu.Unlock()
				free()
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, len(p.busy), 8, "never more slots than jobs at once")
}

// TestConcurrentJobsRunInWorktreesOfTheirOwn: the runner's executor, with
// real git and real processes, runs jobs of one repository at once, each
// in a worktree of its own: each job's step leaves a file in its worktree
// and meets the others (a rendezvous, not a timing claim) while none sees
// another's file.
func TestConcurrentJobsRunInWorktreesOfTheirOwn(t *testing.T) {
	const jobs = 3
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	meet := filepath.Join(dir, "meet")
	require.NoError(t, os.Mkdir(meet, 0o755))
	git(t, dir, "init", "-q", "-b", "main", repo)
	spec := `env: {MEET: ` + meet + `}
steps:
  - name: meet
    run: |
      test ! -e left-by-another || { echo "a file of another job is here"; exit 3; }
      echo "$VOLT_BUILD" > left-by-another
      pwd > "$MEET/$VOLT_BUILD"
      for i in $(seq 400); do
        [ "$(ls "$MEET" | wc -l)" -ge ` + strconv.Itoa(jobs) + ` ] && exit 0
        sleep 0.05
      done
      echo "the other jobs never ran at the same time"; exit 4
`
	require.NoError(t, os.WriteFile(filepath.Join(repo, ".volt.yml"), []byte(spec), 0o644))
	git(t, repo, "add", ".volt.yml")
	git(t, repo, "commit", "-qm", "first")
	commit := strings.TrimSpace(git(t, repo, "rev-parse", "HEAD"))

	e := &jobExecutor{ws: gitexec.NewWorkspace(filepath.Join(dir, "work"), ""), exec: &gitexec.Executor{}, logger: quietLogger(t)}
	results := make([]*messages.Result, jobs)
	logs := make([]strings.Builder, jobs)
	var wg sync.WaitGroup
	for i := range jobs {
		run := &messages.RunJob{Job: &messages.Job{Id: int64(i + 1), Repo: repo, Commit: commit, Build: int32(i + 1)}, Attempt: 1, RunnerId: "r1"}
		wg.Go(func() { results[i] = e.Execute(context.Background(), run, &logs[i]) })
	}
	wg.Wait()
	dirs := map[string]bool{}
	for i, res := range results {
		require.Equal(t, messages.Status_STATUS_PASSED, res.Status, "job %d: %s\n%s", i+1, res.Reason, logs[i].String())
		pwd, err := os.ReadFile(filepath.Join(meet, strconv.Itoa(i+1)))
		require.NoError(t, err)
		dirs[strings.TrimSpace(string(pwd))] = true
	}
	assert.Len(t, dirs, jobs, "each job in a worktree of its own: %v", dirs)
	var slots []string
	for d := range dirs {
		slots = append(slots, filepath.Base(filepath.Dir(d)))
	}
	assert.ElementsMatch(t, []string{"0", "1", "2"}, slots, "slots/<slot>/<repository>")
	assert.Equal(t, []bool{false, false, false}, e.slots.busy, "every slot given back")
}
