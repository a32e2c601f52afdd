package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Retention says which builds to keep; the rest are pruned with every job's
// result, log and artifacts and, once a commit has no result left, its
// test_results/<commit> file.
type Retention struct {
	// KeepBuilds keeps the newest this many results of each branch of each
	// repository (a result on several branches is kept while any of them
	// keeps it). 0 or less keeps every result.
	KeepBuilds int
	// KeepFor also prunes results that finished longer ago than this, even
	// within KeepBuilds. 0 keeps results of any age.
	KeepFor time.Duration
}

// PruneStats says what one Prune removed.
type PruneStats struct {
	// Results counts the builds removed (one per build, as the lists show them).
	Results int
	// Jobs counts the job results removed (a build of one job has one).
	Jobs int
	// Logs counts the attempt logs removed, of every job.
	Logs        int
	ResultFiles int
}

// pruneBatch is how many builds one transaction deletes.
const pruneBatch = 500

// Prune deletes the builds rt does not keep (one build counts once,
// however many jobs it has), with every job's result, log (every attempt)
// and artifacts, and the result files of commits left without a complete
// build. Only complete builds are ever pruned: a build with a job queued
// or running has no aggregate yet, and neither its jobs' results nor its
// logs are touched. The dispatcher's job records stay (they number later
// builds of a commit).
func (db *DB) Prune(rt Retention, now time.Time) (PruneStats, error) {
	var st PruneStats
	if err := db.writable("prune results"); err != nil {
		return st, err
	}
	if rt.KeepBuilds <= 0 && rt.KeepFor <= 0 {
		return st, nil
	}
	type res struct {
		id       int64
		repo     string
		commit   string
		build    int32
		branches string
		finished int64
	}
	ctx := context.Background()
	rs, err := db.sql.QueryContext(ctx,
		`SELECT id, repo, commit_hash, build, branches, finished_unix_ms FROM builds ORDER BY finished_unix_ms DESC, id DESC`)
	if err != nil {
		return st, fmt.Errorf("prune results in %s: %w", db.path(), err)
	}
	var all []res
	for rs.Next() {
		var r res
		if err := rs.Scan(&r.id, &r.repo, &r.commit, &r.build, &r.branches, &r.finished); err != nil {
			return st, errors.Join(fmt.Errorf("prune results in %s: %w", db.path(), err), rs.Close())
		}
		all = append(all, r)
	}
	if err := errors.Join(rs.Err(), rs.Close()); err != nil {
		return st, fmt.Errorf("prune results in %s: %w", db.path(), err)
	}
	cutoff := int64(0)
	if rt.KeepFor > 0 {
		cutoff = now.Add(-rt.KeepFor).UnixMilli()
	}
	seen := map[string]int{} // "repo\x00branch" -> results kept so far, newest first
	var drop []res
	for _, r := range all {
		keep := rt.KeepBuilds <= 0
		for _, b := range strings.Split(r.branches, ",") {
			k := r.repo + "\x00" + b
			seen[k]++
			if seen[k] <= rt.KeepBuilds {
				keep = true
			}
		}
		if cutoff > 0 && r.finished < cutoff {
			keep = false
		}
		if !keep {
			drop = append(drop, r)
		}
	}
	commits := map[string]bool{}
	for batch := range slices.Chunk(drop, pruneBatch) {
		err := db.inTx(ctx, func(exec func(string, ...any) (int64, error)) error {
			for _, r := range batch {
				if _, err := exec(`DELETE FROM builds WHERE id = ?`, r.id); err != nil {
					return err
				}
				n, err := exec(`DELETE FROM results WHERE repo = ? AND commit_hash = ? AND build = ?`, r.repo, r.commit, r.build)
				if err != nil {
					return err
				}
				st.Jobs += int(n)
				n, err = exec(`DELETE FROM logs WHERE repo = ? AND commit_hash = ? AND build = ?`, r.repo, r.commit, r.build)
				if err != nil {
					return err
				}
				st.Logs += int(n)
				if _, err := exec(`DELETE FROM log_chunks WHERE repo = ? AND commit_hash = ? AND build = ?`, r.repo, r.commit, r.build); err != nil {
					return err
				}
				if err := pruneArtifacts(exec, r.repo, r.commit, r.build); err != nil { // artifacts.go
					return err
				}
				if _, err := pruneTests(exec, r.repo, r.commit, r.build); err != nil { // tests.go
					return err
				}
				commits[r.commit] = true
			}
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("prune results in %s: %w", db.path(), err)
		}
		st.Results += len(batch)
	}
	for _, c := range slices.Sorted(maps.Keys(commits)) {
		var left int
		if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM builds WHERE commit_hash = ?`, c).Scan(&left); err != nil {
			return st, fmt.Errorf("prune results in %s: %w", db.path(), err)
		}
		if left > 0 || checkHex(c, 4) != nil {
			continue
		}
		err := os.Remove(filepath.Join(db.dir, ResultDir, strings.ToLower(c)))
		switch {
		case err == nil:
			st.ResultFiles++
		case !errors.Is(err, os.ErrNotExist):
			return st, fmt.Errorf("prune the result file of %s: %w", c, err)
		}
	}
	return st, nil
}

// inTx runs fn in one write transaction; exec returns the rows affected.
func (db *DB) inTx(ctx context.Context, fn func(exec func(string, ...any) (int64, error)) error) (err error) {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer endTx(tx, &err)
	exec := func(q string, args ...any) (int64, error) {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	if err := fn(exec); err != nil {
		return err
	}
	return tx.Commit()
}
