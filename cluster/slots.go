package cluster

import "sync"

// slotPool hands each job a runner runs at once a workspace slot of its
// own (gitexec.Workspace.Prepare's slot): the lowest one free, so that a
// runner with --slots 4 that mostly runs one job keeps reusing one
// worktree. The runner's core starts no more jobs than its slots, and a
// job gives its slot back when its executor returns, before the core
// hears it ended: the pool never holds more slots than that.
type slotPool struct {
	mu   sync.Mutex
	busy []bool
}

// take returns a free slot and the function that gives it back.
func (p *slotPool) take() (int, func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	slot := 0
	for slot < len(p.busy) && p.busy[slot] {
		slot++
	}
	if slot == len(p.busy) {
		p.busy = append(p.busy, false)
	}
	p.busy[slot] = true
	return slot, func() {
		p.mu.Lock()
		p.busy[slot] = false
		p.mu.Unlock()
	}
}
