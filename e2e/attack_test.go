package e2e

// The attacker suite of issue 10, item 6: what "What an attacker can do
// today" did, redone against a dispatcher, a reporter, a runner and an
// observer started as separate volt processes over mutual TLS, by an
// attacker process (attacker_test.go) with plain protoactor-go remote,
// forged senders, Volt's messages package and raw gRPC calls. Each
// scenario asserts outcomes: every node stays up, `volt status` shows the
// same runners and no job of the attacker, nothing is recorded, the
// attacker's job never runs (its marker file stays absent), the attacker
// hears nothing, the node logs the refusal, and the pipeline still builds
// the next commit right.

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/pki"
)

// deadLetter is the type of the answer to an undeliverable request.
const deadLetter = "actor.DeadLetterResponse"

// refusedLine is what the guard logs (at WARN) for each refusal.
const refusedLine = `msg="refused from the network"`

// madeUpCommit is a commit no repository has: the forged results name it.
const madeUpCommit = "d00dfeedd00dfeedd00dfeedd00dfeedd00dfeed"

// Ids the attacker makes up.
const (
	evilJobID    = 424242
	madeUpJobID  = 424243
	evilObsSeq   = 999999
	evilHBSeq    = 888888
	evilIncarn   = 1
	evilRunnerID = "evil"
)

