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
	byKey   map[string]int64 // repo\x00commit -> the newest build's id
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
		k := j.Job.Repo + "\x00" + j.Job.Commit
		if old, ok := d.byKey[k]; !ok || d.jobs[old].Job.Build <= j.Job.Build {
			d.byKey[k] = j.Job.BuildID()
		}
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
	open := map[int64]bool{} // builds with a job not done or not forwarded
	for _, j := range d.jobs {
		if j.State != messages.JobState_JOB_STATE_DONE || !j.Forwarded {
			open[j.Job.BuildID()] = true
		}
	}
	var jobs []*messages.JobRecord
	for _, j := range d.jobs {
		if open[j.Job.BuildID()] {
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

// latest is the jobs of the newest build of a commit the store knows of
// (none if none), in index order.
func (d *durable) latest(repo, commit string) []*messages.Job {
	id, ok := d.byKey[repo+"\x00"+commit]
	if !ok {
		return nil
	}
	var out []*messages.Job
	for k := range int64(d.jobs[id].Job.JobsInBuild()) {
		if rec := d.jobs[id+k]; rec != nil {
			out = append(out, messages.CloneJob(rec.Job))
		}
	}
	return out
}
