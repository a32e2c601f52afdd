package gitexec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A warm wrapper is an exec wrapper (see WrapperMain) started before its
// step is known, and kept for the steps after it. It waits on a control
// socket (its file descriptor 3, a Unix stream socket) for a step: a frame
// of a 4-byte length (little-endian) and the step, with the write end of
// the step's output pipe attached (SCM_RIGHTS). The step is the directory,
// the user, the environment and the command, as NUL-terminated strings
// (dir, "uid:gid:groups" or "" for the wrapper's own user, the number of
// environment entries, the entries, the command's arguments). The wrapper
// answers twice with 4 bytes: once it has the step, then a wait status
// (little-endian) of an exit with the command's exit status (128+signal if
// a signal killed it) once the command has ended and the wrapper has
// killed everything the step left below it; then it waits for the next
// step. Starting a wrapper costs about 7 ms of CPU (a Go runtime and the
// package initialisation of the whole volt binary), most of a trivial
// job's; handing a warm one its step costs a few system calls. A wrapper
// started when its step starts (none is waiting) gets its step the same
// way, so that a step never sees the wrapper's own environment, nor the
// wrapper the step's on its command line.
//
// A wrapper is kept for the next step only when it answered for this one
// and the step was neither timed out nor cancelled: killing the step's
// process group on a timeout kills its wrapper too (the step runs in the
// wrapper's process group), as does a step that kills its wrapper. The
// step's processes are below the wrapper, a child subreaper, and are gone
// when it answers (killBelow), so the next step, maybe of another
// repository, starts with nothing of this one running. A wrapper whose
// socket is closed (the executor was closed, or the runner died) exits at
// once with status 0. Between steps as during them it is the same wrapper
// as `volt exec-wrapper -- COMMAND`: parent-death signal, its own process
// group, a child subreaper that kills everything below it when a step ends
// or the runner dies.

// controlFDEnv, set in a wrapper's own environment, names the file
// descriptor it reads its steps from.
const controlFDEnv = "VOLT_EXEC_WRAPPER_CONTROL_FD"

// warmWrapper is a started wrapper process, waiting for a step or running one.
type warmWrapper struct {
	cmd  *exec.Cmd
	wait func() error // waits for cmd (startPinned)
	ctl  *net.UnixConn
}

