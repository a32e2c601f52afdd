package messages

import (
	"fmt"
	"strings"
)

var statusNames = map[Status]string{
	Status_STATUS_PASSED:    "passed",
	Status_STATUS_FAILED:    "failed",
	Status_STATUS_TIMED_OUT: "timed_out",
	Status_STATUS_ERRORED:   "errored",
	Status_STATUS_CANCELLED: "cancelled",
	Status_STATUS_SKIPPED:   "skipped",
}

// Name is the status as users see it in result files, the CLI and the API:
// one of passed, failed, timed_out, errored, cancelled, skipped.
func (s Status) Name() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return "unknown"
}

// ParseStatus is the inverse of Status.Name.
func ParseStatus(name string) (Status, error) {
	for s, n := range statusNames {
		if n == strings.ToLower(name) {
			return s, nil
		}
	}
	return Status_STATUS_UNSPECIFIED, fmt.Errorf("unknown status %q: want one of passed, failed, timed_out, errored, cancelled, skipped", name)
}

// Name is the job state as users see it: queued, running or done.
func (s JobState) Name() string {
	switch s {
	case JobState_JOB_STATE_QUEUED:
		return "queued"
	case JobState_JOB_STATE_RUNNING:
		return "running"
	case JobState_JOB_STATE_DONE:
		return "done"
	}
	return "unknown"
}
