package cluster

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/pki"
)

// allowed lists, for each role a certificate names, the message types it
// may send (issue 10, item 2). Everything else a peer sends is dropped
// before Proto.Actor sees it. The cores then check the stamped identity
// against the ids inside each message (a runner only as itself).
var allowed = map[string]map[string]bool{
	pki.RoleDispatcher: typeSet(
		&messages.RunJob{}, &messages.CancelJob{},
		&messages.RunnerRegistered{}, &messages.HeartbeatAck{}, &messages.JobFinishedAck{},
		&messages.ObserverRegistered{}, &messages.CommitObservedAck{}, &messages.PollNow{}, &messages.NotifyAck{},
		&messages.ReporterRegistered{}, &messages.ResultRecorded{},
		&messages.StatusReply{}, &messages.CancelReply{}, &messages.RebuildReply{},
		&messages.SecretGrant{}, &messages.SecretSetReply{}, &messages.SecretListReply{},
		// a standby node of a failover group answers every role with where the leader is.
		&messages.NotLeader{},
		// `volt up` is one node, dispatcher and reporter: its reporter
		// acknowledges the logs and artifacts of runners on other machines.
		&messages.LogAck{}, &messages.ArtifactAck{}, &messages.ArtifactData{},
	),
	pki.RoleRunner: typeSet(
		&messages.RegisterRunner{}, &messages.Heartbeat{}, &messages.JobFinished{}, &messages.RunnerStopping{},
		&messages.LogChunk{}, &messages.LogClosed{}, &messages.StatusReply{}, &messages.SecretRequest{},
		&messages.ArtifactChunk{}, &messages.ArtifactClosed{}, &messages.ArtifactFetch{},
	),
	pki.RoleObserver: typeSet(&messages.RegisterObserver{}, &messages.CommitObserved{}, &messages.Notify{}, &messages.StatusReply{}),
	pki.RoleReporter: typeSet(
		&messages.RegisterReporter{}, &messages.ResultRecordedAck{}, &messages.LogAck{}, &messages.ArtifactAck{}, &messages.ArtifactData{},
		&messages.StatusRequest{}, &messages.CancelRequest{}, &messages.RebuildRequest{}, &messages.Notify{},
		&messages.StatusReply{},
	),
	pki.RoleAdmin: typeSet(&messages.StatusRequest{}, &messages.CancelRequest{}, &messages.RebuildRequest{}, &messages.Notify{},
		&messages.SecretSet{}, &messages.SecretDelete{}, &messages.SecretList{}),
	pki.RoleNotify: typeSet(&messages.Notify{}),
}

// Proto.Actor's own messages that cross the wire in Volt's use: watching a
// peer's actor and being told it stopped, and the answer to a request whose
// target is gone. Stop, PoisonPill and remote spawning never are.
var (
	typeWatch      = string(proto.MessageName(&actor.Watch{}))
	typeUnwatch    = string(proto.MessageName(&actor.Unwatch{}))
	typeTerminated = string(proto.MessageName(&actor.Terminated{}))
	typeDeadLetter = string(proto.MessageName(&actor.DeadLetterResponse{}))
	// typeRevocations is applied by the guard itself (see check).
	typeRevocations = string(proto.MessageName(&messages.Revocations{}))
)

func typeSet(ms ...proto.Message) map[string]bool {
	s := map[string]bool{}
	for _, m := range ms {
		s[string(proto.MessageName(m))] = true
	}
	return s
}

// guard authenticates every remote connection by its client certificate
// and lets through only what the certificate's role may send, as the
// sender it proved; it stamps that identity into each message's header
// (actors.PeerHeader) for the shells to hand to their cores.
type guard struct {
	creds  *pki.Credentials
	logger *slog.Logger
	// join: this node serves JoinMethod, the one stream a peer without a
	// certificate may open.
	join bool

	mu sync.Mutex
	// owner binds a Proto.Actor address (host:port) to the identity whose
	// connection first claimed a sender there, for as long as that
	// identity has a stream open: no other identity may claim it.
	owner map[string]*binding
	// logged rate-limits refusal logs: one per peer and reason a minute.
	logged map[string]time.Time
}

type binding struct {
	id   pki.Identity
	refs int
}

func newGuard(creds *pki.Credentials, logger *slog.Logger) *guard {
	return &guard{creds: creds, logger: logger, owner: map[string]*binding{}, logged: map[string]time.Time{}}
}

// refuseLogEvery is how often one peer's refusal for one reason is logged.
const refuseLogEvery = time.Minute

