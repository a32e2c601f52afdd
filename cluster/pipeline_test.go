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
