package dispatcher

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/messages"
)

// groupCommit is the dispatcher shell's group commit. Persist effects are
// added to the gathering batch; every other effect that follows a Persist
// whose batch is not yet durable is held, in order. One batch at a time is
// handed to the writer, a child actor; while it writes, the next batch
// gathers. A batch is handed over no sooner than the actor has handled the
// messages that were already in its mailbox when the batch began (a
// flushBatch message to itself marks that point), so even a fast store gets
// batches of many messages. When the writer reports a batch durable, the
// held effects up to it are released in order, and the gathered batch is
// handed over. So nothing after a Persist is seen by anyone before the
// Persist is durable, and one transaction carries the changes of many
// messages.
//
// Numbers: batches are numbered from 1 in the order they are gathered; the
// writer makes them durable in that order.
type groupCommit struct {
	writer *actor.PID
	// gathering is the batch gathering since the last hand-off; nil if none.
	gathering *gathered
	// last is the number of the newest batch that got a Persist; durable
	// the newest one written. Effects wait while last > durable.
	last, durable uint64
	writing       bool       // a batch is with the writer
	held          ring[held] // in order; a ring, so that steady traffic reuses its space
}

// held is an effect, or a RebuildRequest that must read the store, waiting
// for batch `after` to be durable.
type held struct {
	after   uint64
	effect  actors.Effect
	rebuild *messages.RebuildRequest
	from    actors.From // the rebuild's sender, identity included
}

// gathered is a batch being gathered, with each job and cursor once.
type gathered struct {
	n   uint64
	due bool // its flushBatch arrived: hand it over as soon as the writer is free
	Batch
	jobs    map[int64]int  // job id -> index in Jobs
	cursors map[pair]int   // repo and branch -> index in Cursors
	incs    map[string]int // runner id -> index in Incarnations
}

// flushBatch is the actor's message to itself that batch n may go to the
// writer: every message queued before the batch began has been handled.
type flushBatch struct{ n uint64 }

// writeBatch asks the writer to make batch n durable.
type writeBatch struct {
	n     uint64
	batch Batch
}

// batchWritten is the writer's answer: batch n is durable, or err says why not.
type batchWritten struct {
	n   uint64
	err error
}

// start spawns the writer; call it when the actor starts.
func (g *groupCommit) start(ctx actor.Context, q Queue, opts []actor.PropsOption) {
	props := actor.PropsFromProducer(func() actor.Actor { return &writer{q: q} }, opts...)
	g.writer = ctx.SpawnPrefix(props, "queue-writer")
}

// mine reports whether pid is this incarnation's writer.
func (g *groupCommit) mine(pid *actor.PID) bool {
	return pid != nil && g.writer != nil && pid.Id == g.writer.Id && pid.Address == g.writer.Address
}

// add merges p into the gathering batch: later records of the same job or
// cursor replace earlier ones.
func (g *groupCommit) add(ctx actor.Context, p Persist) {
	if len(p.Jobs) == 0 && len(p.Cursors) == 0 && len(p.Incarnations) == 0 {
		return
	}
	b := g.gathering
	if b == nil {
		b = &gathered{n: g.last + 1, jobs: map[int64]int{}, cursors: map[pair]int{}, incs: map[string]int{}}
		g.gathering = b
		g.last = b.n
		ctx.Send(ctx.Self(), flushBatch{n: b.n})
	}
	for _, j := range p.Jobs {
		if i, ok := b.jobs[j.GetJob().GetId()]; ok {
			b.Jobs[i] = j
			continue
		}
		b.jobs[j.GetJob().GetId()] = len(b.Jobs)
		b.Jobs = append(b.Jobs, j)
	}
	for _, c := range p.Cursors {
		k := pair{c.GetRepo(), c.GetBranch()}
		if i, ok := b.cursors[k]; ok {
			b.Cursors[i] = c
			continue
		}
		b.cursors[k] = len(b.Cursors)
		b.Cursors = append(b.Cursors, c)
	}
	for _, r := range p.Incarnations {
		if i, ok := b.incs[r.GetRunnerId()]; ok {
			if r.GetIncarnation() > b.Incarnations[i].GetIncarnation() {
				b.Incarnations[i] = r
			}
			continue
		}
		b.incs[r.GetRunnerId()] = len(b.Incarnations)
		b.Incarnations = append(b.Incarnations, r)
	}
}

// waiting reports whether an effect now must be held: an earlier Persist is
// not durable yet, or earlier effects still wait. When it is false, the
// store holds every change made so far and nothing waits.
func (g *groupCommit) waiting() bool {
	return g.last > g.durable || g.held.len() > 0
}

// hold queues h behind the newest Persist.
func (g *groupCommit) hold(h held) {
	h.after = g.last
	g.held.pushBack(h)
}

// next takes the first held item if its batch is durable.
func (g *groupCommit) next() (held, bool) {
	if g.held.len() == 0 || g.held.front().after > g.durable {
		return held{}, false
	}
	return g.held.popFront(), true
}

// due marks batch n ready to go (its flushBatch arrived) and hands it over
// if the writer is free.
func (g *groupCommit) due(ctx actor.Context, n uint64) {
	if g.gathering != nil && g.gathering.n == n {
		g.gathering.due = true
		g.flush(ctx)
	}
}

// flush hands the gathered batch to the writer if it is due and the writer
// is free.
func (g *groupCommit) flush(ctx actor.Context) {
	if g.writing || g.gathering == nil || !g.gathering.due {
		return
	}
	b := g.gathering
	g.gathering = nil
	g.writing = true
	ctx.Send(g.writer, writeBatch{n: b.n, batch: b.Batch})
}

// drop forgets everything gathered and held, unsent.
func (g *groupCommit) drop() {
	g.gathering, g.held = nil, ring[held]{}
}

// writer is the child actor that makes batches durable, one at a time. Its
// Receive blocks on the store, which is what it is for: the dispatcher's
// own mailbox keeps moving.
type writer struct{ q Queue }

func (w *writer) Receive(ctx actor.Context) {
	m, ok := ctx.Message().(writeBatch)
	if !ok {
		return
	}
	ctx.Request(ctx.Parent(), batchWritten{n: m.n, err: w.save(m.batch)})
}

// save writes b; a panic in the store is an error like any other, so that
// the dispatcher restarts instead of waiting for an answer that never comes.
func (w *writer) save(b Batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the store panicked: %v", r)
		}
	}()
	return w.q.Save(b)
}
