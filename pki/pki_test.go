package pki

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEnsureCAOnceUnderConcurrency(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	now := time.Now()
	const n = 8
	fps := make([]string, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ca, c, err := EnsureCA(dir, now)
			require.NoError(t, err)
			fps[i], created[i] = Fingerprint(ca.Cert), c
		}()
	}
	wg.Wait()
	count := 0
	for i := range n {
		require.Equal(t, fps[0], fps[i], "every caller sees the same CA")
		if created[i] {
			count++
		}
	}
	require.Equal(t, 1, count, "exactly one caller creates the CA")
	st, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	st, err = os.Stat(filepath.Join(dir, CAKeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestInitRefusesAnExistingCA(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o700))
	_, err := InitCA(dir, time.Now())
	require.NoError(t, err)
	_, err = InitCA(dir, time.Now())
	require.ErrorContains(t, err, "already holds a CA")
}

func TestIssueNamesRoleNameAndHosts(t *testing.T) {
	ca, _, err := EnsureCA(t.TempDir()+"/c", time.Now())
	require.NoError(t, err)
	key, err := NewKey()
	require.NoError(t, err)
	leaf, err := ca.Issue(key.Public(), Request{Identity: Identity{RoleRunner, "vm:8901"}, Hosts: []string{"127.0.0.1", "runner-7.example.com"}}, time.Now())
	require.NoError(t, err)
	id, err := IdentityOf(leaf)
	require.NoError(t, err)
	require.Equal(t, Identity{RoleRunner, "vm:8901"}, id)
	require.NoError(t, leaf.VerifyHostname("127.0.0.1"))
	require.NoError(t, leaf.VerifyHostname("runner-7.example.com"))
	require.Error(t, leaf.VerifyHostname("10.0.0.9"))

	for _, bad := range []Request{
		{Identity: Identity{"root", "x"}},
		{Identity: Identity{RoleRunner, ""}},
		{Identity: Identity{RoleRunner, "a/b"}},
		{Identity: Identity{RoleRunner, "a b"}},
	} {
		_, err := ca.Issue(key.Public(), bad, time.Now())
		require.Error(t, err, "%+v", bad)
	}
}

// writeIssued issues a certificate into dir (with the CA's certificate but
// not its key), as `volt ca issue --out dir` does.
func writeIssued(t *testing.T, ca *CA, dir string, id Identity, hosts []string, ttl time.Duration, now time.Time) {
	t.Helper()
	key, err := NewKey()
	require.NoError(t, err)
	leaf, err := ca.Issue(key.Public(), Request{Identity: id, Hosts: hosts, TTL: ttl}, now)
	require.NoError(t, err)
	pem, err := EncodeKey(key)
	require.NoError(t, err)
	require.NoError(t, WriteNode(dir, ca.Cert, leaf, pem))
}

func TestOpenNamesTheFileToFix(t *testing.T) {
	now := time.Now()
	ca, _, err := EnsureCA(filepath.Join(t.TempDir(), "ca"), now)
	require.NoError(t, err)
	other, _, err := EnsureCA(filepath.Join(t.TempDir(), "other"), now)
	require.NoError(t, err)
	runner := Identity{RoleRunner, "r7"}
	loop := []string{"127.0.0.1"}

	cases := []struct {
		name  string
		setup func(dir string)
		opts  Options
		want  string
	}{
		{"no CA", func(string) {}, Options{Identity: runner}, "no ca.crt"},
		{"no certificate for the role", func(dir string) {
			writeIssued(t, ca, dir, Identity{RoleObserver, "o"}, loop, 0, now)
		}, Options{Identity: runner}, "no certificate for the runner role"},
		{"expired", func(dir string) {
			writeIssued(t, ca, dir, runner, loop, time.Hour, now.Add(-2*time.Hour))
		}, Options{Identity: runner}, "expired at"},
		{"clock far off", func(dir string) {
			writeIssued(t, ca, dir, runner, loop, time.Hour, now.Add(24*time.Hour))
		}, Options{Identity: runner}, "set the clock right"},
		{"another CA", func(dir string) {
			writeIssued(t, other, dir, runner, loop, 0, now)
			require.NoError(t, WriteFileAtomic(filepath.Join(dir, CACertFile), EncodeCert(ca.Cert), 0o644))
		}, Options{Identity: runner}, "is not from the cluster CA"},
		{"another host", func(dir string) {
			writeIssued(t, ca, dir, runner, loop, 0, now)
		}, Options{Identity: runner, Require: []string{"runner-9.example.com"}}, "does not cover host runner-9.example.com"},
		{"another name", func(dir string) {
			writeIssued(t, ca, dir, runner, loop, 0, now)
		}, Options{Identity: Identity{RoleRunner, "r8"}}, "names runner/r7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "creds")
			require.NoError(t, os.MkdirAll(dir, 0o700))
			tc.setup(dir)
			tc.opts.Dir = dir
			_, err := Open(tc.opts)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			if tc.name != "no CA" {
				require.True(t, strings.Contains(err.Error(), dir), "the error names the file: %v", err)
			}
		})
	}
}

