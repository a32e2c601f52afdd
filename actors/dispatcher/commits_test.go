package dispatcher_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
	"google.golang.org/protobuf/proto"
)

// --- CommitObserved ---

func TestCommitObservedQueuesOneJobPerCommitPersistedBeforeAck(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)

	fx := w.observe("main", "", coretest.Commit(1), coretest.Commit(2), coretest.Commit(3))

	ps := persisted(fx)
	require.Len(t, ps, 1)
	var commits []string
	var ids []int64
	for _, j := range ps[0].Jobs {
		commits = append(commits, j.Job.Commit)
		ids = append(ids, j.Job.Id)
		assert.Equal(t, messages.JobState_JOB_STATE_QUEUED, j.State)
		assert.Equal(t, []string{"main"}, j.Job.Branches)
		assert.EqualValues(t, 1, j.Job.Build)
		assert.Equal(t, repoURL, j.Job.Repo)
	}
	assert.Equal(t, []string{coretest.Commit(1), coretest.Commit(2), coretest.Commit(3)}, commits, "one job per commit, oldest first")
	assert.Equal(t, []int64{1, 2, 3}, ids)
	require.Len(t, ps[0].Cursors, 1)
	assert.Equal(t, coretest.Commit(3), ps[0].Cursors[0].Commit, "the cursor moves to the tip")
	assert.Equal(t, "main", ps[0].Cursors[0].Branch)

	acks := coretest.SendsTo[*messages.CommitObservedAck](fx, obsAddr)
	require.Len(t, acks, 1)
	assert.Equal(t, []int64{1, 2, 3}, acks[0].JobIds)
	assert.Equal(t, coretest.Commit(3), acks[0].Cursor)
	assert.EqualValues(t, 1, acks[0].Seq)
	assert.Equal(t, "main", acks[0].Branch)

	persistAt := firstIndex(fx, func(e actors.Effect) bool { _, ok := e.(dispatcher.Persist); return ok })
	ackAt := firstIndex(fx, isSendOf[*messages.CommitObservedAck]())
	assert.Less(t, persistAt, ackAt, "jobs and cursor are durable before the observer hears of them")

	assert.EqualValues(t, 3, w.d.Counter(dispatcher.CounterJobsQueued))
	assert.EqualValues(t, 3, w.queued())
	assert.Empty(t, runJobs(fx), "no runner, no assignment")
}

func TestCommitObservedDuplicateCreatesNoJob(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	msg := w.observed("main", "", coretest.Commit(1), coretest.Commit(2))
	w.step(obsAddr, msg)

	fx := w.step(obsAddr, proto.Clone(msg)) // the observer's resend

	assert.Empty(t, persisted(fx), "nothing new to persist")
	acks := coretest.SendsTo[*messages.CommitObservedAck](fx, obsAddr)
	require.Len(t, acks, 1)
	assert.Equal(t, []int64{1, 2}, acks[0].JobIds, "the duplicate is acknowledged with the same jobs")
	assert.Equal(t, coretest.Commit(2), acks[0].Cursor)
	assert.EqualValues(t, 2, w.d.Counter(dispatcher.CounterJobsQueued))
	assert.Len(t, w.d.Status().Jobs, 2)

	// A newer message moves the cursor; an older one delivered late does not move it back.
	w.observe("main", coretest.Commit(2), coretest.Commit(3))
	fx = w.step(obsAddr, proto.Clone(msg))
	acks = coretest.SendsTo[*messages.CommitObservedAck](fx, obsAddr)
	require.Len(t, acks, 1)
	assert.Equal(t, coretest.Commit(3), acks[0].Cursor, "a reordered old message must not move the cursor back")
	assert.Empty(t, persisted(fx))
}

func TestCommitOnSecondBranchAddsBranchNotJob(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.observe("main", "", coretest.Commit(1), coretest.Commit(2))

	fx := w.observe("release", "", coretest.Commit(2))

	jobs := persistedJobs(fx)
	require.Len(t, jobs, 1)
	assert.EqualValues(t, 2, jobs[0].Job.Id)
	assert.Equal(t, []string{"main", "release"}, jobs[0].Job.Branches)
	acks := coretest.SendsTo[*messages.CommitObservedAck](fx, obsAddr)
	require.Len(t, acks, 1)
	assert.Equal(t, []int64{2}, acks[0].JobIds)
	assert.Equal(t, "release", acks[0].Branch)
	assert.EqualValues(t, 2, w.d.Counter(dispatcher.CounterJobsQueued), "no new job")
	assert.Len(t, w.d.Status().Jobs, 2)

	fx = w.observe("release", coretest.Commit(2), coretest.Commit(2))
	assert.Empty(t, persistedJobs(fx), "a branch already recorded is not added twice")
}

