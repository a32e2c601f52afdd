package gitexec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A warm wrapper is an exec wrapper (see WrapperMain) started before its
// step is known. It waits on a control pipe (its file descriptor 3) for the
// step: the directory, the user, the environment and the command, written
// once as NUL-terminated strings (dir, "uid:gid:groups" or "" for the
// wrapper's own user, the number of environment entries, the entries, the
// command's arguments), then the pipe is closed. Starting a wrapper costs
// about 7 ms (a Go runtime and the package initialisation of the whole volt
// binary); handing a warm one its step costs a pipe write. A wrapper started
// when its step starts (no warm one is waiting) gets its step the same way,
// so that a step never sees the wrapper's own environment, nor the wrapper
// the step's on its command line.
//
// A warm wrapper given nothing (the pipe closed empty: the executor was
// closed, or the runner died) exits at once with status 0. Once given its
// step it is the same wrapper as `volt exec-wrapper -- COMMAND`: parent-death
// signal, its own process group, a child subreaper that kills everything
// below it when the step ends or the runner dies.

// controlFDEnv, set in a wrapper's own environment, names the file
// descriptor it reads its step from.
const controlFDEnv = "VOLT_EXEC_WRAPPER_CONTROL_FD"

// warmWrapper is a started wrapper process waiting for its step.
type warmWrapper struct {
	cmd  *exec.Cmd
	wait func() error // waits for cmd (startPinned)
	ctl  *os.File     // write end of its control pipe
	out  *os.File     // read end of its output pipe (its stdout and stderr)
}

// startWrapper starts a wrapper process that waits for its step on a
// control pipe.
func (e *Executor) startWrapper() (*warmWrapper, error) {
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start exec wrapper: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start exec wrapper: %w", err), ctlR.Close(), ctlW.Close())
	}
	cmd := exec.Command(e.Wrapper[0], e.Wrapper[1:]...)
	cmd.Env = append(append([]string{}, e.WrapperEnv...), controlFDEnv+"=3")
	cmd.Stdout, cmd.Stderr = outW, outW
	cmd.ExtraFiles = []*os.File{ctlR}
	// A session of its own (so a group of its own): no process of the job
	// can ever join the runner's session (see sweepOrphans).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	wait, startErr := startPinned(cmd)
	// The wrapper holds its own copies; ours must go for EOF to come.
	closeErr := errors.Join(ctlR.Close(), outW.Close())
	if startErr != nil || closeErr != nil {
		if startErr == nil {
			// Unreachable in practice: closing our copy of a pipe failed.
			startErr = errors.Join(closeErr, killGroup(cmd.Process.Pid), wait())
		}
		return nil, errors.Join(fmt.Errorf("start exec wrapper: %w", startErr), ctlW.Close(), outR.Close())
	}
	return &warmWrapper{cmd: cmd, wait: wait, ctl: ctlW, out: outR}, nil
}

// stepSpec is what a wrapper needs to start a step's command.
type stepSpec struct {
	dir     string              // working directory; "" for the wrapper's own
	cred    *syscall.Credential // user to run as; nil for the wrapper's own
	env     []string            // the command's whole environment
	command []string            // argv; command[0] a path or a name looked up in env's PATH
}

// controlMessage encodes a step for a warm wrapper's control pipe. A field
// containing NUL cannot be encoded (it would split into two), and is
// refused.
func controlMessage(s stepSpec) ([]byte, error) {
	if len(s.command) == 0 {
		return nil, errors.New("hand a step to a wrapper: no command")
	}
	var buf bytes.Buffer
	for _, f := range append(append([]string{s.dir, encodeCred(s.cred), strconv.Itoa(len(s.env))}, s.env...), s.command...) {
		if strings.IndexByte(f, 0) >= 0 {
			return nil, fmt.Errorf("hand a step to a wrapper: %q contains a NUL byte", f)
		}
		buf.WriteString(f)
		buf.WriteByte(0)
	}
	return buf.Bytes(), nil
}

// encodeCred writes a credential as "uid:gid:group,group...", nil as "".
func encodeCred(c *syscall.Credential) string {
	if c == nil {
		return ""
	}
	groups := make([]string, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = strconv.FormatUint(uint64(g), 10)
	}
	return fmt.Sprintf("%d:%d:%s", c.Uid, c.Gid, strings.Join(groups, ","))
}

// decodeCred reads what encodeCred wrote.
func decodeCred(s string) (*syscall.Credential, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("bad user %q", s)
	}
	var ids []uint32
	for i, p := range append(parts[:2:2], strings.Split(parts[2], ",")...) {
		if i >= 2 && p == "" {
			continue
		}
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad user %q", s)
		}
		ids = append(ids, uint32(n))
	}
	return &syscall.Credential{Uid: ids[0], Gid: ids[1], Groups: ids[2:]}, nil
}

// controlWriteTimeout bounds the write of a step to a warm wrapper: a
// stopped or stuck wrapper stops reading, and a step larger than the pipe's
// buffer would wait for it past the step's timeout.
var controlWriteTimeout = 5 * time.Second

// give hands the wrapper its step, encoded by controlMessage. An error means
// the wrapper is unusable (it died, the pipe broke, or it did not read the
// step within controlWriteTimeout); it has then been stopped and reaped.
func (w *warmWrapper) give(msg []byte) error {
	err := w.ctl.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	if err == nil {
		_, err = w.ctl.Write(msg)
	}
	if cerr := w.ctl.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		w.discard()
		return err
	}
	return nil
}

