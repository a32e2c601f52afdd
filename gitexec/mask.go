package gitexec

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"sync"
)

// MinMaskLen is the shortest value a Masker hides. Shorter values are not
// masked: replacing every "abc" or "1" of a log would wreck it while
// hiding next to nothing (a value that short is guessed, not leaked).
const MinMaskLen = 4

// Mask is what a Masker writes in place of a value.
const Mask = "***"

// maskHold bounds what a Masker holds back while a masked stretch keeps
// growing (a value that overlaps itself, "aaaa" in an endless run of a):
// past it, the Mask is written and the rest of the stretch is dropped as
// it comes, so memory stays bounded and the output is the same.
const maskHold = 64 << 10

// ErrMaskerClosed is returned by a write to a closed Masker.
var ErrMaskerClosed = errors.New("write to a closed masker")

// Masker is an io.Writer that passes what is written to it on to another
// writer with every occurrence of any of its values replaced by Mask,
// also when an occurrence is split across writes: it holds back the tail
// of what it was given for as long as that tail could be the beginning of
// a value (never more than the longest value minus one byte, except while
// a masked stretch grows), and Close writes what it still holds.
//
// Overlapping occurrences (of one value or of several) are one masked
// stretch, replaced by one Mask, so no byte of any occurrence gets
// through; occurrences that only touch are masked one by one. Its output
// is the same however the input is split into writes. Values shorter than
// MinMaskLen are not masked.
//
// A Masker is safe for concurrent use; writes are masked in the order
// they are made.
type Masker struct {
	mu      sync.Mutex
	w       io.Writer
	values  [][]byte
	fail    [][]int // KMP failure function of each value
	longest int

	// held is the input not yet written, held[base:], after up to
	// longest-1 bytes already written (the lookbehind in which an
	// occurrence that straddles base starts).
	held []byte
	base int
	out  []byte // reused output buffer

	in, written int64
	err         error
	closed      bool
}

// NewMasker returns a Masker writing to w that hides values (those of at
// least MinMaskLen bytes; duplicates are ignored).
func NewMasker(w io.Writer, values [][]byte) *Masker {
	m := &Masker{w: w}
	for _, v := range values {
		if len(v) < MinMaskLen || slices.ContainsFunc(m.values, func(have []byte) bool { return bytes.Equal(have, v) }) {
			continue
		}
		v = bytes.Clone(v)
		m.values = append(m.values, v)
		m.fail = append(m.fail, failure(v))
		m.longest = max(m.longest, len(v))
	}
	return m
}

// failure is the Knuth–Morris–Pratt failure function of v: f[i] is the
// length of the longest proper prefix of v[:i+1] that is also its suffix.
func failure(v []byte) []int {
	f := make([]int, len(v))
	k := 0
	for i := 1; i < len(v); i++ {
		for k > 0 && v[i] != v[k] {
			k = f[k-1]
		}
		if v[i] == v[k] {
			k++
		}
		f[i] = k
	}
	return f
}

// Write masks p into the output. It reports len(p) written unless the
// Masker is closed; an error of the writer beneath is returned (and
// again by Close), and what is written after it is dropped.
func (m *Masker) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrMaskerClosed
	}
	m.in += int64(len(p))
	if len(m.values) == 0 {
		return m.pass(p)
	}
	m.held = append(m.held, p...)
	m.process(false)
	return len(p), m.err
}

// Close writes, masked, everything still held back. Later writes fail;
// a second Close does nothing.
func (m *Masker) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return m.err
	}
	m.closed = true
	if len(m.values) > 0 {
		m.process(true)
	}
	return m.err
}

// Counts returns how many bytes were written to the Masker and how many it
// wrote on (masked, and held back bytes not yet written).
func (m *Masker) Counts() (in, out int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.in, m.written
}

// pass writes p on unchanged (no values to hide).
func (m *Masker) pass(p []byte) (int, error) {
	if m.err != nil {
		return len(p), m.err
	}
	n, err := m.w.Write(p)
	m.written += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	m.err = err
	return len(p), err
}

// stretch is a run of held bytes covered by overlapping occurrences.
type stretch struct{ start, end int }

// process writes what of held[base:] is settled: bytes no occurrence can
// still cover and masked stretches no later occurrence can still extend.
// At the end (final) everything is settled.
func (m *Masker) process(final bool) {
	h := m.held
	// known: every occurrence starting before it lies wholly in h; past it,
	// h's tail may be the beginning of a value.
	known := len(h)
	var starts [][2]int // start and end of each occurrence with start < known (found below)
	for i, v := range m.values {
		f, s := m.fail[i], 0
		for j, b := range h {
			for s > 0 && v[s] != b {
				s = f[s-1]
			}
			if v[s] == b {
				s++
			}
			if s == len(v) {
				starts = append(starts, [2]int{j + 1 - len(v), j + 1})
				s = f[s-1]
			}
		}
		if !final {
			known = min(known, len(h)-s)
		}
	}
	slices.SortFunc(starts, func(a, b [2]int) int { return a[0] - b[0] })
	var runs []stretch
	for _, o := range starts {
		if o[0] >= known {
			break
		}
		if n := len(runs); n > 0 && o[0] < runs[n-1].end {
			runs[n-1].end = max(runs[n-1].end, o[1])
			continue
		}
		runs = append(runs, stretch{o[0], o[1]})
	}

	out, cur := m.out[:0], m.base
	growing := -1 // index of a stretch that a later occurrence may still extend
	for i, r := range runs {
		switch {
		case r.end <= cur:
			// Written (or masked) already: the lookbehind.
		case r.start < cur:
			// Extends a stretch whose Mask is out already.
			cur = r.end
		case r.end > known:
			out = append(out, h[cur:r.start]...)
			cur, growing = r.start, i
		default:
			out = append(out, h[cur:r.start]...)
			out = append(out, Mask...)
			cur = r.end
		}
		if growing >= 0 {
			break
		}
	}
	if growing < 0 && cur < known {
		out = append(out, h[cur:known]...)
		cur = known
	}
	if growing >= 0 && len(h)-cur > maskHold {
		// Settle the Mask now; what extends the stretch later is dropped
		// as a continuation (the r.start < cur case).
		out = append(out, Mask...)
		cur = runs[growing].end
	}
	m.out = out
	if len(out) > 0 && m.err == nil {
		n, err := m.w.Write(out)
		m.written += int64(n)
		if err == nil && n < len(out) {
			err = io.ErrShortWrite
		}
		m.err = err
	}
	// Keep longest-1 written bytes before cur as the lookbehind.
	keep := max(cur-(m.longest-1), 0)
	m.held = h[:copy(h, h[keep:])]
	m.base = cur - keep
}