// refuse logs a refusal once per peer host, identity and reason a minute.
func (g *guard) refuse(peerAddr string, id pki.Identity, reason string, args ...any) {
	host := peerAddr // one key per host: every new connection has a new port
	if h, _, err := net.SplitHostPort(peerAddr); err == nil {
		host = h
	}
	key := host + "|" + id.String() + "|" + reason
	now := time.Now()
	g.mu.Lock()
	last, seen := g.logged[key]
	due := !seen || now.Sub(last) >= refuseLogEvery
	if due {
		if len(g.logged) > 10_000 { // a flood of peers: forget them wholesale
			g.logged = map[string]time.Time{}
		}
		g.logged[key] = now
	}
	g.mu.Unlock()
	if !due {
		return
	}
	g.logger.Warn("refused from the network", append([]any{"peer", peerAddr, "identity", id.String(), "reason", reason}, args...)...)
}

// peerIdentity is the verified identity of a stream's TLS peer.
func (g *guard) peerIdentity(ctx context.Context) (pki.Identity, *net.TCPAddr, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return pki.Identity{}, nil, fmt.Errorf("no peer")
	}
	tcp, _ := p.Addr.(*net.TCPAddr)
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return pki.Identity{}, tcp, fmt.Errorf("no client certificate")
	}
	id, err := g.creds.VerifyPeer(info.State.PeerCertificates[0])
	return id, tcp, err
}

// Unary refuses every unary RPC: Volt uses only the message stream, and the
// pinned Proto.Actor answers ListProcesses and GetProcessDiagnostics with a
// panic.
func (g *guard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
	id, tcp, _ := g.peerIdentity(ctx)
	g.refuse(addrString(tcp), id, "unary call", "method", info.FullMethod)
	return nil, status.Error(codes.PermissionDenied, "not served")
}

