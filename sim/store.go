package sim

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
)

// durable is the simulated dispatcher store: it survives a dispatcher crash
// while the core's memory does not. It keeps copies, as a database would.
type durable struct {
	jobs    map[int64]*messages.JobRecord
	byKey   map[string]int64 // repo\x00commit -> id
	cursors map[string]*messages.Cursor
	maxID   int64
	incs    map[string]int64
}

func newDurable() *durable {
	return &durable{jobs: map[int64]*messages.JobRecord{}, byKey: map[string]int64{}, cursors: map[string]*messages.Cursor{}, incs: map[string]int64{}}
}

func (d *durable) save(jobs []*messages.JobRecord, cursors []*messages.Cursor, incs []*messages.RunnerIncarnation) {
	for _, r := range incs {
		d.incs[r.RunnerId] = max(d.incs[r.RunnerId], r.Incarnation)
	}
	for _, j := range jobs {
		c := messages.CloneJobRecord(j)
		d.jobs[j.Job.Id] = c
		d.byKey[j.Job.Repo+"\x00"+j.Job.Commit] = j.Job.Id
		d.maxID = max(d.maxID, j.Job.Id)
	}
	for _, c := range cursors {
		d.cursors[c.Repo+"\x00"+c.Branch] = proto.Clone(c).(*messages.Cursor)
	}
}

// load returns what a restarted dispatcher recovers.
func (d *durable) load() dispatcher.Durable {
	var incs []*messages.RunnerIncarnation
	for id, inc := range d.incs {
		incs = append(incs, &messages.RunnerIncarnation{RunnerId: id, Incarnation: inc})
	}
	slices.SortFunc(incs, func(a, b *messages.RunnerIncarnation) int { return strings.Compare(a.RunnerId, b.RunnerId) })
	var jobs []*messages.JobRecord
	for _, j := range d.jobs {
		if j.State != messages.JobState_JOB_STATE_DONE || !j.Forwarded {
			jobs = append(jobs, messages.CloneJobRecord(j))
		}
	}
	slices.SortFunc(jobs, func(a, b *messages.JobRecord) int { return int(a.Job.Id - b.Job.Id) })
	var cursors []*messages.Cursor
	for _, c := range d.cursors {
		cursors = append(cursors, proto.Clone(c).(*messages.Cursor))
	}
	slices.SortFunc(cursors, func(a, b *messages.Cursor) int {
		if a.Repo+a.Branch < b.Repo+b.Branch {
			return -1
		}
		return 1
	})
	return dispatcher.Durable{Jobs: jobs, Cursors: cursors, MaxID: d.maxID, Incarnations: incs}
}

func (d *durable) archived(repo string, commits []string) map[string]*messages.JobRecord {
	var out map[string]*messages.JobRecord
	for _, c := range commits {
		if id, ok := d.byKey[repo+"\x00"+c]; ok {
			if out == nil {
				out = map[string]*messages.JobRecord{}
			}
			out[c] = d.jobs[id]
		}
	}
	return out
}

// latest is the newest build of a commit the store knows of (nil if none).
func (d *durable) latest(repo, commit string) *messages.Job {
	id, ok := d.byKey[repo+"\x00"+commit]
	if !ok {
		return nil
	}
	return messages.CloneJob(d.jobs[id].Job)
}
