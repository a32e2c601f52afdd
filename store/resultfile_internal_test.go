package store

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
)

// TestBuildOutputBounded: the logs in a pipeline build's file stop at the
// limit, and each log cut short says how much is not shown.
func TestBuildOutputBounded(t *testing.T) {
	db, err := Open(t.TempDir())
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	for i, log := range []string{"first log\n", "second log\n", "third"} {
		j := &messages.Job{Id: 10 + int64(i), BuildId: 10, Index: int32(i), BuildJobs: 3, Repo: "r", Commit: "abcd", Build: 1,
			Cell: &messages.PipelineJob{Key: "k", Name: []string{"a", "b", "c"}[i]}}
		_, err := db.AppendLog(j, 1, 0, []byte(log))
		require.NoError(t, err)
		_, err = db.RecordResult(&messages.Result{Job: j, Attempt: 1, Status: messages.Status_STATUS_FAILED})
		require.NoError(t, err)
	}
	b, err := db.Build(10)
	require.NoError(t, err)
	var out strings.Builder
	require.NoError(t, db.buildOutput(&out, b, 15))
	assert.Equal(t, `==> a: failed <==
first log
==> b: failed <==
secon
volt: 6 more bytes of this log are not shown here (a build's result file shows at most 15 bytes of logs)
==> c: failed <==
volt: 5 more bytes of this log are not shown here (a build's result file shows at most 15 bytes of logs)
`, out.String())
}
