package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/observer"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/gitexec"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

func quietLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func eventually(t *testing.T, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// panicky panics on every "boom" and counts its starts.
type panicky struct{ starts *atomic.Int32 }

func (p panicky) Receive(ctx actor.Context) {
	switch ctx.Message() {
	case "boom":
		panic(errors.New("write /data/volt.db: no space left on device"))
	}
	if _, ok := ctx.Message().(*actor.Started); ok {
		p.starts.Add(1)
	}
}

func TestSupervisorRestartsThenExitsPastBudget(t *testing.T) {
	var logs syncBuffer
	node, err := Start(NodeConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil)), ActorLogLevel: slog.LevelError + 100})
	require.NoError(t, err)
	defer node.Shutdown()
	var starts atomic.Int32
	pid, err := node.Spawn("flaky", func() actor.Actor { return panicky{&starts} })
	require.NoError(t, err)

	node.System.Root.Send(pid, "boom")
	eventually(t, 5*time.Second, func() bool { return starts.Load() == 2 }, "a restart after one panic")
	select {
	case <-node.Done():
		t.Fatal("node exited after a single panic, within the restart budget")
	default:
	}
	for i := 0; i < 4; i++ {
		node.System.Root.Send(pid, "boom")
	}
	select {
	case <-node.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("node did not exit after the restart budget was spent")
	}
	code, reason := node.ExitStatus()
	require.Equal(t, 1, code)
	require.Contains(t, reason, "flaky failed repeatedly")
	require.Contains(t, reason, "its last error: write /data/volt.db: no space left on device", "the exit names the cause")
	require.Contains(t, logs.String(), `level=ERROR msg="role failed; restarting it" role=flaky error="write /data/volt.db: no space left on device"`,
		"each failure is logged as an error with its cause")
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestResolveAndLoopback(t *testing.T) {
	got, err := Resolve("localhost:8000")
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(got, ":8000"))
	require.True(t, IsLoopback(got), got)
	require.True(t, IsLoopback("localhost:1"))
	require.False(t, IsLoopback("10.1.2.3:8000"))
	_, err = Resolve("no-port")
	require.Error(t, err)
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.email=t@example.com", "-c", "user.name=t"}, args...)...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %v: %s", args, out)
	return strings.TrimSpace(string(out))
}

// TestRolesInOneProcess wires every role on a local actor system (no
// remote, so it is race-clean) against real git and real SQLite, and checks
// that commits become result files, including a failing one.
func TestRolesInOneProcess(t *testing.T) {
	dir := t.TempDir()
	bare := filepath.Join(dir, "master.git")
	work := filepath.Join(dir, "work")
	git(t, dir, "init", "-q", "--bare", "-b", "main", bare)
	git(t, dir, "clone", "-q", bare, work)
	require.NoError(t, os.WriteFile(filepath.Join(work, ".volt.yml"), []byte("steps:\n  - name: ok\n    run: echo hello from $VOLT_COMMIT\n"), 0o644))
	git(t, work, "add", ".volt.yml")
	git(t, work, "commit", "-qm", "first")
	git(t, work, "push", "-q", "origin", "main")

	db, err := store.Open(filepath.Join(dir, "data"))
	require.NoError(t, err)
	defer db.Close()
	node, err := Start(NodeConfig{Logger: quietLogger(t), ActorLogLevel: slog.LevelError + 100})
	require.NoError(t, err)
	defer node.Shutdown()

	ctx := context.Background()
	repo, err := gitexec.OpenRepo(ctx, bare, filepath.Join(dir, "cache"))
	require.NoError(t, err)
	disp := node.Addr(DispatcherName)
	_, err = node.StartDispatcher(dispatcher.DefaultConfig(), db)
	require.NoError(t, err)
	_, err = node.StartReporter(reporter.Config{ID: "r", Dispatcher: disp}, db)
	require.NoError(t, err)
	_, err = node.StartRunner("runner-1", runner.Config{ID: "runner-1", Incarnation: 1, Dispatcher: disp, Grace: -1},
		RunnerSetup{WorkDir: filepath.Join(dir, "runner"), OutputCap: 1 << 20})
	require.NoError(t, err)
	_, err = node.StartObserver(observer.Config{ID: "o", Dispatcher: disp, Poll: 100 * time.Millisecond, Grace: -1,
		Repos: []*messages.WatchedRepo{{Url: repo.URL(), Name: repo.Name(), Branches: []string{"main"}}}}, []*gitexec.Repo{repo})
	require.NoError(t, err)

	resultFile := func(sha string) string {
		b, err := os.ReadFile(filepath.Join(dir, "data", store.ResultDir, sha))
		if err != nil {
			return ""
		}
		return string(b)
	}
	first := git(t, work, "rev-parse", "HEAD")
	eventually(t, 20*time.Second, func() bool { return resultFile(first) != "" }, "the first commit's result")
	require.Contains(t, resultFile(first), "status: passed")
	require.Contains(t, resultFile(first), "hello from "+first)

	require.NoError(t, os.WriteFile(filepath.Join(work, ".volt.yml"), []byte("steps:\n  - name: bad\n    run: echo no; exit 3\n"), 0o644))
	git(t, work, "commit", "-qam", "second")
	second := git(t, work, "rev-parse", "HEAD")
	git(t, work, "commit", "-q", "--allow-empty", "-m", "third")
	third := git(t, work, "rev-parse", "HEAD")
	git(t, work, "push", "-q", "origin", "main")
	eventually(t, 20*time.Second, func() bool { return resultFile(second) != "" && resultFile(third) != "" }, "both new commits' results")
	require.Contains(t, resultFile(second), "status: failed")
	require.Contains(t, resultFile(second), "failed_step: bad")
}

// Proto.Actor's error for a peer that closed its connection (every CLI
// command does) is logged at debug; other errors keep their level.
func TestPeerCloseIsNotAnError(t *testing.T) {
	var buf strings.Builder
	logger := slog.New(levelHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelInfo})
	logger.Error("EndpointWriter lost connection", "address", "127.0.0.1:1", "error", errors.New("rpc error: code = Unavailable desc = error reading from server: EOF"))
	require.Empty(t, buf.String(), "a clean close is below the info level")
	logger.Error("EndpointWriter lost connection", "address", "127.0.0.1:1", "error", errors.New("connection reset by peer"))
	require.Contains(t, buf.String(), "level=ERROR")

	buf.Reset()
	debug := slog.New(levelHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), slog.LevelDebug})
	debug.Error("EndpointWriter lost connection", "error", errors.New("error reading from server: EOF"))
	require.Contains(t, buf.String(), "level=DEBUG")
}
