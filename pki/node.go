package pki

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options says whose credentials Open loads, and from where.
type Options struct {
	// Dir is the credentials directory.
	Dir string
	// Identity is the node's role and name. A node whose certificate is a
	// file (issued offline or by a join) takes the name from it when Name
	// is empty.
	Identity Identity
	// Hosts are the node's DNS names and IPs that a certificate this node
	// issues itself names.
	Hosts []string
	// Require are the hosts peers reach the node by (its advertised or
	// listen host): a certificate from a file must cover them.
	Require []string
	// TTL is the lifetime of the certificates this node issues itself
	// (DefaultTTL when zero); they are renewed when two thirds have passed.
	TTL time.Duration
	// Create lets Open make a new CA in Dir when it holds none.
	Create bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Credentials are a node's TLS identity: the cluster CA it trusts, its own
// certificate (renewed in place, so that no connection is dropped for it),
// and the revocation list it enforces.
type Credentials struct {
	dir     string
	id      Identity
	hosts   []string
	require []string
	ttl     time.Duration
	now     func() time.Time
	roots   *x509.CertPool
	caCrt   *x509.Certificate
	ca      *CA // nil: this node cannot issue

	mu         sync.Mutex
	cert       *tls.Certificate
	leaf       *x509.Certificate
	certMod    time.Time // of the cert file, for a node whose cert is a file
	revoked    map[string]bool
	revokedFI  os.FileInfo // of the list last read: a rewrite is a new file
	revokedChk time.Time
	// learned are revocations a dispatcher told this node about (a node on
	// another machine has no revocation file of its own).
	learned map[string]bool
}

// ErrNoCredentials means Dir holds no CA and the node may not create one.
var ErrNoCredentials = errors.New("no Volt credentials")

// Open loads (or, with the CA key at hand, issues) a node's credentials.
// Every error names the file or flag to fix.
func Open(o Options) (*Credentials, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	now := o.Now()
	c := &Credentials{dir: o.Dir, id: o.Identity, hosts: o.Hosts, require: o.Require, ttl: o.TTL, now: o.Now}
	_, err := os.Stat(filepath.Join(o.Dir, CACertFile))
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist) && o.Create:
		if _, _, err := EnsureCA(o.Dir, now); err != nil {
			return nil, err
		}
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w in %s (no %s): join the cluster (`volt runner --join TOKEN`), copy the files `volt ca issue` wrote there, or pass --credentials DIR", ErrNoCredentials, o.Dir, CACertFile)
	default:
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if err := EnsureDir(o.Dir); err != nil {
		return nil, err
	}
	caCrt, err := LoadCACert(o.Dir)
	if err != nil {
		return nil, err
	}
	if caCrt.NotBefore.After(now.Add(ClockSkew)) {
		return nil, fmt.Errorf("the cluster CA %s is valid only from %s but this machine's clock says %s: set the clock right (NTP)", filepath.Join(o.Dir, CACertFile), caCrt.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.After(caCrt.NotAfter) {
		return nil, fmt.Errorf("the cluster CA %s expired at %s: create a new one (`volt ca init`) and issue every node again", filepath.Join(o.Dir, CACertFile), caCrt.NotAfter.UTC().Format(time.RFC3339))
	}
	c.caCrt = caCrt
	c.roots = x509.NewCertPool()
	c.roots.AddCert(caCrt)
	certPath := filepath.Join(o.Dir, NodeCertFile(o.Identity.Role))
	if _, err := os.Stat(certPath); err == nil {
		// A certificate of its own, issued offline or by a join, wins over
		// the CA key: it is what the operator set up for this node.
		if err := c.loadFile(now); err != nil {
			return nil, err
		}
	} else if _, err := os.Stat(filepath.Join(o.Dir, CAKeyFile)); err == nil {
		ca, err := LoadCA(o.Dir)
		if err != nil {
			return nil, err
		}
		c.ca = ca
		if err := ValidName(c.id.Name); err != nil {
			return nil, fmt.Errorf("this node's name: %w", err)
		}
		if err := c.issue(now); err != nil {
			return nil, err
		}
	} else {
		return nil, fmt.Errorf("no certificate for the %s role in %s (want %s and %s): issue one with `volt ca issue --role %s --name NAME --out %s` on the CA's machine, or join with a token", o.Identity.Role, o.Dir, NodeCertFile(o.Identity.Role), NodeKeyFile(o.Identity.Role), o.Identity.Role, o.Dir)
	}
	if _, err := c.revokedList(now); err != nil {
		return nil, err
	}
	return c, nil
}

// issue makes a fresh key and certificate for this node in memory.
func (c *Credentials) issue(now time.Time) error {
	key, err := NewKey()
	if err != nil {
		return err
	}
	leaf, err := c.ca.Issue(key.Public(), Request{Identity: c.id, Hosts: c.hosts, TTL: c.ttl}, now)
	if err != nil {
		return err
	}
	// The CA rides along in the chain: a node joining with a token finds
	// the CA its token pins there.
	c.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw, c.caCrt.Raw}, PrivateKey: key, Leaf: leaf}
	c.leaf = leaf
	return nil
}

