package actors

import (
	"log/slog"
	"strings"

	"google.golang.org/protobuf/proto"
)

// Addr names an actor anywhere in the system as "address/id", the two
// fields of a Proto.Actor PID. Cores treat it as an opaque key.
type Addr string

// NewAddr joins a Proto.Actor address and actor id.
func NewAddr(address, id string) Addr { return Addr(address + "/" + id) }

// Split returns the address and id of a.
func (a Addr) Split() (address, id string) {
	s := string(a)
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}

// Effect is something a core asks its shell to do. Shells carry effects out
// in the order they are returned: a Persist before a Send means the state is
// durable before anyone hears of it.
type Effect any

// Send delivers Msg to To, with the sending actor as sender.
type Send struct {
	To  Addr
	Msg proto.Message
}

// Register is a Send that the shell makes only once the peer's port accepts
// connections, so that a registration is never parked behind Proto.Actor's
// slow redial of a peer that is down.
type Register struct {
	To  Addr
	Msg proto.Message
}

// Watch asks to be told (PeerTerminated) when the actor at Addr is gone.
type Watch struct{ Addr Addr }

// Unwatch cancels a Watch.
type Unwatch struct{ Addr Addr }

// Exit ends the process: the role cannot go on (for example the dispatcher
// has been gone longer than the grace period).
type Exit struct {
	Code   int
	Reason string
}

// Note is a trace event: the shell logs it, the simulator records it.
type Note struct {
	Level slog.Level
	Msg   string
	Args  []any
}

// Tick is the periodic input carrying time forward; cores check their
// deadlines on it.
type Tick struct{}

// PeerTerminated tells a core that a watched actor is gone (its process
// died, its connection closed, or it stopped).
type PeerTerminated struct {
	Addr Addr
	// Reason is human-readable, for logs.
	Reason string
}

// Info builds an info-level Note.
func Info(msg string, args ...any) Note { return Note{Level: slog.LevelInfo, Msg: msg, Args: args} }

// Warn builds a warning Note.
func Warn(msg string, args ...any) Note { return Note{Level: slog.LevelWarn, Msg: msg, Args: args} }

// Debug builds a debug Note.
func Debug(msg string, args ...any) Note { return Note{Level: slog.LevelDebug, Msg: msg, Args: args} }
