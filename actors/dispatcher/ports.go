package dispatcher

import "github.com/voltci/volt/messages"

// Queue is the dispatcher's durable state. SQLite implements it today; an
// etcd-backed implementation for a highly available dispatcher is planned.
type Queue interface {
	// SaveJobs makes job records and cursors durable, atomically.
	SaveJobs(jobs []*messages.JobRecord, cursors []*messages.Cursor) error
	// LoadQueue returns every job that is not finished or not yet forwarded,
	// all cursors and the largest job id ever used.
	LoadQueue() (jobs []*messages.JobRecord, cursors []*messages.Cursor, maxID int64, err error)
	// SaveIncarnations makes the newest accepted runner incarnations durable.
	SaveIncarnations(rs []*messages.RunnerIncarnation) error
	// LoadIncarnations returns them.
	LoadIncarnations() ([]*messages.RunnerIncarnation, error)
}
