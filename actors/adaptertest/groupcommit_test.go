package adaptertest

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
)

// gateStore is a memStore whose Save first shows the batch to the test and
// then waits until the test lets it go on (nil) or fail (an error).
type gateStore struct {
	*memStore
	saving  chan dispatcher.Batch
	release chan error
	// archivedErr, when set, makes the next Archived lookup panic (the
	// dispatcher restarts).
	archivedErr atomic.Pointer[error]
}

func (g *gateStore) ArchivedJobs(repo string, commits []string) (map[string]*messages.JobRecord, error) {
	if err := g.archivedErr.Swap(nil); err != nil {
		panic(*err)
	}
	return g.memStore.ArchivedJobs(repo, commits)
}

func (g *gateStore) Save(b dispatcher.Batch) error {
	g.saving <- b
	if err := <-g.release; err != nil {
		return err
	}
	return g.memStore.Save(b)
}

// gateWorld is the dispatcher on real goroutines (Proto.Actor's own
// dispatcher, not the deterministic one: the writer blocks in the store)
// with fake peers that journal what they receive.
type gateWorld struct {
	sys     *actor.ActorSystem
	j       *journal
	store   *gateStore
	disp    *actor.PID
	handled chan any // each message the dispatcher has finished handling
	peers   map[string]*actor.PID
	inbox   map[string]chan any
}

func newGateWorld(t *testing.T) *gateWorld {
	t.Helper()
	w := &gateWorld{sys: newSystem(), j: &journal{}, handled: make(chan any, 1000), peers: map[string]*actor.PID{}, inbox: map[string]chan any{}}
	w.store = &gateStore{memStore: newMemStore(w.j), saving: make(chan dispatcher.Batch, 10), release: make(chan error, 10)}
	done := func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			next(c, env)
			w.handled <- env.Message
		}
	}
	var err error
	w.disp, err = w.sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor {
		a := dispatcher.NewActor(dispConfig(), w.store, actors.Env{Logger: discard, StoreRetry: time.Nanosecond})
		a.Tick = time.Hour
		return a
	}, actor.WithSenderMiddleware(recordSends(w.j)), actor.WithReceiverMiddleware(done)), "dispatcher")
	require.NoError(t, err)
	w.await(t, func(m any) bool { _, ok := m.(*actor.Started); return ok })
	for _, name := range []string{"r1", "obs", "rep", "user"} {
		inbox := make(chan any, 100)
		w.inbox[name] = inbox
		w.peers[name], err = w.sys.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
			switch ctx.Message().(type) {
			case *actor.Started, *actor.Stopping, *actor.Stopped:
			default:
				inbox <- ctx.Message()
			}
		}), name)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		close(w.store.release) // let a blocked writer go
		_ = w.sys.Root.StopFuture(w.disp).Wait()
		w.sys.Shutdown()
	})
	return w
}

// send delivers msg to the dispatcher as if from peer name.
func (w *gateWorld) send(name string, msg any) {
	w.sys.Root.RequestWithCustomSender(w.disp, msg, w.peers[name])
}

// await waits until the dispatcher has handled a message that match accepts.
func (w *gateWorld) await(t *testing.T, match func(any) bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-w.handled:
			if match(m) {
				return
			}
		case <-timeout:
			t.Fatalf("the dispatcher never handled the message")
		}
	}
}

// handledType waits until the dispatcher has handled a message like msg.
func handledType[T any](t *testing.T, w *gateWorld) {
	t.Helper()
	w.await(t, func(m any) bool { _, ok := m.(T); return ok })
}

// expect waits for peer name to receive a T.
func expect[T any](t *testing.T, w *gateWorld, name string) T {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-w.inbox[name]:
			if v, ok := m.(T); ok {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("%s never received a %T", name, zero)
			return zero
		}
	}
}

// saving waits for the writer to be in Save, and returns its batch.
func (w *gateWorld) saving(t *testing.T) dispatcher.Batch {
	t.Helper()
	select {
	case b := <-w.store.saving:
		return b
	case <-time.After(10 * time.Second):
		t.Fatalf("the writer never saved")
		return dispatcher.Batch{}
	}
}

