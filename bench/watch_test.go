package bench

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// watcher records, with inotify, the first time each file of one directory
// was completely written (IN_CLOSE_WRITE) or moved into place (IN_MOVED_TO,
// how result files are replaced atomically), or opened (IN_OPEN, when asked
// for). It times a file's arrival to within the reading goroutine's wake-up,
// without polling and without spending CPU while it waits.
type watcher struct {
	dir string
	f   *os.File

	mu       sync.Mutex
	seen     map[string]time.Time // first event per name
	opens    map[string]int       // IN_OPEN events per name
	events   []watchEvent         // every close-write/moved-to event, in order
	overflow bool
	changed  chan struct{} // closed and replaced at every event
}

type watchEvent struct {
	name string
	at   time.Time
}

// watchDir starts watching dir (created if missing) until the benchmark ends.
func watchDir(tb testing.TB, dir string, opens bool) *watcher {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		tb.Fatalf("inotify_init1: %v", err)
	}
	mask := uint32(syscall.IN_CLOSE_WRITE | syscall.IN_MOVED_TO)
	if opens {
		mask |= syscall.IN_OPEN
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, mask); err != nil {
		syscall.Close(fd)
		tb.Fatalf("inotify_add_watch %s: %v", dir, err)
	}
	w := &watcher{dir: dir, f: os.NewFile(uintptr(fd), "inotify"), seen: map[string]time.Time{},
		opens: map[string]int{}, changed: make(chan struct{})}
	go w.read()
	tb.Cleanup(func() { w.f.Close() })
	return w
}

func (w *watcher) read() {
	buf := make([]byte, 256<<10)
	for {
		n, err := w.f.Read(buf) // the fd is non-blocking: Go's poller parks here
		if err != nil {
			return
		}
		now := time.Now()
		w.mu.Lock()
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			mask := binary.LittleEndian.Uint32(buf[off+4:])
			nameLen := int(binary.LittleEndian.Uint32(buf[off+12:]))
			name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+nameLen], "\x00"))
			off += syscall.SizeofInotifyEvent + nameLen
			switch {
			case mask&syscall.IN_Q_OVERFLOW != 0:
				w.overflow = true
			case mask&syscall.IN_OPEN != 0:
				w.opens[name]++
			default:
				if _, ok := w.seen[name]; !ok {
					w.seen[name] = now
				}
				w.events = append(w.events, watchEvent{name, now})
			}
		}
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
}

// openCount returns how many times name was opened so far.
func (w *watcher) openCount(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.opens[name]
}

// waitFiles waits until every name exists in the directory and returns the
// time each arrived. A file whose event was lost (queue overflow) is found by
// a stat every 100 ms and timed then; fallbacks counts those.
func (w *watcher) waitFiles(tb testing.TB, names []string, timeout time.Duration) (at map[string]time.Time, fallbacks int) {
	tb.Helper()
	at, fallbacks, ok := w.collect(names, timeout)
	if !ok {
		tb.Fatalf("after %s: %d of %d files in %s (first missing: %s)", timeout, len(at), len(names), w.dir, firstMissing(names, at))
	}
	return at, fallbacks
}

// collect is waitFiles without failing: ok is false when some file did not
// arrive within timeout.
func (w *watcher) collect(names []string, timeout time.Duration) (at map[string]time.Time, fallbacks int, ok bool) {
	at = make(map[string]time.Time, len(names))
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	statTick := time.NewTicker(100 * time.Millisecond)
	defer statTick.Stop()
	for {
		w.mu.Lock()
		changed := w.changed
		for _, n := range names {
			if _, ok := at[n]; !ok {
				if t, ok := w.seen[n]; ok {
					at[n] = t
				}
			}
		}
		w.mu.Unlock()
		if len(at) == len(names) {
			return at, fallbacks, true
		}
		select {
		case <-changed:
		case <-statTick.C:
			now := time.Now()
			for _, n := range names {
				if _, ok := at[n]; ok {
					continue
				}
				if st, err := os.Stat(filepath.Join(w.dir, n)); err == nil && st.Size() > 0 {
					// Give the event a moment's priority: it may be in flight.
					w.mu.Lock()
					t, ok := w.seen[n]
					w.mu.Unlock()
					if !ok {
						t = now
						fallbacks++
					}
					at[n] = t
				}
			}
		case <-deadline.C:
			return at, fallbacks, false
		}
	}
}

func firstMissing(names []string, at map[string]time.Time) string {
	for _, n := range names {
		if _, ok := at[n]; !ok {
			return n
		}
	}
	return ""
}

// waitFile waits for one file and returns when it arrived.
func (w *watcher) waitFile(tb testing.TB, name string, timeout time.Duration) time.Time {
	tb.Helper()
	at, _ := w.waitFiles(tb, []string{name}, timeout)
	return at[name]
}

// waitMatch waits for the first event at or after index from whose name
// satisfies match, and returns the name, its time and the index after it.
func (w *watcher) waitMatch(tb testing.TB, from int, match func(name string) bool, timeout time.Duration, what string) (string, time.Time, int) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		changed := w.changed
		for i := from; i < len(w.events); i++ {
			if match(w.events[i].name) {
				e := w.events[i]
				w.mu.Unlock()
				return e.name, e.at, i + 1
			}
		}
		w.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			tb.Fatalf("after %s: no %s in %s", timeout, what, w.dir)
		}
	}
}

// resultStatus reads the status line of a result file.
func resultStatus(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "status:"); ok {
			return strings.TrimSpace(v)
		}
		if line == "" {
			break
		}
	}
	return ""
}

// resultField reads one header field of a result file.
func resultField(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
