package messages

// CloneJob copies a Job without reflection (proto.Clone is several times
// slower, and the dispatcher copies a Job into every RunJob).
func CloneJob(j *Job) *Job {
	if j == nil {
		return nil
	}
	return &Job{Id: j.Id, Repo: j.Repo, RepoName: j.RepoName, Commit: j.Commit,
		Branches: append([]string(nil), j.Branches...), Build: j.Build, Subject: j.Subject,
		Index: j.Index, BuildId: j.BuildId, BuildJobs: j.BuildJobs, Cell: j.Cell}
}

// CloneResult copies a Result without reflection.
func CloneResult(r *Result) *Result {
	if r == nil {
		return nil
	}
	return &Result{Job: CloneJob(r.Job), Attempt: r.Attempt, RunnerId: r.RunnerId, Status: r.Status, Reason: r.Reason,
		ExitCode: r.ExitCode, StartedUnixMs: r.StartedUnixMs, FinishedUnixMs: r.FinishedUnixMs, FailedStep: r.FailedStep,
		LogBytes: r.LogBytes, LogDropped: r.LogDropped, QueuedUnixMs: r.QueuedUnixMs, Retries: r.Retries}
}

// CloneJobRecord copies a JobRecord without reflection.
func CloneJobRecord(j *JobRecord) *JobRecord {
	if j == nil {
		return nil
	}
	return &JobRecord{Job: CloneJob(j.Job), State: j.State, Attempt: j.Attempt, RunnerId: j.RunnerId,
		RunnerIncarnation: j.RunnerIncarnation, Result: CloneResult(j.Result), Forwarded: j.Forwarded,
		QueuedUnixMs: j.QueuedUnixMs, AssignedUnixMs: j.AssignedUnixMs, LastError: j.LastError, CancelRequested: j.CancelRequested,
		Released: j.Released, Retries: j.Retries, Waiting: j.Waiting}
}
