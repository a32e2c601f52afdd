package messages

import "strings"

// A PipelineJob is made once, by the observer or when a record is read,
// and never changed: Jobs, records and results share it.

// BuildID is the id of the build j belongs to: its first job's id (records
// made before pipelines have no build_id and are their own build).
func (j *Job) BuildID() int64 {
	if j.GetBuildId() == 0 {
		return j.GetId()
	}
	return j.BuildId
}

// JobsInBuild is how many jobs j's build has (at least 1).
func (j *Job) JobsInBuild() int32 {
	if j.GetBuildJobs() < 1 {
		return 1
	}
	return j.BuildJobs
}

// DisplayName is the job's name as users see it: its cell's name, or
// "build" for the one job of a single-list build.
func (j *Job) DisplayName() string {
	if n := j.GetCell().GetName(); n != "" {
		return n
	}
	return "build"
}

// CellName is the name a pipeline job is shown by: key, the matrix values in
// parentheses and the shard counted from 1 ("test (go=1.26, db=sqlite) 3/4").
func CellName(key string, matrix []*MatrixValue, shardIndex, shardTotal int32) string {
	var b strings.Builder
	b.WriteString(key)
	if len(matrix) > 0 {
		b.WriteString(" (")
		for i, m := range matrix {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(m.Name + "=" + m.Value)
		}
		b.WriteString(")")
	}
	if shardTotal > 0 {
		b.WriteString(" ")
		b.WriteString(itoa(int(shardIndex) + 1))
		b.WriteString("/")
		b.WriteString(itoa(int(shardTotal)))
	}
	return b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

// aggregateRank orders statuses by how much they say about a build: a
// failure is the news, then a timeout, then trouble with the machinery,
// then a user's cancel; skipped jobs say nothing of their own.
var aggregateRank = map[Status]int{
	Status_STATUS_SKIPPED:   0,
	Status_STATUS_PASSED:    1,
	Status_STATUS_CANCELLED: 2,
	Status_STATUS_ERRORED:   3,
	Status_STATUS_TIMED_OUT: 4,
	Status_STATUS_FAILED:    5,
}

// Aggregate is a build's status from its jobs' statuses: failed if any job
// failed, else timed_out, errored or cancelled if any job ended so (in that
// order), else passed, or skipped when every job was skipped. A job with
// allowFailure[i] that failed, timed out or errored counts as passed. A
// build of one job has that job's status.
func Aggregate(statuses []Status, allowFailure []bool) Status {
	best := Status_STATUS_UNSPECIFIED
	for i, s := range statuses {
		if i < len(allowFailure) && allowFailure[i] && (s == Status_STATUS_FAILED || s == Status_STATUS_TIMED_OUT || s == Status_STATUS_ERRORED) {
			s = Status_STATUS_PASSED
		}
		if best == Status_STATUS_UNSPECIFIED || aggregateRank[s] > aggregateRank[best] {
			best = s
		}
	}
	return best
}
