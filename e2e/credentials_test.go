package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/pki"
)

// issueInto writes a node certificate from ca into dir, as `volt ca issue`
// does, valid from issued for ttl.
func issueInto(t *testing.T, ca *pki.CA, dir string, id pki.Identity, hosts []string, issued time.Time, ttl time.Duration) {
	t.Helper()
	key, err := pki.NewKey()
	require.NoError(t, err)
	leaf, err := ca.Issue(key.Public(), pki.Request{Identity: id, Hosts: hosts, TTL: ttl}, issued)
	require.NoError(t, err)
	pem, err := pki.EncodeKey(key)
	require.NoError(t, err)
	require.NoError(t, pki.WriteNode(dir, ca.Cert, leaf, pem))
}

// TestCredentialFaultsStopTheRole: each credential fault stops the role at
// once with exit 2 and a message that names the file or flag to fix.
func TestCredentialFaultsStopTheRole(t *testing.T) {
	t.Parallel()
	now := time.Now()
	caDir := filepath.Join(t.TempDir(), "ca")
	ca, _, err := pki.EnsureCA(caDir, now)
	require.NoError(t, err)
	runner := pki.Identity{Role: pki.RoleRunner, Name: "r7"}
	loop := []string{"localhost", "127.0.0.1", "::1"}
	// An address off this machine: the role must stop on its credentials
	// before it tries to reach it (so nothing is ever sent there).
	const remote = "192.0.2.1:8000"

	cases := []struct {
		name  string
		setup func(dir string)
		args  []string
		want  []string
	}{
		{"missing CA", func(string) {}, nil, []string{"no ca.crt", "--join", "--credentials"}},
		{"expired certificate", func(dir string) {
			issueInto(t, ca, dir, runner, loop, now.Add(-3*time.Hour), time.Hour)
		}, nil, []string{"runner.crt", "expired at"}},
		{"certificate for another host", func(dir string) {
			issueInto(t, ca, dir, runner, loop, now, time.Hour)
		}, []string{"--advertise", "runner-9.example.com"}, []string{"runner.crt", "does not cover host runner-9.example.com"}},
		{"clock far off", func(dir string) {
			issueInto(t, ca, dir, runner, loop, now.Add(48*time.Hour), time.Hour)
		}, nil, []string{"runner.crt", "set the clock right"}},
		{"certificate for another role", func(dir string) {
			issueInto(t, ca, dir, pki.Identity{Role: pki.RoleObserver, Name: "r7"}, loop, now, time.Hour)
		}, nil, []string{"no certificate for the runner role"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "creds")
			require.NoError(t, os.MkdirAll(dir, 0o700))
			tc.setup(dir)
			args := append([]string{"runner", "--credentials", dir, "--dispatcher-server", remote, "--listen", "127.0.0.1:0",
				"--work-dir", filepath.Join(t.TempDir(), "w")}, tc.args...)
			r := runVolt(t, 30*time.Second, args...)
			require.Equal(t, 2, r.code, "exit code; stderr: %s", r.stderr)
			for _, w := range tc.want {
				require.Contains(t, r.stderr, w)
			}
			if tc.name != "missing CA" {
				require.True(t, strings.Contains(r.stderr, dir), "the message names the file: %s", r.stderr)
			}
		})
	}
}

// TestJoinedRunnerBuildsAndReusedTokenIsRefused: a runner with an empty
// credentials directory joins `volt up` with a token, builds a commit, and
// a second runner with the same token is refused without starting.
func TestJoinedRunnerBuildsAndReusedTokenIsRefused(t *testing.T) {
	t.Parallel()
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	data := filepath.Join(t.TempDir(), "data")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startVolt(t, "up", "up", "--repo", r.bare, "--poll", "1s", "--runners", "0", "--data-dir", data, "--listen", addr, "--http", "")
	creds := filepath.Join(data, "credentials")
	eventually(t, 20*time.Second, func() bool { return fileExists(filepath.Join(creds, pki.CACertFile)) }, "volt up made no CA in %s", creds)
	tok := runVolt(t, 10*time.Second, "join-token", "create", "--credentials", creds, "--ttl", "5m")
	require.Equal(t, 0, tok.code, tok.stderr)
	token := strings.TrimSpace(tok.stdout)

	mine := filepath.Join(t.TempDir(), "runner-creds")
	startVolt(t, "joined", "runner", "--join", token, "--id", "joined-1", "--credentials", mine,
		"--dispatcher-server", addr, "--listen", "127.0.0.1:0", "--work-dir", filepath.Join(t.TempDir(), "w"))
	waitResult(t, data, r.head(), 60*time.Second).wantStatus(t, "passed")
	rf, _ := readResult(t, data, r.head())
	require.Equal(t, "joined-1", rf.header["runner"])
	st, err := os.Stat(filepath.Join(mine, pki.NodeKeyFile(pki.RoleRunner)))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the runner's key")

	again := runVolt(t, 30*time.Second, "runner", "--join", token, "--id", "joined-2", "--credentials", filepath.Join(t.TempDir(), "c2"),
		"--dispatcher-server", addr, "--listen", "127.0.0.1:0", "--work-dir", filepath.Join(t.TempDir(), "w2"))
	require.Equal(t, 1, again.code, again.stderr)
	require.Contains(t, again.stderr, "unknown or already used join token")
}

