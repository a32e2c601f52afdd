package dispatcher

// The core's ordered structures: every step touches them in O(1), so that
// no step walks the runners or the jobs.

// links are an element's two neighbours in one line.
type links[T any] struct{ prev, next *T }

// line is an intrusive doubly linked list: its elements carry their links
// (at returns them), so joining and leaving allocate nothing and a runner or
// job leaves its line in O(1) wherever it stands.
type line[T any] struct {
	head, tail *T
	at         func(*T) *links[T]
}

// has reports whether x stands in the line.
func (l *line[T]) has(x *T) bool { return l.head == x || l.at(x).prev != nil }

// pushBack puts x, not in the line, at its back.
func (l *line[T]) pushBack(x *T) {
	lx := l.at(x)
	lx.prev, lx.next = l.tail, nil
	if l.tail != nil {
		l.at(l.tail).next = x
	} else {
		l.head = x
	}
	l.tail = x
}

// remove takes x out of the line if it stands in it.
func (l *line[T]) remove(x *T) {
	if !l.has(x) {
		return
	}
	lx := l.at(x)
	if lx.prev != nil {
		l.at(lx.prev).next = lx.next
	} else {
		l.head = lx.next
	}
	if lx.next != nil {
		l.at(lx.next).prev = lx.prev
	} else {
		l.tail = lx.prev
	}
	lx.prev, lx.next = nil, nil
}

// place moves x to where key orders it, after every element of a key no
// larger: the line stays sorted by key. Keys are times that only grow, so
// x goes to the back in O(1); a key from the past walks back to its place.
func (l *line[T]) place(x *T, key func(*T) int64) {
	l.remove(x)
	k := key(x)
	p := l.tail
	for p != nil && key(p) > k {
		p = l.at(p).prev
	}
	if p == l.tail {
		l.pushBack(x)
		return
	}
	lx := l.at(x)
	lx.prev = p
	if p == nil {
		lx.next = l.head
		l.at(l.head).prev = x
		l.head = x
		return
	}
	lp := l.at(p)
	lx.next = lp.next
	l.at(lp.next).prev = x
	lp.next = x
}
