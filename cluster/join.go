package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/pki"
)

// JoinMethod is the join endpoint: a gRPC method served on a dispatcher's
// remote port beside Proto.Actor's stream. It is the one thing a peer
// without a certificate gets an answer to, and it answers only a
// certificate request that carries a valid join token (or comes from a
// node renewing the certificate it authenticates with).
const JoinMethod = "/volt.v1.Join/Certificate"

// issuedFile, beside the CA, lists the node names given out by joins, so
// that a join token cannot be used to take an existing node's name.
const issuedFile = "joined"

// maxJoinHosts bounds the host names a joining node may ask for.
const maxJoinHosts = 16

// joinServer issues certificates from the node's CA.
type joinServer struct {
	creds *pki.Credentials
	g     *guard
	mu    sync.Mutex // one issue at a time: the joined-names file
}

// handle serves JoinMethod as gRPC's unknown-service handler (Proto.Actor
// owns the server, so Volt cannot register a service of its own on it).
func (j *joinServer) handle(_ any, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	if method != JoinMethod {
		return status.Error(codes.Unimplemented, "not served")
	}
	var req messages.JoinRequest
	if err := stream.RecvMsg(&req); err != nil {
		return err
	}
	reply, err := j.issue(stream.Context(), &req)
	if err != nil {
		p, _ := peer.FromContext(stream.Context())
		addr := "unknown"
		if p != nil {
			addr = p.Addr.String()
		}
		j.g.refuse(addr, pki.Identity{}, "join: "+err.Error())
		reply = &messages.JoinReply{Error: err.Error()}
	}
	return stream.SendMsg(reply)
}

// issue checks a join or renewal request and signs its certificate.
func (j *joinServer) issue(ctx context.Context, req *messages.JoinRequest) (*messages.JoinReply, error) {
	ca := j.creds.CA()
	if ca == nil {
		return nil, errors.New("this node cannot issue certificates")
	}
	now := time.Now()
	p, _ := peer.FromContext(ctx)
	var peerCert *x509.Certificate
	if p != nil {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.VerifiedChains) > 0 {
			peerCert = info.State.VerifiedChains[0][0]
		}
	}
	var id pki.Identity
	var hosts []string
	if peerCert != nil {
		// A renewal: the same identity and hosts as the certificate shown.
		pid, err := j.creds.VerifyPeer(peerCert)
		if err != nil {
			return nil, err
		}
		id = pid
		hosts = append(append([]string(nil), peerCert.DNSNames...), ipStrings(peerCert.IPAddresses)...)
	} else {
		if req.Token == "" {
			return nil, errors.New("no join token and no certificate")
		}
		if err := pki.ValidName(req.Name); err != nil {
			return nil, err
		}
		if len(req.Hosts) > maxJoinHosts {
			return nil, fmt.Errorf("at most %d hosts", maxJoinHosts)
		}
		for _, h := range req.Hosts {
			if !validHost(h) {
				return nil, fmt.Errorf("host %q is not a host name or IP", h)
			}
		}
		j.mu.Lock()
		defer j.mu.Unlock()
		role, err := pki.UseJoinToken(j.creds.Dir(), req.Token, now)
		if err != nil {
			return nil, err
		}
		id = pki.Identity{Role: role, Name: req.Name}
		if j.creds.Revoked(id) {
			return nil, fmt.Errorf("%s is revoked: join under another name", id)
		}
		if err := recordJoined(j.creds.Dir(), id); err != nil {
			return nil, err
		}
		hosts = req.Hosts
		if tcp, ok := p.Addr.(*net.TCPAddr); ok {
			hosts = append(hosts, tcp.IP.String())
		}
	}
	leaf, err := ca.IssueFromCSR(req.Csr, id, hosts, j.creds.TTL(), now)
	if err != nil {
		return nil, err
	}
	return &messages.JoinReply{Certificate: leaf.Raw, Ca: ca.Cert.Raw}, nil
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// validHost accepts an IP or a DNS name of letters, digits, dots and dashes.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// recordJoined adds id to the joined-names list, refusing a name already
// given out: a join token admits a new node, not an existing one's name.
func recordJoined(dir string, id pki.Identity) error {
	path := filepath.Join(dir, issuedFile)
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("joined nodes: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == id.String() {
			return fmt.Errorf("%s has joined already: join under another name (--id), or revoke it first", id)
		}
	}
	return pki.WriteFileAtomic(path, append(b, id.String()+"\n"...), 0o600)
}

