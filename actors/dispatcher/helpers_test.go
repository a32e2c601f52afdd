package dispatcher_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

const (
	repoURL  = "/srv/git/app.git"
	repoName = "app"
)

var (
	obsAddr  = actors.NewAddr("127.0.0.1:9100", "observer")
	obs2Addr = actors.NewAddr("127.0.0.1:9101", "observer")
	repAddr  = actors.NewAddr("127.0.0.1:8001", "reporter")
	cliAddr  = actors.NewAddr("127.0.0.1:9999", "cli")
)

// runnerAddr is where runner id listens; each id has its own address.
func runnerAddr(id string) actors.Addr { return actors.NewAddr("10.0.0.1:8900", id) }

// persisted returns the Persist effects.
func persisted(fx []actors.Effect) []dispatcher.Persist {
	return coretest.EffectsOf[dispatcher.Persist](fx)
}

// persistedJobs returns every job record persisted, in order.
func persistedJobs(fx []actors.Effect) []*messages.JobRecord {
	var out []*messages.JobRecord
	for _, p := range persisted(fx) {
		out = append(out, p.Jobs...)
	}
	return out
}

// firstIndex returns the index of the first effect for which match is true, or -1.
func firstIndex(fx []actors.Effect, match func(actors.Effect) bool) int {
	for i, e := range fx {
		if match(e) {
			return i
		}
	}
	return -1
}

func isPersistOf(jobID int64) func(actors.Effect) bool {
	return func(e actors.Effect) bool {
		p, ok := e.(dispatcher.Persist)
		if !ok {
			return false
		}
		for _, j := range p.Jobs {
			if j.Job.Id == jobID {
				return true
			}
		}
		return false
	}
}

func isSendOf[T proto.Message]() func(actors.Effect) bool {
	return func(e actors.Effect) bool {
		s, ok := e.(actors.Send)
		if !ok {
			return false
		}
		_, ok = s.Msg.(T)
		return ok
	}
}

// world drives one dispatcher core on a virtual clock.
type world struct {
	t   *testing.T
	d   *dispatcher.Core
	now time.Time
	seq uint64
}

func newWorld(t *testing.T, cfg dispatcher.Config) *world {
	t.Helper()
	d := dispatcher.New(cfg)
	d.Recover(coretest.T0, dispatcher.Durable{})
	return &world{t: t, d: d, now: coretest.T0}
}

// step delivers in from addr, as the identity a connection would prove for
// its rightful sender (see sender).
func (w *world) step(from actors.Addr, in any) []actors.Effect {
	return w.d.Step(w.now, sender(from, in), in)
}

// stepAs delivers in from a sender of the test's choosing.
func (w *world) stepAs(from actors.From, in any) []actors.Effect {
	return w.d.Step(w.now, from, in)
}

// sender is addr with the identity of the rightful sender of in: a runner
// message from the runner it names, an observer's from an observer, and so
// on; the core's own inputs (Tick, PeerTerminated) are local.
func sender(addr actors.Addr, in any) actors.From {
	return actors.From{Addr: addr, Who: rightful(in)}
}

func rightful(in any) actors.Identity {
	runner := func(id string) actors.Identity { return actors.Identity{Role: actors.RoleRunner, Name: id} }
	switch m := in.(type) {
	case *messages.RegisterRunner:
		return runner(m.RunnerId)
	case *messages.Heartbeat:
		return runner(m.RunnerId)
	case *messages.JobFinished:
		return runner(m.RunnerId)
	case *messages.RunnerStopping:
		return runner(m.RunnerId)
	case *messages.RegisterObserver, *messages.CommitObserved, dispatcher.Observed:
		return actors.Identity{Role: actors.RoleObserver, Name: "obs-host"}
	case *messages.RegisterReporter, *messages.ResultRecordedAck:
		return actors.Identity{Role: actors.RoleReporter, Name: "rep-host"}
	case *messages.Notify:
		return actors.Identity{Role: actors.RoleNotify, Name: "git-host"}
	case *messages.StatusRequest, *messages.CancelRequest, dispatcher.Rebuild:
		return actors.Identity{Role: actors.RoleAdmin, Name: "ops"}
	}
	return actors.Local
}

func (w *world) advance(d time.Duration) { w.now = w.now.Add(d) }

func (w *world) tick() []actors.Effect { return w.step("", actors.Tick{}) }

