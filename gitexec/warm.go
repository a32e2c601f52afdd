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
// step: the directory, the environment and the command, written once as
// NUL-terminated strings (dir, the number of environment entries, the
// entries, the command's arguments), then the pipe is closed. Starting a
// wrapper costs about 7 ms (a Go runtime and the package initialisation of
// the whole volt binary); handing a warm one its step costs a pipe write.
//
// A warm wrapper given nothing (the pipe closed empty: the executor was
// closed, or the runner died) exits at once with status 0. Once given its
// step it is the same wrapper as `volt exec-wrapper -- COMMAND`: parent-death
// signal, its own process group, killed as a group when the runner dies.

// controlFDEnv, set in a warm wrapper's own environment, names the file
// descriptor it reads its step from.
const controlFDEnv = "VOLT_EXEC_WRAPPER_CONTROL_FD"

// warmWrapper is a started wrapper process waiting for its step.
type warmWrapper struct {
	cmd *exec.Cmd
	ctl *os.File // write end of its control pipe
	out *os.File // read end of its output pipe (its stdout and stderr)
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	startErr := cmd.Start()
	// The wrapper holds its own copies; ours must go for EOF to come.
	closeErr := errors.Join(ctlR.Close(), outW.Close())
	if startErr != nil || closeErr != nil {
		if startErr == nil {
			// Unreachable in practice: closing our copy of a pipe failed.
			startErr = errors.Join(closeErr, killGroup(cmd.Process.Pid), cmd.Wait())
		}
		return nil, errors.Join(fmt.Errorf("start exec wrapper: %w", startErr), ctlW.Close(), outR.Close())
	}
	return &warmWrapper{cmd: cmd, ctl: ctlW, out: outR}, nil
}

// controlMessage encodes a step for a warm wrapper's control pipe. A field
// containing NUL cannot be encoded (it would split into two): the step must
// be started the cold way, where the operating system refuses it.
func controlMessage(dir string, env, command []string) ([]byte, error) {
	var buf bytes.Buffer
	for _, s := range append(append([]string{dir, strconv.Itoa(len(env))}, env...), command...) {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, fmt.Errorf("hand a step to a warm wrapper: %q contains a NUL byte", s)
		}
		buf.WriteString(s)
		buf.WriteByte(0)
	}
	return buf.Bytes(), nil
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
	w.cmd.Wait()                 //nolint:errcheck // a killed wrapper's status says nothing
	w.out.Close()                //nolint:errcheck // nothing was read from it
}

// start starts command for a step, through a warm wrapper if there is one,
// and returns the process (the leader of the step's process group) and the
// read end of its output.
func (e *Executor) start(dir string, env, command []string) (*exec.Cmd, *os.File, error) {
	// A missing directory is the runner's error (errored), found when the
	// wrapper is started in it: do not let a warm wrapper turn it into the
	// step's exit status.
	// A step that cannot be encoded leaves the warm wrapper for the next one.
	if len(e.Wrapper) > 0 && isDir(dir) {
		if msg, err := controlMessage(dir, env, command); err == nil {
			e.mu.Lock()
			w := e.warm
			e.warm = nil
			e.mu.Unlock()
			if w != nil {
				if err := w.give(msg); err == nil {
					return w.cmd, w.out, nil
				}
				// The warm wrapper died or hung since it started: start one the slow way.
			}
		}
	}
	argv := append(append([]string{}, e.Wrapper...), command...)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append([]string{}, env...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if len(e.Wrapper) > 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	}
	startErr := cmd.Start()
	// The children hold their own copies of the write end; ours must go for EOF to come.
	closeErr := pw.Close()
	if startErr == nil && closeErr != nil {
		startErr = errors.Join(closeErr, killGroup(cmd.Process.Pid), cmd.Wait())
	}
	if startErr != nil {
		return nil, nil, errors.Join(startErr, pr.Close())
	}
	return cmd, pr, nil
}

// Warm starts a wrapper for the next step ahead of time, if the executor
// uses a wrapper and has none waiting: the runner calls it once at start,
// and each step calls it for the step after it. A wrapper that cannot start
// is not an error here: the step that needs one starts it and reports the
// failure. It does nothing without a Wrapper or after Close.
func (e *Executor) Warm() {
	if len(e.Wrapper) == 0 {
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
func readControl(r io.Reader) (dir string, env, command []string, ok bool, err error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return "", nil, nil, false, fmt.Errorf("read the step: %w", err)
	}
	if len(data) == 0 {
		return "", nil, nil, false, nil
	}
	if data[len(data)-1] != 0 {
		return "", nil, nil, false, errors.New("read the step: truncated")
	}
	fields := bytes.Split(data[:len(data)-1], []byte{0})
	if len(fields) < 2 {
		return "", nil, nil, false, errors.New("read the step: too short")
	}
	n, err := strconv.Atoi(string(fields[1]))
	if err != nil || n < 0 || 2+n > len(fields) {
		return "", nil, nil, false, errors.New("read the step: bad environment count")
	}
	strs := func(bs [][]byte) []string {
		out := make([]string, len(bs))
		for i, b := range bs {
			out[i] = string(b)
		}
		return out
	}
	return string(fields[0]), strs(fields[2 : 2+n]), strs(fields[2+n:]), true, nil
}

// isDir reports whether dir is a directory.
func isDir(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}
