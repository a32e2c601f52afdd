package observer_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/observer"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

var (
	dispAddr  = actors.NewAddr("127.0.0.1:8000", "dispatcher")
	otherAddr = actors.NewAddr("127.0.0.1:8123", "dispatcher")
)

const (
	repoURL   = "/srv/git/app.git"
	repoName  = "app"
	pollEvery = 5 * time.Second
)

// polls returns "branch@since" for each Poll effect.
func polls(fx []actors.Effect) []string {
	var out []string
	for _, p := range coretest.EffectsOf[observer.Poll](fx) {
		out = append(out, p.Branch+"@"+p.Since)
	}
	return out
}

// observed returns the CommitObserved messages sent to the dispatcher.
func observed(fx []actors.Effect) []*messages.CommitObserved {
	var out []*messages.CommitObserved
	for _, s := range coretest.EffectsOf[actors.Send](fx) {
		if m, ok := s.Msg.(*messages.CommitObserved); ok && s.To == dispAddr {
			out = append(out, m)
		}
	}
	return out
}

func registers(fx []actors.Effect) []*messages.RegisterObserver {
	var out []*messages.RegisterObserver
	for _, r := range coretest.EffectsOf[actors.Register](fx) {
		if r.To == dispAddr {
			out = append(out, r.Msg.(*messages.RegisterObserver))
		}
	}
	return out
}

type world struct {
	t   *testing.T
	c   *observer.Core
	now time.Time
	fx  []actors.Effect // what Start returned
}

func newWorld(t *testing.T, grace time.Duration) *world {
	c := observer.New(observer.Config{ID: "obs", Dispatcher: dispAddr, Poll: pollEvery, Grace: grace, Token: "tok",
		Repos: []*messages.WatchedRepo{{Url: repoURL, Name: repoName, Branches: []string{"main", "dev"}}}})
	return &world{t: t, c: c, now: coretest.T0, fx: c.Start(coretest.T0)}
}

// step delivers in from addr, as the identity a connection would prove for
// its rightful sender: the dispatcher's messages from the dispatcher, a
// status request from admin, the observer's own inputs from this process.
func (w *world) step(from actors.Addr, in any) []actors.Effect {
	return w.stepAs(actors.From{Addr: from, Who: rightful(in)}, in)
}

// stepAs delivers in from a sender of the test's choosing.
func (w *world) stepAs(from actors.From, in any) []actors.Effect { return w.c.Step(w.now, from, in) }
func (w *world) advance(d time.Duration)                         { w.now = w.now.Add(d) }
func (w *world) tick() []actors.Effect                           { return w.step("", actors.Tick{}) }

func rightful(in any) actors.Identity {
	switch in.(type) {
	case *messages.ObserverRegistered, *messages.CommitObservedAck, *messages.PollNow:
		return actors.Identity{Role: actors.RoleDispatcher, Name: "disp-host"}
	case *messages.StatusRequest:
		return actors.Identity{Role: actors.RoleAdmin, Name: "ops"}
	}
	return actors.Local
}

// register answers the registration with the dispatcher's cursors.
func (w *world) register(cursors ...*messages.Cursor) []actors.Effect {
	w.t.Helper()
	fx := w.step(dispAddr, &messages.ObserverRegistered{Accepted: true, Cursors: cursors, SupportedVersions: messages.SupportedVersions})
	return fx
}

func cursor(branch, commit string) *messages.Cursor {
	return &messages.Cursor{Repo: repoURL, Branch: branch, Commit: commit}
}

func (w *world) polled(branch string, commits ...string) []actors.Effect {
	p := observer.Polled{Repo: repoURL, Branch: branch, Commits: commits}
	if len(commits) > 0 {
		p.Tip = commits[len(commits)-1]
	}
	return w.step("", p)
}

