package actors

import (
	"fmt"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
)

// Role is what a peer proved it is: the role its certificate names.
type Role string

// The roles a certificate can name, and two that no certificate carries.
const (
	RoleDispatcher Role = "dispatcher"
	RoleRunner     Role = "runner"
	RoleObserver   Role = "observer"
	RoleReporter   Role = "reporter"
	// RoleAdmin is the CLI of an operator: status, cancel, rebuild, notify.
	RoleAdmin Role = "admin"
	// RoleNotify may only ask observers to look now (a post-receive hook).
	RoleNotify Role = "notify"
	// RoleLocal is an actor of this very process (`volt up` runs every role
	// in one): no network was crossed, so it is trusted as any role.
	RoleLocal Role = "local"
)

// Identity is who sent an input, as proven by the connection it came over
// (the certificate's role and name), never as claimed by the message or
// its sender PID. The zero Identity is an unauthenticated peer: it may do
// nothing.
type Identity struct {
	Role Role
	// Name is the certificate's node name: a runner's id, an observer's or
	// reporter's name. Empty for the local role.
	Name string
}

// Local is the identity of an actor in the same process.
var Local = Identity{Role: RoleLocal}

// PeerHeader is the message header in which the server side of a remote
// connection stamps the authenticated identity of the peer that sent each
// message ("role/name"). It overwrites whatever the peer put there.
const PeerHeader = "volt-peer"

// String is "role/name" (the PeerHeader form).
func (id Identity) String() string {
	if id.Name == "" {
		return string(id.Role)
	}
	return string(id.Role) + "/" + id.Name
}

// ParseIdentity reads the PeerHeader form; an unknown role is the zero
// Identity.
func ParseIdentity(s string) Identity {
	role, name, _ := strings.Cut(s, "/")
	switch r := Role(role); r {
	case RoleDispatcher, RoleRunner, RoleObserver, RoleReporter, RoleAdmin, RoleNotify:
		return Identity{Role: r, Name: name}
	}
	return Identity{}
}

// Is reports whether the identity may act as role: it is that role, or it
// is local.
func (id Identity) Is(role Role) bool { return id.Role == role || id.Role == RoleLocal }

// IsRunner reports whether the identity may act as the runner named id.
func (id Identity) IsRunner(runnerID string) bool {
	return id.Role == RoleLocal || (id.Role == RoleRunner && id.Name == runnerID)
}

// IsAny reports whether the identity may act as one of roles.
func (id Identity) IsAny(roles ...Role) bool {
	if id.Role == RoleLocal {
		return true
	}
	for _, r := range roles {
		if id.Role == r {
			return true
		}
	}
	return false
}

// IsLocal reports whether the input came from this very process.
func (id Identity) IsLocal() bool { return id.Role == RoleLocal }

// MayAskStatus reports whether the identity may read a role's status: the
// operator's CLI, the dispatcher, and the reporter on behalf of a web user.
func (id Identity) MayAskStatus() bool { return id.IsAny(RoleAdmin, RoleDispatcher, RoleReporter) }

// label names the identity in logs; the zero Identity is "unauthenticated".
func (id Identity) label() string {
	if id.Role == "" {
		return "unauthenticated"
	}
	return id.String()
}

// Refused is the note a core emits, instead of any other effect, for an
// input its sender is not entitled to send: it names the proven identity,
// the claimed sender, the message type and why.
func Refused(from From, in any, why string) Note {
	return Warn("refused: sender not entitled", "identity", from.Who.label(), "claimed", string(from.Addr),
		"type", TypeName(in), "reason", why)
}

// TypeName is an input's short type name: a protobuf message's name
// ("RunJob"), or the Go type of a core's own input.
func TypeName(in any) string {
	if m, ok := in.(proto.Message); ok {
		return string(m.ProtoReflect().Descriptor().Name())
	}
	return fmt.Sprintf("%T", in)
}

// From is the sender of an input: the address replies go to, and the
// identity its connection proved.
type From struct {
	Addr Addr
	Who  Identity
}

// FromLocal is a local sender at addr (tests, timers, in-process roles).
func FromLocal(addr Addr) From { return From{Addr: addr, Who: Local} }

// FromContext is the sender of the message ctx holds. A message stamped
// with PeerHeader crossed the network and is what the stamp says; one
// without it came from an actor of this process (the connection layer
// stamps every message it delivers from the network). An unstamped message
// whose sender names another process is unauthenticated: the zero Identity.
func FromContext(ctx actor.Context) From {
	sender := ctx.Sender()
	f := From{Addr: AddrOf(sender)}
	if h := ctx.MessageHeader(); h != nil {
		if v := h.Get(PeerHeader); v != "" {
			f.Who = ParseIdentity(v)
			return f
		}
	}
	if sender != nil && sender.Address != ctx.Self().Address {
		return f
	}
	f.Who = Local
	return f
}