// startWrapper starts a wrapper process that waits for its steps on a
// control socket.
func (e *Executor) startWrapper() (*warmWrapper, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("start exec wrapper: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "control"), os.NewFile(uintptr(fds[1]), "control")
	conn, err := net.FileConn(ours)
	if cerr := ours.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start exec wrapper: %w", err), theirs.Close())
	}
	ctl := conn.(*net.UnixConn)
	cmd := exec.Command(e.Wrapper[0], e.Wrapper[1:]...)
	cmd.Env = append(append([]string{}, e.WrapperEnv...), controlFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{theirs}
	// A session of its own (so a group of its own): no process of the job
	// can ever join the runner's session (see sweepOrphans).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	wait, startErr := startPinned(cmd)
	// The wrapper holds its own copy; ours must go for EOF to come when it dies.
	if err := theirs.Close(); err != nil && startErr == nil {
		// Unreachable in practice: closing our copy of a socket failed.
		startErr = errors.Join(err, killGroup(cmd.Process.Pid), wait())
	}
	if startErr != nil {
		return nil, errors.Join(fmt.Errorf("start exec wrapper: %w", startErr), ctl.Close())
	}
	return &warmWrapper{cmd: cmd, wait: wait, ctl: ctl}, nil
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

// controlWriteTimeout bounds how long a wrapper may take to take its step
// and say it started it: a stopped or stuck wrapper must not hold a step
// past its timeout, or forever.
var controlWriteTimeout = 5 * time.Second

// give hands the wrapper its step, encoded by controlMessage, with out (the
// write end of the step's output) and waits until the wrapper says it
// started it. An error means the wrapper is unusable (it died, the socket
// broke, or it did not answer within controlWriteTimeout); it has then been
// stopped and reaped.
func (w *warmWrapper) give(msg []byte, out *os.File) error {
	frame := binary.LittleEndian.AppendUint32(nil, uint32(len(msg)))
	err := w.ctl.SetDeadline(time.Now().Add(controlWriteTimeout))
	if err == nil {
		_, _, err = w.ctl.WriteMsgUnix(frame, syscall.UnixRights(int(out.Fd())), nil)
	}
	if err == nil {
		_, err = w.ctl.Write(msg)
	}
	if err == nil {
		var ack [4]byte
		_, err = io.ReadFull(w.ctl, ack[:])
	}
	if err == nil {
		err = w.ctl.SetDeadline(time.Time{})
	}
	if err != nil {
		w.discard()
		return err
	}
	return nil
}

// status waits for the wait status of the step the wrapper was given. An
// error means the wrapper died (or its socket broke) before it answered.
func (w *warmWrapper) status() (syscall.WaitStatus, error) {
	var buf [4]byte
	if _, err := io.ReadFull(w.ctl, buf[:]); err != nil {
		return 0, err
	}
	return syscall.WaitStatus(binary.LittleEndian.Uint32(buf[:])), nil
}

// discard stops a wrapper and reaps it.
func (w *warmWrapper) discard() {
	// Closing the socket alone makes an idle wrapper exit; the kill covers
	// a wrapper that is stuck, and an idle one has no child to leave behind.
	w.ctl.Close()                //nolint:errcheck // may be closed already
	killGroup(w.cmd.Process.Pid) //nolint:errcheck // it may have exited already
	w.wait()                     //nolint:errcheck // a killed wrapper's status says nothing
}

// running is a started step.
type running struct {
	pid int      // leader of the process group a timeout or a cancel kills
	out *os.File // read end of the step's output
	// wait waits for the step's command and returns its wait status; an
	// error means there is none.
	wait func() (syscall.WaitStatus, error)
	// end is called once after wait, with whether the step's process group
	// was left alone (no timeout or cancel killed it): it kills what is
	// left of the group, or returns a wrapper that cleaned up after its
	// step to the executor for the next one. It returns os.ErrProcessDone
	// when the group had no process left.
	end func(untouched bool) error
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
func (e *Executor) start(j *job, command []string) (*running, error) {
	dir, cred, env := j.dir, j.cred, j.env
	if len(e.Wrapper) == 0 || j.sandbox != nil {
		return startDirect(dir, cred, env, command)
	}
	// A missing directory is the runner's error (errored): do not let the
	// wrapper turn it into the step's exit status.
	if dir != "" {
		if fi, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("chdir %s: %w", dir, errors.Unwrap(err))
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("chdir %s: not a directory", dir)
		}
	}
	// A step that cannot be encoded leaves the warm wrapper for the next one.
	msg, err := controlMessage(stepSpec{dir: dir, cred: cred, env: env, command: command})
	if err != nil {
		return nil, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	w, err := e.handTo(msg, pw)
	// The step holds its own copy of the write end; ours must go for EOF to come.
	if cerr := pw.Close(); err == nil && cerr != nil {
		err = errors.Join(cerr, killGroup(w.cmd.Process.Pid))
		w.discard()
	}
	if err != nil {
		return nil, errors.Join(err, pr.Close())
	}
	r := &running{pid: w.cmd.Process.Pid, out: pr}
	answered := false
	r.wait = func() (syscall.WaitStatus, error) {
		ws, err := w.status()
		if err == nil {
			answered = true
			return ws, nil
		}
		// The wrapper died before it answered: its own status is the step's.
		w.ctl.Close() //nolint:errcheck // nothing more comes from it
		waitErr := w.wait()
		if w.cmd.ProcessState != nil {
			ws, _ := w.cmd.ProcessState.Sys().(syscall.WaitStatus) // always one on Linux
			return ws, nil
		}
		return 0, errors.Join(err, waitErr)
	}
	r.end = func(untouched bool) error {
		if answered && untouched {
			e.keep(w)
			return os.ErrProcessDone
		}
		err := killGroup(w.cmd.Process.Pid)
		w.discard()
		return err
	}
	return r, nil
}

// handTo gives a step to a waiting wrapper, or to a new one if none waits or
// the one waiting died or hung since it started.
func (e *Executor) handTo(msg []byte, out *os.File) (*warmWrapper, error) {
	for {
		e.mu.Lock()
		var w *warmWrapper
		if n := len(e.idle); n > 0 {
			w, e.idle = e.idle[n-1], e.idle[:n-1]
		}
		e.mu.Unlock()
		if w == nil {
			break
		}
		if err := w.give(msg, out); err == nil {
			return w, nil
		}
	}
	// Even a wrapper started now gets its step over the socket: its own
	// environment (WrapperEnv) is not the step's.
	w, err := e.startWrapper()
	if err != nil {
		return nil, err
	}
	if err := w.give(msg, out); err != nil {
		return nil, fmt.Errorf("hand the step to its wrapper: %w", err)
	}
	return w, nil
}

// keep puts a wrapper whose step ended cleanly back among the waiting ones,
// or stops it if the executor is closed.
func (e *Executor) keep(w *warmWrapper) {
	e.mu.Lock()
	closed := e.closed
	if !closed {
		e.idle = append(e.idle, w)
	}
	e.mu.Unlock()
	if closed {
		w.discard()
	}
}

// startDirect starts command without a wrapper, as the leader of a new
// session (so of a new process group) that is killed (SIGKILL) when the
// runner dies.
func startDirect(dir string, cred *syscall.Credential, env, command []string) (*running, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
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
		return nil, errors.Join(startErr, pr.Close())
	}
	return &running{
		pid: cmd.Process.Pid,
		out: pr,
		wait: func() (syscall.WaitStatus, error) {
			err := wait()
			if cmd.ProcessState == nil {
				return 0, err
			}
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus) // always one on Linux
			return ws, nil
		},
		end: func(bool) error { return killGroup(cmd.Process.Pid) },
	}, nil
}

// Warm starts a wrapper for the next step ahead of time, if the executor
// uses a wrapper and has none waiting: the runner calls it once at start,
// and each step calls it for the step after it (which, once a wrapper ran a
// step cleanly, finds that one waiting). A wrapper that cannot start
// is not an error here: the step that needs one starts it and reports the
// failure. It does nothing without a Wrapper, with IsolationBwrap (sandboxed
// steps need no wrapper, see start) or after Close.
func (e *Executor) Warm() {
	if len(e.Wrapper) == 0 || e.Isolation == IsolationBwrap {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.idle) > 0 || e.closed {
		return
	}
	w, err := e.startWrapper()
	if err != nil {
		return
	}
	e.idle = append(e.idle, w)
}

// Close stops the waiting wrappers, and stops starting new ones ahead of
// time or keeping them after their step. Steps still running are not
// affected. The Executor still runs steps after Close, starting each
// wrapper when the step starts and stopping it after.
func (e *Executor) Close() {
	e.mu.Lock()
	idle := e.idle
	e.idle, e.closed = nil, true
	e.mu.Unlock()
	for _, w := range idle {
		w.discard()
	}
}

// readControl reads a step as controlMessage wrote it. ok is false when
// there is nothing to read.
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