// sentSoFar lists the types the dispatcher has sent to its peers.
func (w *gateWorld) sentSoFar() []string {
	var out []string
	for _, e := range w.j.events() {
		if e.kind == "send" && e.who == "dispatcher" && e.peer != "" && w.peers[e.peer] != nil {
			out = append(out, e.peer+" "+typeName(e.msg))
		}
	}
	return out
}

func typeName(m any) string {
	switch m.(type) {
	case *messages.ReporterRegistered:
		return "ReporterRegistered"
	case *messages.ObserverRegistered:
		return "ObserverRegistered"
	case *messages.RunnerRegistered:
		return "RunnerRegistered"
	case *messages.CommitObservedAck:
		return "CommitObservedAck"
	case *messages.RunJob:
		return "RunJob"
	case *messages.RebuildReply:
		return "RebuildReply"
	case *messages.StatusReply:
		return "StatusReply"
	}
	return "other"
}

func (w *gateWorld) registerPeers(t *testing.T) {
	t.Helper()
	w.send("rep", &messages.RegisterReporter{ReporterId: "rep", ProtocolVersion: messages.ProtocolVersion})
	require.True(t, expect[*messages.ReporterRegistered](t, w, "rep").Accepted)
	w.send("obs", &messages.RegisterObserver{ObserverId: "obs", ProtocolVersion: messages.ProtocolVersion,
		Repos: []*messages.WatchedRepo{{Url: repoURL, Name: repoName, Branches: []string{branch}}}})
	require.True(t, expect[*messages.ObserverRegistered](t, w, "obs").Accepted)
}

// TestGroupCommitHoldsEffectsUntilDurable: while the writer is stuck in the
// store, nothing that follows a Persist is sent (not even replies that do not
// depend on it: order is kept); the changes of several messages gather into
// the next batch, one record per job; each batch's effects go out once it
// is durable, in order. A RebuildRequest that arrives meanwhile reads the
// store only after the pending batches landed.
func TestGroupCommitHoldsEffectsUntilDurable(t *testing.T) {
	w := newGateWorld(t)
	w.registerPeers(t) // no Persist: answered at once

	// The runner's first registration persists its incarnation: batch 1.
	w.send("r1", &messages.RegisterRunner{RunnerId: "r1", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion, Seq: 1})
	b1 := w.saving(t)
	require.Len(t, b1.Incarnations, 1)
	require.Empty(t, b1.Jobs)

	// While batch 1 is written: three commits are observed and the first is
	// assigned to the runner (queued, then running: one record each), a
	// rebuild and a status request arrive.
	w.send("obs", &messages.CommitObserved{ObserverId: "obs", Seq: 1, Repo: repoURL, RepoName: repoName, Branch: branch,
		Commits: []string{commit(1), commit(2), commit(3)}})
	w.send("user", &messages.RebuildRequest{Repo: repoURL, Commit: commit(2), Who: "test"})
	w.send("user", &messages.StatusRequest{})
	handledType[*messages.StatusRequest](t, w)
	require.Equal(t, []string{"rep ReporterRegistered", "obs ObserverRegistered"}, w.sentSoFar(),
		"sent while the registration's batch was not durable")

	w.store.release <- nil // batch 1 is durable
	require.True(t, expect[*messages.RunnerRegistered](t, w, "r1").Accepted)
	b2 := w.saving(t)
	var states []string
	for _, r := range b2.Jobs {
		states = append(states, r.Job.Commit[36:]+" "+r.State.String())
	}
	require.Equal(t, []string{"0001 JOB_STATE_RUNNING", "0002 JOB_STATE_QUEUED", "0003 JOB_STATE_QUEUED"}, states,
		"one record per job, the last state of each")
	require.Len(t, b2.Cursors, 1)
	require.Equal(t, commit(3), b2.Cursors[0].Commit)
	require.Equal(t, []string{"rep ReporterRegistered", "obs ObserverRegistered", "r1 RunnerRegistered"}, w.sentSoFar(),
		"batch 1 released only what waited for it")

	w.store.release <- nil // batch 2 is durable
	ack := expect[*messages.CommitObservedAck](t, w, "obs")
	require.Len(t, ack.JobIds, 3)
	run := expect[*messages.RunJob](t, w, "r1")
	require.Equal(t, commit(1), run.Job.Commit)
	// The status reply was held behind batch 2; the rebuild waited for it
	// to read the store, so it saw the queued job, not "never built", and
	// was answered after the status request that came later.
	status := expect[*messages.StatusReply](t, w, "user")
	require.Len(t, status.Jobs, 3)
	reply := expect[*messages.RebuildReply](t, w, "user")
	require.Contains(t, reply.Error, "already queued as build")

	sent := w.sentSoFar()
	require.Equal(t, []string{"rep ReporterRegistered", "obs ObserverRegistered", "r1 RunnerRegistered",
		"obs CommitObservedAck", "r1 RunJob", "user StatusReply", "user RebuildReply"}, sent, "the core's order")

	// Every send after a Persist came after the store's "save" of it.
	evs := w.j.events()
	saves := 0
	for _, e := range evs {
		switch {
		case e.kind == "save":
			saves++
		case e.kind == "send" && e.who == "dispatcher":
			switch e.msg.(type) {
			case *messages.RunnerRegistered:
				require.GreaterOrEqual(t, saves, 1)
			case *messages.CommitObservedAck, *messages.RunJob, *messages.RebuildReply:
				require.GreaterOrEqual(t, saves, 2)
			}
		}
	}
	require.Equal(t, 2, saves, "two transactions for four messages' changes")
}

