package store_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/store"
)

// holdLock takes the dispatcher's lock on dir, says so, and waits to be
// killed (started by TestLockReleasedByKill9 through TestMain).
func holdLock(dir string) int {
	l, err := store.Lock(dir, "volt dispatcher", "dispatcher")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close() // never runs: the kernel releases the lock at the kill
	fmt.Println("locked")
	select {}
}

func TestLock(t *testing.T) {
	tests := []struct {
		name         string
		first, again []string
		refused      string // the role refused, "" when the second lock is granted
	}{
		{name: "same role", first: []string{"dispatcher"}, again: []string{"dispatcher"}, refused: "dispatcher"},
		{name: "two roles share a directory", first: []string{"dispatcher"}, again: []string{"reporter"}},
		{name: "volt up holds the dispatcher's", first: []string{"dispatcher", "reporter"}, again: []string{"dispatcher"}, refused: "dispatcher"},
		{name: "volt up holds the reporter's", first: []string{"dispatcher", "reporter"}, again: []string{"reporter"}, refused: "reporter"},
		{name: "volt up on a reporter's directory", first: []string{"reporter"}, again: []string{"dispatcher", "reporter"}, refused: "reporter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := store.Lock(dir, "volt first", tc.first...)
			require.NoError(t, err)
			second, err := store.Lock(dir, "volt second", tc.again...)
			if tc.refused == "" {
				require.NoError(t, err)
				require.NoError(t, second.Close())
				require.NoError(t, first.Close())
				return
			}
			var locked *store.LockedError
			require.ErrorAs(t, err, &locked)
			assert.Equal(t, store.LockedError{Dir: dir, Role: tc.refused, PID: os.Getpid(), Holder: "volt first"}, *locked)
			for _, want := range []string{dir, tc.refused + ".lock", "pid " + strconv.Itoa(os.Getpid()) + " (volt first)"} {
				assert.Contains(t, err.Error(), want)
			}
			// A refused Lock took nothing: once the first lets go, every role is free.
			require.NoError(t, first.Close())
			again, err := store.Lock(dir, "volt second", tc.again...)
			require.NoError(t, err)
			require.NoError(t, again.Close())
		})
	}
}

// TestLockReleasedByKill9 checks that a lock dies with its process: another
// process sees the holder's pid while it lives and gets the lock once it is
// killed, with nothing to clean up.
func TestLockReleasedByKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VOLT_STORE_TEST_LOCKER="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "the holder did not lock: %s", stderr.String())
	require.Equal(t, "locked\n", line)

	_, err = store.Lock(dir, "volt up", "dispatcher", "reporter")
	var locked *store.LockedError
	require.ErrorAs(t, err, &locked)
	assert.Equal(t, cmd.Process.Pid, locked.PID)
	assert.Equal(t, "volt dispatcher", locked.Holder)

	require.NoError(t, cmd.Process.Kill())
	var exit *exec.ExitError
	require.True(t, errors.As(cmd.Wait(), &exit), "the holder was killed")
	l, err := store.Lock(dir, "volt up", "dispatcher", "reporter")
	require.NoError(t, err, "a killed holder leaves no lock")
	require.NoError(t, l.Close())
}