// TestCertificatesRenewDuringALongJob: with certificates issued for 20 s, a
// joined runner renews its own (from the dispatcher, authenticating with
// the current one) during a 60 s job, and the job finishes normally: no
// connection is dropped for a renewal.
func TestCertificatesRenewDuringALongJob(t *testing.T) {
	t.Parallel()
	r := newRepo(t, map[string]string{".volt.yml": "steps:\n  - name: long\n    run: sleep 60; echo slept\n"})
	data := filepath.Join(t.TempDir(), "data")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	up := startVolt(t, "up", "up", "--repo", r.bare, "--poll", "1s", "--runners", "0", "--data-dir", data, "--listen", addr,
		"--http", "", "--cert-ttl", "20s")
	creds := filepath.Join(data, "credentials")
	eventually(t, 20*time.Second, func() bool { return fileExists(filepath.Join(creds, pki.CACertFile)) }, "volt up made no CA")
	tok := runVolt(t, 10*time.Second, "join-token", "create", "--credentials", creds)
	require.Equal(t, 0, tok.code, tok.stderr)
	mine := filepath.Join(t.TempDir(), "runner-creds")
	runner := startVolt(t, "runner", "runner", "--join", strings.TrimSpace(tok.stdout), "--id", "renewing", "--credentials", mine,
		"--dispatcher-server", addr, "--listen", "127.0.0.1:0", "--work-dir", filepath.Join(t.TempDir(), "w"))
	rf := waitResult(t, data, r.head(), 120*time.Second)
	rf.wantStatus(t, "passed")
	require.Equal(t, "1", rf.header["attempt"], "the job ran once, never reassigned")
	require.Contains(t, rf.output, "slept")
	renewals := countLines(runner.logText(), "certificate renewed")
	require.GreaterOrEqual(t, renewals, 2, "a 20 s certificate renewed at least twice during a 60 s job:\n%s", runner.logText())
	require.NotContains(t, up.logText(), "runner lost")
	leaf, err := pki.DecodeCert(mustRead(t, filepath.Join(mine, pki.NodeCertFile(pki.RoleRunner))))
	require.NoError(t, err)
	require.True(t, leaf.NotAfter.After(time.Now()), "the certificate on disk is current")
}

// TestRevokedRunnerIsCutOffEverywhere: two runners join `volt up` with
// tokens, each with its own credentials directory (as on other machines).
// `volt ca revoke runner/bad` on the CA's side: the dispatcher drops bad,
// refuses it from then on (it cannot register again), the other runner
// learns the revocation from the dispatcher (it has no revocation file),
// and builds go on on the good runner.
func TestRevokedRunnerIsCutOffEverywhere(t *testing.T) {
	t.Parallel()
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	data := filepath.Join(t.TempDir(), "data")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	up := startVolt(t, "up", "up", "--repo", r.bare, "--poll", "1s", "--runners", "0", "--data-dir", data, "--listen", addr, "--http", "")
	creds := filepath.Join(data, "credentials")
	eventually(t, 20*time.Second, func() bool { return fileExists(filepath.Join(creds, pki.CACertFile)) }, "volt up made no CA")
	join := func(name string) *proc {
		tok := runVolt(t, 10*time.Second, "join-token", "create", "--credentials", creds)
		require.Equal(t, 0, tok.code, tok.stderr)
		p := startVolt(t, name, "runner", "--join", strings.TrimSpace(tok.stdout), "--id", name,
			"--credentials", filepath.Join(t.TempDir(), name+"-creds"), "--dispatcher-server", addr, "--listen", "127.0.0.1:0",
			"--work-dir", filepath.Join(t.TempDir(), "w"), "--dispatcher-grace", "3s")
		eventually(t, 20*time.Second, func() bool { return strings.Contains(up.logText(), `runner registered" role=dispatcher runner=`+name) },
			"%s did not register", name)
		return p
	}
	good := join("good")
	bad := join("bad")

	rev := runVolt(t, 10*time.Second, "ca", "revoke", "runner/bad", "--credentials", creds)
	require.Equal(t, 0, rev.code, rev.stderr)
	eventually(t, 20*time.Second, func() bool { return strings.Contains(up.logText(), `runner lost" role=dispatcher runner=bad`) },
		"the dispatcher kept the revoked runner")
	eventually(t, 20*time.Second, func() bool { return strings.Contains(good.logText(), "revocations learned from the dispatcher") },
		"the other runner never learned the revocation")
	// bad cannot come back: its registrations never reach the dispatcher,
	// and past its grace period it gives up.
	require.Equal(t, 1, bad.waitExit(t, 30*time.Second), "the revoked runner gives up on a dispatcher it cannot reach")
	require.Equal(t, 1, countLines(up.logText(), `runner registered" role=dispatcher runner=bad`))

	sha := r.commitPush("after the revocation", map[string]string{"tests/test_more.py": "import unittest\nclass T(unittest.TestCase):\n    def test_ok(self): pass\n"})
	rf := waitResult(t, data, sha, 60*time.Second)
	rf.wantStatus(t, "passed")
	require.Equal(t, "good", rf.header["runner"])
}