// TestGroupCommitFailedBatchSendsNothing: the writer's batch fails. The
// dispatcher does not restart: it writes the batch again after its backoff,
// then starts afresh from the durable state, and nothing that waited for
// the batch is ever sent.
func TestGroupCommitFailedBatchSendsNothing(t *testing.T) {
	w := newGateWorld(t)
	w.registerPeers(t)
	w.send("r1", &messages.RegisterRunner{RunnerId: "r1", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion, Seq: 1})
	w.saving(t)
	w.send("obs", &messages.CommitObserved{ObserverId: "obs", Seq: 1, Repo: repoURL, RepoName: repoName, Branch: branch,
		Commits: []string{commit(1)}})
	handledType[*messages.CommitObserved](t, w)

	w.store.release <- errors.New("disk full")
	answer := func(m any) bool { return fmt.Sprintf("%T", m) == "host.answer" }
	w.await(t, answer) // the second batch may go
	w.await(t, answer) // the first failed
	w.send("user", &messages.StatusRequest{})
	status := expect[*messages.StatusReply](t, w, "user")
	require.Equal(t, int64(1), status.Counters["store_failing"], "the status says the store fails")
	require.Equal(t, int64(1), status.Counters["store_write_errors"])
	w.send("r1", actors.Tick{}) // the backoff is over: the batch is written again
	w.saving(t)
	w.store.release <- nil
	handledType[actors.Tick](t, w)
	w.await(t, answer) // the batch is durable
	w.send("user", &messages.StatusRequest{})
	status = expect[*messages.StatusReply](t, w, "user")
	require.Equal(t, int64(0), status.Counters["store_failing"])
	// The dispatcher started afresh from the durable state (the runner's
	// incarnation): it knows neither the runner (which must register
	// again) nor the job (the observer sends its commit again), and never
	// sent what waited for the failed batch.
	require.Empty(t, status.Jobs)
	require.Empty(t, status.Runners)
	require.Equal(t, []string{"rep ReporterRegistered", "obs ObserverRegistered", "user StatusReply", "user StatusReply"}, w.sentSoFar())
	require.Empty(t, w.store.snapshot(), "what gathered after the failed batch is dropped")
}

// TestGroupCommitStopDropsHeldEffects: stopping while a batch is written
// waits for the writer and sends nothing that waited.
func TestGroupCommitStopDropsHeldEffects(t *testing.T) {
	w := newGateWorld(t)
	w.registerPeers(t)
	w.send("r1", &messages.RegisterRunner{RunnerId: "r1", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion, Seq: 1})
	w.saving(t)
	w.send("obs", &messages.CommitObserved{ObserverId: "obs", Seq: 1, Repo: repoURL, RepoName: repoName, Branch: branch,
		Commits: []string{commit(1)}})
	handledType[*messages.CommitObserved](t, w)

	stopped := w.sys.Root.StopFuture(w.disp)
	handledType[*actor.Stopping](t, w)
	for len(w.handled) > 0 {
		_, isStopped := (<-w.handled).(*actor.Stopped)
		require.False(t, isStopped, "stopped while its writer was still in the store")
	}
	w.store.release <- nil // the writer finishes its batch; then the dispatcher stops
	require.NoError(t, stopped.Wait())
	require.Equal(t, []string{"rep ReporterRegistered", "obs ObserverRegistered"}, w.sentSoFar())
	incs, err := w.store.LoadIncarnations()
	require.NoError(t, err)
	require.True(t, slices.ContainsFunc(incs, func(r *messages.RunnerIncarnation) bool { return r.RunnerId == "r1" }),
		"the batch in the writer's hands was finished")
}

