package reporter

import (
	"fmt"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// Config identifies the reporter and its dispatcher.
type Config struct {
	ID         string
	Dispatcher actors.Addr
	Token      string
}

// Record asks the shell to store a final result durably, write its result
// file and then acknowledge it to ReplyTo.
type Record struct {
	Result  *messages.Result
	ReplyTo actors.Addr
}

// AppendLog asks the shell to store a log chunk.
type AppendLog struct{ Chunk *messages.LogChunk }

// CloseLog asks the shell to answer ReplyTo with a LogAck saying how much of
// the attempt's log it holds.
type CloseLog struct {
	Msg     *messages.LogClosed
	ReplyTo actors.Addr
}

// Core is the reporter's deterministic state machine. The reporter never
// gives up on its dispatcher: it keeps trying to register.
type Core struct {
	cfg  Config
	link actors.Link
	// refresh is when to register again while registered: a dispatcher
	// restarted in place (same address) would otherwise never learn of us.
	refresh time.Time
}

// Refresh is how often a registered reporter registers again.
const Refresh = 5 * time.Second

// New returns a reporter core; call Start next.
func New(cfg Config) *Core {
	c := &Core{cfg: cfg}
	c.link.Grace = -1
	c.link.MinBackoff = 100 * time.Millisecond
	c.link.MaxBackoff = 2 * time.Second
	return c
}

// Start begins registration.
func (c *Core) Start(now time.Time) []actors.Effect {
	c.link.Start(now)
	return c.tick(now)
}

// Registered reports whether the reporter is registered now.
func (c *Core) Registered() bool { return c.link.IsRegistered() }

// Step handles one input.
func (c *Core) Step(now time.Time, from actors.Addr, in any) []actors.Effect {
	switch m := in.(type) {
	case actors.Tick:
		return c.tick(now)
	case actors.PeerTerminated:
		if m.Addr == c.cfg.Dispatcher {
			c.link.Lost(now)
			return append([]actors.Effect{actors.Warn("dispatcher connection lost; registering again when it is back", "dispatcher", string(c.cfg.Dispatcher))}, c.tick(now)...)
		}
		return nil
	case *messages.ReporterRegistered:
		if from != c.cfg.Dispatcher {
			return nil
		}
		if c.link.IsRegistered() {
			return nil // the answer to a refresh
		}
		if !m.Accepted {
			return []actors.Effect{actors.Exit{Code: 1, Reason: fmt.Sprintf("dispatcher %s refused this reporter: %s", c.cfg.Dispatcher, m.Reason)}}
		}
		c.link.Registered()
		c.refresh = now.Add(Refresh)
		return []actors.Effect{actors.Watch{Addr: c.cfg.Dispatcher}, actors.Info("registered with the dispatcher", "dispatcher", string(c.cfg.Dispatcher))}
	case *messages.ResultRecorded:
		if m.Result == nil || m.Result.Job == nil || messages.ValidateCommit(m.Result.Job.Commit) != nil {
			return []actors.Effect{actors.Warn("malformed result ignored", "from", string(from))}
		}
		return []actors.Effect{Record{Result: m.Result, ReplyTo: from}}
	case *messages.LogChunk:
		if m.Job == nil || messages.ValidateCommit(m.Job.Commit) != nil || m.Offset < 0 {
			return []actors.Effect{actors.Warn("malformed log chunk ignored", "from", string(from))}
		}
		return []actors.Effect{AppendLog{Chunk: m}}
	case *messages.LogClosed:
		if m.Job == nil || messages.ValidateCommit(m.Job.Commit) != nil {
			return []actors.Effect{actors.Warn("malformed log close ignored", "from", string(from))}
		}
		return []actors.Effect{CloseLog{Msg: m, ReplyTo: from}}
	}
	return []actors.Effect{actors.Warn("reporter ignored an unknown message", "type", fmt.Sprintf("%T", in))}
}

// Deadline is the next time the core needs a Tick (zero for none).
func (c *Core) Deadline() time.Time {
	if c.link.IsRegistered() {
		return c.refresh
	}
	return c.link.Deadline()
}

func (c *Core) tick(now time.Time) []actors.Effect {
	if c.link.IsRegistered() {
		if now.Before(c.refresh) {
			return nil
		}
		c.refresh = now.Add(Refresh)
	} else if !c.link.Due(now) {
		return nil
	}
	return []actors.Effect{actors.Register{To: c.cfg.Dispatcher, Msg: &messages.RegisterReporter{
		ReporterId: c.cfg.ID, ProtocolVersion: messages.ProtocolVersion, Token: c.cfg.Token}}}
}
