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

type input struct {
	after time.Duration // advance the clock by this much first
	from  actors.Addr
	msg   any
}

// scenario exercises most handlers: many runners tied on idleSince (so
// assignment order rests on sorting, not map order), several lost at once,
// stale and duplicate messages, a reporter arriving late.
func scenario() []input {
	var in []input
	add := func(after time.Duration, from actors.Addr, msg any) {
		in = append(in, input{after, from, msg})
	}
	add(0, obsAddr, &messages.RegisterObserver{ObserverId: "o", ProtocolVersion: messages.ProtocolVersion,
		Repos: []*messages.WatchedRepo{{Url: repoURL, Name: repoName, Branches: []string{"main", "release"}}}})
	var ids []string
	for i := 8; i >= 1; i-- {
		id := fmt.Sprintf("r%d", i)
		ids = append(ids, id)
		add(0, runnerAddr(id), &messages.RegisterRunner{RunnerId: id, Incarnation: 1, ProtocolVersion: messages.ProtocolVersion})
	}
	var commits []string
	for i := 1; i <= 12; i++ {
		commits = append(commits, coretest.Commit(i))
	}
	add(0, obsAddr, &messages.CommitObserved{Seq: 1, Repo: repoURL, RepoName: repoName, Branch: "main", Commits: commits})
	add(0, obsAddr, &messages.CommitObserved{Seq: 2, Repo: repoURL, RepoName: repoName, Branch: "release", Commits: commits[3:5]})
	// Only the even runners heartbeat: the odd ones die together.
	for s := 1; s <= 4; s++ {
		for _, id := range ids {
			var n int
			fmt.Sscanf(id, "r%d", &n)
			if n%2 == 0 {
				add(0, runnerAddr(id), &messages.Heartbeat{RunnerId: id, Incarnation: 1, Seq: uint64(s)})
			}
		}
		add(time.Second, "", actors.Tick{})
	}
	for j := int64(1); j <= 12; j++ {
		for _, id := range ids {
			for a := int32(1); a <= 2; a++ {
				add(0, runnerAddr(id), &messages.JobFinished{RunnerId: id, Incarnation: 1,
					Result: &messages.Result{Job: &messages.Job{Id: j}, Attempt: a, Status: messages.Status_STATUS_PASSED}})
			}
		}
	}
	add(time.Second, repAddr, &messages.RegisterReporter{ProtocolVersion: messages.ProtocolVersion})
	add(0, repAddr, &messages.ResultRecordedAck{JobId: 2, Repo: repoURL, Commit: coretest.Commit(2), Build: 1})
	add(time.Second, "", actors.Tick{})
	add(0, cliAddr, &messages.Notify{Repo: repoName})
	add(0, "", actors.PeerTerminated{Addr: runnerAddr("r2")})
	add(0, cliAddr, &messages.StatusRequest{})
	return in
}

func requireSameEffects(t *testing.T, step int, a, b []actors.Effect) {
	t.Helper()
	require.Equal(t, len(a), len(b), "step %d: effect counts differ:\n%v\n%v", step, a, b)
	for i := range a {
		where := fmt.Sprintf("step %d effect %d", step, i)
		require.IsType(t, a[i], b[i], where)
		switch x := a[i].(type) {
		case actors.Send:
			y := b[i].(actors.Send)
			require.Equal(t, x.To, y.To, where)
			require.True(t, proto.Equal(x.Msg, y.Msg), "%s:\n%v\n%v", where, x.Msg, y.Msg)
		case dispatcher.Persist:
			y := b[i].(dispatcher.Persist)
			require.Equal(t, len(x.Jobs), len(y.Jobs), where)
			for k := range x.Jobs {
				require.True(t, proto.Equal(x.Jobs[k], y.Jobs[k]), "%s:\n%v\n%v", where, x.Jobs[k], y.Jobs[k])
			}
			require.Equal(t, len(x.Cursors), len(y.Cursors), where)
			for k := range x.Cursors {
				require.True(t, proto.Equal(x.Cursors[k], y.Cursors[k]), where)
			}
		default:
			require.Equal(t, a[i], b[i], where)
		}
	}
}

func TestSameInputsSameEffects(t *testing.T) {
	a := dispatcher.New(dispatcher.DefaultConfig())
	b := dispatcher.New(dispatcher.DefaultConfig())
	requireSameEffects(t, -1, a.Recover(coretest.T0, dispatcher.Durable{}), b.Recover(coretest.T0, dispatcher.Durable{}))

	now := coretest.T0
	total, runJobs := 0, 0
	ins, twins := scenario(), scenario() // separate messages: a core may keep what it is given
	for i, in := range ins {
		now = now.Add(in.after)
		fa := a.Step(now, sender(in.from, in.msg), in.msg)
		fb := b.Step(now, sender(in.from, twins[i].msg), twins[i].msg)
		requireSameEffects(t, i, fa, fb)
		total += len(fa)
		runJobs += len(coretest.Sends[*messages.RunJob](fa))
	}
	require.Greater(t, runJobs, 8, "the scenario reassigns jobs, so ordering matters")
	require.Greater(t, total, 100)
	require.True(t, proto.Equal(a.Status(), b.Status()))
}