// loadFile loads the node's certificate and key files and checks them.
func (c *Credentials) loadFile(now time.Time) error {
	certPath := filepath.Join(c.dir, NodeCertFile(c.id.Role))
	keyPath := filepath.Join(c.dir, NodeKeyFile(c.id.Role))
	st, err := os.Stat(certPath)
	if err != nil {
		return fmt.Errorf("node certificate: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return fmt.Errorf("load %s and %s: %w", certPath, keyPath, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return fmt.Errorf("%s: %w", certPath, err)
		}
		pair.Leaf = leaf
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		var inv x509.CertificateInvalidError
		switch {
		case errors.As(err, &inv) && inv.Reason == x509.Expired && now.After(leaf.NotAfter):
			return fmt.Errorf("the certificate %s expired at %s: issue a new one (`volt ca issue --role %s --name %s --out DIR`) or join again", certPath, leaf.NotAfter.UTC().Format(time.RFC3339), c.id.Role, nameOr(leaf))
		case errors.As(err, &inv) && inv.Reason == x509.Expired:
			return fmt.Errorf("the certificate %s is valid only from %s but this machine's clock says %s: set the clock right (NTP)", certPath, leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		default:
			return fmt.Errorf("the certificate %s is not from the cluster CA %s (%v): issue it from that CA, or pass the --credentials DIR it belongs to", certPath, filepath.Join(c.dir, CACertFile), err)
		}
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return fmt.Errorf("%s: %w", certPath, err)
	}
	if id.Role != c.id.Role {
		return fmt.Errorf("the certificate %s is for the %s role, not %s: issue one for %s", certPath, id.Role, c.id.Role, c.id.Role)
	}
	if c.id.Name != "" && c.id.Name != id.Name {
		return fmt.Errorf("the certificate %s names %s, but this node is %s: leave out --id/--name or issue a certificate for %s", certPath, id, c.id, c.id)
	}
	for _, h := range c.require {
		if err := leaf.VerifyHostname(h); err != nil {
			return fmt.Errorf("the certificate %s does not cover host %s (it names %s): issue one with --host %s, or use --advertise with a name it covers", certPath, h, strings.Join(leafHosts(leaf), ", "), h)
		}
	}
	if len(pair.Certificate) == 1 {
		pair.Certificate = append(pair.Certificate, c.caCrt.Raw)
	}
	c.id = id
	c.cert, c.leaf, c.certMod = &pair, leaf, st.ModTime()
	return nil
}

func nameOr(leaf *x509.Certificate) string {
	if id, err := IdentityOf(leaf); err == nil {
		return id.Name
	}
	return "NAME"
}

func leafHosts(leaf *x509.Certificate) []string {
	hs := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		hs = append(hs, ip.String())
	}
	return hs
}

// Identity is the node's own identity.
func (c *Credentials) Identity() Identity { return c.id }

// Dir is the credentials directory.
func (c *Credentials) Dir() string { return c.dir }

// Roots is the pool of the cluster CA.
func (c *Credentials) Roots() *x509.CertPool { return c.roots }

// CACert is the cluster CA's certificate.
func (c *Credentials) CACert() *x509.Certificate { return c.caCrt }

