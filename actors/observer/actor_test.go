package observer

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
)

// pipelineReader fakes RepoReader's Pipeline: each commit's pipeline from a
// map, an error for the commit named fail.
type pipelineReader struct {
	pipelines map[string]*messages.Pipeline
	fail      string
	asked     []string
}

func (r *pipelineReader) Read(context.Context, string, string, string, int) Polled { return Polled{} }

func (r *pipelineReader) Pipeline(_ context.Context, repo, commit string) (*messages.Pipeline, error) {
	r.asked = append(r.asked, repo+" "+commit)
	if commit == r.fail {
		return nil, errors.New("git cat-file: exit status 128")
	}
	return r.pipelines[commit], nil
}

func TestWithPipelinesReadsEachCommitsInOrder(t *testing.T) {
	a, b := &messages.Pipeline{Jobs: []*messages.PipelineJob{{Key: "a"}}}, &messages.Pipeline{Error: "line 1, column 1: x"}
	r := &pipelineReader{pipelines: map[string]*messages.Pipeline{"c1": a, "c3": b}}
	p := withPipelines(context.Background(), r, Polled{Repo: "/r.git", Branch: "main", Tip: "c3", Commits: []string{"c1", "c2", "c3"}, Subjects: []string{"x", "y", "z"}})
	assert.Empty(t, p.Err)
	assert.Equal(t, []string{"/r.git c1", "/r.git c2", "/r.git c3"}, r.asked)
	assert.Equal(t, []*messages.Pipeline{a, nil, b}, p.Pipelines)
	assert.Equal(t, []string{"c1", "c2", "c3"}, p.Commits)
	assert.Equal(t, "c3", p.Tip)
}

func TestWithPipelinesFailsThePollWhenOneCannotBeRead(t *testing.T) {
	r := &pipelineReader{fail: "c2"}
	p := withPipelines(context.Background(), r, Polled{Repo: "/r.git", Branch: "main", Tip: "c3", Commits: []string{"c1", "c2", "c3"}})
	require.NotEmpty(t, p.Err)
	assert.Contains(t, p.Err, "pipeline of c2: git cat-file: exit status 128")
	assert.Empty(t, p.Commits, "nothing is sent: the next poll reads them again")
	assert.Equal(t, "main", p.Branch)
	assert.Equal(t, []string{"/r.git c1", "/r.git c2"}, r.asked, "no read after the failure")
}
