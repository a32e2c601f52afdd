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