func (w *world) ack(m *messages.CommitObserved, cur string) []actors.Effect {
	return w.step(dispAddr, &messages.CommitObservedAck{ObserverId: m.ObserverId, Seq: m.Seq, Repo: m.Repo, Branch: m.Branch, Cursor: cur})
}

// registeredWith returns a registered observer whose main branch is at c1 and
// both first polls are answered with nothing new.
func registeredWith(t *testing.T) *world {
	w := newWorld(t, 10*time.Second)
	require.Equal(t, []string{"main@" + coretest.Commit(1), "dev@"}, polls(w.register(cursor("main", coretest.Commit(1)))))
	w.polled("main")
	w.polled("dev")
	return w
}

func TestStartRegisters(t *testing.T) {
	w := newWorld(t, 10*time.Second)

	regs := registers(w.fx)
	require.Len(t, regs, 1)
	assert.Equal(t, "obs", regs[0].ObserverId)
	assert.Equal(t, messages.ProtocolVersion, regs[0].ProtocolVersion)
	assert.Equal(t, "tok", regs[0].Token)
	require.Len(t, regs[0].Repos, 1)
	assert.Equal(t, []string{"main", "dev"}, regs[0].Repos[0].Branches)
	assert.Empty(t, polls(w.fx), "no polling before registration")
	w.advance(time.Minute)
	assert.Empty(t, polls(w.tick()))
}

func TestRegisteredPollsFromTheDispatchersCursors(t *testing.T) {
	w := newWorld(t, 10*time.Second)

	fx := w.register(cursor("main", coretest.Commit(1)), &messages.Cursor{Repo: "/other.git", Branch: "dev", Commit: coretest.Commit(9)})

	assert.Contains(t, fx, actors.Effect(actors.Watch{Addr: dispAddr}))
	assert.Equal(t, []string{"main@" + coretest.Commit(1), "dev@"}, polls(fx), "Since is each branch's cursor")
	for _, p := range coretest.EffectsOf[observer.Poll](fx) {
		assert.Equal(t, repoURL, p.Repo)
		assert.Equal(t, 50, p.Max, "the default backlog cap")
	}
	assert.Equal(t, coretest.Commit(1), w.c.Cursor(repoURL, "main"))
	assert.Empty(t, w.step(otherAddr, &messages.ObserverRegistered{Accepted: false, Reason: "forged"}), "only the dispatcher counts")
}

func TestRegistrationRefusedExits(t *testing.T) {
	w := newWorld(t, 10*time.Second)
	fx := w.step(dispAddr, &messages.ObserverRegistered{Reason: "wrong or missing token"})
	exits := coretest.EffectsOf[actors.Exit](fx)
	require.Len(t, exits, 1)
	assert.Equal(t, 1, exits[0].Code)
	assert.Contains(t, exits[0].Reason, "wrong or missing token")
	assert.Contains(t, exits[0].Reason, "127.0.0.1:8000")
	assert.Empty(t, w.tick())
}

func TestPolledCommitsSentOnceInFlightAndResent(t *testing.T) {
	w := registeredWith(t)
	w.advance(pollEvery)
	require.Equal(t, []string{"main@" + coretest.Commit(1), "dev@"}, polls(w.tick()))

	fx := w.polled("main", coretest.Commit(2), coretest.Commit(3), coretest.Commit(4))

	sent := observed(fx)
	require.Len(t, sent, 1)
	m := sent[0]
	assert.Equal(t, coretest.Commit(1), m.Previous, "Previous is the cursor the commits were computed from")
	assert.Equal(t, []string{coretest.Commit(2), coretest.Commit(3), coretest.Commit(4)}, m.Commits, "oldest first")
	assert.Equal(t, "main", m.Branch)
	assert.Equal(t, repoURL, m.Repo)
	assert.Equal(t, repoName, m.RepoName)
	assert.Equal(t, "obs", m.ObserverId)
	assert.Equal(t, coretest.Commit(1), w.c.Cursor(repoURL, "main"), "the cursor waits for the ack")

	// While in flight: no poll of main, so no second CommitObserved.
	w.polled("dev")
	assert.Equal(t, []string{"dev@"}, polls(w.step(dispAddr, &messages.PollNow{})), "main is not polled while its commits are in flight")
	w.polled("dev")

	w.advance(time.Second - time.Millisecond)
	assert.Empty(t, observed(w.tick()))
	w.advance(time.Millisecond)
	resent := observed(w.tick())
	require.Len(t, resent, 1, "resent after Resend without an ack")
	assert.True(t, proto.Equal(m, resent[0]), "the same message, same seq")

	// The next poll round skips main.
	w.advance(pollEvery)
	fx = w.tick()
	assert.Equal(t, []string{"dev@"}, polls(fx))
	assert.Len(t, observed(fx), 1, "and main is resent again")
}

