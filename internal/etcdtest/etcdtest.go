// Package etcdtest starts a real etcd cluster on 127.0.0.1 for tests: the
// etcd binary Debian's etcd-server package installs (`make deps` installs
// it), one process per member, each with its own data directory under the
// test's temporary directory, optionally with mutual TLS. Members can be
// stopped, killed, paused and started again; cleanup kills only the
// processes it started.
package etcdtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/voltci/volt/internal/voltbin"
	"github.com/voltci/volt/store/etcdstore"
)

// Binary is where the etcd server is looked for first; else PATH.
const Binary = "/usr/bin/etcd"

// Options say what cluster to start.
type Options struct {
	// Members is how many (default 3).
	Members int
	// TLS: clients must present a certificate of the cluster's own CA.
	TLS bool
	// ServerTLS, when set with TLS, are the CA, certificate and key files
	// the members use (say a Volt cluster CA and a certificate `volt ca
	// issue` made) instead of a CA of the harness's own.
	ServerTLS [3]string
	// Host is the address the members listen on (default 127.0.0.1).
	// With Prefix set (say `ip netns exec NS`, to run them in a network
	// namespace a test made), ports from 23790 up are used, since a free
	// port cannot be probed from outside the namespace.
	Host   string
	Prefix []string
}

// Cluster is a running etcd cluster.
type Cluster struct {
	tb      testing.TB
	dir     string
	bin     string
	members []*member
	tlsDir  string
	prefix  []string // the command that runs each member (ip netns exec NS)
}

type member struct {
	name, client, peer string
	dir                string
	mu                 sync.Mutex
	cmd                *exec.Cmd
	done               chan struct{}
	args               []string
	log                string
}