// addObserver registers an observer watching main and release of the repo.
func (w *world) addObserver(addr actors.Addr) []actors.Effect {
	w.t.Helper()
	fx := w.step(addr, &messages.RegisterObserver{ObserverId: string(addr), ProtocolVersion: messages.ProtocolVersion,
		Repos: []*messages.WatchedRepo{{Url: repoURL, Name: repoName, Branches: []string{"main", "release"}}}})
	regs := coretest.SendsTo[*messages.ObserverRegistered](fx, addr)
	require.Len(w.t, regs, 1)
	require.True(w.t, regs[0].Accepted, regs[0].Reason)
	return fx
}

// addRunner registers runner id (incarnation inc) from runnerAddr(id).
func (w *world) addRunner(id string, inc int64, running ...*messages.JobRef) []actors.Effect {
	w.t.Helper()
	return w.addRunnerAt(runnerAddr(id), id, inc, running...)
}

func (w *world) addRunnerAt(addr actors.Addr, id string, inc int64, running ...*messages.JobRef) []actors.Effect {
	w.t.Helper()
	fx := w.step(addr, &messages.RegisterRunner{RunnerId: id, Incarnation: inc, ProtocolVersion: messages.ProtocolVersion,
		Hostname: "host-" + id, Running: running})
	regs := coretest.SendsTo[*messages.RunnerRegistered](fx, addr)
	require.Len(w.t, regs, 1)
	require.True(w.t, regs[0].Accepted, regs[0].Reason)
	return fx
}

func (w *world) addReporter() []actors.Effect {
	w.t.Helper()
	fx := w.step(repAddr, &messages.RegisterReporter{ReporterId: "rep", ProtocolVersion: messages.ProtocolVersion})
	regs := coretest.SendsTo[*messages.ReporterRegistered](fx, repAddr)
	require.Len(w.t, regs, 1)
	require.True(w.t, regs[0].Accepted, regs[0].Reason)
	return fx
}

// observed builds the next CommitObserved of the repo from obsAddr.
func (w *world) observed(branch, previous string, commits ...string) *messages.CommitObserved {
	w.seq++
	return &messages.CommitObserved{ObserverId: string(obsAddr), Seq: w.seq, Repo: repoURL, RepoName: repoName,
		Branch: branch, Previous: previous, Commits: commits}
}

func (w *world) observe(branch, previous string, commits ...string) []actors.Effect {
	return w.step(obsAddr, w.observed(branch, previous, commits...))
}

func (w *world) heartbeat(id string, inc int64, seq uint64, running ...*messages.JobRef) []actors.Effect {
	return w.step(runnerAddr(id), &messages.Heartbeat{RunnerId: id, Incarnation: inc, Seq: seq, Running: running})
}

func (w *world) finish(id string, inc int64, jobID int64, attempt int32, status messages.Status) []actors.Effect {
	return w.step(runnerAddr(id), &messages.JobFinished{RunnerId: id, Incarnation: inc, Result: &messages.Result{
		Job: &messages.Job{Id: jobID}, Attempt: attempt, Status: status,
		StartedUnixMs: w.now.Add(-time.Second).UnixMilli(), FinishedUnixMs: w.now.UnixMilli()}})
}

// job returns the dispatcher's record of a job, or nil when it holds none.
func (w *world) job(id int64) *messages.JobRecord {
	for _, j := range w.d.Status().Jobs {
		if j.Job.Id == id {
			return j
		}
	}
	return nil
}

func (w *world) runner(id string) *messages.RunnerStatus {
	for _, r := range w.d.Status().Runners {
		if r.RunnerId == id {
			return r
		}
	}
	return nil
}

func (w *world) queued() int64 { return w.d.Status().Counters["queued"] }

func ref(job int64, attempt int32) *messages.JobRef {
	return &messages.JobRef{JobId: job, Attempt: attempt}
}

// runJobs summarises RunJob sends as "job/attempt->runner@incarnation".
func runJobs(fx []actors.Effect) []string {
	var out []string
	for _, e := range fx {
		if s, ok := e.(actors.Send); ok {
			if m, ok := s.Msg.(*messages.RunJob); ok {
				out = append(out, fmt.Sprintf("%d/%d->%s@%d", m.Job.Id, m.Attempt, m.RunnerId, m.Incarnation))
				if s.To != runnerAddr(m.RunnerId) {
					out[len(out)-1] += " via " + string(s.To)
				}
			}
		}
	}
	return out
}
