package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/pki"
	"github.com/voltci/volt/store"
)

// TestArtifactsBetweenProcesses: a runner in another process (this test
// binary run again as TestArtifactsRunnerProcess) uploads a job's
// artifacts over mutual TLS to the reporter here, which keeps them in
// SQLite; once the job's passed result is recorded, the job that needs it
// fetches them in that other process into its own workspace, byte for
// byte. The guards let the artifact messages through for their roles,
// and the reporter checks the runner's tickets under the dispatcher's key.
// (Two remote nodes cannot share a process: Proto.Actor sets gRPC's
// global logger as each starts.)
func TestArtifactsBetweenProcesses(t *testing.T) {
	dir := t.TempDir()
	credsDir := filepath.Join(dir, "credentials")
	dCreds, err := pki.Open(pki.Options{Dir: credsDir, Identity: pki.Identity{Role: pki.RoleDispatcher, Name: "d"}, Hosts: []string{"127.0.0.1"}, Create: true})
	require.NoError(t, err)
	server, err := Start(NodeConfig{Listen: "127.0.0.1:0", Logger: quietLogger(t), ActorLogLevel: 100, Credentials: dCreds})
	require.NoError(t, err)
	defer server.Shutdown()
	db, err := store.Open(filepath.Join(dir, "data"))
	require.NoError(t, err)
	defer db.Close()
	cfg := dispatcher.DefaultConfig()
	cfg.LogKey = artifactKey
	_, err = server.StartDispatcher(cfg, db)
	require.NoError(t, err)
	_, err = server.StartReporter(reporter.Config{ID: "rep", Dispatcher: server.Addr(DispatcherName)}, db)
	require.NoError(t, err)

	binary := make([]byte, 3*messages.ArtifactChunkSize+123)
	_, err = rand.Read(binary)
	require.NoError(t, err)
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for p, c := range map[string][]byte{"dist/app": binary, "dist/VERSION": []byte("1.0\n"), "report.json": []byte(`{"Action":"pass","Test":"TestX"}` + "\n")} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(src, p), c, 0o644))
	}
	require.NoError(t, os.MkdirAll(dst, 0o755))
	child := func(mode, workspace string) string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestArtifactsRunnerProcess$", "-test.v")
		cmd.Env = append(os.Environ(), "VOLT_ARTIFACT_CHILD="+strings.Join([]string{mode, credsDir, string(server.Addr(ReporterName)), workspace}, "|"))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}

	out := child("upload", src)
	require.Contains(t, out, "uploaded 3 artifact files", out)
	kept, err := db.Artifacts(101, 1)
	require.NoError(t, err)
	var paths []string
	for _, f := range kept {
		paths = append(paths, f.Path+" "+f.Kind)
	}
	assert.Equal(t, []string{"dist/VERSION artifact", "dist/app artifact", "report.json go-test-json"}, paths)

	_, err = db.RecordResult(&messages.Result{Job: artifactJob(1).Job, Attempt: 1, Status: messages.Status_STATUS_PASSED, RunnerId: "r1", FinishedUnixMs: time.Now().UnixMilli()})
	require.NoError(t, err)
	out = child("fetch", dst)
	require.Contains(t, out, "placed 3 artifact files", out)
	got, err := os.ReadFile(filepath.Join(dst, "dist", "app"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(binary, got), "the binary arrived byte for byte")
	got, err = os.ReadFile(filepath.Join(dst, "dist", "VERSION"))
	require.NoError(t, err)
	assert.Equal(t, "1.0\n", string(got))
}

var artifactKey = []byte("the dispatcher's log-ticket key.")

// artifactJob is job index of a build of three (lint, test needs lint,
// package needs test), given to runner r1 with its ticket.
func artifactJob(index int32) *messages.RunJob {
	names := []string{"lint", "test", "package"}
	j := &messages.Job{Id: 100 + int64(index), BuildId: 100, Index: index, BuildJobs: 3, Repo: "/srv/app.git", RepoName: "app",
		Commit: "88e7207773cbf7ac1165ce1c04f30b5b9f416a91", Build: 1, Branches: []string{"main"},
		Cell: &messages.PipelineJob{Key: names[index], Name: names[index]}}
	if index > 0 {
		j.Cell.Needs = []int32{index - 1}
	}
	return &messages.RunJob{Job: j, Attempt: 1, RunnerId: "r1", LogTicket: messages.LogTicket(artifactKey, j, 1, "r1")}
}

// TestArtifactsRunnerProcess is the runner's side of
// TestArtifactsBetweenProcesses, in its own process.
func TestArtifactsRunnerProcess(t *testing.T) {
	env := os.Getenv("VOLT_ARTIFACT_CHILD")
	if env == "" {
		t.Skip("run by TestArtifactsBetweenProcesses")
	}
	args := strings.Split(env, "|")
	mode, credsDir, sink, workspace := args[0], args[1], args[2], args[3]
	creds, err := pki.Open(pki.Options{Dir: credsDir, Identity: pki.Identity{Role: pki.RoleRunner, Name: "r1"}, Hosts: []string{"127.0.0.1"}})
	require.NoError(t, err)
	node, err := Start(NodeConfig{Listen: "127.0.0.1:0", Logger: quietLogger(t), ActorLogLevel: 100, Credentials: creds})
	require.NoError(t, err)
	defer node.Shutdown()
	var log bytes.Buffer
	switch mode {
	case "upload":
		run := artifactJob(1)
		run.LogSink = sink
		res := &messages.Result{Status: messages.Status_STATUS_PASSED}
		runner.NewArtifacts(node.System.Root, run, 0, quietLogger(t)).Upload(context.Background(), workspace,
			runner.Declared{Paths: []string{"dist/"}, Reports: map[string]string{messages.KindGoTestJSON: "report.json"}}, &log, res)
		require.Equal(t, messages.Status_STATUS_PASSED, res.Status, "%s\n%s", res.Reason, log.String())
	case "fetch":
		run := artifactJob(2)
		run.LogSink = sink
		_, err := runner.NewArtifacts(node.System.Root, run, 0, quietLogger(t)).Fetch(context.Background(), workspace, &log)
		require.NoError(t, err, log.String())
	}
	fmt.Print(log.String())
}
