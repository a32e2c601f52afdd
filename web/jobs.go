package web

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// Job is one build as the API and the pages show it. Its JSON field names
// are part of Volt's contract (README, "Web UI and API").
type Job struct {
	JobID      int64      `json:"job_id"`
	Repo       string     `json:"repo"`
	RepoName   string     `json:"repo_name"`
	Commit     string     `json:"commit"`
	Subject    string     `json:"subject,omitempty"`
	Branches   []string   `json:"branches"`
	Build      int32      `json:"build"`
	State      string     `json:"state"`
	Status     string     `json:"status,omitempty"`
	Attempt    int32      `json:"attempt"`
	Runner     string     `json:"runner,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	FailedStep string     `json:"failed_step,omitempty"`
	ExitCode   int32      `json:"exit_code"`
	QueuedAt   *time.Time `json:"queued_at,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	DurationMS *int64     `json:"duration_ms,omitempty"`
	QueueMS    *int64     `json:"queue_wait_ms,omitempty"`
	LogBytes   int64      `json:"log_bytes"`
	LogDropped int64      `json:"log_dropped"`

	job *messages.Job
	// waiting is why a queued job has not started (the dispatcher's
	// JobRecord.waiting); not in /api/v1's answers, whose shape is fixed.
	waiting string
}

// BuildID is the id of the build j belongs to (its own id for a build of
// one job).
func (j Job) BuildID() int64 { return j.job.BuildID() }

// Index is j's place in its build.
func (j Job) Index() int32 { return j.job.GetIndex() }

// JobsInBuild is how many jobs j's build has.
func (j Job) JobsInBuild() int32 { return j.job.JobsInBuild() }

// Name is j's name: its cell's, or "build" for the one job of a
// single-list build.
func (j Job) Name() string { return j.job.DisplayName() }

// Waiting is why a queued job has not started ("no runner has labels
// gpu"), "" otherwise.
func (j Job) Waiting() string { return j.waiting }

// Job states as the API names them.
const (
	stateQueued  = "queued"
	stateRunning = "running"
	stateDone    = "done"
)

func msTime(ms int64) *time.Time {
	if ms <= 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

func msPtr(v int64) *int64 { return &v }

// fromResult is the view of a recorded result.
func fromResult(r *messages.Result) Job {
	j := r.GetJob()
	v := Job{
		JobID: j.GetId(), Repo: j.GetRepo(), RepoName: j.GetRepoName(), Commit: j.GetCommit(), Subject: j.GetSubject(),
		Branches: append([]string{}, j.GetBranches()...), Build: j.GetBuild(), State: stateDone,
		Status: r.GetStatus().Name(), Attempt: r.GetAttempt(), Runner: r.GetRunnerId(), Reason: r.GetReason(),
		FailedStep: r.GetFailedStep(), ExitCode: r.GetExitCode(),
		QueuedAt: msTime(r.GetQueuedUnixMs()), StartedAt: msTime(r.GetStartedUnixMs()), FinishedAt: msTime(r.GetFinishedUnixMs()),
		LogBytes: r.GetLogBytes(), LogDropped: r.GetLogDropped(), job: j,
	}
	if r.GetStartedUnixMs() > 0 && r.GetFinishedUnixMs() >= r.GetStartedUnixMs() {
		v.DurationMS = msPtr(r.GetFinishedUnixMs() - r.GetStartedUnixMs())
	}
	if r.GetQueuedUnixMs() > 0 && r.GetStartedUnixMs() >= r.GetQueuedUnixMs() {
		v.QueueMS = msPtr(r.GetStartedUnixMs() - r.GetQueuedUnixMs())
	}
	return v
}

// fromRecord is the view of a job in the dispatcher's memory.
func fromRecord(rec *messages.JobRecord) Job {
	if rec.GetState() == messages.JobState_JOB_STATE_DONE && rec.GetResult() != nil {
		return fromResult(rec.GetResult())
	}
	j := rec.GetJob()
	return Job{
		JobID: j.GetId(), Repo: j.GetRepo(), RepoName: j.GetRepoName(), Commit: j.GetCommit(), Subject: j.GetSubject(),
		Branches: append([]string{}, j.GetBranches()...), Build: j.GetBuild(), State: rec.GetState().Name(),
		Attempt: rec.GetAttempt(), Runner: rec.GetRunnerId(), Reason: rec.GetLastError(),
		QueuedAt: msTime(rec.GetQueuedUnixMs()), StartedAt: msTime(rec.GetAssignedUnixMs()), job: j, waiting: rec.GetWaiting(),
	}
}

// errNoJob is returned by lookupJob for an unknown job id.
var errNoJob = errors.New("no such job")

// lookupJob finds job id: its recorded result first (the final word), then
// the dispatcher's memory (queued, running, or done but not yet recorded).
// A dispatcher that does not answer only matters when the store has no result.
func (s *Server) lookupJob(ctx context.Context, id int64) (Job, error) {
	r, err := s.db.ResultByJob(id)
	if err == nil {
		return fromResult(r), nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return Job{}, err
	}
	st, err := s.status(ctx)
	if err != nil {
		return Job{}, err
	}
	for _, rec := range st.GetJobs() {
		if rec.GetJob().GetId() == id {
			return fromRecord(rec), nil
		}
	}
	return Job{}, errNoJob
}

// Step is one step of a job as its log shows it.
type Step struct {
	Name string `json:"name"`
	// State is passed, failed (or the job's status for the failing step),
	// running, or not_run.
	State string `json:"state"`
}

// steps reads the step headers ("--- step NAME: command") from a job's log
// and says how each went.
func steps(v Job, log []byte) []Step {
	var out []Step
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "--- step ")
		if !ok {
			continue
		}
		name, _, ok := strings.Cut(rest, ": ")
		if !ok {
			name = strings.TrimSuffix(rest, ":")
		}
		out = append(out, Step{Name: name, State: stateDone})
	}
	failed := -1
	for i := range out {
		if v.FailedStep != "" && out[i].Name == v.FailedStep {
			failed = i
		}
	}
	for i := range out {
		switch {
		case v.State != stateDone && i == len(out)-1:
			out[i].State = stateRunning
		case v.State != stateDone:
			out[i].State = "passed"
		case failed >= 0 && i == failed:
			out[i].State = v.Status
		case failed >= 0 && i > failed:
			out[i].State = "not_run"
		case v.Status == "passed" || failed >= 0:
			out[i].State = "passed"
		case i == len(out)-1:
			out[i].State = v.Status
		default:
			out[i].State = "passed"
		}
	}
	return out
}
