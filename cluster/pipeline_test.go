package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/gitexec"
	"github.com/voltci/volt/jobspec"
	"github.com/voltci/volt/messages"
)

// TestObserverReadsEachCommitsPipeline: the observer's port reads a
// commit's .volt.yml with real git and expands it; a file too large or not
// a file is the build's error, not the poll's.
func TestObserverReadsEachCommitsPipeline(t *testing.T) {
	work := t.TempDir()
	git(t, work, "init", "-q", "-b", "main")
	commit := func(msg string, write func()) string {
		write()
		git(t, work, "add", "--all")
		git(t, work, "commit", "-q", "--allow-empty", "-m", msg)
		return git(t, work, "rev-parse", "HEAD")
	}
	spec := func(content string) func() {
		return func() {
			require.NoError(t, os.WriteFile(filepath.Join(work, jobspec.FileName), []byte(content), 0o644))
		}
	}
	none := commit("no file", func() {})
	single := commit("single list", spec("steps: [make]\n"))
	pipeline := commit("pipeline", spec("jobs:\n  lint: {steps: [x]}\n  test: {needs: [lint], parallel: 2, steps: [x]}\n"))
	broken := commit("broken", spec("jobs:\n  test: {needs: [lnt], steps: [x]}\n"))
	large := commit("large", spec("steps: [make]\n#"+strings.Repeat("x", jobspec.MaxFileSize)))
	folder := commit("folder", func() {
		require.NoError(t, os.Remove(filepath.Join(work, jobspec.FileName)))
		require.NoError(t, os.MkdirAll(filepath.Join(work, jobspec.FileName), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(work, jobspec.FileName, "x"), []byte("x"), 0o644))
	})

	ctx := context.Background()
	repo, err := gitexec.OpenRepo(ctx, work, t.TempDir())
	require.NoError(t, err)
	rd := repoReader{repos: map[string]*gitexec.Repo{repo.URL(): repo}}

	for _, c := range []string{none, single} {
		p, err := rd.Pipeline(ctx, repo.URL(), c)
		require.NoError(t, err)
		assert.Empty(t, p.Jobs)
		assert.Empty(t, p.Error)
	}
	p, err := rd.Pipeline(ctx, repo.URL(), pipeline)
	require.NoError(t, err)
	require.Empty(t, p.Error)
	var names []string
	for _, j := range p.Jobs {
		names = append(names, j.Name)
	}
	assert.Equal(t, []string{"lint", "test 1/2", "test 2/2"}, names)

	p, err = rd.Pipeline(ctx, repo.URL(), broken)
	require.NoError(t, err)
	assert.Equal(t, `.volt.yml line 2, column 18: test: needs: no job is named "lnt": the jobs are test`, p.Error)

	p, err = rd.Pipeline(ctx, repo.URL(), large)
	require.NoError(t, err)
	assert.Equal(t, ".volt.yml is larger than 256 KiB: make it smaller", p.Error)
	p, err = rd.Pipeline(ctx, repo.URL(), folder)
	require.NoError(t, err)
	assert.Equal(t, ".volt.yml is a folder, a symbolic link or a submodule: make it a file", p.Error)

	_, err = rd.Pipeline(ctx, repo.URL(), strings.Repeat("0", 40))
	assert.Error(t, err, "a commit the repository lacks: the poll fails and is tried again")
	_, err = rd.Pipeline(ctx, "/elsewhere.git", pipeline)
	assert.Error(t, err)
}

// TestRunnerRunsACellsStepsWithItsMatrixAndShard: a runner given one job
// of a pipeline runs that job's steps, with VOLT_MATRIX_<NAME> and the
// shard in the environment; a job the file lacks errors.
func TestRunnerRunsACellsStepsWithItsMatrixAndShard(t *testing.T) {
	work := t.TempDir()
	git(t, work, "init", "-q", "-b", "main")
	const file = `jobs:
  lint:
    steps: [{name: lint, run: echo lint-ran}]
  test:
    needs: [lint]
    matrix: {go: ["1.25", "1.26"], db: [sqlite]}
    parallel: 3
    env: {GOFLAGS: -count=1}
    steps: [{name: test, run: 'echo "go=$VOLT_MATRIX_GO db=$VOLT_MATRIX_DB shard=$VOLT_SHARD_INDEX/$VOLT_SHARD_TOTAL flags=$GOFLAGS"'}]
`
	require.NoError(t, os.WriteFile(filepath.Join(work, jobspec.FileName), []byte(file), 0o644))
	git(t, work, "add", "--all")
	git(t, work, "commit", "-q", "-m", "pipeline")
	commit := git(t, work, "rev-parse", "HEAD")
	p := jobspec.ExpandPipeline([]byte(file))
	require.Empty(t, p.Error)

	e := &jobExecutor{ws: gitexec.NewWorkspace(t.TempDir(), ""), exec: &gitexec.Executor{}, outputCap: 1 << 20}
	run := func(cell *messages.PipelineJob) (*messages.Result, string) {
		var out strings.Builder
		res := e.Execute(context.Background(), &messages.RunJob{Job: &messages.Job{Id: 1, Repo: work, RepoName: "w", Commit: commit, Cell: cell}, Attempt: 1, RunnerId: "r"}, &out)
		return res, out.String()
	}
	res, out := run(p.Jobs[6]) // test (go=1.26, db=sqlite) 3/3
	assert.Equal(t, messages.Status_STATUS_PASSED, res.Status, out)
	assert.Contains(t, out, "go=1.26 db=sqlite shard=2/3 flags=-count=1")
	assert.NotContains(t, out, "lint-ran")

	res, out = run(p.Jobs[0]) // lint
	assert.Equal(t, messages.Status_STATUS_PASSED, res.Status, out)
	assert.Contains(t, out, "lint-ran")

	res, out = run(&messages.PipelineJob{Key: "deploy", Name: "deploy"})
	assert.Equal(t, messages.Status_STATUS_ERRORED, res.Status)
	assert.Contains(t, res.Reason, `.volt.yml has no job "deploy" (its jobs are lint, test)`)
	assert.Contains(t, out, "volt: ")
}