func TestCursorAdvancesOnlyOnAck(t *testing.T) {
	w := registeredWith(t)
	w.advance(pollEvery)
	w.tick()
	w.polled("dev")
	m := observed(w.polled("main", coretest.Commit(2), coretest.Commit(3)))[0]

	// A minute of resends and stray acks: the cursor stays.
	for i := 0; i < 60; i++ {
		w.advance(time.Second)
		for _, p := range coretest.EffectsOf[observer.Poll](w.tick()) {
			w.polled(p.Branch)
		}
	}
	assert.Empty(t, w.step(dispAddr, &messages.CommitObservedAck{Seq: m.Seq + 1, Repo: repoURL, Branch: "main", Cursor: coretest.Commit(3)}), "wrong seq")
	assert.Empty(t, w.step(dispAddr, &messages.CommitObservedAck{Seq: m.Seq, Repo: repoURL, Branch: "dev", Cursor: coretest.Commit(3)}), "wrong branch")
	assert.Empty(t, w.step(otherAddr, &messages.CommitObservedAck{Seq: m.Seq, Repo: repoURL, Branch: "main", Cursor: coretest.Commit(3)}), "not the dispatcher")
	assert.Equal(t, coretest.Commit(1), w.c.Cursor(repoURL, "main"), "no ack, no advance")

	fx := w.ack(m, coretest.Commit(3))
	assert.Equal(t, coretest.Commit(3), w.c.Cursor(repoURL, "main"))
	assert.Equal(t, []string{"main@" + coretest.Commit(3)}, polls(fx), "a new poll from the acked cursor")
	w.polled("main")
	w.advance(time.Minute)
	assert.Empty(t, observed(w.tick()), "no resend after the ack")

	assert.Empty(t, w.ack(m, coretest.Commit(3)), "a duplicate ack changes nothing")
}

func TestAckCursorIsTheDispatchers(t *testing.T) {
	w := registeredWith(t)
	w.advance(pollEvery)
	w.tick()
	m := observed(w.polled("main", coretest.Commit(2), coretest.Commit(3)))[0]

	fx := w.ack(m, coretest.Commit(7)) // another observer moved the branch further
	assert.Equal(t, coretest.Commit(7), w.c.Cursor(repoURL, "main"))
	assert.Equal(t, []string{"main@" + coretest.Commit(7)}, polls(fx))
}

func TestPollNow(t *testing.T) {
	tests := []struct {
		name string
		msg  *messages.PollNow
		want []string
	}{
		{"everything", &messages.PollNow{}, []string{"main@" + coretest.Commit(1), "dev@"}},
		{"by repo url", &messages.PollNow{Repo: repoURL}, []string{"main@" + coretest.Commit(1), "dev@"}},
		{"by repo name and branch", &messages.PollNow{Repo: repoName, Branch: "dev"}, []string{"dev@"}},
		{"another repo", &messages.PollNow{Repo: "other"}, nil},
		{"another branch", &messages.PollNow{Branch: "gh-pages"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := registeredWith(t)
			w.advance(time.Second) // well before the next poll round
			assert.Equal(t, tt.want, polls(w.step(dispAddr, tt.msg)))
		})
	}
}