// TestGroupCommitRestartWaitsForTheWriter: the dispatcher fails (a store
// read panics) while its writer is in the middle of a batch. The new incarnation
// starts, and loads the queue, only after that batch is written; what waited
// for the batch is never sent by anyone.
func TestGroupCommitRestartWaitsForTheWriter(t *testing.T) {
	w := newGateWorld(t)
	w.registerPeers(t)
	w.send("r1", &messages.RegisterRunner{RunnerId: "r1", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion, Seq: 1})
	w.saving(t)

	readErr := errors.New("disk read error")
	w.store.archivedErr.Store(&readErr)
	w.send("obs", &messages.CommitObserved{ObserverId: "obs", Seq: 1, Repo: repoURL, RepoName: repoName, Branch: branch,
		Commits: []string{commit(1)}})
	handledType[*actor.Restarting](t, w)
	for len(w.handled) > 0 {
		_, started := (<-w.handled).(*actor.Started)
		require.False(t, started, "restarted while its writer was still in the store")
	}
	loads := func() int {
		n := 0
		for _, e := range w.j.events() {
			if e.kind == "load" {
				n++
			}
		}
		return n
	}
	require.Equal(t, 1, loads())

	w.store.release <- nil // the batch lands; then the dispatcher restarts
	handledType[*actor.Started](t, w)
	require.Equal(t, 2, loads())
	evs := w.j.events()
	save := slices.IndexFunc(evs, func(e event) bool { return e.kind == "save" })
	reload := -1
	for i, e := range evs {
		if e.kind == "load" {
			reload = i
		}
	}
	require.Less(t, save, reload, "the queue was reloaded before the writer's batch landed")

	// The restarted dispatcher knows the runner's incarnation (durable), not
	// the runner (it must register again), and sent nothing that waited.
	w.send("r1", &messages.RegisterRunner{RunnerId: "r1", Incarnation: 0, ProtocolVersion: messages.ProtocolVersion, Seq: 2})
	refused := expect[*messages.RunnerRegistered](t, w, "r1")
	require.False(t, refused.Accepted, "an older incarnation than the durable one")
	require.Equal(t, uint64(2), refused.Seq)
	require.Equal(t, []string{"rep ReporterRegistered", "obs ObserverRegistered", "r1 RunnerRegistered"}, w.sentSoFar())
}

// TestGroupCommitDrainWaitsForTheBatch: a Drain (sent before a graceful
// stop) is answered only once the batch in the writer's hands is durable and
// what waited for it has been sent; with nothing pending, at once.
func TestGroupCommitDrainWaitsForTheBatch(t *testing.T) {
	w := newGateWorld(t)
	w.registerPeers(t)
	drained := w.sys.Root.RequestFuture(w.disp, dispatcher.Drain{}, 10*time.Second)
	_, err := drained.Result()
	require.NoError(t, err, "nothing pending: answered at once")

	w.send("r1", &messages.RegisterRunner{RunnerId: "r1", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion, Seq: 1})
	w.saving(t)
	drained = w.sys.Root.RequestFuture(w.disp, dispatcher.Drain{}, 10*time.Second)
	handledType[dispatcher.Drain](t, w)
	require.NotContains(t, w.sentSoFar(), "r1 RunnerRegistered", "sent before its batch was durable")

	w.store.release <- nil
	res, err := drained.Result()
	require.NoError(t, err)
	require.IsType(t, dispatcher.Drained{}, res)
	require.Contains(t, w.sentSoFar(), "r1 RunnerRegistered", "Drained came before the held reply was sent")
}
