package pki

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// JoinTokensFile, beside the CA, lists the join tokens not yet used: the
// SHA-256 of each token's secret, its expiry and the role it admits. The
// secret itself is never stored.
const JoinTokensFile = "join-tokens"

// tokenPrefix starts every join token (and its format version).
const tokenPrefix = "voltjoin1"

// JoinToken is a parsed join token: a one-time secret and the fingerprint
// of the CA the joining node must find at the other end.
type JoinToken struct {
	Secret        string
	CAFingerprint string
}

func (t JoinToken) String() string { return tokenPrefix + "." + t.Secret + "." + t.CAFingerprint }

// ParseJoinToken reads "voltjoin1.SECRET.FINGERPRINT".
func ParseJoinToken(s string) (JoinToken, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return JoinToken{}, errors.New("not a Volt join token (want voltjoin1.SECRET.FINGERPRINT, as `volt join-token create` prints)")
	}
	if _, err := hex.DecodeString(parts[1]); err != nil || len(parts[1]) != 32 {
		return JoinToken{}, errors.New("join token: malformed secret")
	}
	if _, err := hex.DecodeString(parts[2]); err != nil || len(parts[2]) != 64 {
		return JoinToken{}, errors.New("join token: malformed CA fingerprint")
	}
	return JoinToken{Secret: parts[1], CAFingerprint: parts[2]}, nil
}

func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateJoinToken makes a one-time token admitting one node of role,
// valid for ttl, and records its hash in dir (which must hold the CA).
func CreateJoinToken(dir, role string, ttl time.Duration, now time.Time) (JoinToken, error) {
	if !ValidRole(role) {
		return JoinToken{}, fmt.Errorf("unknown role %q (one of %v)", role, Roles)
	}
	ca, err := LoadCACert(dir)
	if err != nil {
		return JoinToken{}, err
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err != nil {
		return JoinToken{}, fmt.Errorf("%s holds no CA key: create join tokens on the dispatcher's machine, where the CA is", dir)
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return JoinToken{}, err
	}
	tok := JoinToken{Secret: hex.EncodeToString(raw), CAFingerprint: Fingerprint(ca)}
	unlock, err := lock(dir)
	if err != nil {
		return JoinToken{}, err
	}
	defer unlock()
	entries, err := readJoinTokens(dir)
	if err != nil {
		return JoinToken{}, err
	}
	entries = append(liveTokens(entries, now), joinEntry{hash: secretHash(tok.Secret), expires: now.Add(ttl), role: role})
	return tok, writeJoinTokens(dir, entries)
}

// UseJoinToken checks a token's secret against dir and, when it is known
// and unexpired, removes it (a token admits one node) and returns the role
// it admits.
func UseJoinToken(dir, secret string, now time.Time) (role string, err error) {
	unlock, err := lock(dir)
	if err != nil {
		return "", err
	}
	defer unlock()
	entries, err := readJoinTokens(dir)
	if err != nil {
		return "", err
	}
	h := secretHash(secret)
	found := -1
	for i, e := range entries {
		if subtle.ConstantTimeCompare([]byte(e.hash), []byte(h)) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", errors.New("unknown or already used join token")
	}
	e := entries[found]
	entries = append(entries[:found], entries[found+1:]...)
	if err := writeJoinTokens(dir, liveTokens(entries, now)); err != nil {
		return "", err
	}
	if now.After(e.expires) {
		return "", fmt.Errorf("join token expired at %s", e.expires.UTC().Format(time.RFC3339))
	}
	return e.role, nil
}

type joinEntry struct {
	hash    string
	expires time.Time
	role    string
}

func liveTokens(es []joinEntry, now time.Time) []joinEntry {
	out := es[:0]
	for _, e := range es {
		if !now.After(e.expires) {
			out = append(out, e)
		}
	}
	return out
}

func readJoinTokens(dir string) ([]joinEntry, error) {
	b, err := os.ReadFile(filepath.Join(dir, JoinTokensFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("join tokens: %w", err)
	}
	var out []joinEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		exp, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, joinEntry{hash: f[0], expires: time.Unix(exp, 0), role: f[2]})
	}
	return out, nil
}

func writeJoinTokens(dir string, es []joinEntry) error {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s %d %s\n", e.hash, e.expires.Unix(), e.role)
	}
	return WriteFileAtomic(filepath.Join(dir, JoinTokensFile), []byte(b.String()), 0o600)
}

// VerifyPinned checks a server's certificate chain as a joining node does:
// one certificate in it is the CA whose fingerprint the token pins, and the
// leaf is issued by that CA. It returns the CA.
func VerifyPinned(raw [][]byte, fingerprint string) (*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return nil, fmt.Errorf("the server's certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("the server sent no certificate")
	}
	for _, c := range certs {
		if subtle.ConstantTimeCompare([]byte(Fingerprint(c)), []byte(fingerprint)) != 1 {
			continue
		}
		pool := x509.NewCertPool()
		pool.AddCert(c)
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return nil, fmt.Errorf("the server's certificate is not from the pinned CA: %w", err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("the server's CA is not the one the join token pins (sha256:%s): check --dispatcher-server, or create a new token there", fingerprint)
}

// IssueFromCSR signs a certificate for a certificate request, naming id
// and hosts: the joining node's private key never leaves it.
func (ca *CA) IssueFromCSR(csrDER []byte, id Identity, hosts []string, ttl time.Duration, now time.Time) (*x509.Certificate, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	return ca.Issue(csr.PublicKey, Request{Identity: id, Hosts: hosts, TTL: ttl}, now)
}