func TestPollNowDuringAPollPollsOnceMore(t *testing.T) {
	w := registeredWith(t)
	w.advance(pollEvery)
	require.Equal(t, []string{"main@" + coretest.Commit(1), "dev@"}, polls(w.tick()))

	assert.Empty(t, polls(w.step(dispAddr, &messages.PollNow{Branch: "main"})), "not twice at once")
	assert.Empty(t, polls(w.step(dispAddr, &messages.PollNow{Branch: "main"})))

	fx := w.polled("main")
	assert.Equal(t, []string{"main@" + coretest.Commit(1)}, polls(fx), "one more look after the answer")
	assert.Empty(t, polls(w.polled("main")), "and only one")
	assert.Empty(t, polls(w.polled("dev")))
}

func TestPollErrorAndNothingNew(t *testing.T) {
	w := registeredWith(t)
	w.advance(pollEvery)
	w.tick()

	fx := w.step("", observer.Polled{Repo: repoURL, Branch: "main", Err: "fatal: not a git repository"})
	assert.Empty(t, observed(fx))
	assert.NotEmpty(t, coretest.EffectsOf[actors.Note](fx), "the error is logged")

	fx = w.step("", observer.Polled{Repo: repoURL, Branch: "dev", Tip: coretest.Commit(1), Commits: nil})
	assert.Empty(t, observed(fx))

	w.advance(pollEvery)
	assert.Equal(t, []string{"main@" + coretest.Commit(1), "dev@"}, polls(w.tick()), "both polled again next round")
}

func TestDispatcherLostBeyondGraceExits(t *testing.T) {
	w := registeredWith(t)
	w.advance(pollEvery)
	w.tick()
	w.polled("dev")
	w.polled("main", coretest.Commit(2))
	lost := w.now

	fx := w.step("", actors.PeerTerminated{Addr: dispAddr, Reason: "connection closed"})
	assert.Len(t, registers(fx), 1)

	var regs int
	var exit *actors.Exit
	var exitAt time.Duration
	for exit == nil && w.now.Sub(lost) < time.Minute {
		w.advance(50 * time.Millisecond)
		fx := w.tick()
		regs += len(registers(fx))
		assert.Empty(t, observed(fx), "nothing is resent to a lost dispatcher")
		assert.Empty(t, polls(fx))
		if e := coretest.EffectsOf[actors.Exit](fx); len(e) > 0 {
			exit, exitAt = &e[0], w.now.Sub(lost)
		}
	}
	require.NotNil(t, exit)
	assert.Equal(t, 10*time.Second, exitAt)
	assert.Equal(t, 1, exit.Code)
	assert.Contains(t, exit.Reason, "127.0.0.1:8000")
	assert.Greater(t, regs, 5, "kept trying to register within the grace")
	assert.Equal(t, coretest.Commit(1), w.c.Cursor(repoURL, "main"), "exits with the acknowledged cursor")
	assert.Empty(t, w.tick())
}

func TestReRegistrationResetsCursorsToTheDispatchers(t *testing.T) {
	w := registeredWith(t)
	w.advance(pollEvery)
	w.tick()
	w.polled("dev")
	m := observed(w.polled("main", coretest.Commit(2), coretest.Commit(3)))[0]

	w.advance(100 * time.Millisecond)
	w.step("", actors.PeerTerminated{Addr: dispAddr})
	w.advance(500 * time.Millisecond)
	fx := w.register(cursor("main", coretest.Commit(2)), cursor("dev", coretest.Commit(5)))

	assert.Equal(t, []string{"main@" + coretest.Commit(2), "dev@" + coretest.Commit(5)}, polls(fx), "the dispatcher's cursors are the truth")
	assert.Equal(t, coretest.Commit(2), w.c.Cursor(repoURL, "main"))
	assert.Equal(t, coretest.Commit(5), w.c.Cursor(repoURL, "dev"))
	assert.Empty(t, w.ack(m, coretest.Commit(3)), "the old in-flight message is forgotten")
	w.advance(time.Minute)
	assert.Empty(t, observed(w.tick()), "and not resent")
}

