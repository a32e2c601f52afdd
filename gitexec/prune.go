package gitexec

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// usedStamp is the file in a mirror whose modification time says when the
// repository was last built on this runner.
const usedStamp = "volt-last-used"

// touch records that the mirror was used now.
func touch(mirror string) {
	p := filepath.Join(mirror, usedStamp)
	now := time.Now()
	if err := os.Chtimes(p, now, now); errors.Is(err, fs.ErrNotExist) {
		if f, err := os.Create(p); err == nil {
			f.Close()
		}
	}
}

// PruneStats says what Prune removed.
type PruneStats struct {
	Mirrors, Worktrees int
}

// Prune removes the mirrors and worktrees of repositories not built for
// longer than unused, so a runner's disk does not fill with repositories it
// no longer sees. A mirror without a stamp counts from its directory's
// modification time. It takes each repository's locks, so it never races a
// job preparing that repository.
func (w *Workspace) Prune(ctx context.Context, unused time.Duration, now time.Time) (PruneStats, error) {
	var st PruneStats
	mirrors := filepath.Join(w.workDir, "mirrors")
	entries, err := os.ReadDir(mirrors)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("prune %s: %w", mirrors, err)
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), ".git") {
			continue
		}
		key := strings.TrimSuffix(e.Name(), ".git")
		mirror := filepath.Join(mirrors, e.Name())
		used := lastUsed(mirror)
		if now.Sub(used) <= unused {
			continue
		}
		if err := w.pruneRepo(key, mirror, &st); err != nil {
			return st, err
		}
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
	}
	return st, nil
}

func lastUsed(mirror string) time.Time {
	if fi, err := os.Stat(filepath.Join(mirror, usedStamp)); err == nil {
		return fi.ModTime()
	}
	if fi, err := os.Stat(mirror); err == nil {
		return fi.ModTime()
	}
	return time.Time{}
}

func (w *Workspace) pruneRepo(key, mirror string, st *PruneStats) error {
	slots, err := filepath.Glob(filepath.Join(w.workDir, "slots", "*", key))
	if err != nil {
		return fmt.Errorf("prune %s: %w", key, err)
	}
	for _, wt := range slots {
		unlock := w.lock("slot " + wt)
		err := os.RemoveAll(wt)
		unlock()
		if err != nil {
			return fmt.Errorf("prune worktree %s: %w", wt, err)
		}
		st.Worktrees++
	}
	unlock := w.lock("mirror " + key)
	err = os.RemoveAll(mirror)
	unlock()
	if err != nil {
		return fmt.Errorf("prune mirror %s: %w", mirror, err)
	}
	st.Mirrors++
	return nil
}
