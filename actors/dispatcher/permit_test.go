package dispatcher_test

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
	"google.golang.org/protobuf/proto"
)

// --- Identity: the sender a connection proved, never the one a message claims ---

var (
	unauthenticated = actors.Identity{}
	mallory         = actors.Identity{Role: actors.RoleRunner, Name: "mallory"}
	asR2            = actors.Identity{Role: actors.RoleRunner, Name: "r2"}
	anObserver      = actors.Identity{Role: actors.RoleObserver, Name: "obs-host"}
	aReporter       = actors.Identity{Role: actors.RoleReporter, Name: "rep-host"}
	anAdmin         = actors.Identity{Role: actors.RoleAdmin, Name: "ops"}
	aNotify         = actors.Identity{Role: actors.RoleNotify, Name: "git-host"}
	aDispatcher     = actors.Identity{Role: actors.RoleDispatcher, Name: "other"}
)

// busyWorld has an observer, a reporter, runner r1 (incarnation 1) running
// job 2's attempt 1, job 3 queued and one result (job 1's, of commit 3)
// awaiting the reporter's acknowledgement: something for every forgery to
// aim at.
func busyWorld(t *testing.T) *world {
	cfg := dispatcher.DefaultConfig()
	cfg.Epoch = 42
	cfg.Token = "s3cret"
	w := newWorld(t, cfg)
	w.step(obsAddr, &messages.RegisterObserver{ObserverId: "o", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret",
		Repos: []*messages.WatchedRepo{{Url: repoURL, Name: repoName, Branches: []string{"main"}}}})
	w.step(repAddr, &messages.RegisterReporter{ReporterId: "rep", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"})
	w.step(runnerAddr("r1"), &messages.RegisterRunner{RunnerId: "r1", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"})
	w.observe("main", "", coretest.Commit(3))
	w.advance(time.Second)
	w.finish("r1", 1, 1, 1, messages.Status_STATUS_PASSED)
	w.observe("main", coretest.Commit(3), coretest.Commit(1), coretest.Commit(2))
	require.Equal(t, messages.JobState_JOB_STATE_DONE, w.job(1).State)
	require.Equal(t, messages.JobState_JOB_STATE_RUNNING, w.job(2).State)
	require.Equal(t, messages.JobState_JOB_STATE_QUEUED, w.job(3).State)
	return w
}

// TestForgeriesChangeNothingAndGetNoAnswer: every message from an identity
// that may not send it (the wrong role, the right role with another name,
// or no certificate at all) changes no state, gets no answer and leaks
// nothing, is counted and noted with the identity, type and reason, even
// when the claimed sender and every id in it are the real ones.
func TestForgeriesChangeNothingAndGetNoAnswer(t *testing.T) {
	r1 := runnerAddr("r1")
	running := &messages.JobFinished{RunnerId: "r1", Incarnation: 1, Result: &messages.Result{
		Job: &messages.Job{Id: 2}, Attempt: 1, Status: messages.Status_STATUS_PASSED}}
	observed := func() any {
		return dispatcher.Observed{Msg: &messages.CommitObserved{ObserverId: "o", Seq: 9, Repo: repoURL, RepoName: repoName,
			Branch: "main", Previous: coretest.Commit(2), Commits: []string{coretest.Commit(66)}}}
	}
	cases := []struct {
		name string
		who  actors.Identity
		addr actors.Addr
		msg  func() any
	}{
		{"register as r1 unauthenticated", unauthenticated, r1, func() any {
			return &messages.RegisterRunner{RunnerId: "r1", Incarnation: 2, ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"register as r1 with another runner's certificate", mallory, r1, func() any {
			return &messages.RegisterRunner{RunnerId: "r1", Incarnation: 2, ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"register as r1 with an observer's certificate", anObserver, r1, func() any {
			return &messages.RegisterRunner{RunnerId: "r1", Incarnation: 2, ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"heartbeat of r1 unauthenticated", unauthenticated, r1, func() any {
			return &messages.Heartbeat{RunnerId: "r1", Incarnation: 1, Seq: 9, Running: []*messages.JobRef{ref(2, 1)}}
		}},
		{"heartbeat of r1 from r2", asR2, r1, func() any {
			return &messages.Heartbeat{RunnerId: "r1", Incarnation: 1, Seq: 9, Running: []*messages.JobRef{ref(2, 1)}}
		}},
		{"heartbeat of an unknown runner from another runner", mallory, "mallory:1/x", func() any {
			return &messages.Heartbeat{RunnerId: "r9", Incarnation: 1, Seq: 1}
		}},
		{"heartbeat of r1 with a dispatcher's certificate", aDispatcher, r1, func() any {
			return &messages.Heartbeat{RunnerId: "r1", Incarnation: 1, Seq: 9}
		}},
		{"r1's result unauthenticated", unauthenticated, r1, func() any { return proto.Clone(running) }},
		{"r1's result from r2", asR2, r1, func() any { return proto.Clone(running) }},
		{"r1's result from another runner", mallory, r1, func() any { return proto.Clone(running) }},
		{"r1's result with an observer's certificate", anObserver, r1, func() any { return proto.Clone(running) }},
		{"r1's result with an admin's certificate", anAdmin, r1, func() any { return proto.Clone(running) }},
		{"r1 stopping unauthenticated", unauthenticated, r1, func() any {
			return &messages.RunnerStopping{RunnerId: "r1", Incarnation: 1, Released: []*messages.JobRef{ref(2, 1)}}
		}},
		{"r1 stopping from another runner", mallory, r1, func() any {
			return &messages.RunnerStopping{RunnerId: "r1", Incarnation: 1}
		}},
		{"r1 stopping with the reporter's certificate", aReporter, r1, func() any {
			return &messages.RunnerStopping{RunnerId: "r1", Incarnation: 1}
		}},
		{"register an observer unauthenticated", unauthenticated, "evil:1/observer", func() any {
			return &messages.RegisterObserver{ObserverId: "o2", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"register an observer with a runner's certificate", mallory, obsAddr, func() any {
			return &messages.RegisterObserver{ObserverId: "o", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"register an observer with a notify certificate", aNotify, obsAddr, func() any {
			return &messages.RegisterObserver{ObserverId: "o", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"commits unauthenticated", unauthenticated, obsAddr, observed},
		{"commits with a runner's certificate", mallory, obsAddr, observed},
		{"commits with an admin's certificate", anAdmin, obsAddr, observed},
		{"raw commits with a notify certificate", aNotify, obsAddr, func() any {
			return &messages.CommitObserved{ObserverId: "o", Seq: 9, Repo: repoURL, Branch: "main", Commits: []string{coretest.Commit(66)}}
		}},
		{"register a reporter unauthenticated", unauthenticated, "evil:1/reporter", func() any {
			return &messages.RegisterReporter{ReporterId: "evil", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"register a reporter with an observer's certificate", anObserver, "evil:1/reporter", func() any {
			return &messages.RegisterReporter{ReporterId: "evil", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}
		}},
		{"result acknowledged unauthenticated", unauthenticated, repAddr, func() any {
			return &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: coretest.Commit(3), Build: 1}
		}},
		{"result acknowledged by a runner", mallory, repAddr, func() any {
			return &messages.ResultRecordedAck{JobId: 1, Repo: repoURL, Commit: coretest.Commit(3), Build: 1}
		}},
		{"notify unauthenticated", unauthenticated, cliAddr, func() any { return &messages.Notify{Token: "s3cret"} }},
		{"notify from a runner", mallory, cliAddr, func() any { return &messages.Notify{Token: "s3cret"} }},
		{"status unauthenticated", unauthenticated, cliAddr, func() any { return &messages.StatusRequest{Token: "s3cret"} }},
		{"status from a runner", mallory, cliAddr, func() any { return &messages.StatusRequest{Token: "s3cret"} }},
		{"status from an observer", anObserver, cliAddr, func() any { return &messages.StatusRequest{} }},
		{"status from a notify certificate", aNotify, cliAddr, func() any { return &messages.StatusRequest{} }},
		{"cancel unauthenticated", unauthenticated, cliAddr, func() any { return &messages.CancelRequest{JobId: 2, Token: "s3cret"} }},
		{"cancel from a runner", asR2, cliAddr, func() any { return &messages.CancelRequest{JobId: 3, Token: "s3cret"} }},
		{"cancel from a notify certificate", aNotify, cliAddr, func() any { return &messages.CancelRequest{JobId: 3, Token: "s3cret"} }},
		{"rebuild unauthenticated", unauthenticated, cliAddr, func() any {
			return dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: coretest.Commit(3), Token: "s3cret"},
				Prev: []*messages.Job{{Id: 1, Repo: repoURL, Commit: coretest.Commit(3), Build: 1}}}
		}},
		{"rebuild from an observer", anObserver, cliAddr, func() any {
			return dispatcher.Rebuild{Msg: &messages.RebuildRequest{Repo: repoURL, Commit: coretest.Commit(3), Token: "s3cret"},
				Prev: []*messages.Job{{Id: 1, Repo: repoURL, Commit: coretest.Commit(3), Build: 1}}}
		}},
		{"a message no one sends the dispatcher, from the dispatcher's own certificate", aDispatcher, r1, func() any {
			return &messages.RunJob{Job: &messages.Job{Id: 3}, Attempt: 1, RunnerId: "r1", Incarnation: 1}
		}},
		{"a tick from the network", mallory, r1, func() any { return actors.Tick{} }},
		{"r1 terminated, said by r2", asR2, r1, func() any { return actors.PeerTerminated{Addr: r1} }},
		{"r1 terminated, said by no one", unauthenticated, "", func() any { return actors.PeerTerminated{Addr: r1} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := busyWorld(t)
			w.advance(2500 * time.Millisecond) // r1 is near its deadline: a forged heartbeat would matter
			before, status := w.d.Digest(), w.d.Status()
			refused := w.d.Counter(dispatcher.CounterForgedRefused)

			fx := w.stepAs(actors.From{Addr: tc.addr, Who: tc.who}, tc.msg())

			require.Len(t, fx, 1, "a note and nothing else: %v", fx)
			note, ok := fx[0].(actors.Note)
			require.True(t, ok, "%T", fx[0])
			assert.Equal(t, slog.LevelWarn, note.Level)
			assert.Contains(t, fmt.Sprint(note.Args...), identityLabel(tc.who), "the note names the identity")
			assert.Contains(t, fmt.Sprint(note.Args...), actors.TypeName(tc.msg()), "the note names the message type")
			assert.Equal(t, before, w.d.Digest(), "no state changed")
			after := w.d.Status()
			delete(after.Counters, dispatcher.CounterForgedRefused)
			assert.True(t, proto.Equal(status, after), "the status is the same")
			assert.Equal(t, refused+1, w.d.Counter(dispatcher.CounterForgedRefused), "the refusal is counted")
		})
	}
}

func identityLabel(id actors.Identity) string {
	if id.Role == "" {
		return "unauthenticated"
	}
	return id.String()
}

// TestRightfulSendersAreServed: the same messages from who may send them.
func TestRightfulSendersAreServed(t *testing.T) {
	cases := []struct {
		name string
		who  actors.Identity
		msg  any
		want func(*testing.T, []actors.Effect)
	}{
		{"status for the reporter (the web UI)", aReporter, &messages.StatusRequest{}, func(t *testing.T, fx []actors.Effect) {
			assert.Len(t, coretest.Sends[*messages.StatusReply](fx), 1)
		}},
		{"status for admin", anAdmin, &messages.StatusRequest{}, func(t *testing.T, fx []actors.Effect) {
			assert.Len(t, coretest.Sends[*messages.StatusReply](fx), 1)
		}},
		{"status for this process", actors.Local, &messages.StatusRequest{}, func(t *testing.T, fx []actors.Effect) {
			assert.Len(t, coretest.Sends[*messages.StatusReply](fx), 1)
		}},
		{"notify from an observer (its webhook)", anObserver, &messages.Notify{Token: "s3cret"}, func(t *testing.T, fx []actors.Effect) {
			assert.Len(t, coretest.Sends[*messages.PollNow](fx), 1)
		}},
		{"notify from the reporter (the webhook)", aReporter, &messages.Notify{Token: "s3cret"}, func(t *testing.T, fx []actors.Effect) {
			assert.Len(t, coretest.Sends[*messages.PollNow](fx), 1)
		}},
		{"cancel from the reporter", aReporter, &messages.CancelRequest{JobId: 3, Token: "s3cret"}, func(t *testing.T, fx []actors.Effect) {
			require.Len(t, coretest.Sends[*messages.CancelReply](fx), 1)
			assert.Empty(t, coretest.Sends[*messages.CancelReply](fx)[0].Error)
		}},
		{"cancel from admin still needs the token", anAdmin, &messages.CancelRequest{JobId: 3, Token: "nope"}, func(t *testing.T, fx []actors.Effect) {
			require.Len(t, coretest.Sends[*messages.CancelReply](fx), 1)
			assert.Contains(t, coretest.Sends[*messages.CancelReply](fx)[0].Error, "token")
			assert.Empty(t, persisted(fx))
		}},
		{"r1's heartbeat from r1", actors.Identity{Role: actors.RoleRunner, Name: "r1"},
			&messages.Heartbeat{RunnerId: "r1", Incarnation: 1, Seq: 9, Running: []*messages.JobRef{ref(2, 1)}}, func(t *testing.T, fx []actors.Effect) {
				acks := coretest.Sends[*messages.HeartbeatAck](fx)
				require.Len(t, acks, 1)
				assert.EqualValues(t, 42, acks[0].Epoch, "a registered runner learns the epoch")
			}},
		{"r2 registers as itself from this process", actors.Local,
			&messages.RegisterRunner{RunnerId: "r2", Incarnation: 1, ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"}, func(t *testing.T, fx []actors.Effect) {
				regs := coretest.Sends[*messages.RunnerRegistered](fx)
				require.Len(t, regs, 1)
				assert.True(t, regs[0].Accepted)
				assert.Equal(t, []string{"3/1->r2@1 via " + string(cliAddr)}, runJobs(fx))
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := busyWorld(t)
			fx := w.stepAs(actors.From{Addr: cliAddr, Who: tc.who}, tc.msg)
			tc.want(t, fx)
			assert.Zero(t, w.d.Counter(dispatcher.CounterForgedRefused))
		})
	}
}

// TestUnknownRunnerLearnsNoEpoch: a runner the dispatcher does not know (it
// restarted) is told to register again, and nothing more: the epoch goes
// only to a registered runner.
func TestUnknownRunnerLearnsNoEpoch(t *testing.T) {
	r9 := actors.Identity{Role: actors.RoleRunner, Name: "r9"}
	w := busyWorld(t)
	fx := w.stepAs(actors.From{Addr: runnerAddr("r9"), Who: r9}, &messages.Heartbeat{RunnerId: "r9", Incarnation: 1, Seq: 1})
	acks := coretest.Sends[*messages.HeartbeatAck](fx)
	require.Len(t, acks, 1)
	assert.True(t, acks[0].Unknown)
	assert.Zero(t, acks[0].Epoch, "no epoch for a runner not registered")

	r := recovered(t, runningRecord(7, "r1", 5, 3))
	fx = r.stepAs(actors.From{Addr: runnerAddr("r1"), Who: actors.Identity{Role: actors.RoleRunner, Name: "r1"}},
		&messages.JobFinished{RunnerId: "r1", Incarnation: 5, Result: &messages.Result{Job: &messages.Job{Id: 7}, Attempt: 3}})
	acks = coretest.Sends[*messages.HeartbeatAck](fx)
	require.Len(t, acks, 1)
	assert.True(t, acks[0].Unknown)
	assert.Zero(t, acks[0].Epoch, "no epoch for a runner not registered")
}