// TestAttack runs every forgery of issue 10 item 6 against one cluster,
// one scenario after another, each in a new attacker process.
func TestAttack(t *testing.T) {
	c := startAttackCluster(t)

	// The attacker's repository: its step leaves a marker and the runner's
	// environment where the test looks, if it ever runs.
	loot := t.TempDir()
	c.marker, c.envDump = filepath.Join(loot, "MARKER"), filepath.Join(loot, "ENVDUMP")
	evil := newRepo(t, map[string]string{".volt.yml": fmt.Sprintf("steps:\n  - name: pwn\n    run: touch %s; env > %s\n", c.marker, c.envDump)})
	c.evilRepo, c.evilCommit = evil.bare, evil.head()

	now := time.Now()
	ca, err := pki.LoadCA(c.creds)
	if err != nil {
		t.Fatalf("load the cluster CA from %s: %v", c.creds, err)
	}
	c.ca = ca
	other, _, err := pki.EnsureCA(filepath.Join(t.TempDir(), "other-ca"), now)
	if err != nil {
		t.Fatal(err)
	}
	// Valid certificates from the cluster's CA, issued for each scenario's
	// own loopback address (see begin).
	evilRunner := credsPEM{as: &pki.Identity{Role: pki.RoleRunner, Name: evilRunnerID}}
	evilObserver := credsPEM{as: &pki.Identity{Role: pki.RoleObserver, Name: evilRunnerID}}
	// An expired certificate of the real runner's identity, from the real CA.
	expired := issuePEM(t, ca, pki.Identity{Role: pki.RoleRunner, Name: c.runnerID}, loopbacks, now.Add(-2*time.Hour), time.Hour)
	// A dispatcher certificate from a CA the cluster does not trust.
	foreign := issuePEM(t, other, pki.Identity{Role: pki.RoleDispatcher, Name: "dispatcher"}, loopbacks, now, time.Hour)

	// The credential scenarios: the same forgeries as the valid-runner ones
	// below, from a peer the TLS handshake must refuse.
	credential := []struct {
		name   string
		creds  credsPEM
		reason func(p *proc) string // what the guard logs as the reason
	}{
		{"no certificate, plaintext gRPC", credsPEM{plaintext: true}, func(*proc) string { return `reason="TLS handshake: not TLS"` }},
		{"no certificate, TLS", credsPEM{}, func(p *proc) string {
			if p == c.disp {
				// The dispatcher serves the join endpoint: the handshake
				// succeeds without a certificate, the guard refuses the stream.
				return `reason="no client certificate"`
			}
			return `reason="TLS handshake: tls: client didn't provide a certificate"`
		}},
		{"certificate from another CA", foreign, func(*proc) string { return "x509: certificate signed by unknown authority" }},
		{"expired certificate of the real runner", expired, func(*proc) string { return "x509: certificate has expired" }},
	}
	for _, tc := range credential {
		t.Run(tc.name, func(t *testing.T) {
			s := c.begin(t)
			a := s.attack(tc.creds, c.everyForgery())
			a.waitReady(0)
			for _, p := range []*proc{c.disp, c.run, c.rep} {
				s.wantLog(p, refusedLine, "identity=/ ", tc.reason(p))
			}
			s.end(a, 1)
		})
	}

	// A valid runner certificate (runner/evil) acting as others.
	t.Run("runner cert as the dispatcher", func(t *testing.T) {
		s := c.begin(t)
		job := &messages.Job{Id: evilJobID, Repo: c.evilRepo, RepoName: "evil", Commit: c.evilCommit, Branches: []string{"main"}, Build: 1}
		run := &messages.RunJob{Job: job, Attempt: 1, RunnerId: c.runnerID, Incarnation: s.before.incarnation,
			LogSink: c.attackerSink(), TimeoutMs: 60_000}
		cancel := &messages.CancelJob{Ref: &messages.JobRef{JobId: s.before.lastJob, Attempt: 1}, Reason: "forged", Report: true}
		a := s.attack(evilRunner, []attackStep{
			forge(c.runnerPID(), c.dispPID(), run),
			forge(c.runnerPID(), c.dispPID(), cancel),
			request(c.runnerPID(), run),
			request(c.runnerPID(), cancel),
			control(c.runAddr),
		})
		a.waitReady(0)
		s.wantLog(c.run, refusedLine, "identity=runner/evil", "type=volt.v1.RunJob", "belongs to dispatcher/")
		s.wantLog(c.run, refusedLine, "identity=runner/evil", "type=volt.v1.RunJob", "not allowed for the runner role")
		// CancelJob's refusals have the same reasons: the guard logs one
		// line per peer host, identity and reason a minute, so only the
		// outcome shows them.
		s.end(a, 1)
	})

	t.Run("runner cert as the observer", func(t *testing.T) {
		s := c.begin(t)
		obs := &messages.CommitObserved{ObserverId: c.observerID(), Seq: evilObsSeq, Repo: c.evilRepo, RepoName: "evil",
			Branch: "main", Commits: []string{c.evilCommit}, Subjects: []string{"seed"}}
		a := s.attack(evilRunner, []attackStep{
			forge(c.dispPID(), c.obsPID(), obs),
			request(c.dispPID(), obs),
			control(c.dispAddr),
		})
		a.waitReady(0)
		s.wantLog(c.disp, refusedLine, "identity=runner/evil", "type=volt.v1.CommitObserved", "belongs to observer/")
		s.wantLog(c.disp, refusedLine, "identity=runner/evil", "type=volt.v1.CommitObserved", "not allowed for the runner role")
		s.end(a, 1)
	})

	t.Run("runner cert as the reporter's dispatcher", func(t *testing.T) {
		s := c.begin(t)
		job := &messages.Job{Id: madeUpJobID, Repo: c.seedURL, RepoName: "master", Commit: madeUpCommit, Branches: []string{"main"}, Build: 1}
		res := &messages.ResultRecorded{Result: &messages.Result{Job: job, Attempt: 1, RunnerId: c.runnerID,
			Status: messages.Status_STATUS_PASSED, StartedUnixMs: time.Now().UnixMilli(), FinishedUnixMs: time.Now().UnixMilli()}}
		a := s.attack(evilRunner, []attackStep{
			forge(c.repPID(), c.dispPID(), res),
			request(c.repPID(), res),
			control(c.repAddr),
		})
		a.waitReady(0)
		s.wantLog(c.rep, refusedLine, "identity=runner/evil", "type=volt.v1.ResultRecorded", "belongs to dispatcher/")
		s.wantLog(c.rep, refusedLine, "identity=runner/evil", "type=volt.v1.ResultRecorded", "not allowed for the runner role")
		s.end(a, 1)
	})

	// A runner streams the logs of the jobs it runs, and only those.
	// Before log tickets this failed: the reporter took a LogChunk and a
	// LogClosed from any runner certificate for any job (here one that
	// does not exist), stored the log and answered LogAck.
	t.Run("runner cert writes the log of a job it does not run", func(t *testing.T) {
		s := c.begin(t)
		job := &messages.Job{Id: madeUpJobID, Repo: c.seedURL, RepoName: "master", Commit: madeUpCommit, Branches: []string{"main"}, Build: 1}
		chunk := &messages.LogChunk{Job: job, Attempt: 1, Data: []byte("forged log: all tests passed\n")}
		closed := &messages.LogClosed{Job: job, Attempt: 1, Size: int64(len(chunk.Data))}
		a := s.attack(evilRunner, []attackStep{
			request(c.repPID(), chunk),
			request(c.repPID(), closed),
			control(c.repAddr),
		})
		a.waitReady(0)
		s.wantLog(c.rep, `msg="refused: sender not entitled"`, "identity=runner/evil", "type=LogChunk", "no valid log ticket")
		s.wantLog(c.rep, `msg="refused: sender not entitled"`, "identity=runner/evil", "type=LogClosed", "no valid log ticket")
		s.end(a, 1)
		for _, path := range []string{fmt.Sprintf("/api/v1/jobs/%d", madeUpJobID), fmt.Sprintf("/jobs/%d/log", madeUpJobID)} {
			if code := c.httpStatus(t, path); code != http.StatusNotFound {
				t.Errorf("FORGED LOG SERVED: GET %s (the forged log's job): %d, want 404", path, code)
			}
		}
	})

	t.Run("runner cert as the real runner", func(t *testing.T) {
		s := c.begin(t)
		// A failing job that waits for the test: the forgeries name it
		// while it runs.
		gated := c.seed.commitPush("gated failure", map[string]string{"ci.sh": fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done\necho gated failure\nexit 1\n", c.gate)})
		openGate := func() {
			if err := os.WriteFile(c.gate, nil, 0o644); err != nil && !errors.Is(err, os.ErrExist) {
				t.Error(err)
			}
		}
		defer openGate() // whatever happens, the runner is not left waiting
		job := c.waitRunning(t, gated)
		ref := &messages.JobRef{JobId: job.id, Attempt: job.attempt}
		now := time.Now().UnixMilli()
		hb := &messages.Heartbeat{RunnerId: c.runnerID, Incarnation: s.before.incarnation, Seq: evilHBSeq, Running: []*messages.JobRef{ref}}
		fin := &messages.JobFinished{RunnerId: c.runnerID, Incarnation: s.before.incarnation, Result: &messages.Result{
			Job:     &messages.Job{Id: job.id, Repo: c.seedURL, RepoName: "master", Commit: gated, Branches: []string{"main"}, Build: 1},
			Attempt: job.attempt, RunnerId: c.runnerID, Status: messages.Status_STATUS_PASSED, StartedUnixMs: now, FinishedUnixMs: now}}
		stopping := &messages.RunnerStopping{RunnerId: c.runnerID, Incarnation: s.before.incarnation, Released: []*messages.JobRef{ref}, Reason: "forged"}
		a := s.attack(evilRunner, []attackStep{
			// As itself (the guard lets a runner send these; the
			// dispatcher's core must see that it is not runner-a)...
			request(c.dispPID(), hb), request(c.dispPID(), fin), request(c.dispPID(), stopping),
			// ...and claiming the real runner's address.
			forge(c.dispPID(), c.runnerPID(), hb), forge(c.dispPID(), c.runnerPID(), fin), forge(c.dispPID(), c.runnerPID(), stopping),
			control(c.dispAddr),
		})
		a.waitReady(0)
		s.wantLog(c.disp, refusedLine, "identity=runner/evil", "belongs to runner/"+c.runnerID)
		s.wantLog(c.disp, `msg="refused: sender not entitled"`, "identity=runner/evil", "type=RunnerStopping")
		// The job goes on and fails, at its first attempt, on the real runner.
		openGate()
		rf := waitResult(t, c.repData, gated, resultTimeout)
		rf.wantStatus(t, "failed")
		if rf.header["attempt"] != strconv.Itoa(int(job.attempt)) || rf.header["runner"] != c.runnerID {
			t.Errorf("FORGERY ACCEPTED? the gated job's result: attempt %s on %s, want attempt %d on %s\n%s",
				rf.header["attempt"], rf.header["runner"], job.attempt, c.runnerID, rf.raw)
		}
		s.end(a, 2)
		if d := s.after.dispatcher.counters["forged_refused"] - s.before.dispatcher.counters["forged_refused"]; d < 3 {
			t.Logf("the dispatcher's forged_refused rose by %d (3 forgeries reached its core)", d)
		}
	})

	// The reporter keys a log by (repository, commit, build, attempt), all
	// of which whoever can push knows before the job runs; the first runner
	// to write a log claims it. Before log tickets this failed: the real
	// runner's chunks and LogClosed were refused as "runner/evil's", the
	// runner retried LogClosed for 9 s before it reported, and the result
	// was recorded with its log dropped (empty output).
	t.Run("runner cert squats the next job's log", func(t *testing.T) {
		s := c.begin(t)
		// Committed, pushed only after the forgery.
		c.seed.write(map[string]string{"ci.sh": "echo the real log of this job\n"})
		next := c.seed.commit("squatted")
		job := &messages.Job{Repo: c.seedURL, RepoName: "master", Commit: next, Branches: []string{"main"}, Build: 1}
		a := s.attack(evilRunner, []attackStep{
			request(c.repPID(), &messages.LogChunk{Job: job, Attempt: 1, Data: []byte("squatted by runner/evil\n")}),
			control(c.repAddr),
		})
		a.waitReady(0)
		s.wantLog(c.rep, `msg="refused: sender not entitled"`, "identity=runner/evil", "type=LogChunk", "no valid log ticket")
		c.seed.push()
		rf := waitResult(t, c.repData, next, resultTimeout)
		rf.wantStatus(t, "passed")
		if !strings.Contains(rf.output, "the real log of this job") || strings.Contains(rf.output, "squatted") {
			t.Errorf("LOG SQUATTED: runner/evil wrote first to the log of %s (build 1, attempt 1), which %s then ran; the result's output:\n%s",
				next[:12], c.runnerID, rf.raw)
		}
		s.end(a, 2)
	})

	t.Run("runner cert sends Stop", func(t *testing.T) {
		s := c.begin(t)
		a := s.attack(evilRunner, []attackStep{
			{Do: "stop", To: c.dispPID()},
			{Do: "poison", To: c.dispPID()},
			{Do: "stop", To: c.runnerPID()},
			{Do: "stop", To: c.repPID()},
			control(c.dispAddr), control(c.runAddr), control(c.repAddr),
		})
		a.waitReady(0)
		s.wantLog(c.disp, refusedLine, "identity=runner/evil", "type=actor.Stop")
		// PoisonPill's refusal has Stop's reason: logged once a minute.
		s.wantLog(c.run, refusedLine, "identity=runner/evil", "type=actor.Stop")
		s.wantLog(c.rep, refusedLine, "identity=runner/evil", "type=actor.Stop")
		s.end(a, 1)
	})

	t.Run("runner cert sends Terminated for the real runner", func(t *testing.T) {
		s := c.begin(t)
		runner, err := pidOf(c.runnerPID())
		if err != nil {
			t.Fatal(err)
		}
		a := s.attack(evilRunner, []attackStep{
			send(c.dispPID(), &actor.Terminated{Who: runner, Why: actor.TerminatedReason_Stopped}),
			send(c.dispPID(), &actor.Terminated{Who: runner, Why: actor.TerminatedReason_AddressTerminated}),
			request(c.dispPID(), &actor.Terminated{Who: runner, Why: actor.TerminatedReason_Stopped}),
			control(c.dispAddr),
		})
		a.waitReady(0)
		s.wantLog(c.disp, refusedLine, "identity=runner/evil", "Terminated for an actor of another node")
		s.end(a, 1)
	})

	t.Run("runner cert asks for the status", func(t *testing.T) {
		s := c.begin(t)
		a := s.attack(evilRunner, []attackStep{
			request(c.dispPID(), &messages.StatusRequest{}),
			request(c.runnerPID(), &messages.StatusRequest{}),
			request(c.repPID(), &messages.StatusRequest{}),
			request(c.obsPID(), &messages.StatusRequest{}),
			control(c.dispAddr), control(c.runAddr), control(c.repAddr), control(c.obsAddr),
		})
		a.waitReady(0)
		for _, p := range []*proc{c.disp, c.run, c.rep, c.obs} {
			s.wantLog(p, refusedLine, "identity=runner/evil", "type=volt.v1.StatusRequest", "not allowed for the runner role")
		}
		s.end(a, 1)
	})

	// A runner may speak for itself; unregistered, it learns nothing (the
	// dispatcher's epoch is what a forged RunJob needs).
	t.Run("runner cert heartbeats as an unregistered runner", func(t *testing.T) {
		s := c.begin(t)
		s.answer = func(g attackGot) bool { return g.Type == "volt.v1.HeartbeatAck" }
		hb := &messages.Heartbeat{RunnerId: evilRunnerID, Incarnation: evilIncarn, Seq: evilHBSeq}
		a := s.attack(evilRunner, []attackStep{request(c.dispPID(), hb), control(c.dispAddr)})
		a.waitReady(0)
		rep := s.end(a, 1)
		for _, g := range rep.Received {
			if g.Type != "volt.v1.HeartbeatAck" {
				continue
			}
			var ack messages.HeartbeatAck
			if err := protojson.Unmarshal([]byte(g.Msg), &ack); err != nil {
				t.Fatal(err)
			}
			if ack.Epoch != 0 || !ack.Unknown || ack.RunnerId != evilRunnerID || len(ack.Valid) > 0 {
				t.Errorf("EPOCH LEAKED: an unregistered runner's heartbeat was answered with %s", g.Msg)
			}
		}
	})

	t.Run("observer cert sends JobFinished", func(t *testing.T) {
		s := c.begin(t)
		now := time.Now().UnixMilli()
		fin := &messages.JobFinished{RunnerId: c.runnerID, Incarnation: s.before.incarnation, Result: &messages.Result{
			Job:     &messages.Job{Id: s.before.lastJob, Repo: c.seedURL, RepoName: "master", Commit: madeUpCommit, Branches: []string{"main"}, Build: 1},
			Attempt: 1, RunnerId: c.runnerID, Status: messages.Status_STATUS_FAILED, StartedUnixMs: now, FinishedUnixMs: now}}
		a := s.attack(evilObserver, []attackStep{
			request(c.dispPID(), fin),
			forge(c.dispPID(), c.runnerPID(), fin),
			control(c.dispAddr),
		})
		a.waitReady(0)
		s.wantLog(c.disp, refusedLine, "identity=observer/evil", "type=volt.v1.JobFinished", "not allowed for the observer role")
		s.end(a, 1)
	})

	// Raw gRPC unary calls on Proto.Actor's Remoting service: the pinned
	// version answers ListProcesses with panic("implement me").
	unaryRefused := []string{refusedLine, `reason="unary call"`, "method=/remote.Remoting/ListProcesses"}
	for _, tc := range []struct {
		name  string
		creds credsPEM
		want  func(addr string) string // the gRPC code a call must end with
		log   func(p *proc) []string
	}{
		{"raw gRPC without a certificate, plaintext", credsPEM{plaintext: true},
			func(string) string { return "Unavailable" },
			func(*proc) []string { return []string{refusedLine, `reason="TLS handshake: not TLS"`} }},
		{"raw gRPC without a certificate, TLS", credsPEM{},
			func(addr string) string {
				if addr == c.dispAddr {
					return "PermissionDenied" // the join endpoint's handshake needs no certificate
				}
				return "Unavailable"
			},
			func(p *proc) []string {
				if p == c.disp {
					return append([]string{"identity=/ "}, unaryRefused...)
				}
				return []string{refusedLine, `reason="TLS handshake: tls: client didn't provide a certificate"`}
			}},
		{"raw gRPC with a runner cert", evilRunner,
			func(string) string { return "PermissionDenied" },
			func(*proc) []string { return append([]string{"identity=runner/evil"}, unaryRefused...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := c.begin(t)
			var steps []attackStep
			targets := []string{c.dispAddr, c.runAddr, c.repAddr, c.obsAddr}
			for _, addr := range targets {
				steps = append(steps, attackStep{Do: "unary", To: addr, Method: "ListProcesses"},
					attackStep{Do: "unary", To: addr, Method: "GetProcessDiagnostics"})
			}
			a := s.attack(tc.creds, steps)
			a.waitReady(0)
			for _, p := range []*proc{c.disp, c.run, c.rep, c.obs} {
				s.wantLog(p, tc.log(p)...)
			}
			rep := s.end(a, 1)
			if len(rep.Unary) != 2*len(targets) {
				t.Errorf("%d unary calls reported, want %d", len(rep.Unary), 2*len(targets))
			}
			for _, u := range rep.Unary {
				if want := tc.want(u.To); u.Code != want {
					t.Errorf("UNARY CALL NOT REFUSED: %s on %s ended %s (%s), want %s", u.Method, u.To, u.Code, u.Err, want)
				}
			}
		})
	}

	// Last, because it revokes runner/evil.
	t.Run("revoked runner cert", func(t *testing.T) {
		s := c.begin(t)
		register := &messages.RegisterRunner{RunnerId: evilRunnerID, Incarnation: evilIncarn, ProtocolVersion: messages.ProtocolVersion, Hostname: "evil", Seq: 1}
		hb := &messages.Heartbeat{RunnerId: evilRunnerID, Incarnation: evilIncarn, Seq: 2}
		a := s.attack(evilRunner, []attackStep{
			// Phase 0, before the revocation: connected both ways.
			control(c.dispAddr), control(c.runAddr), control(c.repAddr),
		}, []attackStep{
			// Phase 1, after it, on the same connections: a registration
			// as itself, which would be accepted were it not revoked.
			request(c.dispPID(), register), request(c.dispPID(), hb),
			{Do: "probe", To: c.runnerPID()}, {Do: "probe", To: c.repPID()},
		})
		a.waitReady(0)
		r := runVolt(t, 20*time.Second, "ca", "revoke", pki.RoleRunner+"/"+evilRunnerID, "--credentials", c.creds)
		if r.code != 0 {
			t.Fatalf("volt ca revoke: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		// The nodes reread the list about once a second: a new handshake
		// with the certificate is refused everywhere before phase 1.
		cert := s.creds.tls(t)
		for _, addr := range []string{c.dispAddr, c.runAddr, c.repAddr} {
			eventually(t, 20*time.Second, func() bool { return handshakeRefused(addr, cert) }, "%s still accepts the revoked runner/evil", addr)
		}
		a.next()
		a.waitReady(1)
		for _, p := range []*proc{c.disp, c.run, c.rep} {
			s.wantLog(p, refusedLine, "identity=runner/evil", "reason=revoked")
		}
		rep := s.end(a, 1)
		if n := len(rep.Controls); n != 3 {
			t.Errorf("%d controls before the revocation, want 3: %+v", n, rep.Controls)
		}
		for _, g := range rep.Received {
			if g.Phase >= 1 && g.Type != deadLetter {
				t.Errorf("FORGERY ANSWERED: after the revocation the attacker received %s from %s: %s", g.Type, g.Sender, g.Msg)
			}
		}
	})

	t.Run("revoked runner cert, new connection", func(t *testing.T) {
		s := c.begin(t)
		register := &messages.RegisterRunner{RunnerId: evilRunnerID, Incarnation: evilIncarn + 1, ProtocolVersion: messages.ProtocolVersion, Hostname: "evil", Seq: 1}
		a := s.attack(evilRunner, append([]attackStep{request(c.dispPID(), register)}, c.everyForgery()...))
		a.waitReady(0)
		for _, p := range []*proc{c.disp, c.run, c.rep} {
			s.wantLog(p, refusedLine, "TLS handshake", "runner/evil is revoked")
		}
		s.end(a, 1)
	})

	// The pipeline still gives each commit its right result.
	fail := c.seed.commitPush("failing at the end", map[string]string{"ci.sh": "echo deliberate failure\nexit 1\n"})
	waitResult(t, c.repData, fail, resultTimeout).wantStatus(t, "failed")
	pass := c.seed.commitPush("passing at the end", map[string]string{"ci.sh": "echo ok\n"})
	waitResult(t, c.repData, pass, resultTimeout).wantStatus(t, "passed")
}

// ---- the cluster ----

// attackCluster is a dispatcher, a reporter (with HTTP), one runner and an
// observer, each a volt process, with credentials in their own directory.
type attackCluster struct {
	t     *testing.T
	creds string // the credentials directory every process uses (0700)
	seed  *repo
	gate  string // a gated job's step waits for this file

	dispAddr, repAddr, runAddr, obsAddr, httpAddr string
	repData                                       string
	seedURL                                       string // the repository as jobs name it
	runnerID                                      string
	disp, rep, run, obs                           *proc

	// The attacker's repository and what its step would leave.
	evilRepo, evilCommit string
	marker, envDump      string

	ca       *pki.CA
	barriers int
	hosts    int // loopback addresses handed to scenarios
}

// loopbacks are the hosts the cluster's processes are reached at.
var loopbacks = []string{"127.0.0.1", "localhost"}

func startAttackCluster(t *testing.T) *attackCluster {
	t.Helper()
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	// Each scenario's attacker has a loopback address of its own (Linux
	// routes all of 127/8 to lo).
	if l, err := net.Listen("tcp", "127.0.0.11:0"); err != nil {
		t.Fatalf("the attackers need loopback addresses besides 127.0.0.1: %v", err)
	} else {
		l.Close()
	}
	hostPort := func() string { return "127.0.0.1:" + strconv.Itoa(freePort(t)) }
	c := &attackCluster{
		t: t, creds: creds, gate: filepath.Join(dir, "GATE"),
		dispAddr: hostPort(), repAddr: hostPort(), runAddr: hostPort(), obsAddr: hostPort(), httpAddr: hostPort(),
		repData: filepath.Join(dir, "rep"), runnerID: "runner-a",
	}
	c.seed = newRepo(t, map[string]string{".volt.yml": "steps:\n  - name: ci\n    run: sh ci.sh\n", "ci.sh": "echo ok\n"})

	c.disp = startVolt(t, "dispatcher", "dispatcher", "--listen", c.dispAddr, "--data-dir", filepath.Join(dir, "disp"), "--credentials", creds)
	eventually(t, startTimeout, func() bool {
		if c.disp.exited() {
			t.Fatalf("dispatcher exited with %d at start:\n%s", c.disp.code, tail(c.disp.log, 20))
		}
		conn, err := net.DialTimeout("tcp", c.dispAddr, time.Second)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}, "dispatcher not listening on %s", c.dispAddr)
	c.rep = startVolt(t, "reporter", "reporter", "--listen", c.repAddr, "--http", c.httpAddr, "--data-dir", c.repData,
		"--dispatcher-server", c.dispAddr, "--credentials", creds)
	runArgs := []string{"runner", "--id", c.runnerID, "--listen", c.runAddr, "--work-dir", filepath.Join(dir, "runner"),
		"--dispatcher-server", c.dispAddr, "--credentials", creds}
	if help := runVolt(t, 20*time.Second, "runner", "--help"); strings.Contains(help.stdout, "--isolation") {
		// The marker must land where the test looks if the job ever runs.
		runArgs = append(runArgs, "--isolation", "none")
	}
	c.run = startVolt(t, "runner", runArgs...)
	c.obs = startVolt(t, "observer", "observer", "--repo", c.seed.bare, "--poll", "200ms", "--listen", c.obsAddr,
		"--data-dir", filepath.Join(dir, "obs"), "--dispatcher-server", c.dispAddr, "--credentials", creds)

	// One real commit's result, and every role registered.
	waitResult(t, c.repData, c.seed.head(), startTimeout+resultTimeout).wantStatus(t, "passed")
	c.seedURL = c.apiResult(t, c.seed.head()).Repo
	if c.seedURL == "" {
		t.Fatalf("GET /api/v1/results/%s names no repository", c.seed.head())
	}
	eventuallyEvery(t, startTimeout, 100*time.Millisecond, func() bool {
		st, ok := c.dispatcherStatus()
		return ok && st.runners[c.runnerID] != "" && st.reporter != "" && st.observers == 1
	}, "the runner, the reporter and the observer did not register")
	return c
}

func (c *attackCluster) dispPID() string { return c.dispAddr + "/dispatcher" }
func (c *attackCluster) repPID() string  { return c.repAddr + "/reporter" }
func (c *attackCluster) obsPID() string  { return c.obsAddr + "/observer" }

// attackerSink is the attacker's own actor, as a RunJob's log sink: the
// job's output would come back to the attacker.
func (c *attackCluster) attackerSink() string { return attackerSelf }

// runnerPID is the real runner's actor as the dispatcher lists it
// (its name carries the incarnation).
func (c *attackCluster) runnerPID() string {
	c.t.Helper()
	st, ok := c.dispatcherStatus()
	if !ok || st.runners[c.runnerID] == "" {
		c.t.Fatalf("the dispatcher does not list %s:\n%s", c.runnerID, st.raw)
	}
	return st.runners[c.runnerID]
}

// observerID is the id `volt observer` gives itself: HOST/ADDRESS.
func (c *attackCluster) observerID() string {
	host, _ := os.Hostname()
	return host + "/" + c.obsAddr
}

// ---- status ----

// dispStatus is `volt status` of the dispatcher, parsed.
type dispStatus struct {
	raw       string
	reporter  string
	observers int
	runners   map[string]string // id → actor (address/name)
	states    map[string]string // id → state
	jobs      []statusJob
	counters  map[string]int64
}

type statusJob struct {
	id       int64
	state    string
	commit12 string
	attempt  int32
	runner   string
}

func (c *attackCluster) statusOf(addr, role string) (string, bool) {
	c.t.Helper()
	r := runVolt(c.t, 20*time.Second, "status", "--credentials", c.creds, "--dispatcher-server", addr, "--role", role)
	return r.stdout + r.stderr, r.code == 0
}

func (c *attackCluster) dispatcherStatus() (dispStatus, bool) {
	c.t.Helper()
	out, ok := c.statusOf(c.dispAddr, "dispatcher")
	st := dispStatus{raw: out, runners: map[string]string{}, states: map[string]string{}, counters: map[string]int64{}}
	if !ok {
		return st, false
	}
	section := ""
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			section = ""
		case f[0] == "RUNNER" || f[0] == "BUILD":
			section = f[0]
		case section == "RUNNER":
			st.runners[f[0]] = f[len(f)-1]
			st.states[f[0]] = f[1]
		case section == "BUILD" && len(f) >= 8:
			// BUILD JOB NAME STATE REPO COMMIT NUMBER ATTEMPT [RUNNER [WAITING]]:
			// the builds here are of one job, named build.
			id, _ := strconv.ParseInt(f[1], 10, 64)
			attempt, _ := strconv.Atoi(f[7])
			j := statusJob{id: id, state: f[3], commit12: f[5], attempt: int32(attempt)}
			if len(f) >= 9 {
				j.runner = f[8]
			}
			st.jobs = append(st.jobs, j)
		case strings.HasPrefix(line, "reporter: "):
			st.reporter = strings.TrimPrefix(line, "reporter: ")
			if strings.HasPrefix(st.reporter, "(none") {
				st.reporter = ""
			}
		case strings.HasPrefix(line, "observers: "):
			st.observers, _ = strconv.Atoi(strings.TrimPrefix(line, "observers: "))
		default:
			k, v, found := strings.Cut(line, ": ")
			if n, err := strconv.ParseInt(v, 10, 64); found && err == nil {
				st.counters[k] = n
			}
		}
	}
	return st, true
}

// snapshot is what must not change under attack.
type snapshot struct {
	dispatcher     dispStatus
	incarnation    int64 // the real runner's, from its own status
	runnerCounters map[string]int64
	lastJob        int64 // the newest job
}

func (c *attackCluster) snapshot() snapshot {
	c.t.Helper()
	d, ok := c.dispatcherStatus()
	if !ok {
		c.t.Fatalf("volt status of the dispatcher failed:\n%s", d.raw)
	}
	s := snapshot{dispatcher: d, runnerCounters: map[string]int64{}}
	out, ok := c.statusOf(c.runAddr, "runner")
	if !ok {
		c.t.Fatalf("volt status of the runner failed:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		k, v, found := strings.Cut(line, ": ")
		n, err := strconv.ParseInt(v, 10, 64)
		if !found || err != nil {
			continue
		}
		if k == "incarnation" {
			s.incarnation = n
		} else {
			s.runnerCounters[k] = n
		}
	}
	if s.incarnation == 0 {
		c.t.Fatalf("no incarnation in the runner's status:\n%s", out)
	}
	// Job ids count from 1 and the status lists only open jobs: the newest
	// job is the number queued.
	s.lastJob = d.counters["jobs_queued"]
	return s
}

// waitRunning waits until the dispatcher lists commit's job as running on
// the real runner and returns it.
func (c *attackCluster) waitRunning(t *testing.T, commit string) statusJob {
	t.Helper()
	var found statusJob
	var last string
	eventuallyEvery(t, resultTimeout, 50*time.Millisecond, func() bool {
		st, ok := c.dispatcherStatus()
		last = st.raw
		for _, j := range st.jobs {
			if ok && j.commit12 == commit[:12] && j.state == "running" && j.runner == c.runnerID {
				found = j
				return true
			}
		}
		return false
	}, "%s is not running on %s; last status:\n%s", commit[:12], c.runnerID, lazy(func() string { return last }))
	return found
}

// apiResult is GET /api/v1/results/COMMIT.
func (c *attackCluster) apiResult(t *testing.T, commit string) (res struct {
	Repo string `json:"repo"`
	Log  string `json:"log"`
}) {
	t.Helper()
	resp, err := http.Get("http://" + c.httpAddr + "/api/v1/results/" + commit)
	if err != nil {
		t.Fatalf("GET /api/v1/results/%s: %v", commit, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/results/%s: %d %v", commit, resp.StatusCode, err)
	}
	return res
}

// httpStatus is the status code of a GET on the reporter's web server.
func (c *attackCluster) httpStatus(t *testing.T, path string) int {
	t.Helper()
	resp, err := http.Get("http://" + c.httpAddr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// everyForgery is what the credential scenarios try: each role's
// forgeries at once.
func (c *attackCluster) everyForgery() []attackStep {
	c.t.Helper()
	s := c.snapshot()
	runner := c.runnerPID()
	job := &messages.Job{Id: evilJobID, Repo: c.evilRepo, RepoName: "evil", Commit: c.evilCommit, Branches: []string{"main"}, Build: 1}
	now := time.Now().UnixMilli()
	return []attackStep{
		request(c.dispPID(), &messages.StatusRequest{}),
		request(runner, &messages.StatusRequest{}),
		forge(runner, c.dispPID(), &messages.RunJob{Job: job, Attempt: 1, RunnerId: c.runnerID, Incarnation: s.incarnation, TimeoutMs: 60_000}),
		forge(c.dispPID(), c.obsPID(), &messages.CommitObserved{ObserverId: c.observerID(), Seq: evilObsSeq, Repo: c.evilRepo,
			RepoName: "evil", Branch: "main", Commits: []string{c.evilCommit}}),
		forge(c.repPID(), c.dispPID(), &messages.ResultRecorded{Result: &messages.Result{
			Job:     &messages.Job{Id: madeUpJobID, Repo: c.seedURL, RepoName: "master", Commit: madeUpCommit, Branches: []string{"main"}, Build: 1},
			Attempt: 1, RunnerId: c.runnerID, Status: messages.Status_STATUS_PASSED, StartedUnixMs: now, FinishedUnixMs: now}}),
		forge(c.dispPID(), runner, &messages.RunnerStopping{RunnerId: c.runnerID, Incarnation: s.incarnation, Reason: "forged"}),
		{Do: "stop", To: c.dispPID()},
	}
}

// ---- one scenario ----

// scenario is one attack: the state before it, the logs' lengths then, and
// the attacker.
type scenario struct {
	t      *testing.T
	c      *attackCluster
	before snapshot
	after  snapshot
	logAt  map[*proc]int
	// host is the scenario's own loopback address: its attacker listens
	// and dials from there. The guard logs a refusal once a minute per peer
	// host, identity and reason; a host of its own gives every scenario
	// its own log lines.
	host  string
	creds credsPEM // the attacker's, once started
	// answer, when set, accepts some answers to the attacker (checked by
	// the scenario itself); every other one is a failure.
	answer func(attackGot) bool
}

func (c *attackCluster) begin(t *testing.T) *scenario {
	t.Helper()
	c.hosts++
	s := &scenario{t: t, c: c, logAt: map[*proc]int{}, host: fmt.Sprintf("127.0.0.%d", 10+c.hosts)}
	for _, p := range []*proc{c.disp, c.rep, c.run, c.obs} {
		s.logAt[p] = len(p.logText())
	}
	s.before = c.snapshot()
	return s
}

// wantLog waits until p has logged, since the scenario began, a line that
// contains every one of subs.
func (s *scenario) wantLog(p *proc, subs ...string) {
	s.t.Helper()
	has := func() bool {
		text := p.logText()[s.logAt[p]:]
		for _, line := range strings.Split(text, "\n") {
			all := true
			for _, sub := range subs {
				all = all && strings.Contains(line, sub)
			}
			if all {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for !has() {
		if time.Now().After(deadline) {
			s.t.Errorf("REFUSAL NOT LOGGED: %s logged no line with %q since the scenario began; its new lines:\n%s",
				p.name, subs, lastLines(p.logText()[s.logAt[p]:], 30))
			return
		}
		time.Sleep(pollEvery)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// end makes a commit go through the pipeline (the barrier: any effect of
// the forgeries is done by the time its result is recorded), ends the
// attacker, and checks everything that must hold after any attack. legit
// is the number of real results recorded during the scenario, the
// barrier's included.
func (s *scenario) end(a *attackerHandle, legit int64) attackReport {
	s.t.Helper()
	t, c := s.t, s.c
	c.barriers++
	barrier := c.seed.commitPush(fmt.Sprintf("barrier %d", c.barriers), map[string]string{"ci.sh": fmt.Sprintf("echo ok %d\n", c.barriers)})
	waitResult(t, c.repData, barrier, resultTimeout).wantStatus(t, "passed")
	rep := a.finish()

	// Every node is up and answers.
	for _, p := range []*proc{c.disp, c.rep, c.run, c.obs} {
		if p.exited() {
			t.Errorf("NODE DOWN: %s exited with %d:\n%s", p.name, p.code, tail(p.log, 30))
		}
	}
	for _, r := range []struct{ addr, role string }{{c.repAddr, "reporter"}, {c.obsAddr, "observer"}} {
		if out, ok := c.statusOf(r.addr, r.role); !ok {
			t.Errorf("NODE DOWN: volt status --role %s fails:\n%s", r.role, out)
		}
	}
	s.after = c.snapshot()

	// The attacker heard nothing. A DeadLetterResponse carries nothing: its
	// own remote makes one for each request it could not deliver (a
	// refused connection), naming the target.
	for _, g := range rep.Received {
		switch {
		case s.answer != nil && s.answer(g):
		case g.Type == deadLetter:
			t.Logf("the attacker's request could not be delivered: %s", g.Msg)
		case g.Type == "volt.v1.StatusReply" || g.Type == "volt.v1.HeartbeatAck" || g.Type == "volt.v1.RunnerRegistered":
			t.Errorf("FORGERY ANSWERED: the attacker received %s from %s: %s", g.Type, g.Sender, g.Msg)
		default:
			t.Errorf("FORGERY ANSWERED: the attacker received %s from %s (phase %d): %s", g.Type, g.Sender, g.Phase, g.Msg)
		}
	}
	for _, e := range rep.Errors {
		t.Errorf("attacker: %s", e)
	}
	for _, ctl := range rep.Controls {
		if !ctl.OK && ctl.Phase == 0 {
			t.Errorf("control round trip to %s failed (%s): the forgeries may not have reached the node", ctl.To, ctl.Err)
		}
	}

	// Nothing of the attacker's ran or was recorded.
	for _, f := range []string{c.marker, c.envDump} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			b, _ := os.ReadFile(f)
			t.Errorf("FORGED JOB RAN: %s exists (%v):\n%s", f, err, b)
		}
	}
	for _, commit := range []string{madeUpCommit, c.evilCommit} {
		if _, err := os.Stat(resultPath(c.repData, commit)); !errors.Is(err, os.ErrNotExist) {
			b, _ := os.ReadFile(resultPath(c.repData, commit))
			t.Errorf("FORGED RESULT RECORDED: %s exists:\n%s", resultPath(c.repData, commit), b)
		}
		if code := c.httpStatus(t, "/api/v1/results/"+commit); code != http.StatusNotFound {
			t.Errorf("FORGED RESULT RECORDED: GET /api/v1/results/%s is %d, want 404", commit, code)
		}
	}
	for _, j := range s.after.dispatcher.jobs {
		if j.commit12 == c.evilCommit[:12] || j.commit12 == madeUpCommit[:12] {
			t.Errorf("FORGED JOB QUEUED: volt status lists job %d of %s:\n%s", j.id, j.commit12, s.after.dispatcher.raw)
		}
	}

	// The same runners, the same incarnation, nothing lost or reassigned.
	b, af := s.before.dispatcher, s.after.dispatcher
	if fmt.Sprint(b.runners) != fmt.Sprint(af.runners) || s.before.incarnation != s.after.incarnation {
		t.Errorf("RUNNERS CHANGED: before %v (incarnation %d), after %v (incarnation %d)\n%s",
			b.runners, s.before.incarnation, af.runners, s.after.incarnation, af.raw)
	}
	if af.reporter != b.reporter || af.observers != b.observers {
		t.Errorf("REGISTRATIONS CHANGED: reporter %q → %q, observers %d → %d", b.reporter, af.reporter, b.observers, af.observers)
	}
	for _, k := range []string{"runners_lost", "reassignments", "jobs_errored_at_attempt_cap", "stale_results_ignored"} {
		if b.counters[k] != af.counters[k] {
			t.Errorf("DISPATCHER STATE CHANGED: %s %d → %d", k, b.counters[k], af.counters[k])
		}
	}
	for _, k := range []string{"results_recorded", "jobs_queued"} {
		if d := af.counters[k] - b.counters[k]; d != legit {
			t.Errorf("DISPATCHER STATE CHANGED: %s rose by %d, want %d (the scenario's real commits)", k, d, legit)
		}
	}
	if d := s.after.runnerCounters["registered"] - s.before.runnerCounters["registered"]; d != 0 {
		t.Errorf("RUNNER RE-REGISTERED: its registered counter rose by %d", d)
	}
	if t.Failed() {
		t.Logf("attacker report: %+v\nattacker stderr:\n%s", rep, tail(a.stderr, 40))
	}
	return rep
}

// ---- credentials ----

// credsPEM are an attacker's credentials.
type credsPEM struct {
	plaintext bool
	cert, key string
	// as, when set, asks for a certificate naming as from the cluster's
	// CA, issued when the scenario starts the attacker.
	as *pki.Identity
}

func (k credsPEM) tls(t *testing.T) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair([]byte(k.cert), []byte(k.key))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// issuePEM issues a certificate for id on hosts from ca, valid from
// issued for ttl.
func issuePEM(t *testing.T, ca *pki.CA, id pki.Identity, hosts []string, issued time.Time, ttl time.Duration) credsPEM {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(key.Public(), pki.Request{Identity: id, Hosts: hosts, TTL: ttl}, issued)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return credsPEM{cert: string(pki.EncodeCert(leaf)), key: string(keyPEM)}
}

// handshakeRefused reports whether the node at addr refuses a TLS
// connection that presents cert. With TLS 1.3 the client's handshake ends
// before the server has checked its certificate: the refusal is the
// server's alert, read next; an accepted client hears gRPC's settings.
func handshakeRefused(addr string, cert tls.Certificate) bool {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return true
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// ---- steps ----

func protoStep(do, to string, m proto.Message) attackStep {
	b, err := protojson.Marshal(m)
	if err != nil {
		panic(err)
	}
	return attackStep{Do: do, To: to, Type: string(m.ProtoReflect().Descriptor().FullName()), Msg: string(b)}
}

// send sends m to to with no sender.
func send(to string, m proto.Message) attackStep { return protoStep("send", to, m) }

// request sends m to to with the attacker's actor as sender.
func request(to string, m proto.Message) attackStep { return protoStep("request", to, m) }

// forge sends m to to claiming as as its sender.
func forge(to, as string, m proto.Message) attackStep {
	s := protoStep("forge", to, m)
	s.As = as
	return s
}

// control is a round trip to a node: its answer proves the forgeries sent
// before it on the same connection went through the node's guard.
func control(addr string) attackStep { return attackStep{Do: "control", To: addr + "/none"} }

// ---- the attacker process ----

// attackerHandle is a running attacker process.
type attackerHandle struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr string
	done   chan struct{}
}

// attack starts an attacker process with creds running phases.
func (s *scenario) attack(creds credsPEM, phases ...[]attackStep) *attackerHandle {
	s.t.Helper()
	t := s.t
	if creds.as != nil {
		// Its address, and 127.0.0.1 so that it may claim the others'.
		creds = issuePEM(t, s.c.ca, *creds.as, append([]string{s.host}, loopbacks...), time.Now(), time.Hour)
	}
	s.creds = creds
	spec, err := json.Marshal(attackSpec{Host: s.host, Plaintext: creds.plaintext, CertPEM: creds.cert, KeyPEM: creds.key, Phases: phases})
	if err != nil {
		t.Fatal(err)
	}
	a := &attackerHandle{t: t, lines: make(chan string, 16), done: make(chan struct{}),
		stderr: filepath.Join(t.TempDir(), "attacker.stderr")}
	errf, err := os.Create(a.stderr)
	if err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(os.Args[0], "-test.run=^$")
	a.cmd.Env = append(voltEnv(), attackerEnv+"="+string(spec))
	a.cmd.Stderr = errf
	a.stdin, err = a.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start the attacker: %v", err)
	}
	go func() {
		defer close(a.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
		// Wait closes the pipe: only once everything is read.
		a.cmd.Wait()
		errf.Close()
	}()
	t.Cleanup(func() {
		a.stdin.Close()
		select {
		case <-a.done:
		case <-time.After(5 * time.Second):
			a.cmd.Process.Kill()
			<-a.done
		}
	})
	return a
}

// line is the attacker's next line of output.
func (a *attackerHandle) line(what string) string {
	a.t.Helper()
	select {
	case l, ok := <-a.lines:
		if !ok {
			select {
			case <-a.done:
			case <-time.After(5 * time.Second):
			}
			a.t.Fatalf("the attacker ended before %s (%v); its stderr:\n%s", what, a.cmd.ProcessState, tail(a.stderr, 60))
		}
		return l
	case <-time.After(60 * time.Second):
		a.t.Fatalf("the attacker did not say %s within a minute; its stderr:\n%s", what, tail(a.stderr, 40))
	}
	return ""
}

// waitReady waits until the attacker has run phase.
func (a *attackerHandle) waitReady(phase int) {
	a.t.Helper()
	want := fmt.Sprintf("READY %d", phase)
	for l := a.line(want); l != want; l = a.line(want) {
		a.t.Logf("attacker: %s", l)
	}
}

// next starts the attacker's next phase.
func (a *attackerHandle) next() {
	a.t.Helper()
	if _, err := io.WriteString(a.stdin, "next\n"); err != nil {
		a.t.Fatalf("tell the attacker: %v", err)
	}
}

// finish ends the attacker and returns what it saw.
func (a *attackerHandle) finish() attackReport {
	a.t.Helper()
	a.stdin.Close()
	for {
		l := a.line("its report")
		if rest, ok := strings.CutPrefix(l, "REPORT "); ok {
			var rep attackReport
			if err := json.Unmarshal([]byte(rest), &rep); err != nil {
				a.t.Fatalf("the attacker's report: %v\n%s", err, rest)
			}
			return rep
		}
		a.t.Logf("attacker: %s", l)
	}
}
