package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/pki"
)

// netns is a network namespace the test made, with one end of a veth pair
// at addr.
type netns struct {
	name string
	addr string
	link string // its end of the veth pair
}

// ip runs `ip args...`, failing the test on error.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// twoNamespaces makes two network namespaces joined by a veth pair, with
// addresses 10.77.N.1 and 10.77.N.2, and removes them at cleanup. They are
// this test's own: nothing else on the machine can reach those addresses.
func twoNamespaces(t *testing.T) (a, b netns) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("the ip command (Debian's iproute2) is needed: %v", err)
	}
	n := rand.IntN(200) + 20
	tag := fmt.Sprintf("v%d%d", os.Getpid()%10000, n)
	a = netns{name: tag + "a", addr: fmt.Sprintf("10.77.%d.1", n), link: tag + "x"}
	b = netns{name: tag + "b", addr: fmt.Sprintf("10.77.%d.2", n), link: tag + "y"}
	for _, ns := range []netns{a, b} {
		ip(t, "netns", "add", ns.name)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns.name).Run() })
	}
	ip(t, "link", "add", tag+"x", "netns", a.name, "type", "veth", "peer", "name", tag+"y", "netns", b.name)
	for _, x := range []struct {
		ns   netns
		link string
	}{{a, tag + "x"}, {b, tag + "y"}} {
		ip(t, "-n", x.ns.name, "addr", "add", x.ns.addr+"/24", "dev", x.link)
		ip(t, "-n", x.ns.name, "link", "set", x.link, "up")
		ip(t, "-n", x.ns.name, "link", "set", "lo", "up")
	}
	return a, b
}

// TestRunnerInAnotherNamespaceJoinsWithAToken: `volt up` listens on one
// namespace's address, a runner in another namespace joins it with a token
// (no shared credentials: its directory starts empty) and builds a commit
// end to end over mutual TLS across the veth link.
func TestRunnerInAnotherNamespaceJoinsWithAToken(t *testing.T) {
	t.Parallel()
	dns, rns := twoNamespaces(t)
	r := newRepo(t, map[string]string{"tests/test_basic.py": basicTest})
	data := filepath.Join(t.TempDir(), "data")
	dispAddr := dns.addr + ":8000"
	startVoltVia(t, "up", []string{"ip", "netns", "exec", dns.name}, "up", "--repo", r.bare, "--poll", "1s", "--runners", "0",
		"--data-dir", data, "--listen", dispAddr, "--http", "")
	creds := filepath.Join(data, "credentials")
	eventually(t, 20*time.Second, func() bool { return fileExists(filepath.Join(creds, pki.CACertFile)) }, "volt up made no CA")
	tok := runVolt(t, 10*time.Second, "join-token", "create", "--credentials", creds)
	require.Equal(t, 0, tok.code, tok.stderr)

	mine := filepath.Join(t.TempDir(), "runner-creds")
	runner := startVoltVia(t, "runner", []string{"ip", "netns", "exec", rns.name}, "runner", "--join", strings.TrimSpace(tok.stdout),
		"--id", "ns-runner", "--credentials", mine, "--dispatcher-server", dispAddr, "--listen", rns.addr+":8900",
		"--work-dir", filepath.Join(t.TempDir(), "w"))
	rf := waitResult(t, data, r.head(), 60*time.Second)
	rf.wantStatus(t, "passed")
	require.Equal(t, "ns-runner", rf.header["runner"])
	leaf, err := pki.DecodeCert(mustRead(t, filepath.Join(mine, pki.NodeCertFile(pki.RoleRunner))))
	require.NoError(t, err)
	require.NoError(t, leaf.VerifyHostname(rns.addr), "the runner's certificate names its namespace address")
	require.Contains(t, runner.logText(), "joined the cluster")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