// discard stops an unused wrapper and reaps it.
func (w *warmWrapper) discard() {
	// Closing the control pipe alone makes it exit; the kill covers a
	// wrapper that is stuck, and it has no child to leave behind.
	w.ctl.Close()                //nolint:errcheck // may be closed already by give
	killGroup(w.cmd.Process.Pid) //nolint:errcheck // it may have exited already
	w.wait()                     //nolint:errcheck // a killed wrapper's status says nothing
	w.out.Close()                //nolint:errcheck // nothing was read from it
}

// start starts command for a step of j, through a wrapper if the executor
// needs one (the warm one if there is one), and returns the process (the
// leader of the step's process group), the function that waits for it and
// the read end of its output.
//
// A sandboxed step needs no wrapper: bwrap runs it in a PID namespace of its
// own, whose processes the kernel kills when the namespace's first process
// (bwrap's init) ends, and no process can leave. That init ends when the
// step's command ends (bwrap's init exits with it), when bwrap is killed
// (the runner kills the step's process group on a timeout or a cancel: bwrap
// and its init) and when the runner dies (bwrap and its init have a
// parent-death signal, --die-with-parent, and startDirect gives bwrap one as
// well). So nothing a sandboxed step starts outlives the step or the runner,
// as with the wrapper, without the wrapper's process (a Go runtime started
// for every step, most of a trivial job's CPU time).
func (e *Executor) start(j *job, command []string) (*exec.Cmd, func() error, *os.File, error) {
	dir, cred, env := j.dir, j.cred, j.env
	if len(e.Wrapper) == 0 || j.sandbox != nil {
		return startDirect(dir, cred, env, command)
	}
	// A missing directory is the runner's error (errored): do not let the
	// wrapper turn it into the step's exit status.
	if dir != "" {
		if fi, err := os.Stat(dir); err != nil {
			return nil, nil, nil, fmt.Errorf("chdir %s: %w", dir, errors.Unwrap(err))
		} else if !fi.IsDir() {
			return nil, nil, nil, fmt.Errorf("chdir %s: not a directory", dir)
		}
	}
	// A step that cannot be encoded leaves the warm wrapper for the next one.
	msg, err := controlMessage(stepSpec{dir: dir, cred: cred, env: env, command: command})
	if err != nil {
		return nil, nil, nil, err
	}
	e.mu.Lock()
	w := e.warm
	e.warm = nil
	e.mu.Unlock()
	if w != nil {
		if err := w.give(msg); err == nil {
			return w.cmd, w.wait, w.out, nil
		}
		// The warm wrapper died or hung since it started: start another.
	}
	// Even a wrapper started now gets its step over the pipe: its own
	// environment (WrapperEnv) is not the step's.
	if w, err = e.startWrapper(); err != nil {
		return nil, nil, nil, err
	}
	if err := w.give(msg); err != nil {
		return nil, nil, nil, fmt.Errorf("hand the step to its wrapper: %w", err)
	}
	return w.cmd, w.wait, w.out, nil
}

// startDirect starts command without a wrapper, as the leader of a new
// session (so of a new process group) that is killed (SIGKILL) when the
// runner dies.
func startDirect(dir string, cred *syscall.Credential, env, command []string) (*exec.Cmd, func() error, *os.File, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, err
	}
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Dir = dir
	cmd.Env = append([]string{}, env...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred, Pdeathsig: syscall.SIGKILL}
	wait, startErr := startPinned(cmd)
	// The children hold their own copies of the write end; ours must go for EOF to come.
	closeErr := pw.Close()
	if startErr == nil && closeErr != nil {
		startErr = errors.Join(closeErr, killGroup(cmd.Process.Pid), wait())
	}
	if startErr != nil {
		return nil, nil, nil, errors.Join(startErr, pr.Close())
	}
	return cmd, wait, pr, nil
}

// Warm starts a wrapper for the next step ahead of time, if the executor
// uses a wrapper and has none waiting: the runner calls it once at start,
// and each step calls it for the step after it. A wrapper that cannot start
// is not an error here: the step that needs one starts it and reports the
// failure. It does nothing without a Wrapper, with IsolationBwrap (sandboxed
// steps need no wrapper, see start) or after Close.
func (e *Executor) Warm() {
	if len(e.Wrapper) == 0 || e.Isolation == IsolationBwrap {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.warm != nil || e.closed {
		return
	}
	w, err := e.startWrapper()
	if err != nil {
		return
	}
	e.warm = w
}

// Close stops the warm wrapper, if any, and stops starting new ones. Steps
// still running are not affected. The Executor still runs steps after
// Close, starting each wrapper when the step starts.
func (e *Executor) Close() {
	e.mu.Lock()
	w := e.warm
	e.warm, e.closed = nil, true
	e.mu.Unlock()
	if w != nil {
		w.discard()
	}
}

// readControl reads a warm wrapper's step from its control pipe. ok is
// false when the pipe was closed with nothing written: no step will come.
func readControl(r io.Reader) (spec stepSpec, ok bool, err error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return stepSpec{}, false, fmt.Errorf("read the step: %w", err)
	}
	if len(data) == 0 {
		return stepSpec{}, false, nil
	}
	if data[len(data)-1] != 0 {
		return stepSpec{}, false, errors.New("read the step: truncated")
	}
	fields := strings.Split(string(data[:len(data)-1]), "\x00")
	if len(fields) < 3 {
		return stepSpec{}, false, errors.New("read the step: too short")
	}
	n, err := strconv.Atoi(fields[2])
	if err != nil || n < 0 || 3+n > len(fields) {
		return stepSpec{}, false, errors.New("read the step: bad environment count")
	}
	cred, err := decodeCred(fields[1])
	if err != nil {
		return stepSpec{}, false, fmt.Errorf("read the step: %w", err)
	}
	return stepSpec{dir: fields[0], cred: cred, env: fields[3 : 3+n], command: fields[3+n:]}, true, nil
}

// isDir reports whether dir is a directory.
func isDir(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}