func TestGiveUpOnZeroGraceOnlyAfterTrying(t *testing.T) {
	// Grace 0 ("at once") counts from a lost dispatcher: the first
	// registration still gets Link.StartWindow.
	w := newWorld(t, 0)
	assert.Len(t, registers(w.fx), 1)
	assert.Empty(t, coretest.EffectsOf[actors.Exit](w.fx))
}

// --- Identity: the sender a connection proved, never the one a message claims ---

var (
	unauthenticated = actors.Identity{}
	aRunner         = actors.Identity{Role: actors.RoleRunner, Name: "mallory"}
	anObserver      = actors.Identity{Role: actors.RoleObserver, Name: "obs-host"}
	aReporter       = actors.Identity{Role: actors.RoleReporter, Name: "rep-host"}
	anAdmin         = actors.Identity{Role: actors.RoleAdmin, Name: "ops"}
	aNotify         = actors.Identity{Role: actors.RoleNotify, Name: "git-host"}
	theDispatcher   = actors.Identity{Role: actors.RoleDispatcher, Name: "disp-host"}
)

// TestForgeriesChangeNothingAndGetNoAnswer: a message from an identity that
// may not send it changes nothing and gets no answer, even from the
// dispatcher's address with every id right.
func TestForgeriesChangeNothingAndGetNoAnswer(t *testing.T) {
	// inFlight is registered with main's commits 2..3 sent and not acknowledged.
	inFlight := func(t *testing.T) (*world, *messages.CommitObserved) {
		w := registeredWith(t)
		w.advance(pollEvery)
		w.tick()
		sent := observed(w.polled("main", coretest.Commit(2), coretest.Commit(3)))
		require.Len(t, sent, 1)
		w.polled("dev")
		return w, sent[0]
	}
	ack := func(m *messages.CommitObserved) any {
		return &messages.CommitObservedAck{ObserverId: m.ObserverId, Seq: m.Seq, Repo: m.Repo, Branch: m.Branch, Cursor: coretest.Commit(3)}
	}
	cases := []struct {
		name string
		who  actors.Identity
		addr actors.Addr
		msg  func(*messages.CommitObserved) any
	}{
		{"ack unauthenticated", unauthenticated, dispAddr, ack},
		{"ack from a runner", aRunner, dispAddr, ack},
		{"ack from the reporter", aReporter, dispAddr, ack},
		{"ack from another observer", anObserver, dispAddr, ack},
		{"'unknown, register again' from a notify certificate", aNotify, dispAddr, func(m *messages.CommitObserved) any {
			return &messages.CommitObservedAck{ObserverId: m.ObserverId, Seq: m.Seq, Repo: m.Repo, Branch: m.Branch, Unknown: true}
		}},
		{"registration refused, unauthenticated", unauthenticated, dispAddr, func(*messages.CommitObserved) any {
			return &messages.ObserverRegistered{Reason: "go away"}
		}},
		{"registration refused, from a runner", aRunner, dispAddr, func(*messages.CommitObserved) any {
			return &messages.ObserverRegistered{Reason: "go away"}
		}},
		{"poll now, unauthenticated", unauthenticated, dispAddr, func(*messages.CommitObserved) any { return &messages.PollNow{} }},
		{"poll now, from a notify certificate (it must go through the dispatcher)", aNotify, dispAddr, func(*messages.CommitObserved) any {
			return &messages.PollNow{Branch: "dev"}
		}},
		{"poll now, from admin", anAdmin, dispAddr, func(*messages.CommitObserved) any { return &messages.PollNow{Branch: "dev"} }},
		{"status unauthenticated", unauthenticated, "evil:1/x", func(*messages.CommitObserved) any { return &messages.StatusRequest{} }},
		{"status from a runner", aRunner, "evil:1/x", func(*messages.CommitObserved) any { return &messages.StatusRequest{} }},
		{"status from a notify certificate", aNotify, "evil:1/x", func(*messages.CommitObserved) any { return &messages.StatusRequest{} }},
		{"a message no one sends an observer, from the dispatcher", theDispatcher, dispAddr, func(*messages.CommitObserved) any {
			return &messages.HeartbeatAck{RunnerId: "obs", Unknown: true}
		}},
		{"a tick from the network", aRunner, "", func(*messages.CommitObserved) any { return actors.Tick{} }},
		{"a poll's answer from the network", theDispatcher, "", func(*messages.CommitObserved) any {
			return observer.Polled{Repo: repoURL, Branch: "dev", Tip: coretest.Commit(9), Commits: []string{coretest.Commit(9)}}
		}},
		{"the dispatcher gone, said by no one", unauthenticated, "", func(*messages.CommitObserved) any {
			return actors.PeerTerminated{Addr: dispAddr}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, m := inFlight(t)
			w.advance(pollEvery) // a poll round and a resend are due: a forged input must not start them
			msg := tc.msg(m)
			before := w.c.Digest()

			fx := w.stepAs(actors.From{Addr: tc.addr, Who: tc.who}, msg)

			require.Len(t, fx, 1, "a note and nothing else: %v", fx)
			note, ok := fx[0].(actors.Note)
			require.True(t, ok, "%T", fx[0])
			assert.Equal(t, slog.LevelWarn, note.Level)
			assert.Contains(t, fmt.Sprint(note.Args...), actors.TypeName(msg), "the note names the message type")
			assert.Equal(t, before, w.c.Digest(), "no state changed")
			assert.EqualValues(t, 1, w.c.Refused(), "the refusal is counted")
			assert.Equal(t, coretest.Commit(1), w.c.Cursor(repoURL, "main"))
		})
	}
}

