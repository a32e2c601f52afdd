package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// File names inside a credentials directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
	// RevokedFile lists revoked node identities, one "role/name" a line.
	RevokedFile = "revoked"
	lockFile    = ".lock"
)

// NodeCertFile and NodeKeyFile are where a node's certificate for role lives.
func NodeCertFile(role string) string { return role + ".crt" }

// NodeKeyFile is the private key beside NodeCertFile.
func NodeKeyFile(role string) string { return role + ".key" }

// DefaultTTL is how long a node certificate is valid.
const DefaultTTL = 30 * 24 * time.Hour

// caTTL is how long a CA certificate is valid.
const caTTL = 10 * 365 * 24 * time.Hour

// ClockSkew is how far NotBefore is back-dated, so that peers whose
// clocks differ by less accept a new certificate.
const ClockSkew = 5 * time.Minute

// CA is a cluster certificate authority that can issue (it has the key).
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Fingerprint is the hex SHA-256 of a certificate's DER, the form join
// tokens pin.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// NewKey makes a node or CA private key (ECDSA P-256).
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// newCA makes a self-signed CA.
func newCA(now time.Time) (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "Volt CI cluster CA " + host, Organization: []string{"Volt CI"}},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(caTTL),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Request is what a node certificate names.
type Request struct {
	Identity
	// Hosts are the DNS names and IPs peers use to reach the node.
	Hosts []string
	TTL   time.Duration
}

// Issue signs a certificate for pub, valid from now (less ClockSkew) for
// req.TTL (DefaultTTL when zero), usable as both TLS server and client: every
// Volt node dials and serves.
func (ca *CA) Issue(pub crypto.PublicKey, req Request, now time.Time) (*x509.Certificate, error) {
	if !ValidRole(req.Role) {
		return nil, fmt.Errorf("unknown role %q (one of %v)", req.Role, Roles)
	}
	if err := ValidName(req.Name); err != nil {
		return nil, err
	}
	ttl := req.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(ttl)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: req.Identity.String(), Organization: []string{"Volt CI"}},
		NotBefore:    now.Add(-ClockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{req.Identity.URI()},
	}
	for _, h := range req.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign a certificate for %s: %w", req.Identity, err)
	}
	return x509.ParseCertificate(der)
}

// InitCA creates a CA in dir (made 0700 if missing). It refuses to replace
// an existing one.
func InitCA(dir string, now time.Time) (*CA, error) {
	ca, created, err := EnsureCA(dir, now)
	if err != nil {
		return nil, err
	}
	if !created {
		return nil, fmt.Errorf("%s already holds a CA (%s): remove it first to start a new cluster, or use it", dir, CACertFile)
	}
	return ca, nil
}

// EnsureCA loads the CA of dir, creating it first when dir has none.
// Several processes may call it at once (the README starts several roles
// together): a lock file serializes them, and only one creates the CA.
func EnsureCA(dir string, now time.Time) (ca *CA, created bool, err error) {
	if err := EnsureDir(dir); err != nil {
		return nil, false, err
	}
	unlock, err := lock(dir)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, CACertFile)); err == nil {
		ca, err := LoadCA(dir)
		return ca, false, err
	}
	ca, err = newCA(now)
	if err != nil {
		return nil, false, fmt.Errorf("create a CA in %s: %w", dir, err)
	}
	keyPEM, err := EncodeKey(ca.Key)
	if err != nil {
		return nil, false, err
	}
	// The key first: a CA certificate without its key is what a node that
	// may not issue sees, so the key must be in place before the cert.
	if err := WriteFileAtomic(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := WriteFileAtomic(filepath.Join(dir, CACertFile), EncodeCert(ca.Cert), 0o644); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// LoadCA loads the CA certificate and key of dir.
func LoadCA(dir string) (*CA, error) {
	cert, err := LoadCACert(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, CAKeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the CA key: %w", err)
	}
	key, err := DecodeKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCACert loads the CA certificate of dir.
func LoadCACert(dir string) (*x509.Certificate, error) {
	path := filepath.Join(dir, CACertFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the cluster CA: %w", err)
	}
	cert, err := DecodeCert(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", path)
	}
	return cert, nil
}

// EnsureDir makes dir (and its parents) with mode 0700, and refuses a dir
// that others can read or write: it holds private keys.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials directory: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("credentials directory: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("credentials directory %s has mode %o: others may read its keys; run `chmod 700 %s`", dir, st.Mode().Perm(), dir)
	}
	return nil
}

func lock(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
		f.Close()
	}, nil
}

// WriteFileAtomic writes b to path through a temporary file and a rename.
func WriteFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// EncodeCert is a certificate in PEM.
func EncodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// DecodeCert reads the first certificate of a PEM file.
func DecodeCert(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM certificate")
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

// EncodeKey is a private key in PKCS #8 PEM.
func EncodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DecodeKey reads a PKCS #8 (or EC) PEM private key.
func DecodeKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM private key")
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, errors.New("the private key cannot sign")
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse the private key: %w", err)
	}
	return k, nil
}
