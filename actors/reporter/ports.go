package reporter

import "github.com/voltci/volt/messages"

// Store is the reporter's durable storage of results, logs and result files.
type Store interface {
	// RecordResult stores the final result of one job of a build, keyed by
	// (repo, commit, build, job index); inserted is false for a duplicate.
	RecordResult(r *messages.Result) (inserted bool, err error)
	// AppendLog stores a chunk and returns the contiguous bytes held.
	AppendLog(job *messages.Job, attempt int32, offset int64, data []byte) (have int64, err error)
	// LogHave returns the contiguous bytes held of an attempt's log (of
	// the job its index names).
	LogHave(job *messages.Job, attempt int32) (int64, error)
	// WriteResultFile writes test_results/<commit> for the build r is a job
	// of, once every job of that build has a recorded result, and does
	// nothing before (store.DB.WriteResultFile). The shell calls it after
	// every RecordResult, a duplicate's too, so that the job completing a
	// build always leaves its file written before it is acknowledged.
	WriteResultFile(r *messages.Result) error
}

// LogDropper is a Store that can forget an attempt's log. The reporter
// drops a log that another runner than the one its result names wrote (see
// Record.DropLog) when its store is one; a store that is not keeps such a
// log, and the reporter logs an error.
type LogDropper interface {
	DropLog(job *messages.Job, attempt int32) error
}