func TestStatusForWhoMayAsk(t *testing.T) {
	for _, who := range []actors.Identity{anAdmin, theDispatcher, aReporter, actors.Local} {
		t.Run(who.String(), func(t *testing.T) {
			w := newWorld(t, 10*time.Second)
			fx := w.stepAs(actors.From{Addr: "ops:1/cli", Who: who}, &messages.StatusRequest{})
			replies := coretest.EffectsOf[actors.Send](fx)
			require.Len(t, replies, 1)
			assert.IsType(t, &messages.StatusReply{}, replies[0].Msg)
		})
	}
}

// --- Pipelines: each commit's .volt.yml, expanded, travels with it ---

func pipelineOf(keys ...string) *messages.Pipeline {
	p := &messages.Pipeline{}
	for i, k := range keys {
		j := &messages.PipelineJob{Key: k, Name: k}
		if i > 0 {
			j.Needs = []int32{int32(i - 1)}
		}
		p.Jobs = append(p.Jobs, j)
	}
	return p
}

func TestPipelinesTravelWithTheirCommits(t *testing.T) {
	c := coretest.Commit
	broken := &messages.Pipeline{Error: ".volt.yml line 3, column 5: a: needs: no job is named \"b\""}
	tests := []struct {
		name      string
		pipelines []*messages.Pipeline
		want      []*messages.Pipeline
	}{
		{"none read: the single-list format", nil, nil},
		{"all single-list: nothing more on the wire than before", []*messages.Pipeline{{}, {}, {}}, nil},
		{"trailing single-list ones are left off", []*messages.Pipeline{pipelineOf("lint", "test"), {}, nil}, []*messages.Pipeline{pipelineOf("lint", "test")}},
		{"a single-list one before a pipeline is kept, nil made empty", []*messages.Pipeline{nil, {}, broken}, []*messages.Pipeline{{}, {}, broken}},
		{"every one", []*messages.Pipeline{pipelineOf("a"), broken, pipelineOf("b", "c")}, []*messages.Pipeline{pipelineOf("a"), broken, pipelineOf("b", "c")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := registeredWith(t)
			w.advance(pollEvery)
			w.tick()
			w.polled("dev")
			fx := w.step("", observer.Polled{Repo: repoURL, Branch: "main", Tip: c(4), Commits: []string{c(2), c(3), c(4)}, Pipelines: tt.pipelines})
			sent := observed(fx)
			require.Len(t, sent, 1)
			assert.Equal(t, []string{c(2), c(3), c(4)}, sent[0].Commits)
			require.Len(t, sent[0].Pipelines, len(tt.want))
			for i := range tt.want {
				assert.True(t, proto.Equal(tt.want[i], sent[0].Pipelines[i]), "pipeline %d: %v", i, sent[0].Pipelines[i])
			}
			_, err := proto.Marshal(sent[0])
			assert.NoError(t, err, "it goes on the wire")

			w.advance(time.Second)
			resent := observed(w.tick())
			require.Len(t, resent, 1)
			assert.True(t, proto.Equal(sent[0], resent[0]), "a resend carries the same pipelines")
		})
	}
}

