package cluster

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/pki"
)

func testGuard(t *testing.T) *guard {
	t.Helper()
	creds, err := pki.Open(pki.Options{Dir: filepath.Join(t.TempDir(), "c"), Identity: pki.Identity{Role: pki.RoleDispatcher, Name: "d"}, Create: true})
	require.NoError(t, err)
	return newGuard(creds, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func streamOf(g *guard, role, name string, hosts ...string) *filteredStream {
	hs := map[string]bool{}
	for _, h := range hosts {
		hs[h] = true
	}
	return &filteredStream{g: g, id: pki.Identity{Role: role, Name: name}, peer: "test", hosts: hs, bound: map[string]bool{}}
}

// batch builds a one-envelope batch of msg to target from sender (nil: none).
func batch(t *testing.T, msg proto.Message, sender *actor.PID, header map[string]string) *remote.MessageBatch {
	t.Helper()
	data, err := proto.Marshal(msg)
	require.NoError(t, err)
	b := &remote.MessageBatch{
		TypeNames: []string{string(proto.MessageName(msg))},
		Targets:   []*actor.PID{actor.NewPID("127.0.0.1:8000", "dispatcher")},
	}
	e := &remote.MessageEnvelope{TypeId: 0, MessageData: data, Target: 0}
	if sender != nil {
		b.Senders = []*actor.PID{sender}
		e.Sender = 1
	}
	if header != nil {
		e.MessageHeader = &remote.MessageHeader{HeaderData: header}
	}
	b.Envelopes = []*remote.MessageEnvelope{e}
	return b
}

func TestGuardDeliversOnlyWhatTheRoleMaySend(t *testing.T) {
	runnerPID := actor.NewPID("127.0.0.1:8901", "runner")
	cases := []struct {
		name    string
		role    string
		msg     proto.Message
		deliver bool
	}{
		{"runner heartbeat", pki.RoleRunner, &messages.Heartbeat{RunnerId: "r1"}, true},
		{"runner finishing a job", pki.RoleRunner, &messages.JobFinished{RunnerId: "r1"}, true},
		{"runner acting as the dispatcher", pki.RoleRunner, &messages.RunJob{RunnerId: "r2"}, false},
		{"runner cancelling", pki.RoleRunner, &messages.CancelJob{}, false},
		{"runner acting as the observer", pki.RoleRunner, &messages.CommitObserved{}, false},
		{"runner acting as the reporter", pki.RoleRunner, &messages.ResultRecordedAck{}, false},
		{"runner recording a result at the reporter", pki.RoleRunner, &messages.ResultRecorded{}, false},
		{"runner asking for status", pki.RoleRunner, &messages.StatusRequest{}, false},
		{"runner stopping a node", pki.RoleRunner, &actor.Stop{}, false},
		{"runner poisoning an actor", pki.RoleRunner, &actor.PoisonPill{}, false},
		{"observer finishing a job", pki.RoleObserver, &messages.JobFinished{}, false},
		{"observer queueing commits", pki.RoleObserver, &messages.CommitObserved{}, true},
		{"notify asking for status", pki.RoleNotify, &messages.StatusRequest{}, false},
		{"notify notifying", pki.RoleNotify, &messages.Notify{}, true},
		{"admin status", pki.RoleAdmin, &messages.StatusRequest{}, true},
		{"admin registering a runner", pki.RoleAdmin, &messages.RegisterRunner{}, false},
		{"reporter recording a result", pki.RoleReporter, &messages.ResultRecorded{}, false},
		{"dispatcher running a job", pki.RoleDispatcher, &messages.RunJob{}, true},
		{"dispatcher finishing a job", pki.RoleDispatcher, &messages.JobFinished{}, false},
		{"anyone watching", pki.RoleRunner, &actor.Watch{Watcher: runnerPID}, true},
		{"runner asking for its job's secrets", pki.RoleRunner, &messages.SecretRequest{RunnerId: "r1"}, true},
		{"runner setting a secret", pki.RoleRunner, &messages.SecretSet{}, false},
		{"runner listing secrets", pki.RoleRunner, &messages.SecretList{}, false},
		{"runner granting secrets", pki.RoleRunner, &messages.SecretGrant{}, false},
		{"observer asking for secrets", pki.RoleObserver, &messages.SecretRequest{}, false},
		{"reporter asking for secrets", pki.RoleReporter, &messages.SecretRequest{}, false},
		{"reporter setting a secret", pki.RoleReporter, &messages.SecretSet{}, false},
		{"notify deleting a secret", pki.RoleNotify, &messages.SecretDelete{}, false},
		{"admin setting a secret", pki.RoleAdmin, &messages.SecretSet{}, true},
		{"admin deleting a secret", pki.RoleAdmin, &messages.SecretDelete{}, true},
		{"admin listing secrets", pki.RoleAdmin, &messages.SecretList{}, true},
		{"admin asking for a job's secrets", pki.RoleAdmin, &messages.SecretRequest{}, false},
		{"dispatcher granting secrets", pki.RoleDispatcher, &messages.SecretGrant{}, true},
		{"dispatcher asking for secrets", pki.RoleDispatcher, &messages.SecretRequest{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := streamOf(testGuard(t), tc.role, "r1", "127.0.0.1")
			b := batch(t, tc.msg, runnerPID, map[string]string{actors.PeerHeader: "dispatcher/forged", "other": "x"})
			s.filter(b)
			if !tc.deliver {
				require.Empty(t, b.Envelopes)
				return
			}
			require.Len(t, b.Envelopes, 1)
			require.Equal(t, map[string]string{actors.PeerHeader: tc.role + "/r1"}, b.Envelopes[0].MessageHeader.HeaderData,
				"the stamp replaces whatever the peer sent")
		})
	}
}

func TestGuardBindsSenderAddressesToOneIdentity(t *testing.T) {
	g := testGuard(t)
	r1 := streamOf(g, pki.RoleRunner, "r1", "127.0.0.1")
	r2 := streamOf(g, pki.RoleRunner, "r2", "127.0.0.1", "10.0.0.7")
	hb := &messages.Heartbeat{}

	b := batch(t, hb, actor.NewPID("127.0.0.1:8901", "runner"), nil)
	r1.filter(b)
	require.Len(t, b.Envelopes, 1, "first claim binds")

	b = batch(t, hb, actor.NewPID("127.0.0.1:8901", "runner"), nil)
	r2.filter(b)
	require.Empty(t, b.Envelopes, "another identity may not claim r1's address")

	b = batch(t, hb, actor.NewPID("192.168.1.9:8901", "runner"), nil)
	r2.filter(b)
	require.Empty(t, b.Envelopes, "a host the certificate does not name")

	b = batch(t, hb, actor.NewPID("10.0.0.7:8901", "runner"), nil)
	r2.filter(b)
	require.Len(t, b.Envelopes, 1)

	// Terminated: only the node an actor lives on may say it stopped.
	b = batch(t, &actor.Terminated{Who: actor.NewPID("127.0.0.1:8901", "runner")}, nil, nil)
	r2.filter(b)
	require.Empty(t, b.Envelopes, "r2 may not say r1's actor stopped")
	b = batch(t, &actor.Terminated{Who: actor.NewPID("127.0.0.1:8901", "runner")}, nil, nil)
	r1.filter(b)
	require.Len(t, b.Envelopes, 1)

	// Once r1's stream ends, its address is free again (a restarted runner).
	r1.release()
	b = batch(t, hb, actor.NewPID("127.0.0.1:8901", "runner"), nil)
	r2.filter(b)
	require.Len(t, b.Envelopes, 1)
}

func TestGuardDropsMalformedBatchesWithoutPanicking(t *testing.T) {
	s := streamOf(testGuard(t), pki.RoleRunner, "r1", "127.0.0.1")
	good := func() *remote.MessageBatch {
		return batch(t, &messages.Heartbeat{}, actor.NewPID("127.0.0.1:8901", "runner"), nil)
	}
	cases := map[string]func(b *remote.MessageBatch){
		"type index out of range":   func(b *remote.MessageBatch) { b.Envelopes[0].TypeId = 5 },
		"negative type index":       func(b *remote.MessageBatch) { b.Envelopes[0].TypeId = -1 },
		"target index out of range": func(b *remote.MessageBatch) { b.Envelopes[0].Target = 3 },
		"sender index out of range": func(b *remote.MessageBatch) { b.Envelopes[0].Sender = 9 },
		"nil target":                func(b *remote.MessageBatch) { b.Targets[0] = nil },
		"nil envelope":              func(b *remote.MessageBatch) { b.Envelopes[0] = nil },
		"JSON serializer":           func(b *remote.MessageBatch) { b.Envelopes[0].SerializerId = 1 },
		"sender without a port":     func(b *remote.MessageBatch) { b.Senders[0].Address = "127.0.0.1" },
		"terminated without who": func(b *remote.MessageBatch) {
			b.TypeNames[0] = string(proto.MessageName(&actor.Terminated{}))
			b.Envelopes[0].MessageData = []byte{0xff, 0xff}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			b := good()
			mutate(b)
			require.NotPanics(t, func() { s.filter(b) })
			require.Empty(t, b.Envelopes)
		})
	}
}

func TestGuardRevokedPeerIsRefused(t *testing.T) {
	g := testGuard(t)
	require.NoError(t, pki.Revoke(g.creds.Dir(), "runner/r1"))
	// Revoked() rereads the list at most once a second; a new Credentials
	// reads it at once.
	creds, err := pki.Open(pki.Options{Dir: g.creds.Dir(), Identity: pki.Identity{Role: pki.RoleDispatcher, Name: "d"}})
	require.NoError(t, err)
	require.True(t, creds.Revoked(pki.Identity{Role: pki.RoleRunner, Name: "r1"}))
	require.False(t, creds.Revoked(pki.Identity{Role: pki.RoleRunner, Name: "r2"}))
}

func TestGuardAppliesRevocationsOnlyFromADispatcher(t *testing.T) {
	g := testGuard(t)
	list := &messages.Revocations{Entries: []string{"runner/evil", "not a/valid name", "observer/o2"}}

	b := batch(t, list, nil, nil)
	streamOf(g, pki.RoleRunner, "r1", "127.0.0.1").filter(b)
	require.Empty(t, b.Envelopes)
	require.False(t, g.creds.Revoked(pki.Identity{Role: pki.RoleRunner, Name: "evil"}), "a runner may not revoke anyone")

	b = batch(t, list, nil, nil)
	streamOf(g, pki.RoleDispatcher, "d", "127.0.0.1").filter(b)
	require.Empty(t, b.Envelopes, "applied by the guard, delivered to no actor")
	require.True(t, g.creds.Revoked(pki.Identity{Role: pki.RoleRunner, Name: "evil"}))
	require.True(t, g.creds.Revoked(pki.Identity{Role: pki.RoleObserver, Name: "o2"}))
	require.False(t, g.creds.Revoked(pki.Identity{Role: pki.RoleRunner, Name: "r1"}))
	require.Equal(t, []string{"observer/o2", "runner/evil"}, g.creds.RevokedList())
}