func TestCommitObservedRejected(t *testing.T) {
	tests := []struct {
		name string
		from actors.Addr
		msg  *messages.CommitObserved
	}{
		{"unregistered observer", obs2Addr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "main", Commits: []string{coretest.Commit(1)}}},
		{"commit id that git would read as an option", obsAddr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "main", Commits: []string{"--upload-pack=touch pwned"}}},
		{"one bad commit among good ones", obsAddr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "main", Commits: []string{coretest.Commit(1), "HEAD", coretest.Commit(2)}}},
		{"abbreviated commit id", obsAddr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "main", Commits: []string{"abc1234"}}},
		{"branch that git would read as an option", obsAddr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "-x", Commits: []string{coretest.Commit(1)}}},
		{"empty branch", obsAddr,
			&messages.CommitObserved{Seq: 1, Repo: repoURL, Branch: "", Commits: []string{coretest.Commit(1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, dispatcher.DefaultConfig())
			w.addObserver(obsAddr)
			w.addRunner("r1", 1)

			fx := w.step(tt.from, tt.msg)

			assert.Empty(t, persisted(fx))
			for _, ack := range coretest.Sends[*messages.CommitObservedAck](fx) {
				// The only answer allowed is "register first", which moves no cursor.
				assert.True(t, ack.Unknown, "not acknowledged: the cursor must not advance")
				assert.Empty(t, ack.Cursor)
			}
			assert.Empty(t, runJobs(fx))
			assert.Empty(t, w.d.Status().Jobs)
			assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterRejected))
			assert.NotEmpty(t, coretest.EffectsOf[actors.Note](fx), "a rejection is logged")
		})
	}
}

func TestArchivedCommitsAreNotRequeued(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)

	fx := w.step(obsAddr, dispatcher.Observed{
		Msg:      w.observed("main", "", coretest.Commit(1), coretest.Commit(2)),
		Archived: map[string]*messages.JobRecord{coretest.Commit(1): archivedRecord(41, coretest.Commit(1), "main")},
	})

	ps := persisted(fx)
	require.NotEmpty(t, ps)
	jobs := ps[0].Jobs
	require.Len(t, jobs, 1, "only the commit not archived becomes a job")
	assert.Equal(t, coretest.Commit(2), jobs[0].Job.Commit)
	acks := coretest.SendsTo[*messages.CommitObservedAck](fx, obsAddr)
	require.Len(t, acks, 1)
	assert.Equal(t, []int64{41, 1}, acks[0].JobIds, "the archived commit is answered with its old job")
	assert.Equal(t, []string{"1/1->r1@1"}, runJobs(fx))

	fx = w.step(obsAddr, dispatcher.Observed{
		Msg:      w.observed("release", "", coretest.Commit(3)),
		Archived: map[string]*messages.JobRecord{coretest.Commit(3): archivedRecord(42, coretest.Commit(3), "release")},
	})
	assert.Empty(t, persistedJobs(fx))
	assert.Empty(t, runJobs(fx))
	assert.EqualValues(t, 1, w.d.Counter(dispatcher.CounterJobsQueued))
}

// --- Notify ---

func TestNotifyPollsEveryObserver(t *testing.T) {
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obs2Addr)
	w.addObserver(obsAddr)

	fx := w.step(cliAddr, &messages.Notify{Repo: repoName, Branch: "main"})

	var to []actors.Addr
	for _, e := range coretest.EffectsOf[actors.Send](fx) {
		if m, ok := e.Msg.(*messages.PollNow); ok {
			to = append(to, e.To)
			assert.Equal(t, repoName, m.Repo)
			assert.Equal(t, "main", m.Branch)
		}
	}
	assert.Equal(t, []actors.Addr{obsAddr, obs2Addr}, to, "every observer, in a stable order")
	acks := coretest.SendsTo[*messages.NotifyAck](fx, cliAddr)
	require.Len(t, acks, 1)
	assert.EqualValues(t, 2, acks[0].Observers)

	w.step("", actors.PeerTerminated{Addr: obs2Addr})
	fx = w.step(cliAddr, &messages.Notify{})
	assert.Len(t, coretest.Sends[*messages.PollNow](fx), 1, "a gone observer is not told")
	assert.EqualValues(t, 1, coretest.Sends[*messages.NotifyAck](fx)[0].Observers)
}

func TestNotifyWithWrongTokenRefused(t *testing.T) {
	cfg := dispatcher.DefaultConfig()
	cfg.Token = "s3cret"
	w := newWorld(t, cfg)
	w.step(obsAddr, &messages.RegisterObserver{ObserverId: "o", ProtocolVersion: messages.ProtocolVersion, Token: "s3cret"})

	fx := w.step(cliAddr, &messages.Notify{Repo: repoName, Token: "nope"})
	assert.Empty(t, coretest.Sends[*messages.PollNow](fx))
	require.Len(t, coretest.Sends[*messages.NotifyAck](fx), 1)
	assert.EqualValues(t, -1, coretest.Sends[*messages.NotifyAck](fx)[0].Observers)

	fx = w.step(cliAddr, &messages.Notify{Repo: repoName, Token: "s3cret"})
	assert.Len(t, coretest.Sends[*messages.PollNow](fx), 1)
}

func TestObserverUnknownAfterRestartIsToldToRegister(t *testing.T) {
	// After a dispatcher restart that keeps the PID (an actor restart after a
	// panic) the observer gets no PeerTerminated; the fresh core must tell it
	// to register again rather than ignore it.
	d := dispatcher.New(dispatcher.DefaultConfig())
	d.Recover(coretest.T0, dispatcher.Durable{Cursors: []*messages.Cursor{{Repo: repoURL, Branch: "main", Commit: coretest.Commit(1)}}, MaxID: 1})
	w := &world{t: t, d: d, now: coretest.T0}

	fx := w.observe("main", coretest.Commit(1), coretest.Commit(2))

	assert.NotEmpty(t, coretest.SendsTo[proto.Message](fx, obsAddr),
		"the observer must hear something (e.g. an 'unknown, register again' answer, like HeartbeatAck.unknown)")
}