func TestOpenLoadsAnIssuedCertificateAndTakesItsName(t *testing.T) {
	now := time.Now()
	ca, _, err := EnsureCA(filepath.Join(t.TempDir(), "ca"), now)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "node")
	writeIssued(t, ca, dir, Identity{RoleRunner, "r7"}, []string{"127.0.0.1"}, 0, now)
	c, err := Open(Options{Dir: dir, Identity: Identity{Role: RoleRunner}, Hosts: []string{"127.0.0.1"}})
	require.NoError(t, err)
	require.Equal(t, Identity{RoleRunner, "r7"}, c.Identity())
	require.Nil(t, c.CA(), "a node without the CA key cannot issue")
}

func TestSelfIssuedCertificateIsRenewedAtTwoThirds(t *testing.T) {
	now := time.Now()
	clock := now
	dir := filepath.Join(t.TempDir(), "creds")
	c, err := Open(Options{Dir: dir, Identity: Identity{RoleDispatcher, "d"}, Hosts: []string{"127.0.0.1"}, TTL: 30 * time.Second, Create: true, Now: func() time.Time { return clock }})
	require.NoError(t, err)
	first, err := c.Certificate()
	require.NoError(t, err)
	clock = now.Add(5 * time.Second)
	same, err := c.Certificate()
	require.NoError(t, err)
	require.Same(t, first, same, "not yet due")
	// ClockSkew back-dates NotBefore, so two thirds of the life are gone
	// soon after issue for so short a TTL; move well past them.
	clock = now.Add(25 * time.Second)
	renewed, err := c.Certificate()
	require.NoError(t, err)
	require.NotSame(t, first, renewed)
	require.True(t, renewed.Leaf.NotAfter.After(first.Leaf.NotAfter))
}

func TestRevocation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	clock := time.Now()
	c, err := Open(Options{Dir: dir, Identity: Identity{RoleDispatcher, "d"}, Create: true, Now: func() time.Time { return clock }})
	require.NoError(t, err)
	r7 := Identity{RoleRunner, "r7"}
	require.False(t, c.Revoked(r7))
	require.NoError(t, Revoke(dir, "runner/r7"))
	require.NoError(t, Revoke(dir, "runner/r7"), "revoking twice is fine")
	clock = clock.Add(2 * revokedCheckEvery)
	require.True(t, c.Revoked(r7))
	require.False(t, c.Revoked(Identity{RoleRunner, "r8"}))
	require.NoError(t, Revoke(dir, "o1"))
	clock = clock.Add(2 * revokedCheckEvery)
	require.True(t, c.Revoked(Identity{RoleObserver, "o1"}), "a bare name revokes every role")
	b, err := os.ReadFile(filepath.Join(dir, RevokedFile))
	require.NoError(t, err)
	require.Equal(t, "runner/r7\no1\n", string(b))
}

func TestCertificateDirectoryOpenToOthersIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	_, err := Open(Options{Dir: dir, Identity: Identity{RoleDispatcher, "d"}, Create: true})
	require.ErrorContains(t, err, "chmod 700")
}

// TestKeyFile: the log-ticket key is made once (32 random bytes, mode
// 0600) and read back unchanged, by processes starting at once too; a
// key others may read, or of the wrong size, stops the role with what to do.
func TestKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "creds")
	const n = 4
	keys := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := KeyFile(dir, LogTicketKeyFile)
			require.NoError(t, err)
			keys[i] = k
		}()
	}
	wg.Wait()
	require.Len(t, keys[0], 32)
	for _, k := range keys[1:] {
		require.Equal(t, keys[0], k, "one key for every process")
	}
	path := filepath.Join(dir, LogTicketKeyFile)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	again, err := KeyFile(dir, LogTicketKeyFile)
	require.NoError(t, err)
	require.Equal(t, keys[0], again, "stable across restarts")
	other, err := KeyFile(filepath.Join(t.TempDir(), "other"), LogTicketKeyFile)
	require.NoError(t, err)
	require.NotEqual(t, keys[0], other, "random")

	require.NoError(t, os.Chmod(path, 0o640))
	_, err = KeyFile(dir, LogTicketKeyFile)
	require.ErrorContains(t, err, "chmod 600 "+path)
	require.NoError(t, os.Chmod(path, 0o600))
	require.NoError(t, os.WriteFile(path, []byte("short"), 0o600))
	_, err = KeyFile(dir, LogTicketKeyFile)
	require.ErrorContains(t, err, "not a 32-byte key")
}