// bigPipeline is a pipeline of about size bytes on the wire.
func bigPipeline(size int) *messages.Pipeline {
	return &messages.Pipeline{Jobs: []*messages.PipelineJob{{Key: "k", Name: strings.Repeat("n", size)}}}
}

// TestLargePipelinesAreSentOldestFirstInParts: a backlog whose pipelines
// would not fit in one message is sent in parts, oldest first; the rest
// follow from the acknowledged cursor, and no commit is skipped.
func TestLargePipelinesAreSentOldestFirstInParts(t *testing.T) {
	c := coretest.Commit
	w := registeredWith(t)
	w.advance(pollEvery)
	w.tick()
	w.polled("dev")
	third := observer.MaxPipelineBytes / 3
	all := []string{c(2), c(3), c(4), c(5), c(6)}
	pipes := []*messages.Pipeline{bigPipeline(third), bigPipeline(third), {}, bigPipeline(third), bigPipeline(third)}

	fx := w.step("", observer.Polled{Repo: repoURL, Branch: "main", Tip: c(6), Commits: all, Subjects: []string{"s2", "s3", "s4", "s5", "s6"}, Pipelines: pipes})
	sent := observed(fx)
	require.Len(t, sent, 1)
	assert.Equal(t, []string{c(2), c(3), c(4)}, sent[0].Commits, "the oldest that fit")
	assert.Equal(t, []string{"s2", "s3", "s4"}, sent[0].Subjects)
	assert.Len(t, sent[0].Pipelines, 2, "the third is single-list")
	assert.Less(t, proto.Size(sent[0]), 4<<20, "within the wire's limit")
	assert.NotEmpty(t, coretest.EffectsOf[actors.Note](fx), "the split is noted")

	assert.Equal(t, []string{"main@" + c(4)}, polls(w.ack(sent[0], c(4))), "the rest from the new cursor")
	sent = observed(w.step("", observer.Polled{Repo: repoURL, Branch: "main", Tip: c(6), Commits: all[3:], Pipelines: pipes[3:]}))
	require.Len(t, sent, 1)
	assert.Equal(t, []string{c(5), c(6)}, sent[0].Commits)
	assert.Equal(t, c(4), sent[0].Previous)

	// One pipeline larger than the budget still goes, alone.
	w.ack(sent[0], c(6))
	huge := []*messages.Pipeline{bigPipeline(observer.MaxPipelineBytes + 1), {}}
	sent = observed(w.step("", observer.Polled{Repo: repoURL, Branch: "main", Tip: c(8), Commits: []string{c(7), c(8)}, Pipelines: huge}))
	require.Len(t, sent, 1)
	assert.Equal(t, []string{c(7)}, sent[0].Commits)
}
