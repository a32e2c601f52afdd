package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LockFile is the name of a role's lock file inside its data directory:
// dispatcher.lock, reporter.lock, runner.lock. Roles lock separately because
// two different roles may share a directory (`volt dispatcher` and `volt
// reporter` both default to .volt and share its volt.db, whose writers queue
// for one another), while two processes of one role on one directory would
// each run a whole queue, or reporter, over the same database.
func LockFile(role string) string { return role + ".lock" }

// LockedError is returned by Lock when another process holds a role's lock
// on the directory. Its message names the directory, the lock file and the
// holder; the caller adds what to do (which flag picks another directory).
type LockedError struct {
	Dir  string // the data directory
	Role string // the role whose lock is taken
	// PID is the holder's process id, 0 when its lock file does not say
	// (it was taken an instant ago).
	PID int
	// Holder is what the holder called itself ("volt up", "volt dispatcher").
	Holder string
}

func (e *LockedError) Error() string {
	who := "another process"
	switch {
	case e.PID > 0 && e.Holder != "":
		who = fmt.Sprintf("pid %d (%s)", e.PID, e.Holder)
	case e.PID > 0:
		who = fmt.Sprintf("pid %d", e.PID)
	}
	return fmt.Sprintf("data directory %s is in use: its %s lock (%s) is held by %s",
		e.Dir, e.Role, filepath.Join(e.Dir, LockFile(e.Role)), who)
}

// DirLock is a held set of role locks on one directory. The kernel drops
// them when the process ends, however it ends, so a kill -9 never leaves a
// stale lock behind.
type DirLock struct {
	files []*os.File
}

// Lock takes the exclusive lock of each role on dir (creating dir and the
// lock files as needed) and records this process's pid and holder in each
// lock file, as etcd and PostgreSQL do with theirs. It does not wait: when
// another process holds one of them, Lock releases what it took and returns
// a *LockedError naming that process. `volt up` passes every role it runs.
func Lock(dir, holder string, roles ...string) (*DirLock, error) {
	if dir == "" {
		return nil, errors.New("lock data directory: empty path: pass --data-dir")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w: check its permissions or pass another --data-dir", dir, err)
	}
	l := &DirLock{}
	for _, role := range roles {
		f, err := lockOne(dir, role, holder)
		if err != nil {
			return nil, errors.Join(err, l.Close())
		}
		l.files = append(l.files, f)
	}
	return l, nil
}

func lockOne(dir, role, holder string) (*os.File, error) {
	path := filepath.Join(dir, LockFile(role))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, who := readHolder(path)
			return nil, &LockedError{Dir: dir, Role: role, PID: pid, Holder: who}
		}
		return nil, fmt.Errorf("lock %s: %w (does the file system support flock?)", path, err)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(fmt.Sprintf("%d\n%s\n", os.Getpid(), holder)), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("record the holder in %s: %w", path, err)
	}
	return f, nil
}

// readHolder reads a lock file's pid and holder. A holder that has just
// taken the lock may not have written them yet: wait a moment for them.
func readHolder(path string) (int, string) {
	deadline := time.Now().Add(200 * time.Millisecond)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			pidLine, who, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(pidLine)); err == nil && pid > 0 {
				return pid, strings.TrimSpace(who)
			}
		}
		if time.Now().After(deadline) {
			return 0, ""
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Close releases the locks. The lock files stay, emptied, so that a process
// that finds one locked never reads a pid left from an earlier holder.
func (l *DirLock) Close() error {
	var errs []error
	for _, f := range l.files {
		if err := f.Truncate(0); err != nil {
			errs = append(errs, fmt.Errorf("empty %s: %w", f.Name(), err))
		}
		if err := f.Close(); err != nil { // closing releases the flock
			errs = append(errs, fmt.Errorf("release %s: %w", f.Name(), err))
		}
	}
	l.files = nil
	return errors.Join(errs...)
}
