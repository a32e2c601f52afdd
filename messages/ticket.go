package messages

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
)

// LogTicket is the proof, signed with the key the dispatcher shares with
// the reporter, that the dispatcher gave runnerID attempt of job: an
// HMAC-SHA256 over the job's id, repository, commit and build, its place
// in its build (build id, index and the indexes its cell needs), the
// attempt and the runner id. The reporter keeps a log chunk only when its
// ticket verifies for the runner that sent it (whose name the connection
// proved), so a runner cannot write, or squat in advance, the log of an
// attempt it was not given; and it hands a job the artifacts only of the
// jobs the ticket says it needs.
func LogTicket(key []byte, job *Job, attempt int32, runnerID string) []byte {
	var b []byte
	str := func(v string) { b = binary.BigEndian.AppendUint64(b, uint64(len(v))); b = append(b, v...) }
	b = binary.BigEndian.AppendUint64(b, uint64(job.GetId()))
	str(job.GetRepo())
	str(job.GetCommit())
	b = binary.BigEndian.AppendUint64(b, uint64(job.GetBuild()))
	b = binary.BigEndian.AppendUint64(b, uint64(job.GetBuildId()))
	b = binary.BigEndian.AppendUint64(b, uint64(job.GetIndex()))
	needs := job.GetCell().GetNeeds()
	b = binary.BigEndian.AppendUint64(b, uint64(len(needs)))
	for _, n := range needs {
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = binary.BigEndian.AppendUint64(b, uint64(attempt))
	str(runnerID)
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(nil)
}

// ValidTicket reports, in constant time, whether ticket is LogTicket's for
// these values. An empty key verifies nothing.
func ValidTicket(key, ticket []byte, job *Job, attempt int32, runnerID string) bool {
	if len(key) == 0 {
		return false
	}
	return hmac.Equal(ticket, LogTicket(key, job, attempt, runnerID))
}
