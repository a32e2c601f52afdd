package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// The malicious peer (fault kind malicious) is a process on the network
// that is none of Volt's roles. It holds one identity for the whole world:
// a valid runner certificate of its own (named mallory), an observer
// certificate, a notify certificate, or none at all. During its bursts it
// sends any message to any node (dispatcher, runners, observer, reporter),
// claiming any sender address (usually the one the target would believe:
// the dispatcher's to a runner, a runner's to the dispatcher) and carrying
// ids copied from what it can see in the world: real runner ids and their
// current incarnations, the dispatcher's epoch, job ids and attempts,
// commits. It never sends what its own certificate entitles it to (an
// observer reporting commits, a notify certificate asking for a poll):
// what a compromised role may legitimately do is not a forgery the cores
// can refuse.
//
// Every choice it makes is drawn from its own random stream, seeded from
// the world's seed, so that adding it shifts no draw of the rest of the
// world: with cores that refuse every forgery, a world with the peer runs
// exactly as the same world without it.
//
// During the same bursts it also forges SecretRequest (copies of what a
// runner would send, or in its own name), SecretSet, SecretDelete and
// SecretList to the dispatcher, on a stream of its own (see secrets.go).
//
// The checker (InvMalicious) requires that no forgery changes the state of
// the core it reaches (its Digest) or makes it do anything but note the
// refusal; InvSecretMalicious that none gets a secret's value or changes
// the secret store. A runner certificate asking for secrets in its own
// name is answered, with a refusal and no value. A log chunk from a runner
// certificate gets no exception: without the dispatcher's log ticket for
// the attempt (RunJob.log_ticket, which names the runner it was given to),
// the reporter takes nothing. The peer's chunks carry no ticket or a wrong
// one: the attacked runner's, its own for another attempt or job or under
// another key (tickets.go).

// malIdentities are the identities a malicious peer may hold; the zero one
// has no certificate.
var malIdentities = []actors.Identity{
	{Role: actors.RoleRunner, Name: "mallory"},
	{Role: actors.RoleObserver, Name: "mallory"},
	{Role: actors.RoleNotify, Name: "mallory"},
	{},
}

// malAddr is the malicious peer's own address.
const malAddr = actors.Addr("mallory:6666/evil")

// newMalRand is the malicious peer's own random stream for a seed.
func newMalRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x6d616c6c6f727921, seed+0x5bd1e9955bd1e995))
}

// drawMalice draws the malicious peer's bursts: one to three, each one to
// ten seconds long.
func drawMalice(mal *rand.Rand, d time.Duration) []Fault {
	n := 1 + mal.IntN(3)
	out := make([]Fault, 0, n)
	for range n {
		out = append(out, Fault{Kind: FaultMalicious, At: 2*time.Second + time.Duration(mal.Int64N(int64(d-4*time.Second))),
			Length: time.Second + time.Duration(mal.Int64N(int64(9*time.Second)))})
	}
	return out
}

func identityLabel(id actors.Identity) string {
	if id.Role == "" {
		return "an unauthenticated peer"
	}
	return id.String()
}

// startMalice begins (or lengthens) a burst of forgeries.
func (w *World) startMalice(f Fault) {
	sending := w.now.Before(w.malUntil)
	w.malUntil = latest(w.malUntil, w.now.Add(f.Length))
	if !sending {
		w.traceWorld("malicious peer (" + identityLabel(w.malWho) + ") starts sending")
		w.push(event{at: w.vt(w.now), kind: evMalice})
		w.startSecretMalice() // secrets.go
	}
}

// malice sends one forgery and schedules the next while the burst lasts.
func (w *World) malice() {
	if !w.now.Before(w.malUntil) {
		return
	}
	t := w.nodes[w.mal.IntN(len(w.nodes))]
	msg, want := w.forgery(t)
	from := actors.From{Addr: want, Who: w.malWho}
	switch x := w.mal.IntN(20); {
	case x < 5:
		from.Addr = w.nodes[w.mal.IntN(len(w.nodes))].addr
	case x < 8:
		from.Addr = malAddr
	}
	delay := 200*time.Microsecond + time.Duration(w.mal.Int64N(int64(2*time.Millisecond)))
	w.push(event{at: w.vt(w.now) + int64(delay), kind: evDeliver, node: t.idx, gen: t.gen, from: from, msg: msg, forged: true})
	w.after(10*time.Millisecond+time.Duration(w.mal.Int64N(int64(300*time.Millisecond))), event{kind: evMalice})
}

