package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/voltci/volt/store"
)

// lockDataDir takes the locks of roles on dir for holder (store.Lock); flag
// is the option that chose dir, named in the message when another process
// holds one of them.
func lockDataDir(dir, holder, flag string, roles ...string) (*store.DirLock, error) {
	l, err := store.Lock(dir, holder, roles...)
	var locked *store.LockedError
	switch {
	case errors.As(err, &locked):
		return nil, &exitError{code: exitRuntime, err: fmt.Errorf("%w: stop that process first, or pass another %s", err, flag)}
	case err != nil:
		return nil, fatal("lock the data directory", err)
	}
	return l, nil
}

// closeLock releases a data directory's locks at exit; a failure only
// means the lock files keep a stale pid, which the next holder overwrites.
func closeLock(l *store.DirLock, logger *slog.Logger) {
	if err := l.Close(); err != nil {
		logger.Warn("release the data directory lock", "error", err)
	}
}

// openLockedStore takes role's lock on dir for holder (lockDataDir) and
// opens its SQLite store; closeAll closes the store and releases the lock.
func openLockedStore(dir, holder, role string, logger *slog.Logger) (db *store.DB, closeAll func(), err error) {
	lock, err := lockDataDir(dir, holder, "--data-dir", role)
	if err != nil {
		return nil, nil, err
	}
	db, err = store.Open(dir)
	if err != nil {
		closeLock(lock, logger)
		return nil, nil, fatal("open the data directory", err)
	}
	return db, func() { db.Close(); closeLock(lock, logger) }, nil
}
