// Package nopstore is the dispatcher's Store with the store out of the
// path, for the benchmarks that measure the dispatcher actor without
// SQLite (bench/ in process, bench/internal/noopnode across processes).
package nopstore

import (
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
)

// Store keeps nothing and recovers nothing: every Save succeeds at once.
type Store struct{}

var _ dispatcher.Store = Store{}

// Save implements dispatcher.Queue; it keeps nothing.
func (Store) Save(dispatcher.Batch) error { return nil }

// LoadQueue implements dispatcher.Queue: an empty queue.
func (Store) LoadQueue() ([]*messages.JobRecord, []*messages.Cursor, int64, error) {
	return nil, nil, 0, nil
}

// LoadIncarnations implements dispatcher.Queue: none.
func (Store) LoadIncarnations() ([]*messages.RunnerIncarnation, error) { return nil, nil }

// ArchivedJobs implements dispatcher.Archive: nothing was ever built.
func (Store) ArchivedJobs(string, []string) (map[string]*messages.JobRecord, error) { return nil, nil }

// NewestBuild implements dispatcher.Archive: nothing was ever built.
func (Store) NewestBuild(string, string) ([]*messages.Job, error) { return nil, nil }