// forgery makes a message for t (or now and then for another role), with
// the sender t would believe, that the peer's identity may not send.
func (w *World) forgery(t *node) (any, actors.Addr) {
	for range 4 {
		to := t.role
		if w.mal.IntN(5) == 0 {
			to = []role{roleDispatcher, roleObserver, roleReporter, roleRunner}[w.mal.IntN(4)]
		}
		var msg any
		var want actors.Addr
		switch to {
		case roleDispatcher:
			msg, want = w.toDispatcher()
		case roleRunner:
			msg, want = w.toRunner(t)
		case roleObserver:
			msg, want = w.toObserver()
		default:
			msg, want = w.toReporter()
		}
		if !w.entitled(t, msg) {
			return msg, want
		}
	}
	return &messages.StatusRequest{}, malAddr
}

// entitled reports whether the peer's certificate lets it send msg to t:
// then it is no forgery (a compromised observer may report commits).
func (w *World) entitled(t *node, msg any) bool {
	if t.role != roleDispatcher {
		return false
	}
	switch msg.(type) {
	case *messages.RegisterObserver, *messages.CommitObserved:
		return w.malWho.Role == actors.RoleObserver
	case *messages.Notify:
		return w.malWho.Role == actors.RoleObserver || w.malWho.Role == actors.RoleNotify
	}
	return false
}

// victim is a runner the peer impersonates or aims at.
func (w *World) victim() *node {
	rs := w.runners()
	return rs[w.mal.IntN(len(rs))]
}

// seenJobs are the jobs the peer has seen go by, in id order.
func (w *World) seenJobs(done bool) []*messages.JobRecord {
	var out []*messages.JobRecord
	for _, id := range sortedIDs(w.store.jobs) {
		if j := w.store.jobs[id]; !done || j.State == messages.JobState_JOB_STATE_DONE {
			out = append(out, j)
		}
	}
	return out
}

func sortedIDs(m map[int64]*messages.JobRecord) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// someJob is a job the peer has seen (or one it made up) and an attempt of it.
func (w *World) someJob(done bool) (*messages.Job, int32) {
	if js := w.seenJobs(done); len(js) > 0 && w.mal.IntN(5) > 0 {
		j := js[w.mal.IntN(len(js))]
		return j.Job, max(j.Attempt, 1) + int32(w.mal.IntN(2))
	}
	return &messages.Job{Id: 1000 + w.mal.Int64N(100), Repo: "https://mallory.example/evil.git", RepoName: "evil",
		Commit: w.someCommit(), Branches: []string{"main"}, Build: 1}, 1
}

// someCommit is a commit of the repository, or one made up.
func (w *World) someCommit() string {
	b := w.repo.branches[w.repo.order[w.mal.IntN(len(w.repo.order))]]
	if len(b) > 0 && w.mal.IntN(2) == 0 {
		return b[w.mal.IntN(len(b))]
	}
	return fmt.Sprintf("%040x", w.mal.Uint64())
}

// refsOf is what runner v runs now, as the peer sees it.
func refsOf(v *node) []*messages.JobRef {
	if v.oneProc() == nil {
		return nil
	}
	return []*messages.JobRef{{JobId: v.oneProc().ref.JobId, Attempt: v.oneProc().ref.Attempt}}
}

func (w *World) someStatus() messages.Status {
	return messages.Status(1 + w.mal.IntN(5))
}

func (w *World) toDispatcher() (any, actors.Addr) {
	v := w.victim()
	branch := w.repo.order[w.mal.IntN(len(w.repo.order))]
	switch w.mal.IntN(12) {
	case 0:
		return &messages.RegisterRunner{RunnerId: v.runnerID, Incarnation: v.inc + int64(w.mal.IntN(2)), ProtocolVersion: messages.ProtocolVersion,
			Hostname: v.host, Running: refsOf(v), Seq: w.mal.Uint64N(100)}, v.addr
	case 1:
		return &messages.Heartbeat{RunnerId: v.runnerID, Incarnation: v.inc, Seq: w.mal.Uint64N(100), Running: refsOf(v)}, v.addr
	case 2:
		job, attempt := w.someJob(false)
		if v.oneProc() != nil && w.mal.IntN(2) == 0 {
			job, attempt = v.oneProc().job, v.oneProc().ref.Attempt
		}
		return &messages.JobFinished{RunnerId: v.runnerID, Incarnation: v.inc, Result: &messages.Result{Job: job, Attempt: attempt,
			RunnerId: v.runnerID, Status: w.someStatus(), Reason: "forged"}}, v.addr
	case 3:
		return &messages.RunnerStopping{RunnerId: v.runnerID, Incarnation: v.inc, Released: refsOf(v), Reason: "forged"}, v.addr
	case 4:
		return &messages.RegisterObserver{ObserverId: "observer", ProtocolVersion: messages.ProtocolVersion,
			Repos: []*messages.WatchedRepo{{Url: w.repo.URL, Name: w.repo.Name, Branches: w.repo.order}}}, w.observerNode().addr
	case 5:
		prev := ""
		if b := w.repo.branches[branch]; len(b) > 0 {
			prev = b[len(b)-1]
		}
		return &messages.CommitObserved{ObserverId: "observer", Seq: w.mal.Uint64N(50), Repo: w.repo.URL, RepoName: w.repo.Name,
			Branch: branch, Previous: prev, Commits: []string{w.someCommit()}}, w.observerNode().addr
	case 6:
		return &messages.RegisterReporter{ReporterId: "reporter", ProtocolVersion: messages.ProtocolVersion}, malAddr
	case 7:
		job, _ := w.someJob(true)
		return &messages.ResultRecordedAck{JobId: job.Id, Repo: job.Repo, Commit: job.Commit, Build: job.Build}, w.reporterNode().addr
	case 8:
		return &messages.Notify{Repo: w.repo.Name, Branch: branch}, malAddr
	case 9:
		return &messages.StatusRequest{}, malAddr
	case 10:
		job, _ := w.someJob(false)
		return &messages.CancelRequest{JobId: job.Id, Who: "mallory"}, malAddr
	}
	job, _ := w.someJob(true)
	return &messages.RebuildRequest{Repo: job.Repo, Commit: job.Commit, Who: "mallory"}, malAddr
}