// Start starts the cluster and waits until every member is healthy.
func Start(tb testing.TB, o Options) *Cluster {
	tb.Helper()
	if o.Members <= 0 {
		o.Members = 3
	}
	bin := Binary
	if _, err := os.Stat(bin); err != nil {
		p, err := exec.LookPath("etcd")
		if err != nil {
			tb.Fatalf("etcdtest: no etcd server at %s or on PATH: `make deps` installs Debian's etcd-server", Binary)
		}
		bin = p
	}
	c := &Cluster{tb: tb, dir: tb.TempDir(), bin: bin}
	if o.TLS {
		c.tlsDir = filepath.Join(c.dir, "tls")
		if err := writeTLS(c.tlsDir); err != nil {
			tb.Fatalf("etcdtest: certificates: %v", err)
		}
	}
	serverCA, serverCert, serverKey := filepath.Join(c.tlsDir, "ca.pem"), filepath.Join(c.tlsDir, "server.pem"), filepath.Join(c.tlsDir, "server-key.pem")
	if o.ServerTLS[0] != "" {
		serverCA, serverCert, serverKey = o.ServerTLS[0], o.ServerTLS[1], o.ServerTLS[2]
	}
	var initial []string
	c.prefix = o.Prefix
	for i := range o.Members {
		m := &member{name: fmt.Sprintf("m%d", i), client: freeAddr(tb), peer: freeAddr(tb)}
		if o.Host != "" {
			m.client, m.peer = fmt.Sprintf("%s:%d", o.Host, 23790+2*i), fmt.Sprintf("%s:%d", o.Host, 23791+2*i)
		}
		m.dir = filepath.Join(c.dir, m.name)
		m.log = filepath.Join(c.dir, m.name+".log")
		c.members = append(c.members, m)
		initial = append(initial, fmt.Sprintf("%s=http://%s", m.name, m.peer))
	}
	scheme := "http"
	if o.TLS {
		scheme = "https"
	}
	for _, m := range c.members {
		m.args = []string{"--name", m.name, "--data-dir", m.dir,
			"--listen-client-urls", scheme + "://" + m.client, "--advertise-client-urls", scheme + "://" + m.client,
			"--listen-peer-urls", "http://" + m.peer, "--initial-advertise-peer-urls", "http://" + m.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "volt-etcdtest-" + filepath.Base(c.dir),
			"--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "error"}
		if o.TLS {
			m.args = append(m.args, "--client-cert-auth", "--trusted-ca-file", serverCA, "--cert-file", serverCert, "--key-file", serverKey)
		}
		c.start(m)
	}
	tb.Cleanup(c.cleanup)
	if o.Prefix == nil && o.ServerTLS[0] == "" {
		c.WaitHealthy(30 * time.Second)
	}
	return c
}

func freeAddr(tb testing.TB) string {
	port, err := voltbin.FreePort()
	if err != nil {
		tb.Fatalf("etcdtest: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func (c *Cluster) start(m *member) {
	c.tb.Helper()
	f, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.tb.Fatalf("etcdtest: %v", err)
	}
	argv := append(append(append([]string(nil), c.prefix...), c.bin), m.args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		c.tb.Fatalf("etcdtest: start %s: %v", m.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
}

// Endpoints are the members' client addresses.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.client
	}
	return out
}

// Endpoint is member i's client address.
func (c *Cluster) Endpoint(i int) string { return c.members[i].client }

// TLSFiles are the CA, client certificate and key for a TLS cluster.
func (c *Cluster) TLSFiles() (ca, cert, key string) {
	if c.tlsDir == "" {
		return "", "", ""
	}
	return filepath.Join(c.tlsDir, "ca.pem"), filepath.Join(c.tlsDir, "client.pem"), filepath.Join(c.tlsDir, "client-key.pem")
}

// Client is a client of the whole cluster; closed at cleanup.
func (c *Cluster) Client() *clientv3.Client {
	c.tb.Helper()
	cfg := clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if c.tlsDir != "" {
		t, err := etcdstore.ClientTLS(c.TLSFiles())
		if err != nil {
			c.tb.Fatalf("etcdtest: %v", err)
		}
		cfg.TLS = t
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		c.tb.Fatalf("etcdtest: client: %v", err)
	}
	c.tb.Cleanup(func() { cli.Close() })
	return cli
}

// WaitHealthy waits until a write through the cluster succeeds.
func (c *Cluster) WaitHealthy(timeout time.Duration) {
	c.tb.Helper()
	cli := c.Client()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Put(ctx, "/etcdtest/health", "ok")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("etcdtest: not healthy after %s: %v\n%s", timeout, err, c.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) logs() string {
	var b strings.Builder
	for _, m := range c.members {
		data, _ := os.ReadFile(m.log)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 10 {
			lines = lines[len(lines)-10:]
		}
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", m.name, m.client, strings.Join(lines, "\n"))
	}
	return b.String()
}

func (c *Cluster) signal(i int, sig syscall.Signal) {
	m := c.members[i]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Signal(sig)
	}
}

// Kill kills member i (SIGKILL) and waits until it is gone.
func (c *Cluster) Kill(i int) {
	c.signal(i, syscall.SIGKILL)
	<-c.members[i].done
}

// Stop stops member i (SIGTERM, SIGKILL after 10 s).
func (c *Cluster) Stop(i int) {
	c.signal(i, syscall.SIGTERM)
	select {
	case <-c.members[i].done:
	case <-time.After(10 * time.Second):
		c.Kill(i)
	}
}

// Pause freezes member i (SIGSTOP); Resume thaws it.
func (c *Cluster) Pause(i int) { c.signal(i, syscall.SIGSTOP) }

// Resume thaws member i (SIGCONT).
func (c *Cluster) Resume(i int) { c.signal(i, syscall.SIGCONT) }

// Restart starts member i again on its data directory (after Kill or
// Stop), rejoining the cluster.
func (c *Cluster) Restart(i int) {
	c.tb.Helper()
	m := c.members[i]
	select {
	case <-m.done:
	default:
		c.tb.Fatalf("etcdtest: restart %s: it is still running", m.name)
	}
	args := make([]string, 0, len(m.args))
	for j := 0; j < len(m.args); j++ {
		if m.args[j] == "--initial-cluster-state" {
			args = append(args, "--initial-cluster-state", "existing")
			j++
			continue
		}
		args = append(args, m.args[j])
	}
	m.args = args
	c.start(m)
}

func (c *Cluster) cleanup() {
	for i, m := range c.members {
		c.signal(i, syscall.SIGCONT)
		c.signal(i, syscall.SIGKILL)
		<-m.done
	}
}

// writeTLS makes a CA, a server certificate for 127.0.0.1 and a client
// certificate in dir.
func writeTLS(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcdtest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER); err != nil {
		return err
	}
	for i, leaf := range []struct {
		name string
		eku  x509.ExtKeyUsage
	}{{"server", x509.ExtKeyUsageServerAuth}, {"client", x509.ExtKeyUsageClientAuth}} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: "etcdtest " + leaf.name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{leaf.eku, x509.ExtKeyUsageClientAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, leaf.name+".pem"), "CERTIFICATE", der); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, leaf.name+"-key.pem"), "EC PRIVATE KEY", kb); err != nil {
			return err
		}
	}
	return nil
}

func writePEM(path, kind string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}
