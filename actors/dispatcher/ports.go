package dispatcher

import (
	"errors"
	"time"

	"github.com/voltci/volt/messages"
)

// Batch is a group of queue changes that become durable together: the
// Persist effects the shell gathered while the previous batch was being
// written, with each job and cursor appearing at most once (the last write
// of each wins).
type Batch struct {
	Jobs         []*messages.JobRecord
	Cursors      []*messages.Cursor
	Incarnations []*messages.RunnerIncarnation
	// Fence, when set, is the election key the leader of a failover group
	// won with: the store commits the batch only if that key still exists
	// with that create revision, and otherwise writes nothing and returns
	// an error wrapping ErrFenced. Zero (a single dispatcher) is unfenced.
	Fence Fence
}

// Fence names an election key and the create revision its owner won
// with. In failover mode the revision is the leader's epoch (see
// EpochRevision).
type Fence struct {
	Key      string
	Revision int64
}

// IsZero reports whether f fences nothing.
func (f Fence) IsZero() bool { return f.Key == "" && f.Revision == 0 }

// ErrFenced is wrapped by the error of a write refused because the
// writer's election key is gone or was won again: it no longer leads.
var ErrFenced = errors.New("write fenced: this dispatcher node no longer leads")

// Leadership is a failover dispatcher node's view of its own election, as
// the shell asks it: the production election driver (cluster) and the
// simulator implement it.
type Leadership interface {
	// Fence is the key and revision this node won with.
	Fence() Fence
	// Valid reports whether the node still leads at now by its own clock:
	// its session lease, counted from the send time of the last keepalive
	// etcd answered, has not run out. A node that wakes up from a pause
	// longer than its lease finds it false before it acts on anything.
	Valid(now time.Time) bool
}

// EpochRevision is the election revision an epoch of a failover leader
// carries in its high bits (the low 16 count in-place restarts).
func EpochRevision(epoch int64) int64 { return epoch >> 16 }

// FailoverEpoch is the epoch of a failover leader that won with revision
// rev, after restarts in-place restarts of its core.
func FailoverEpoch(rev int64, restarts int) int64 { return rev<<16 | int64(restarts&0xffff) }

// Queue is the dispatcher's durable state: SQLite for a single dispatcher,
// etcd for a failover group (store/etcdstore, adapted in cluster), the
// simulator's durable store in sim.
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
