package gitexec

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Environment variables that turn the test binary into a helper process.
const (
	envWrapper = "GITEXEC_TEST_WRAPPER"  // "1": act as the exec wrapper
	envHelper  = "GITEXEC_TEST_EXECUTOR" // "1": run one job through the wrapper, output to stdout
	// envHelperWarm is "warm" for the helper to start its wrapper ahead of the step.
	envHelperWarm = "GITEXEC_TEST_WARM"
	// envHelperIsolation is the helper's Executor.Isolation.
	envHelperIsolation = "GITEXEC_TEST_ISOLATION"
	// envHelperDir is the helper's job directory (default: a new temporary one).
	envHelperDir = "GITEXEC_TEST_DIR"
	// envHelperReap is "1" for the helper to call ReapOrphans, and to wait
	// for its standard input to close after the job (so that the test can
	// check what the job left while the helper is still alive).
	envHelperReap = "GITEXEC_TEST_REAP"
	// envHelperBystander is the argument of a sleep that a reaping helper
	// starts itself.
	envHelperBystander = "GITEXEC_TEST_BYSTANDER"
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(envWrapper) == "1":
		os.Exit(WrapperMain(os.Args[1:]))
	case os.Getenv(envHelper) == "1":
		os.Exit(executorHelper())
	}
	os.Exit(m.Run())
}

// executorHelper runs the command in GITEXEC_TEST_RUN through the wrapper
// with the output on stdout: the process that the kill -9 test kills.
func executorHelper() int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	e := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: []string{envWrapper + "=1", "GORACE=atexit_sleep_ms=0"},
		Isolation: Isolation(os.Getenv(envHelperIsolation))}
	reap := os.Getenv(envHelperReap) == "1"
	if reap {
		if err := ReapOrphans(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// A child that is none of gitexec's business, in this process's
		// session (as a test's own helper commands are): the sweep spares it.
		bystander := exec.Command("sleep", os.Getenv(envHelperBystander))
		if err := bystander.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() {
			bystander.Process.Kill() //nolint:errcheck // the test checked it was alive
			bystander.Wait()         //nolint:errcheck // killed
		}()
	}
	dir := os.Getenv(envHelperDir)
	if dir == "" {
		if dir, err = os.MkdirTemp("", "gitexec-helper-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
	}
	if os.Getenv(envHelperWarm) == "warm" {
		e.Warm()
	} else {
		e.Close()
	}
	var first *warmWrapper
	if len(e.idle) > 0 {
		first = e.idle[0]
	}
	// The step's own wrapper starts the next one: report it, so that the
	// kill -9 test also checks that an unused warm wrapper dies with us.
	go func() {
		for {
			e.mu.Lock()
			var w *warmWrapper
			for _, idle := range e.idle {
				if idle != first {
					w = idle
				}
			}
			e.mu.Unlock()
			if (w != nil && w != first) || os.Getenv(envHelperWarm) != "warm" {
				pid := os.Getpid() // a live process: nothing to wait for in cold mode
				if w != nil {
					pid = w.cmd.Process.Pid
				}
				fmt.Printf("next=%d\n", pid)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	o := e.Execute(context.Background(), Run{
		Dir:    dir,
		Steps:  []Step{{Name: "hang", Run: os.Getenv("GITEXEC_TEST_RUN")}},
		Output: os.Stdout,
	})
	fmt.Printf("outcome=%s\n", o.Status.Name())
	if reap {
		io.Copy(io.Discard, os.Stdin) //nolint:errcheck // any end of input will do
	}
	return 0
}

// testGitEnv makes test commits reproducible and independent of the user's configuration.
var testGitEnv = []string{
	"GIT_AUTHOR_NAME=Volt Test", "GIT_AUTHOR_EMAIL=test@volt.invalid",
	"GIT_COMMITTER_NAME=Volt Test", "GIT_COMMITTER_EMAIL=test@volt.invalid",
	"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
}

// gitT runs git in dir and returns its trimmed output; it fails the test on error.
func gitT(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), testGitEnv...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "git %s: %s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

// newRepo creates a non-bare repository on branch main.
func newRepo(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "origin")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	gitT(t, dir, "init", "--quiet", "--initial-branch=main")
	return dir
}

// commitFiles writes files (a "" content deletes the file), commits them and returns the commit id.
func commitFiles(t testing.TB, dir string, msg string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if content == "" {
			require.NoError(t, os.RemoveAll(path))
			continue
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	}
	gitT(t, dir, "add", "--all")
	gitT(t, dir, "commit", "--quiet", "--allow-empty", "-m", msg)
	return gitT(t, dir, "rev-parse", "HEAD")
}

// alive reports whether pid is a live process (a zombie counts as dead).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(string(stat), ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// waitDead polls until none of pids is alive or the deadline passes.
func waitDead(t *testing.T, within time.Duration, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for ; ; <-tick.C {
		var living []int
		for _, pid := range pids {
			if alive(pid) {
				living = append(living, pid)
			}
		}
		if len(living) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range living {
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
					t.Logf("clean up %d: %v", pid, err)
				}
			}
			t.Fatalf("processes %v still alive after %s", living, within)
		}
	}
}

// noFileNamed fails the test if a file called name exists under any of dirs.
func noFileNamed(t *testing.T, name string, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Name() == name {
				t.Errorf("found %s", path)
			}
			return nil
		})
		require.NoError(t, err)
	}
}
