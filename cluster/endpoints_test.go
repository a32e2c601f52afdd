package cluster

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/internal/voltbin"
	"github.com/voltci/volt/messages"
)

// signalHandler closes a channel at the first record whose message contains
// a string: a way to wait for Proto.Actor's internal steps without sleeping.
type signalHandler struct {
	slog.Handler
	substr string
	seen   chan struct{}
	once   *atomic.Bool
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.substr) && h.once.CompareAndSwap(false, true) {
		close(h.seen)
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

// freeAddr is a loopback host:port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := voltbin.FreePort()
	require.NoError(t, err)
	return "127.0.0.1:" + strconv.Itoa(port)
}

// sink forwards the heartbeats it receives.
func sink(got chan<- uint64) actor.ReceiveFunc {
	return func(ctx actor.Context) {
		if hb, ok := ctx.Message().(*messages.Heartbeat); ok {
			got <- hb.Seq
		}
	}
}

// TestHelperEchoProcess is not a test: run with VOLT_ECHO_LISTEN set, it is
// a peer process whose "echo" actor answers every Heartbeat with the same
// message. A second remote may not start in a process whose first one is
// busy: Proto.Actor's remote.Start sets gRPC's global logger, a data race.
func TestHelperEchoProcess(t *testing.T) {
	listen := os.Getenv("VOLT_ECHO_LISTEN")
	if listen == "" {
		t.Skip("a helper process for TestUnstickDialsAfreshPastAFailedDial")
	}
	n, err := Start(NodeConfig{Listen: listen, Logger: quietLogger(t), ActorLogLevel: slog.LevelError + 100})
	require.NoError(t, err)
	_, err = n.System.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		if hb, ok := ctx.Message().(*messages.Heartbeat); ok {
			ctx.Respond(hb)
		}
	}), "echo")
	require.NoError(t, err)
	io.Copy(io.Discard, os.Stdin) // until the test closes stdin or kills it
}

// A message sent to a port nobody listens on parks Proto.Actor's connection
// to it for 2 s after the failed dial, and later messages queue behind it.
// After unstick, the next message dials afresh: it arrives before the one
// parked behind the failed dial. Once the connection is up, unstick leaves
// it alone: no reconnect churn for a registration retried while the peer is
// merely slow to answer. (One test, one remote in a process: see
// TestHelperEchoProcess. It runs in a process of its own, as another test's
// remote may still be winding down in this one.)
func TestUnstickDialsAfreshPastAFailedDial(t *testing.T) {
	if os.Getenv("VOLT_UNSTICK_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUnstickDialsAfreshPastAFailedDial$", "-test.v")
		cmd.Env = append(os.Environ(), "VOLT_UNSTICK_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestUnstickDialsAfreshPastAFailedDial") {
			t.Fatalf("the test in its own process: %v\n%s", err, out)
		}
		return
	}
	failed := make(chan struct{})
	logger := slog.New(signalHandler{substr: "EndpointWriter failed to connect", seen: failed, once: new(atomic.Bool)})
	a, err := Start(NodeConfig{Listen: "127.0.0.1:0", Logger: logger, ActorLogLevel: slog.LevelDebug})
	require.NoError(t, err)
	defer a.Shutdown()
	got := make(chan uint64, 2)
	collector := a.System.Root.Spawn(actor.PropsFromFunc(sink(got)))

	peer := freeAddr(t)
	target := actor.NewPID(peer, "echo")
	a.System.Root.RequestWithCustomSender(target, &messages.Heartbeat{Seq: 1}, collector)
	select {
	case <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("the dial to a closed port did not fail")
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperEchoProcess$")
	cmd.Env = append(os.Environ(), "VOLT_ECHO_LISTEN="+peer)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	eventually(t, 30*time.Second, func() bool { return Probe(peer) }, "the peer process to listen")

	a.links.unstick(peer)
	a.System.Root.RequestWithCustomSender(target, &messages.Heartbeat{Seq: 2}, collector)
	select {
	case seq := <-got:
		require.Equal(t, uint64(2), seq, "the message sent after unstick queued behind the failed dial")
	case <-time.After(30 * time.Second):
		t.Fatal("nothing came back")
	}

	eventually(t, 10*time.Second, func() bool { a.links.mu.Lock(); defer a.links.mu.Unlock(); return a.links.up[peer] },
		"the fresh connection to be reported up")
	var terminated atomic.Int32
	a.System.EventStream.Subscribe(func(ev any) {
		if _, ok := ev.(*remote.EndpointTerminatedEvent); ok {
			terminated.Add(1)
		}
	})
	a.links.unstick(peer)
	a.System.Root.RequestWithCustomSender(target, &messages.Heartbeat{Seq: 3}, collector)
	for seq := range got {
		if seq == 3 {
			break
		}
	}
	require.Zero(t, terminated.Load(), "unstick dropped a connection that was up")
}
