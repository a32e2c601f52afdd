package store_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// TestMain lets the test binary act as a writer process that the kill -9 test
// starts and kills.
func TestMain(m *testing.M) {
	if dir := os.Getenv("VOLT_STORE_TEST_WRITER"); dir != "" {
		os.Exit(runWriter(dir))
	}
	if dir := os.Getenv("VOLT_STORE_TEST_LOCKER"); dir != "" {
		os.Exit(holdLock(dir))
	}
	os.Exit(m.Run())
}

// runWriter saves jobs one transaction at a time and prints each id once
// SaveJobs has returned, until it is killed.
func runWriter(dir string) int {
	db, err := store.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for id := int64(1); ; id++ {
		rec := jobRecord(id, fmt.Sprintf("%040x", id), 1, queued, false)
		if err := db.SaveJobs([]*messages.JobRecord{rec}, []*messages.Cursor{{Repo: "r", Branch: "main", Commit: rec.GetJob().GetCommit()}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(id)
	}
}

// TestSurvivesKill9 checks the durability claim of Open: with WAL and
// synchronous=NORMAL, every SaveJobs that returned before a kill -9 is there
// after it.
func TestSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VOLT_STORE_TEST_WRITER="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	sc := bufio.NewScanner(out)
	var acked int64
	for sc.Scan() && acked < 200 {
		acked, err = strconv.ParseInt(sc.Text(), 10, 64)
		require.NoError(t, err)
	}
	require.Equal(t, int64(200), acked, "writer stopped early: %s", stderr.String())
	require.NoError(t, cmd.Process.Kill()) // SIGKILL
	waitErr := cmd.Wait()
	require.Error(t, waitErr, "the writer was killed")

	db, err := store.Open(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	jobs, cursors, maxID, err := db.LoadQueue()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, maxID, acked)
	assert.GreaterOrEqual(t, int64(len(jobs)), acked)
	require.Len(t, cursors, 1)
	last, err := db.Job(maxID)
	require.NoError(t, err)
	assert.Equal(t, last.GetJob().GetCommit(), cursors[0].GetCommit(), "the cursor landed with its job")
}

// TestImports keeps store free of the actors and of Proto.Actor (see doc.go).
func TestImports(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/voltci/volt/store").Output()
	require.NoError(t, err)
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/asynkron/protoactor-go", "github.com/voltci/volt/actors"} {
			assert.False(t, dep == bad || strings.HasPrefix(dep, bad+"/"), "store imports %s", dep)
		}
	}
}
