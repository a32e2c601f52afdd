package gitexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ExitError is returned when a git command runs but exits unsuccessfully.
type ExitError struct {
	// Args is the command line, starting with "git".
	Args []string
	// Dir is the directory the command ran in, if any.
	Dir string
	// Code is the exit status; -1 if the command was killed by a signal.
	Code int
	// Stderr is the tail of what the command wrote to its standard error.
	Stderr string
}

// Error returns the command, its exit status and its error output.
func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", strings.Join(e.Args, " "), e.Code)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// stderrTail is how much of a failed command's error output ExitError keeps.
const stderrTail = 2048

// gitEnvDrop lists variables that would point git at another repository than
// the one Volt names, for example when Volt runs inside a git hook.
var gitEnvDrop = []string{
	"GIT_DIR=", "GIT_WORK_TREE=", "GIT_INDEX_FILE=", "GIT_OBJECT_DIRECTORY=",
	"GIT_ALTERNATE_OBJECT_DIRECTORIES=", "GIT_COMMON_DIR=", "GIT_NAMESPACE=",
	"GIT_PREFIX=", "GIT_QUARANTINE_PATH=", "GIT_TERMINAL_PROMPT=", "GIT_CEILING_DIRECTORIES=",
}

// gitEnv is the environment for git commands: Volt's own, without variables
// that redirect git, with prompts for credentials turned off.
func gitEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		drop := false
		for _, prefix := range gitEnvDrop {
			if strings.HasPrefix(kv, prefix) {
				drop = true
				break
			}
		}
		if !drop {
			env = append(env, kv)
		}
	}
	env = append(env, "GIT_TERMINAL_PROMPT=0")
	return append(env, extra...)
}

// gitCmd describes one git invocation.
type gitCmd struct {
	dir  string   // working directory; "" for the current one
	env  []string // extra environment entries
	args []string // arguments after "git"
}

// run runs git and returns its standard output. A non-zero exit is an *ExitError.
func (g gitCmd) run(ctx context.Context) ([]byte, error) {
	// git must not leave a detached gc or maintenance behind: a runner
	// that reaps orphans (ReapOrphans) would take it for a job's.
	args := append([]string{"-c", "gc.autoDetach=false", "-c", "maintenance.autoDetach=false"}, g.args...)
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = g.dir
	cmd.Env = gitEnv(g.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := startTracked(cmd)
	if err == nil {
		err = waitTracked(cmd)
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("git %s: %w", strings.Join(g.args, " "), ctxErr)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		tail := stderr.Bytes()
		if len(tail) > stderrTail {
			tail = tail[len(tail)-stderrTail:]
		}
		return nil, &ExitError{
			Args:   append([]string{"git"}, g.args...),
			Dir:    g.dir,
			Code:   exitErr.ExitCode(),
			Stderr: strings.TrimSpace(string(tail)),
		}
	}
	if errors.Is(err, exec.ErrNotFound) {
		return nil, fmt.Errorf("run git: %w: install git and put it on PATH", err)
	}
	return nil, fmt.Errorf("run git %s: %w", strings.Join(g.args, " "), err)
}

// git runs a git command against the repository whose git directory is gitDir.
func git(ctx context.Context, gitDir string, args ...string) ([]byte, error) {
	return gitCmd{args: append([]string{"--git-dir=" + gitDir}, args...)}.run(ctx)
}

// exitCode returns the exit status of a failed git command, or -1 if err is
// not an *ExitError.
func exitCode(err error) int {
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	return -1
}

// hasCommit reports whether the repository at gitDir holds commit.
func hasCommit(ctx context.Context, gitDir, commit string) (bool, error) {
	_, err := git(ctx, gitDir, "cat-file", "-e", "--end-of-options", commit+"^{commit}")
	if err == nil {
		return true, nil
	}
	if exitCode(err) > 0 {
		return false, nil
	}
	return false, err
}