// CA is the cluster CA with its key, nil when this node cannot issue.
func (c *Credentials) CA() *CA { return c.ca }

// Leaf is the node's current certificate.
func (c *Credentials) Leaf() *x509.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaf
}

// TTL is the lifetime of the certificates this node issues (DefaultTTL
// when not set).
func (c *Credentials) TTL() time.Duration {
	if c.ttl <= 0 {
		return DefaultTTL
	}
	return c.ttl
}

// renewDue reports whether two thirds of leaf's life, counted from when it
// was issued (NotBefore is back-dated by ClockSkew), have passed.
func renewDue(leaf *x509.Certificate, now time.Time) bool {
	life := leaf.NotAfter.Sub(leaf.NotBefore.Add(ClockSkew))
	return now.After(leaf.NotAfter.Add(-life / 3))
}

// RenewDue reports whether the node's certificate should be renewed now.
func (c *Credentials) RenewDue() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return renewDue(c.leaf, c.now())
}

// Certificate is the node's certificate for a new TLS handshake: renewed
// first when two thirds of its life have passed (issued anew with the CA
// key, or reloaded when its file changed). Connections already up keep
// theirs: renewal never drops one.
func (c *Credentials) Certificate() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	due := renewDue(c.leaf, now)
	switch {
	case c.ca != nil && due:
		if err := c.issue(now); err != nil {
			return nil, fmt.Errorf("renew this node's certificate: %w", err)
		}
	case c.ca == nil:
		if st, err := os.Stat(filepath.Join(c.dir, NodeCertFile(c.id.Role))); err == nil && !st.ModTime().Equal(c.certMod) {
			if err := c.loadFile(now); err != nil {
				return nil, err
			}
		}
	}
	return c.cert, nil
}

// revokedCheckEvery bounds how often the revocation file is looked at.
const revokedCheckEvery = time.Second

// revokedList is the set of revoked identities, reread when the file changed.
func (c *Credentials) revokedList(now time.Time) (map[string]bool, error) {
	if c.revoked != nil && now.Sub(c.revokedChk) < revokedCheckEvery {
		return c.revoked, nil
	}
	c.revokedChk = now
	path := filepath.Join(c.dir, RevokedFile)
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		c.revoked = map[string]bool{}
		return c.revoked, nil
	}
	if err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	if c.revoked != nil && c.revokedFI != nil && os.SameFile(st, c.revokedFI) && st.ModTime().Equal(c.revokedFI.ModTime()) && st.Size() == c.revokedFI.Size() {
		return c.revoked, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("revocation list: %w", err)
	}
	c.revoked, c.revokedFI = ParseRevoked(b), st
	return c.revoked, nil
}

// ParseRevoked reads a revocation list: one "role/name" or bare name a
// line; # starts a comment.
func ParseRevoked(b []byte) map[string]bool {
	set := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			set[line] = true
		}
	}
	return set
}

// Revoked reports whether id is revoked (by "role/name" or by name alone).
func (c *Credentials) Revoked(id Identity) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	set, err := c.revokedList(c.now())
	if err != nil {
		return false // the last good list stays in force; Open checked it once
	}
	return set[id.String()] || set[id.Name] || c.learned[id.String()] || c.learned[id.Name]
}

