package host

import (
	"fmt"

	"github.com/voltci/volt/actors"
)

// Journal is a Role whose writes are made durable by group commit (the
// dispatcher). Its write effects gather into one batch while the previous
// batch is written; every effect after a write waits, in order, until that
// write is durable. A batch is handed over no sooner than the host has
// handled the inputs that were already waiting when the batch began (a
// flushBatch to itself marks that point), so even a fast store gets batches
// of many inputs; one batch is written at a time, off the host (Go).
type Journal interface {
	// Gather adds e to the batch being gathered if e is a write: write
	// reports whether it was one, added whether the batch changed.
	Gather(e actors.Effect) (write, added bool)
	// Take hands over the gathered batch; the next Gather starts afresh.
	Take() any
	// Save makes a batch durable, all of it or none. It runs off the host.
	Save(b any) error
}

// Bypass is a Journal that lets some effects pass while its store is
// failing (see store.go): Pass reports whether e, of a step that wrote
// nothing, may be carried out at once instead of waiting.
type Bypass interface {
	// PassInput reports whether msg may be handed to the core while the
	// store is failing; the others wait, in order, until it works again.
	PassInput(msg any) bool
	Pass(e actors.Effect) bool
	// IsWrite reports whether e is a write (which Gather would take).
	IsWrite(e actors.Effect) bool
}

// groupCommit numbers batches from 1 in the order they gather; they become
// durable in that order.
type groupCommit struct {
	// last is the newest batch that got a write, durable the newest one
	// written. Effects wait while last > durable.
	last, durable uint64
	gathering     bool // batch last is gathering, not yet handed over
	due           bool // its flushBatch arrived
	writing       bool // a batch is being written (or waits to be retried)
	held          ring[held]
}

// held is an effect, or an input that must read a durable store, waiting
// for batch after to be durable.
type held struct {
	after  uint64
	effect actors.Effect
	msg    any
	from   actors.From
	input  bool
	// done, on the last held effect of a step, is the step.
	done *carried
}

// carried is a step whose effects waited for a batch.
type carried struct {
	from actors.From
	in   any
	fx   []actors.Effect
}

// flushBatch is the host's input to itself that batch n may be written.
type flushBatch struct{ n uint64 }

// batchWritten is the answer of a batch's write: durable, or err says why not.
type batchWritten struct {
	n     uint64
	batch any
	err   error
}

func (g *groupCommit) hold(h held) {
	h.after = g.last
	g.held.pushBack(h)
}

func (g *groupCommit) next() (held, bool) {
	if g.held.len() == 0 || g.held.front().after > g.durable {
		return held{}, false
	}
	return g.held.popFront(), true
}

func (g *groupCommit) drop() {
	g.gathering, g.held = false, ring[held]{}
}

// waiting reports whether an effect now must wait: an earlier write is not
// durable yet, or earlier effects still wait. When it is false the store
// holds every change made so far (a graceful stop drains it first).
func (h *Host) waiting() bool {
	return h.commit.last > h.commit.durable || h.commit.held.len() > 0
}

// gathered notes a write added to the gathering batch, starting one.
func (h *Host) gathered() {
	g := &h.commit
	if g.gathering {
		return
	}
	g.last++
	g.gathering, g.due = true, false
	h.p.Self(flushBatch{n: g.last})
}

// due marks batch n ready to go and hands it over if no write is running.
func (h *Host) due(n uint64) {
	if g := &h.commit; g.gathering && g.last == n {
		g.due = true
		h.flush()
	}
}

// flush hands the gathered batch to be written if it is due and no other
// batch is being written.
func (h *Host) flush() {
	g := &h.commit
	if g.writing || !g.gathering || !g.due {
		return
	}
	g.gathering, g.writing = false, true
	h.save(g.last, h.j.Take())
}

// save writes batch n off the host.
func (h *Host) save(n uint64, b any) {
	j := h.j
	h.p.Go(func() any { return batchWritten{n: n, batch: b, err: saveBatch(j, b)} })
}

// saveBatch writes b; a panic in the store is an error like any other.
func saveBatch(j Journal, b any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the store panicked: %v", r)
		}
	}()
	return j.Save(b)
}

// written takes a batch's answer: on success the effects that waited for
// it are carried out, in order, and the next batch is handed over; on
// failure the batch is written again after a backoff.
func (h *Host) written(m batchWritten) {
	g := &h.commit
	if m.err != nil {
		h.store.failed(h, "write a batch", m.err)
		h.store.pending, h.store.pendingN = m.batch, m.n
		return
	}
	if h.store.failing {
		h.store.ok(h)
		h.restart(m.n)
		return
	}
	g.durable = m.n
	g.writing = false
	h.release()
	if !h.stopped {
		h.flush()
	}
}

// restart starts the role afresh from what is durable, once the batch that
// failed is written: what the old core did while its store failed waited
// unsent, and is dropped, as a crash would drop it (see store.go).
func (h *Host) restart(durable uint64) {
	// The steps whose writes the batch made durable are carried out as
	// far as their writes go.
	for h.commit.held.len() > 0 {
		e := h.commit.held.popFront()
		if e.done == nil || e.after > durable {
			continue
		}
		var writes []actors.Effect
		for _, x := range e.done.fx {
			if h.bypass != nil && h.bypass.IsWrite(x) {
				writes = append(writes, x)
			}
		}
		h.p.Carried(e.done.from, e.done.in, writes)
	}
	h.commit.drop()
	h.commit = groupCommit{}
	h.Start()
}

// release carries out, in order, what waited for a batch now durable.
func (h *Host) release() {
	for !h.stopped {
		e, ok := h.commit.next()
		if !ok {
			return
		}
		if !e.input {
			h.do(e.effect)
			if e.done != nil && !h.stopped {
				h.p.Carried(e.done.from, e.done.in, e.done.fx)
			}
			continue
		}
		// Everything before it is carried out and durable: the store it
		// reads holds every change the core made before it arrived.
		if in, _, ok := h.role.Input(e.msg, true); ok {
			h.step(e.from, in)
		}
	}
}

// ring is a FIFO queue on a growable circular buffer: steady traffic
// reuses the space of what it released.
type ring[T any] struct {
	buf     []T
	head, n int
}

func (q *ring[T]) len() int { return q.n }

func (q *ring[T]) pushBack(x T) {
	if q.n == len(q.buf) {
		nb := make([]T, max(8, 2*len(q.buf)))
		for i := 0; i < q.n; i++ {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = x
	q.n++
}

func (q *ring[T]) front() T { return q.buf[q.head] }

func (q *ring[T]) back() *T { return &q.buf[(q.head+q.n-1)%len(q.buf)] }

func (q *ring[T]) popFront() T {
	var zero T
	x := q.buf[q.head]
	q.buf[q.head] = zero
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return x
}
