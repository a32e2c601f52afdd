package testreport

import (
	"context"
	"fmt"
	"time"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// RecordReport parses one test report that an attempt of job uploaded
// (kind messages.KindJUnit or messages.KindGoTestJSON) and stores its
// cases. An attempt may upload several reports; each adds its cases. A
// report that does not parse stores nothing and returns an error naming
// the job, to be logged: the job's result stands as it is.
func RecordReport(ctx context.Context, db *store.DB, job *messages.Job, attempt int32, kind string, data []byte) error {
	cases, err := Parse(kind, data)
	if err != nil {
		return fmt.Errorf("test report of job %d (%s) attempt %d: %w", job.GetId(), job.DisplayName(), attempt, err)
	}
	out := make([]store.TestCase, len(cases))
	for i, c := range cases {
		out[i] = store.TestCase{Suite: c.Suite, Name: c.Name, Status: string(c.Status),
			DurationMS: c.Duration.Milliseconds(), Message: c.Message}
	}
	return db.RecordTests(ctx, job, attempt, time.Now(), out)
}
