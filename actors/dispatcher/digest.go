package dispatcher

import (
	"cmp"
	"slices"

	"github.com/voltci/volt/actors"
)

// Digest is a hash of everything that decides what the core does next:
// its jobs, queue, cursors, runners and their lines, observers, reporter
// and the results it remembers. Counters and the cached note arguments are
// left out. The simulator compares it before and after an input that must
// change nothing.
func (c *Core) Digest() uint64 {
	d := actors.NewDigest()
	c.digestJobs(d)
	c.digestRunners(d)
	c.digestPeers(d)
	return d.Sum()
}

// digestJobs adds the jobs, their keys, the queue and the cursors to d.
func (c *Core) digestJobs(d *actors.Digest) {
	d.Time(c.base)
	d.Int(c.nextID)
	for _, id := range sortedKeys(c.jobs) {
		j := c.jobs[id]
		d.Int(id)
		d.Proto(&j.JobRecord)
		d.Int(j.sent)
	}
	keys := make([]pair, 0, len(c.byKey))
	for k := range c.byKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, comparePairs)
	for _, k := range keys {
		d.Str(k.a)
		d.Str(k.b)
		d.Int(c.byKey[k])
	}
	for _, id := range sortedKeys(c.builds) {
		b := c.builds[id]
		d.Int(id)
		d.Int(int64(b.left))
		d.Int(int64(b.held))
		for _, st := range b.ended {
			d.Int(int64(st))
		}
		d.Int(-1)
		for _, r := range b.ready {
			d.Int(r)
		}
		d.Int(-1)
	}
	d.Int(int64(len(c.turn)))
	for _, id := range c.turn {
		d.Int(id)
	}
	keys = keys[:0]
	for k := range c.cursors {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, comparePairs)
	for _, k := range keys {
		d.Proto(c.cursors[k])
	}
}

// digestRunners adds the runners, their lines, incarnations and orphans to d.
func (c *Core) digestRunners(d *actors.Digest) {
	for _, r := range c.runners.sorted() {
		d.Str(r.id)
		d.Str(string(r.addr))
		d.Int(r.incarnation)
		d.Int(int64(len(r.jobs)))
		for _, id := range r.jobs {
			d.Int(id)
		}
		d.Int(int64(r.slots))
		for _, l := range r.labels {
			d.Str(l)
		}
		d.Int(r.seen)
	}
	for _, r := range c.byAddr.sorted() {
		d.Str(string(r.addr))
		d.Str(r.id)
	}
	for r := c.alive.head; r != nil; r = r.alive.next {
		d.Str(r.id)
	}
	d.Int(-1)
	for r := c.idle.head; r != nil; r = r.idle.next {
		d.Str(r.id)
	}
	d.Int(-1)
	for _, id := range sortedKeys(c.incarnations) {
		d.Str(id)
		d.Int(c.incarnations[id])
	}
	for _, id := range sortedKeys(c.lost) {
		d.Str(id)
		d.Int(c.lost[id])
	}
	for _, id := range sortedKeys(c.orphans) {
		d.Int(id)
		d.Time(c.orphans[id])
	}
	d.Time(c.orphanDue)
	for _, id := range sortedKeys(c.orphansOf) {
		d.Str(id)
		for _, j := range c.orphansOf[id] {
			d.Int(j)
		}
		d.Int(-1)
	}
}

// digestPeers adds the observers, the reporter and the results that wait
// for it or were forwarded to it to d.
func (c *Core) digestPeers(d *actors.Digest) {
	for _, a := range sortedKeys(c.observers) {
		o := c.observers[a]
		d.Str(string(a))
		d.Str(o.id)
		for _, r := range o.repos {
			d.Proto(r)
		}
		d.Int(-1)
	}
	d.Str(string(c.reporter))
	for j := c.unsent.head; j != nil; j = j.unsent.next {
		d.Int(j.Job.Id)
	}
	d.Int(-1)
	for j := c.sent.head; j != nil; j = j.resent.next {
		d.Int(j.Job.Id)
	}
	d.Int(-1)
	for i := range len(c.recent) {
		id := c.recentIDs[(c.recentHead+i)%recentMax]
		rr := c.recent[id]
		d.Int(id)
		d.Int(int64(rr.attempt))
		d.Str(rr.runner)
		d.Int(rr.incarnation)
	}
}

func comparePairs(x, y pair) int {
	if c := cmp.Compare(x.a, y.a); c != 0 {
		return c
	}
	return cmp.Compare(x.b, y.b)
}
