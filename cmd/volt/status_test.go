package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/voltci/volt/messages"
)

// TestStatusShowsAFailingStore feeds printStatus the counters the
// dispatcher's and the reporter's shells set while their store refuses
// writes.
func TestStatusShowsAFailingStore(t *testing.T) {
	failing := func(role string, errs int64) *messages.StatusReply {
		return &messages.StatusReply{Role: role, Counters: map[string]int64{"store_failing": 1, "store_write_errors": errs}}
	}
	tests := []struct {
		name       string
		st, rep    *messages.StatusReply
		want, omit []string
	}{
		{
			name: "store works",
			st:   &messages.StatusReply{Role: "dispatcher", Counters: map[string]int64{"store_failing": 0, "store_write_errors": 0}},
			want: []string{"dispatcher: ok\n", "store_failing: 0\n"},
			omit: []string{"store failing", "writes refused"},
		},
		{
			name: "recovered: the count stays, the alarm goes",
			st:   &messages.StatusReply{Role: "dispatcher", Counters: map[string]int64{"store_failing": 0, "store_write_errors": 4}},
			want: []string{"dispatcher: ok\n", "store_write_errors: 4\n"},
			omit: []string{"writes refused"},
		},
		{
			name: "dispatcher's store fails",
			st:   failing("dispatcher", 3),
			want: []string{"dispatcher: store failing\ndispatcher store: failing — writes refused (3 errors); retrying\n", "store_write_errors: 3\n"},
		},
		{
			name: "one error",
			st:   failing("reporter", 1),
			want: []string{"reporter: store failing\nreporter store: failing — writes refused (1 error); retrying\n"},
		},
		{
			name: "the reporter a dispatcher names fails",
			st:   &messages.StatusReply{Role: "dispatcher", Reporter: "127.0.0.1:8000/reporter"},
			rep:  failing("reporter", 7),
			want: []string{"dispatcher: ok\nreporter store: failing — writes refused (7 errors); retrying\n", "reporter: 127.0.0.1:8000/reporter\n"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			printStatus(&b, tc.st, tc.rep)
			for _, w := range tc.want {
				assert.Contains(t, b.String(), w)
			}
			for _, o := range tc.omit {
				assert.NotContains(t, b.String(), o)
			}
		})
	}
}

// TestStatusListsTheJobsOfBuilds: the dispatcher's table names each job's
// build, its name in the pipeline and why it waits.
func TestStatusListsTheJobsOfBuilds(t *testing.T) {
	job := func(i int32, name string) *messages.Job {
		return &messages.Job{Id: 60 + int64(i), BuildId: 60, Index: i, BuildJobs: 2, RepoName: "app", Commit: strings.Repeat("ab", 20), Build: 2,
			Cell: &messages.PipelineJob{Key: "k", Name: name}}
	}
	st := &messages.StatusReply{Role: "dispatcher", Jobs: []*messages.JobRecord{
		{Job: job(0, "lint"), State: messages.JobState_JOB_STATE_RUNNING, Attempt: 1, RunnerId: "host/runner-1"},
		{Job: job(1, "test (go=1.26) 1/2"), State: messages.JobState_JOB_STATE_QUEUED, Waiting: "no runner has labels gpu"},
		{Job: &messages.Job{Id: 70, RepoName: "old", Commit: strings.Repeat("cd", 20), Build: 1}, State: messages.JobState_JOB_STATE_QUEUED},
	}}
	var b strings.Builder
	printStatus(&b, st, nil)
	lines := strings.Split(b.String(), "\n")
	var table []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && (f[0] == "BUILD" || f[0] == "60" || f[0] == "70") {
			table = append(table, strings.Join(f, " "))
		}
	}
	assert.Equal(t, []string{
		"BUILD JOB NAME STATE REPO COMMIT NUMBER ATTEMPT RUNNER WAITING",
		"60 60 lint running app abababababab 2 1 host/runner-1",
		"60 61 test (go=1.26) 1/2 queued app abababababab 2 0 no runner has labels gpu",
		"70 70 build queued old cdcdcdcdcdcd 1 0",
	}, table)
}
