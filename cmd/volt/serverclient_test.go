package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/web"
)

// fakeDispatcher is a web.Backend with one running job (42) and two runners.
type fakeDispatcher struct{}

func (fakeDispatcher) Status(context.Context) (*messages.StatusReply, error) {
	return &messages.StatusReply{Role: "dispatcher",
		Runners: []*messages.RunnerStatus{{RunnerId: "h/runner-1", State: "busy", Job: &messages.JobRef{JobId: 42, Attempt: 1}}, {RunnerId: "h/runner-2", State: "idle"}},
		Jobs: []*messages.JobRecord{{Job: &messages.Job{Id: 42, Repo: "/r.git", RepoName: "r", Commit: fmt.Sprintf("%040x", 42), Build: 1},
			State: messages.JobState_JOB_STATE_RUNNING, Attempt: 1}}}, nil
}

func (fakeDispatcher) Cancel(_ context.Context, req *messages.CancelRequest) (*messages.CancelReply, error) {
	if req.JobId != 42 {
		return &messages.CancelReply{JobId: req.JobId, Error: fmt.Sprintf("job %d is not queued or running", req.JobId)}, nil
	}
	return &messages.CancelReply{JobId: req.JobId}, nil
}

func (fakeDispatcher) Rebuild(_ context.Context, req *messages.RebuildRequest) (*messages.RebuildReply, error) {
	return &messages.RebuildReply{JobId: 43, Build: 2}, nil
}

func (fakeDispatcher) Notify(context.Context, *messages.Notify) (*messages.NotifyAck, error) {
	return &messages.NotifyAck{Observers: 1}, nil
}

// serveWeb serves db's web UI and API (token, if not empty, guards them)
// on a loopback port until the test ends, and returns its URL.
func serveWeb(t *testing.T, db *store.DB, token string) string {
	t.Helper()
	srv, err := web.New(web.Config{DB: db, Backend: fakeDispatcher{}, Token: token})
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); assert.NoError(t, <-done) })
	return "http://" + l.Addr().String()
}

// TestServerCommands runs the CLI against a real web server over a real store.
func TestServerCommands(t *testing.T) {
	db, err := store.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	for i := int64(1); i <= 3; i++ {
		_, err := db.RecordResult(&messages.Result{Job: &messages.Job{Id: i, Repo: "/r.git", RepoName: "r", Commit: fmt.Sprintf("%040x", i),
			Branches: []string{"main"}, Build: 1}, Attempt: 1, Status: messages.Status_STATUS_PASSED, StartedUnixMs: 1000, FinishedUnixMs: 1000 + i})
		require.NoError(t, err)
	}
	url := serveWeb(t, db, "tok")
	t.Setenv("VOLT_TOKEN", "")

	nobody, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadURL := "http://" + nobody.Addr().String()
	require.NoError(t, nobody.Close())

	tests := []struct {
		name string
		args []string
		want int
	}{
		{"results", []string{"results", "--server", url, "--branch", "main"}, exitOK},
		{"one result", []string{"results", fmt.Sprintf("%040x", 2), "--server", url}, exitOK},
		{"unknown commit", []string{"results", "abcdef12", "--server", url}, exitNotFound},
		{"bad status", []string{"results", "--server", url, "--status", "green"}, exitUsage},
		{"runners", []string{"runners", "--server", url}, exitOK},
		{"cancel", []string{"cancel", "42", "--server", url, "--token", "tok"}, exitOK},
		{"cancel without the token", []string{"cancel", "42", "--server", url}, exitUsage},
		{"cancel a finished job", []string{"cancel", "2", "--server", url, "--token", "tok"}, exitRuntime},
		{"cancel something that is not a job", []string{"cancel", "x", "--server", url}, exitUsage},
		{"rebuild", []string{"rebuild", fmt.Sprintf("%040x", 3), "--server", url, "--token", "tok"}, exitOK},
		{"rebuild an unknown commit", []string{"rebuild", "abcdef12", "--server", url, "--token", "tok"}, exitNotFound},
		{"bad server URL", []string{"runners", "--server", "localhost:8080"}, exitUsage},
		{"nothing listening", []string{"runners", "--server", deadURL}, exitRuntime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, run(tt.args), "volt %s", strings.Join(tt.args, " "))
		})
	}
}
