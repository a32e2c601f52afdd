package sim

import (
	"github.com/voltci/volt/actors"
)

type eventKind uint8

const (
	evDeliver   eventKind = iota // a message or shell answer reaches a node
	evTick                       // a node's deadline
	evFault                      // the next scheduled fault
	evCommit                     // the repository changes
	evRestart                    // a supervisor restarts a node
	evUnhang                     // a hung node resumes
	evHeal                       // a partition or noise window ends
	evJobEnd                     // a job process ends on its own
	evMalice                     // the malicious peer sends its next forgery
	evAsk                        // a job asks for its secrets
	evAdmin                      // the operator changes or lists secrets
	evSnoop                      // the malicious peer sends its next secret forgery
	evUser                       // the simulated user cancels or rebuilds (user.go)
	evWork                       // a host's work off the actor ends (a store write, a git read)
	evKeepalive                  // a dispatcher node of a failover world renews its session (failover.go)
	evExpire                     // a session lease of a failover world may have expired
)

// event is one entry of the world's queue.
type event struct {
	at   int64 // virtual nanoseconds since the start
	seq  uint64
	kind eventKind
	node int
	gen  uint64 // the target's generation when scheduled; stale ones are dropped
	from actors.From
	msg  any
	arg  int
	// forged marks a malicious peer's message: the checker requires that it
	// changes nothing.
	forged bool
}

// queue is a binary min-heap of events ordered by (at, seq).
type queue []event

func (q queue) less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}

func (q *queue) push(e event) {
	*q = append(*q, e)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *queue) pop() event {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = event{}
	h = h[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && h.less(l, m) {
			m = l
		}
		if r < len(h) && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}
