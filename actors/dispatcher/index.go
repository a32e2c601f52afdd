package dispatcher

import (
	"hash/maphash"
	"slices"
	"strings"
)

// index finds registered runners by id or by address. It is an open
// addressing hash table of pointers (linear probing, deletion by backward
// shift): about 14 bytes per runner where a Go map of string to pointer
// takes about 40, which matters with tens of thousands of idle runners. Its
// order depends on a random seed: nothing may depend on it (see sorted).
type index struct {
	slots  []*runnerState
	n      int
	byAddr bool // keyed by addr, not id
	seed   maphash.Seed
}

func newIndex(byAddr bool) index { return index{byAddr: byAddr, seed: maphash.MakeSeed()} }

func (x *index) key(r *runnerState) string {
	if x.byAddr {
		return string(r.addr)
	}
	return r.id
}

func (x *index) home(k string) int { return int(maphash.String(x.seed, k) & uint64(len(x.slots)-1)) }

// find returns the slot of key k, or the empty slot where it would go.
func (x *index) find(k string) (int, bool) {
	mask := len(x.slots) - 1
	for i := x.home(k); ; i = (i + 1) & mask {
		r := x.slots[i]
		if r == nil {
			return i, false
		}
		if x.key(r) == k {
			return i, true
		}
	}
}

// get returns the runner of key k, nil if none.
func (x *index) get(k string) *runnerState {
	if x.n == 0 {
		return nil
	}
	if i, ok := x.find(k); ok {
		return x.slots[i]
	}
	return nil
}

// set files r under its key, replacing the runner filed there.
func (x *index) set(r *runnerState) {
	if 4*(x.n+1) > 3*len(x.slots) {
		x.grow()
	}
	i, ok := x.find(x.key(r))
	if !ok {
		x.n++
	}
	x.slots[i] = r
}

func (x *index) grow() {
	old := x.slots
	x.slots = make([]*runnerState, max(16, 2*len(old)))
	for _, r := range old {
		if r != nil {
			i, _ := x.find(x.key(r))
			x.slots[i] = r
		}
	}
}

// del removes key k, if filed.
func (x *index) del(k string) {
	if x.n == 0 {
		return
	}
	i, ok := x.find(k)
	if !ok {
		return
	}
	x.slots[i] = nil
	x.n--
	// Move back the runners after it that probing would no longer reach.
	mask := len(x.slots) - 1
	for j := (i + 1) & mask; x.slots[j] != nil; j = (j + 1) & mask {
		h := x.home(x.key(x.slots[j]))
		// The runner at j stays if its home lies cyclically in (i, j]; otherwise it moves to i.
		if (i < j && (h <= i || h > j)) || (i > j && h <= i && h > j) {
			x.slots[i], x.slots[j] = x.slots[j], nil
			i = j
		}
	}
}

// sorted returns the runners ordered by key.
func (x *index) sorted() []*runnerState {
	rs := make([]*runnerState, 0, x.n)
	for _, r := range x.slots {
		if r != nil {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b *runnerState) int { return strings.Compare(x.key(a), x.key(b)) })
	return rs
}