// RevokedList is every revocation this node enforces, sorted: its file's
// and those it learned.
func (c *Credentials) RevokedList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	set, err := c.revokedList(c.now())
	if err != nil {
		set = c.revoked
	}
	all := map[string]bool{}
	for e := range set {
		all[e] = true
	}
	for e := range c.learned {
		all[e] = true
	}
	out := make([]string, 0, len(all))
	for e := range all {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

// Learn adds revocations a dispatcher sent (entries that are not a valid
// "role/name" or name are ignored). It reports how many were new.
func (c *Credentials) Learn(entries []string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.learned == nil {
		c.learned = map[string]bool{}
	}
	n := 0
	for _, e := range entries {
		role, name, hasRole := strings.Cut(e, "/")
		if !hasRole {
			name = role
		} else if !ValidRole(role) {
			continue
		}
		if ValidName(name) != nil || c.learned[e] || len(c.learned) >= 100_000 {
			continue
		}
		c.learned[e] = true
		n++
	}
	return n
}

// Revoke adds id (role/name, or a bare name for every role) to the
// revocation list of dir.
func Revoke(dir, entry string) error {
	unlock, err := lock(dir)
	if err != nil {
		return err
	}
	defer unlock()
	path := filepath.Join(dir, RevokedFile)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("revocation list: %w", err)
	}
	if ParseRevoked(b)[entry] {
		return nil
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	b = append(b, entry+"\n"...)
	return WriteFileAtomic(path, b, 0o644)
}

// VerifyPeer checks a peer's certificate chain (already verified against
// the CA by crypto/tls) names one Volt identity that is not revoked, and
// returns it.
func (c *Credentials) VerifyPeer(leaf *x509.Certificate) (Identity, error) {
	id, err := IdentityOf(leaf)
	if err != nil {
		return Identity{}, err
	}
	if c.Revoked(id) {
		return id, fmt.Errorf("%s is revoked", id)
	}
	return id, nil
}

// WriteNode writes a node's certificate and key (0600) into dir, with the
// CA certificate beside them.
func WriteNode(dir string, caCert, leaf *x509.Certificate, keyPEM []byte) error {
	if err := EnsureDir(dir); err != nil {
		return err
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, CACertFile), EncodeCert(caCert), 0o644); err != nil {
		return err
	}
	if err := WriteFileAtomic(filepath.Join(dir, NodeKeyFile(id.Role)), keyPEM, 0o600); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, NodeCertFile(id.Role)), EncodeCert(leaf), 0o644)
}

// KnownFile, in the per-user credentials directory, lists the credentials
// directories of the `volt up` processes this user started, one absolute
// path a line, so that CLI commands find the one a server's certificate
// comes from without being told.
const KnownFile = "known"

// Remember adds dir to the KnownFile of userDir (created 0700 if missing).
func Remember(userDir, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := EnsureDir(userDir); err != nil {
		return err
	}
	unlock, err := lock(userDir)
	if err != nil {
		return err
	}
	defer unlock()
	path := filepath.Join(userDir, KnownFile)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", path, err)
	}
	keep := []string{abs}
	for _, d := range strings.Split(string(b), "\n") {
		if d == "" || d == abs {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, CACertFile)); err == nil && len(keep) < 64 {
			keep = append(keep, d) // newest first; gone ones are dropped
		}
	}
	return WriteFileAtomic(path, []byte(strings.Join(keep, "\n")+"\n"), 0o600)
}

// Known lists the directories in the KnownFile of userDir, newest first.
func Known(userDir string) []string {
	b, err := os.ReadFile(filepath.Join(userDir, KnownFile))
	if err != nil {
		return nil
	}
	var out []string
	for _, d := range strings.Split(string(b), "\n") {
		if d != "" {
			out = append(out, d)
		}
	}
	return out
}

// Issued reports whether leaf was issued by the CA in dir.
func Issued(dir string, leaf *x509.Certificate) bool {
	ca, err := LoadCACert(dir)
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

// LogTicketKeyFile, beside the CA, is the key the dispatcher signs log
// tickets with (messages.LogTicket) and hands to the reporter it accepts.
const LogTicketKeyFile = "log-ticket.key"

// KeyFile reads the 32-byte key in file name of dir, creating it (0600,
// random) under the directory's lock when there is none, so that two
// processes starting at once share one. As with the secrets key
// (store.OpenSecretKey), a key file other users may read, or that is not
// exactly 32 bytes, is refused with what to do.
func KeyFile(dir, name string) ([]byte, error) {
	if err := EnsureDir(dir); err != nil {
		return nil, err
	}
	unlock, err := lock(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	path := filepath.Join(dir, name)
	st, err := os.Stat(path)
	if err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("the key %s may be read by other users (mode %04o): run `chmod 600 %s`", path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(b) == 32:
		return b, nil
	case err == nil:
		return nil, fmt.Errorf("%s is not a 32-byte key: remove it and restart (a new one is made)", path)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, WriteFileAtomic(path, b, 0o600)
}
