package actors

import (
	"time"

	"google.golang.org/protobuf/proto"
)

// Digest is a deterministic 64-bit hash of a core's state. The simulator
// compares a core's digest before and after an input that must change
// nothing (one from a sender not entitled to send it). Each core's Digest
// method feeds it every field that decides what the core does next, in a
// fixed order (maps in sorted order); counters, which only report, are
// left out. It mixes a 64-bit word at a time (a multiply and a shift, as
// FNV and splitmix do): fast, deterministic, not cryptographic.
type Digest struct{ h uint64 }

const (
	digestSeed  = 14695981039346656037
	digestPrime = 1099511628211
)

// NewDigest returns an empty digest.
func NewDigest() *Digest { return &Digest{h: digestSeed} }

// Sum is the hash of everything written so far.
func (d *Digest) Sum() uint64 { return d.h }

// Uint adds v.
func (d *Digest) Uint(v uint64) {
	d.h = (d.h ^ v) * digestPrime
	d.h ^= d.h >> 29
}

// Int adds v.
func (d *Digest) Int(v int64) { d.Uint(uint64(v)) }

// Bool adds b.
func (d *Digest) Bool(b bool) {
	if b {
		d.Uint(1)
		return
	}
	d.Uint(0)
}

// Str adds s, length first, so that ("ab", "c") and ("a", "bc") differ.
func (d *Digest) Str(s string) {
	d.Int(int64(len(s)))
	for len(s) >= 8 {
		d.Uint(uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56)
		s = s[8:]
	}
	var last uint64
	for i := len(s) - 1; i >= 0; i-- {
		last = last<<8 | uint64(s[i])
	}
	d.Uint(last)
}

// Time adds t; the zero time is distinct from every other.
func (d *Digest) Time(t time.Time) {
	d.Bool(t.IsZero())
	if !t.IsZero() {
		d.Int(t.UnixNano())
	}
}

// Proto adds a message in its deterministic encoding; nil is distinct from
// an empty message.
func (d *Digest) Proto(m proto.Message) {
	if m == nil || !m.ProtoReflect().IsValid() {
		d.Int(-1)
		return
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic("digest: " + err.Error()) // only valid messages are kept in a core
	}
	d.Str(string(b))
}

// Digest adds the link's state.
func (l *Link) Digest(d *Digest) {
	d.Int(int64(l.Grace))
	d.Int(int64(l.MinBackoff))
	d.Int(int64(l.MaxBackoff))
	d.Bool(l.registered)
	d.Bool(l.ever)
	d.Time(l.lostSince)
	d.Time(l.next)
	d.Int(int64(l.backoff))
	if len(l.Targets) > 1 {
		for _, t := range l.Targets {
			d.Str(string(t))
		}
		d.Int(int64(l.cur))
		d.Bool(l.asked)
	}
}