// Stream authenticates the peer of a Proto.Actor stream, filters what it
// sends, and recovers any panic of the handler so no peer can kill a node.
func (g *guard) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	if g.join && info.FullMethod == JoinMethod {
		// The join server checks the token, or the certificate of a
		// node renewing it; recover its panics too.
		defer func() {
			if p := recover(); p != nil {
				g.logger.Error("the join endpoint panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
	id, tcp, verr := g.peerIdentity(ss.Context())
	peerAddr := addrString(tcp)
	if verr != nil {
		g.refuse(peerAddr, id, verr.Error())
		return status.Error(codes.PermissionDenied, "not authenticated")
	}
	if info.FullMethod != "/remote.Remoting/Receive" {
		g.refuse(peerAddr, id, "unknown stream", "method", info.FullMethod)
		return status.Error(codes.PermissionDenied, "not served")
	}
	fs := &filteredStream{ServerStream: ss, g: g, id: id, peer: peerAddr, hosts: certHosts(ss.Context()), bound: map[string]bool{}}
	defer fs.release()
	defer func() {
		if p := recover(); p != nil {
			g.logger.Error("a peer's stream panicked; the connection is closed, the node keeps running",
				"peer", peerAddr, "identity", id.String(), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(srv, fs)
}

// certHosts are the IPs and DNS names the peer's certificate names.
func certHosts(ctx context.Context) map[string]bool {
	hs := map[string]bool{}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return hs
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return hs
	}
	leaf := info.State.PeerCertificates[0]
	for _, ip := range leaf.IPAddresses {
		hs[ip.String()] = true
	}
	for _, n := range leaf.DNSNames {
		hs[n] = true
	}
	return hs
}

func addrString(a *net.TCPAddr) string {
	if a == nil {
		return "unknown"
	}
	return a.String()
}

// filteredStream is a Proto.Actor Receive stream whose incoming batches
// hold only what its authenticated peer may send.
type filteredStream struct {
	grpc.ServerStream
	g     *guard
	id    pki.Identity
	peer  string
	hosts map[string]bool
	bound map[string]bool // addresses this stream holds a binding for
}

// RecvMsg receives the next message and filters it in place. A revoked
// peer's stream ends: revocation disconnects it.
func (s *filteredStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.g.creds.Revoked(s.id) {
		s.g.refuse(s.peer, s.id, "revoked")
		return status.Error(codes.PermissionDenied, "revoked")
	}
	rm, ok := m.(*remote.RemoteMessage)
	if !ok {
		return status.Error(codes.InvalidArgument, "unexpected message")
	}
	if b := rm.GetMessageBatch(); b != nil {
		s.filter(b)
	}
	return nil
}

// filter drops the envelopes the peer may not send and stamps the rest.
func (s *filteredStream) filter(b *remote.MessageBatch) {
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		if reason := s.check(b, e); reason != "" {
			if reason != applied {
				s.g.refuse(s.peer, s.id, reason, "type", typeName(b, e))
			}
			continue
		}
		e.MessageHeader = &remote.MessageHeader{HeaderData: map[string]string{actors.PeerHeader: peerStamp(s.id)}}
		kept = append(kept, e)
	}
	for i := len(kept); i < len(b.Envelopes); i++ {
		b.Envelopes[i] = nil
	}
	b.Envelopes = kept
}

// peerStamp is the PeerHeader value for an identity.
func peerStamp(id pki.Identity) string {
	return actors.Identity{Role: actors.Role(id.Role), Name: id.Name}.String()
}

func typeName(b *remote.MessageBatch, e *remote.MessageEnvelope) string {
	if e == nil || e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames) {
		return "?"
	}
	return b.TypeNames[e.TypeId]
}

// applied is check's answer for a message the guard itself acted on: it is
// dropped, but it was not refused.
const applied = "applied by the guard"

// check says why an envelope must be dropped ("" to deliver it). It also
// rejects what would crash Proto.Actor's reader: indexes out of range.
func (s *filteredStream) check(b *remote.MessageBatch, e *remote.MessageEnvelope) string {
	if e == nil {
		return "malformed envelope"
	}
	if e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames) ||
		e.Target < 0 || int(e.Target) >= len(b.Targets) || b.Targets[e.Target] == nil ||
		e.Sender < 0 || int(e.Sender) > len(b.Senders) || (e.Sender > 0 && b.Senders[e.Sender-1] == nil) {
		return "malformed envelope"
	}
	if e.SerializerId != 0 {
		return "serializer not allowed"
	}
	name := b.TypeNames[e.TypeId]
	if e.Sender > 0 {
		if reason := s.claim(b.Senders[e.Sender-1].Address); reason != "" {
			return reason
		}
	}
	switch name {
	case typeWatch, typeUnwatch, typeDeadLetter:
		return ""
	case typeRevocations:
		// Applied here, delivered to no actor.
		if s.id.Role != pki.RoleDispatcher {
			return "only a dispatcher may announce revocations"
		}
		var r messages.Revocations
		if err := proto.Unmarshal(e.MessageData, &r); err != nil {
			return "malformed Revocations"
		}
		if n := s.g.creds.Learn(r.Entries); n > 0 {
			s.g.logger.Info("revocations learned from the dispatcher", "new", n, "dispatcher", s.id.String())
		}
		return applied // not delivered

	case typeTerminated:
		var t actor.Terminated
		if err := proto.Unmarshal(e.MessageData, &t); err != nil || t.Who == nil {
			return "malformed Terminated"
		}
		// Only the node an actor lives on may say it stopped.
		if !s.owns(t.Who.Address) {
			return "Terminated for an actor of another node"
		}
		return ""
	}
	if !allowed[s.id.Role][name] {
		return "message type not allowed for the " + s.id.Role + " role"
	}
	return ""
}

// claim checks that a sender address may be claimed by this stream's
// peer: its host is one the certificate names, and no other identity
// holds it. The first claim binds it while this stream is open.
func (s *filteredStream) claim(address string) string {
	if s.bound[address] {
		return ""
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return "sender address is not host:port"
	}
	if !s.hosts[host] {
		return "sender address " + address + " is not a host the certificate names"
	}
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	b := s.g.owner[address]
	if b != nil && b.id != s.id {
		return "sender address " + address + " belongs to " + b.id.String()
	}
	if b == nil {
		b = &binding{id: s.id}
		s.g.owner[address] = b
	}
	b.refs++
	s.bound[address] = true
	return ""
}

// owns reports whether this stream's identity holds address.
func (s *filteredStream) owns(address string) bool {
	if s.bound[address] {
		return true
	}
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	b := s.g.owner[address]
	return b != nil && b.id == s.id
}

// release drops this stream's bindings.
func (s *filteredStream) release() {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	for a := range s.bound {
		if b := s.g.owner[a]; b != nil {
			if b.refs--; b.refs <= 0 {
				delete(s.g.owner, a)
			}
		}
	}
}

// verifyChain is crypto/tls's VerifyPeerCertificate hook: the chain is
// already verified against the CA; this refuses a certificate that names
// no Volt identity or a revoked one.
func verifyChain(creds *pki.Credentials) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, chains [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return nil // no certificate: ClientAuth decided whether that is allowed (only the join endpoint serves such a peer)
		}
		if len(chains) == 0 || len(chains[0]) == 0 {
			return fmt.Errorf("no verified certificate chain")
		}
		_, err := creds.VerifyPeer(chains[0][0])
		return err
	}
}
