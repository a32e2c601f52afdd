package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/voltci/volt/pki"
)

// serverTLS is the TLS configuration of a node's Proto.Actor server: TLS
// 1.3 only, a client certificate from the cluster CA required, and the
// node's own certificate taken fresh at each handshake (so renewal never
// closes a connection).
func serverTLS(creds *pki.Credentials) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  creds.Roots(),
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return creds.Certificate()
		},
		VerifyPeerCertificate: verifyChain(creds),
	}
}

// clientTLS is the TLS configuration a node dials with: the peer's
// certificate must come from the cluster CA and name the host dialled.
func clientTLS(creds *pki.Credentials) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    creds.Roots(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return creds.Certificate()
		},
		VerifyPeerCertificate: verifyChain(creds),
	}
}

// loggedCreds logs, rate-limited, each TLS handshake a peer fails on the
// server side (no certificate, another CA, expired, revoked).
type loggedCreds struct {
	credentials.TransportCredentials
	g *guard
}

func (c loggedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil && !errors.Is(err, io.EOF) { // EOF: a port probe that connected and left
		reason := err.Error()
		var rec tls.RecordHeaderError
		if errors.As(err, &rec) {
			reason = "not TLS"
		}
		c.g.refuse(conn.RemoteAddr().String(), pki.Identity{}, "TLS handshake: "+reason)
	}
	return out, info, err
}

func (c loggedCreds) Clone() credentials.TransportCredentials {
	return loggedCreds{c.TransportCredentials.Clone(), c.g}
}

// tlsOptions are the gRPC server and dial options of a node with
// credentials: mutual TLS on every connection, the guard on every stream.
// serveJoin adds the join endpoint (JoinMethod): a peer may then connect
// without a client certificate, and gets nothing but that endpoint.
func tlsOptions(creds *pki.Credentials, logger *slog.Logger, serveJoin bool) (server []grpc.ServerOption, dial []grpc.DialOption) {
	g := newGuard(creds, logger)
	g.join = serveJoin
	cfg := serverTLS(creds)
	if serveJoin {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	server = []grpc.ServerOption{
		grpc.Creds(loggedCreds{credentials.NewTLS(cfg), g}),
		grpc.StreamInterceptor(g.Stream),
		grpc.UnaryInterceptor(g.Unary),
	}
	if serveJoin {
		server = append(server, grpc.UnknownServiceHandler((&joinServer{creds: creds, g: g}).handle))
	}
	dial = []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(clientTLS(creds)))}
	return server, dial
}

// errGotCertificate ends ServerCertificate's handshake on purpose.
var errGotCertificate = errors.New("got the server's certificate")

// ServerCertificate fetches the certificate a Volt node at address
// presents, without authenticating (the handshake is abandoned as soon as
// the certificate arrives), so that a CLI command can find which of the
// user's credentials directories holds that node's CA.
func ServerCertificate(address string, timeout time.Duration) (*x509.Certificate, error) {
	var leaf *x509.Certificate
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // nothing is sent: the certificate is only looked at
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				leaf, _ = x509.ParseCertificate(raw[0])
			}
			return errGotCertificate
		},
	}
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", address, cfg)
	if err == nil {
		conn.Close()
	}
	if leaf == nil {
		return nil, fmt.Errorf("no certificate from %s: %v", address, err)
	}
	return leaf, nil
}
