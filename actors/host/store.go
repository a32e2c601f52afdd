package host

import (
	"log/slog"
	"time"

	"github.com/voltci/volt/actors"
)

// Store faults. A write that fails (no space, read-only file system, I/O
// error) never stops the role. The host logs one ERROR naming the path and
// the cause (not one per retry), counts the failure, and retries with
// backoff (100 ms, doubling to 5 s); the first write that succeeds is
// logged at INFO and the role goes on by itself.
//
// While a batch is not durable, everything after it waits (group commit).
// When a batch fails, its role takes no new work until the store works
// again: its core hears only the inputs its Bypass passes (the
// dispatcher's: heartbeats and status requests); every other input is
// dropped unanswered (the observer sends its commits again, runners and
// the dispatcher keep results and send them again, registrations are
// retried), and no deadline fires (ticks are deferred). Effects of a step
// that wrote nothing and that the Bypass passes are carried out at once
// (heartbeat acknowledgements, so that runners keep their leases through
// a long outage, and status replies, so that the outage shows); they
// reveal nothing a write waits for: a heartbeat acknowledgement extends a
// lease and confirms attempts the runner already runs. Everything else
// waits. Once the failed batch is written, the host starts its role afresh
// from the durable state, dropping what waited, as a crash would (a
// dispatcher restart, without the process's supervisor counting it): so a
// decision the old core made during the outage (a job re-queued because
// its RunJob, held, never reached the runner) is never heard of.
//
// A role whose writes are not group-committed (the reporter) reports its
// own failures with StoreFailed and StoreOK and asks StoreReady before it
// tries again.
type storeHealth struct {
	failing bool
	errors  int64
	backoff time.Duration
	retryAt time.Time
	// pending is the batch that failed, written again at retryAt.
	pending  any
	pendingN uint64
	// first is the first backoff (firstBackoff unless set).
	first time.Duration
}

// SetStoreRetry sets the first backoff after a failed write (zero: 100 ms).
func (h *Host) SetStoreRetry(d time.Duration) { h.store.first = d }

const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// StorePath is a Role that names where its store lives, for the ERROR a
// failing write logs.
type StorePath interface{ StorePath() string }

func (s *storeHealth) failed(h *Host, what string, err error) {
	s.errors++
	if !s.failing {
		s.failing = true
		s.backoff = firstBackoff
		if s.first > 0 {
			s.backoff = s.first
		}
		path := ""
		if p, ok := h.role.(StorePath); ok {
			path = p.StorePath()
		}
		h.p.Log(actors.Note{Level: slog.LevelError, Msg: "store write failed: new work waits, retrying with backoff until it succeeds",
			Args: []any{"op", what, "path", path, "error", err.Error()}})
	} else {
		s.backoff = min(2*s.backoff, maxBackoff)
	}
	s.retryAt = h.p.Now().Add(s.backoff)
}

func (s *storeHealth) ok(h *Host) {
	if s.failing {
		h.p.Log(actors.Note{Level: slog.LevelInfo, Msg: "store writes succeed again: resuming", Args: []any{"failed_writes", s.errors}})
	}
	s.failing, s.retryAt, s.backoff, s.pending = false, time.Time{}, 0, nil
}

// retryDue writes the failed batch again once its backoff is over.
func (h *Host) retryDue() {
	s := &h.store
	if s.pending == nil || h.p.Now().Before(s.retryAt) {
		return
	}
	b, n := s.pending, s.pendingN
	s.pending, s.retryAt = nil, time.Time{}
	h.save(n, b)
}

// StoreFailed records a failed write of the role's own (see storeHealth).
func (h *Host) StoreFailed(what string, err error) { h.store.failed(h, what, err) }

// StoreOK records a write that succeeded.
func (h *Host) StoreOK() { h.store.ok(h) }

// StoreReady reports whether a write may be tried now: the store is not
// failing, or its backoff is over.
func (h *Host) StoreReady() bool {
	return !h.store.failing || !h.p.Now().Before(h.store.retryAt)
}

// StoreFailing reports whether the store's last write failed.
func (h *Host) StoreFailing() bool { return h.store.failing }

// StoreWriteErrors counts the writes that failed since the host started.
func (h *Host) StoreWriteErrors() int64 { return h.store.errors }

// StoreCounters adds store_failing (0/1) and store_write_errors to a
// status reply's counters.
func (h *Host) StoreCounters(c map[string]int64) {
	if h.store.failing {
		c["store_failing"] = 1
	} else {
		c["store_failing"] = 0
	}
	c["store_write_errors"] = h.store.errors
}