func (w *World) toRunner(t *node) (any, actors.Addr) {
	if t.role != roleRunner {
		t = w.victim()
	}
	disp := w.dispatcherNode()
	epoch := disp.epoch
	if w.mal.IntN(8) == 0 {
		epoch++
	}
	refs := refsOf(t)
	switch w.mal.IntN(6) {
	case 0:
		job, attempt := w.someJob(false)
		id := t.runnerID
		if w.mal.IntN(10) == 0 {
			id = w.victim().runnerID
		}
		return &messages.RunJob{Job: job, Attempt: attempt, RunnerId: id, Incarnation: t.inc, LogSink: string(malAddr),
			TimeoutMs: 10_000, Epoch: epoch}, disp.addr
	case 1:
		ref := &messages.JobRef{JobId: 1 + w.mal.Int64N(20), Attempt: 1}
		if len(refs) > 0 {
			ref = refs[0]
		}
		return &messages.CancelJob{Ref: ref, Reason: "forged", Report: w.mal.IntN(2) == 0}, disp.addr
	case 2:
		return &messages.RunnerRegistered{Accepted: w.mal.IntN(3) > 0, Reason: "forged", RunnerId: t.runnerID, Incarnation: t.inc,
			Epoch: epoch, Seq: w.mal.Uint64N(50), HeartbeatMs: 1000, DeadAfterMs: 3000, LeaseMs: 2000,
			SupportedVersions: messages.SupportedVersions}, disp.addr
	case 3:
		return &messages.HeartbeatAck{RunnerId: t.runnerID, Incarnation: t.inc, Seq: w.mal.Uint64N(100), Valid: refs,
			Unknown: w.mal.IntN(4) == 0, Epoch: epoch}, disp.addr
	case 4:
		ref := &messages.JobRef{JobId: 1 + w.mal.Int64N(20), Attempt: 1}
		if len(refs) > 0 {
			ref = refs[0]
		}
		return &messages.JobFinishedAck{Ref: ref, Recorded: true}, disp.addr
	}
	return &messages.StatusRequest{}, malAddr
}

func (w *World) toObserver() (any, actors.Addr) {
	disp := w.dispatcherNode().addr
	branch := w.repo.order[w.mal.IntN(len(w.repo.order))]
	switch w.mal.IntN(4) {
	case 0:
		return &messages.ObserverRegistered{Accepted: w.mal.IntN(3) > 0, Reason: "forged", SupportedVersions: messages.SupportedVersions,
			Cursors: []*messages.Cursor{{Repo: w.repo.URL, Branch: branch, Commit: w.someCommit()}}}, disp
	case 1:
		return &messages.CommitObservedAck{ObserverId: "observer", Seq: 1 + w.mal.Uint64N(30), Repo: w.repo.URL, Branch: branch,
			Cursor: w.someCommit(), Unknown: w.mal.IntN(4) == 0}, disp
	case 2:
		return &messages.PollNow{}, disp
	}
	return &messages.StatusRequest{}, malAddr
}

func (w *World) toReporter() (any, actors.Addr) {
	disp := w.dispatcherNode().addr
	v := w.victim()
	job, attempt := w.someJob(false)
	switch w.mal.IntN(5) {
	case 0:
		return &messages.ReporterRegistered{Accepted: w.mal.IntN(3) > 0, Reason: "forged", SupportedVersions: messages.SupportedVersions}, disp
	case 1:
		return &messages.ResultRecorded{Result: &messages.Result{Job: job, Attempt: attempt, RunnerId: v.runnerID,
			Status: w.someStatus(), Reason: "forged"}}, disp
	case 2:
		return w.forgedLog(v, job, attempt, false), v.addr // tickets.go
	case 3:
		return w.forgedLog(v, job, attempt, true), v.addr
	}
	return &messages.StatusRequest{}, malAddr
}