// Join asks the dispatcher at address for a certificate with a join token:
// it makes the key here, sends only a certificate request, checks that the
// server's CA is the one the token pins, and writes the certificate, key
// (0600) and CA certificate into dir.
func Join(address string, tok pki.JoinToken, name string, hosts []string, dir string, timeout time.Duration) (*x509.Certificate, error) {
	var pinned *x509.Certificate
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // verified below against the pinned fingerprint, not the system roots
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			ca, err := pki.VerifyPinned(raw, tok.CAFingerprint)
			pinned = ca
			return err
		},
	}
	key, reply, err := requestCertificate(address, cfg, &messages.JoinRequest{Token: tok.Secret, Name: name, Hosts: hosts}, timeout)
	if err != nil {
		return nil, err
	}
	leaf, err := checkIssued(reply, pinned, pki.Identity{Name: name})
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return nil, err
	}
	return leaf, pki.WriteNode(dir, pinned, leaf, keyPEM)
}

// Renew asks the dispatcher at address for a new certificate for the
// identity creds holds, authenticating with the current one, and writes it
// into creds' directory (Credentials.Certificate picks it up at the next
// handshake; connections already up are not touched).
func Renew(address string, creds *pki.Credentials, timeout time.Duration) (*x509.Certificate, error) {
	key, reply, err := requestCertificate(address, clientTLS(creds), &messages.JoinRequest{Name: creds.Identity().Name}, timeout)
	if err != nil {
		return nil, err
	}
	leaf, err := checkIssued(reply, creds.CACert(), creds.Identity())
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return nil, err
	}
	return leaf, pki.WriteNode(creds.Dir(), creds.CACert(), leaf, keyPEM)
}

// requestCertificate makes a key and sends its certificate request.
func requestCertificate(address string, cfg *tls.Config, req *messages.JoinRequest, timeout time.Duration) (*ecdsa.PrivateKey, *messages.JoinReply, error) {
	key, err := pki.NewKey()
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: req.Name}}, key)
	if err != nil {
		return nil, nil, err
	}
	req.Csr = csr
	conn, err := grpc.Dial(address, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", address, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	desc := &grpc.StreamDesc{StreamName: "Certificate", ServerStreams: true, ClientStreams: true}
	stream, err := conn.NewStream(ctx, desc, JoinMethod, grpc.WaitForReady(true))
	if err != nil {
		return nil, nil, fmt.Errorf("the join endpoint at %s: %w", address, err)
	}
	if err := stream.SendMsg(req); err != nil {
		return nil, nil, fmt.Errorf("the join endpoint at %s: %w", address, err)
	}
	if err := stream.CloseSend(); err != nil {
		return nil, nil, err
	}
	reply := &messages.JoinReply{}
	if err := stream.RecvMsg(reply); err != nil {
		return nil, nil, fmt.Errorf("the join endpoint at %s: %w", address, err)
	}
	if reply.Error != "" {
		return nil, nil, fmt.Errorf("the dispatcher at %s refused: %s", address, reply.Error)
	}
	return key, reply, nil
}

// checkIssued verifies a JoinReply's certificate: issued by ca, naming
// want's role (when set) and name.
func checkIssued(reply *messages.JoinReply, ca *x509.Certificate, want pki.Identity) (*x509.Certificate, error) {
	if ca == nil {
		return nil, errors.New("no CA to check the certificate against")
	}
	leaf, err := x509.ParseCertificate(reply.Certificate)
	if err != nil {
		return nil, fmt.Errorf("the issued certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("the issued certificate is not from the cluster CA: %w", err)
	}
	id, err := pki.IdentityOf(leaf)
	if err != nil {
		return nil, err
	}
	if (want.Role != "" && id.Role != want.Role) || id.Name != want.Name {
		return nil, fmt.Errorf("the issued certificate names %s, not %s", id, want)
	}
	return leaf, nil
}
