package dispatcher

import "github.com/voltci/volt/messages"

// Batch is a group of queue changes that become durable together: the
// Persist effects the shell gathered while the previous batch was being
// written, with each job and cursor appearing at most once (the last write
// of each wins).
type Batch struct {
	Jobs         []*messages.JobRecord
	Cursors      []*messages.Cursor
	Incarnations []*messages.RunnerIncarnation
}

// Queue is the dispatcher's durable state. SQLite implements it today; an
// etcd-backed implementation for a highly available dispatcher is planned.
type Queue interface {
	// Save makes a batch of job records, cursors and runner incarnations
	// durable, atomically: all of it or none. An incarnation never goes
	// backwards.
	Save(b Batch) error
	// LoadQueue returns every job that is not finished or not yet forwarded,
	// all cursors and the largest job id ever used.
	LoadQueue() (jobs []*messages.JobRecord, cursors []*messages.Cursor, maxID int64, err error)
	// LoadIncarnations returns the newest accepted runner incarnations.
	LoadIncarnations() ([]*messages.RunnerIncarnation, error)
}
