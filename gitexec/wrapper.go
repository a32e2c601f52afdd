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
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// parentPoll is how often the wrapper checks that its parent is still alive.
const parentPoll = 100 * time.Millisecond

// WrapperMain is the body of the exec wrapper (`volt exec-wrapper -- COMMAND
// [ARG...]`), the process through which the runner starts each step that
// runs without a sandbox (a sandboxed one needs none, see Executor). The
// runner starts it as the leader of a new process group with a parent-death
// signal (SIGTERM). It makes itself a child subreaper, runs args (an
// optional leading "--" is skipped) as a child in its process group and
// returns the child's exit status, or 128+signal if the child was killed by
// a signal. Before it returns it kills every process left below it: a
// step's background processes, including those that left the process
// group (setsid) or were orphaned by a double fork (reparented to the
// wrapper, a subreaper). When it receives SIGTERM, SIGINT or SIGHUP, or
// sees its parent die (it polls its parent pid, because the parent-death
// signal fires when the thread that started it exits, see golang/go#27505),
// it kills every process below it and its whole process group, itself
// included, with SIGKILL. The caller exits with the returned status.
//
// Started with no command and VOLT_EXEC_WRAPPER_CONTROL_FD set, it is a
// warm wrapper (see warm.go): it reads its directory, user, environment and
// command from that file descriptor first. Its own environment then never
// reaches the command.
func WrapperMain(args []string) int {
	// Before anything that can wait: the parent to watch is the one that started us.
	ppid := os.Getppid()
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if err := setSubreaper(); err != nil {
		fmt.Fprintf(os.Stderr, "volt exec-wrapper: %v\n", err)
		return 1
	}
	fd := os.Getenv(controlFDEnv)
	if fd == "" || len(args) > 0 {
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "volt exec-wrapper: no command given: usage: volt exec-wrapper -- COMMAND [ARG...]")
			return 2
		}
		if syscall.Getpgrp() != os.Getpid() {
			// Started by hand rather than by the runner: lead a group of our own,
			// so that killing the group kills only the job.
			if err := syscall.Setpgid(0, 0); err != nil {
				fmt.Fprintf(os.Stderr, "volt exec-wrapper: start a process group: %v\n", err)
				return 1
			}
		}
		w := newSupervisor(ppid)
		defer w.stop()
		code, _ := w.run(stepSpec{env: os.Environ(), command: args}, os.Stdout)
		return code
	}
	n, err := strconv.Atoi(fd)
	if err != nil || n < 3 {
		fmt.Fprintf(os.Stderr, "volt exec-wrapper: %s=%s: want a file descriptor number of at least 3\n", controlFDEnv, fd)
		return 2
	}
	ctl, err := controlConn(n)
	if err != nil {
		fmt.Fprintf(os.Stderr, "volt exec-wrapper: %v\n", err)
		return 1
	}
	defer ctl.Close()
	w := newSupervisor(ppid)
	defer w.stop()
	for {
		spec, out, ok, err := readStep(ctl)
		if err != nil {
			fmt.Fprintf(os.Stderr, "volt exec-wrapper: %v\n", err)
			return 1
		}
		if !ok {
			return 0 // dismissed: the executor closed, or the runner died
		}
		if _, err := ctl.Write(make([]byte, 4)); err != nil {
			out.Close() //nolint:errcheck // the runner is gone
			return 1
		}
		var code int
		if len(spec.command) == 0 {
			fmt.Fprintln(out, "volt exec-wrapper: no command given")
			code = 2
		} else {
			var done bool
			if code, done = w.run(spec, out); done {
				out.Close() //nolint:errcheck // the wrapper is ending
				return code
			}
		}
		if err := out.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "volt exec-wrapper: close the step's output: %v\n", err)
			return 1
		}
		// The status as the step's exit code (128+signal if a signal
		// killed it), the wrapper's exit status when it ran one step.
		if _, err := ctl.Write(binary.LittleEndian.AppendUint32(nil, uint32(syscall.WaitStatus(code<<8)))); err != nil {
			return 1
		}
	}
}

// controlConn is the control socket on file descriptor fd.
func controlConn(fd int) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), "control")
	conn, err := net.FileConn(f)
	// The socket must not leak into the steps: FileConn made a close-on-exec copy.
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		conn.Close() //nolint:errcheck // refused anyway
		return nil, fmt.Errorf("control socket: %s=%d is not a Unix socket", controlFDEnv, fd)
	}
	return uc, nil
}

// maxStep bounds a step's message on the control socket: its environment
// and command, well above what exec accepts.
const maxStep = 64 << 20

// readStep reads a step and its output from the control socket. ok is
// false when the socket was closed between steps.
func readStep(ctl *net.UnixConn) (spec stepSpec, out *os.File, ok bool, err error) {
	var head [4]byte
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := ctl.ReadMsgUnix(head[:], oob)
	if n == 0 && (err == nil || errors.Is(err, io.EOF)) {
		return stepSpec{}, nil, false, nil
	}
	if err != nil {
		return stepSpec{}, nil, false, fmt.Errorf("read the step: %w", err)
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err == nil && len(msgs) != 1 {
		err = errors.New("want one control message")
	}
	var fds []int
	if err == nil {
		fds, err = syscall.ParseUnixRights(&msgs[0])
	}
	if err == nil && len(fds) != 1 {
		for _, fd := range fds {
			syscall.Close(fd) //nolint:errcheck // refused
		}
		err = errors.New("want one file descriptor")
	}
	if err != nil {
		return stepSpec{}, nil, false, fmt.Errorf("read the step's output: %w", err)
	}
	syscall.CloseOnExec(fds[0])
	out = os.NewFile(uintptr(fds[0]), "output")
	if _, err := io.ReadFull(ctl, head[n:]); err != nil {
		return stepSpec{}, nil, false, errors.Join(fmt.Errorf("read the step: %w", err), out.Close())
	}
	size := binary.LittleEndian.Uint32(head[:])
	if size == 0 || size > maxStep {
		return stepSpec{}, nil, false, errors.Join(fmt.Errorf("read the step: bad length %d", size), out.Close())
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(ctl, data); err != nil {
		return stepSpec{}, nil, false, errors.Join(fmt.Errorf("read the step: %w", err), out.Close())
	}
	spec, ok, err = readControl(bytes.NewReader(data))
	if err == nil && !ok {
		err = errors.New("read the step: empty")
	}
	if err != nil {
		return stepSpec{}, nil, false, errors.Join(err, out.Close())
	}
	return spec, out, true, nil
}

// supervisor runs steps one at a time below the wrapper.
type supervisor struct {
	ppid   int
	pgid   int
	sigs   chan os.Signal
	ticker *time.Ticker
}

// newSupervisor listens for the signals that stop the wrapper (before any
// step starts, so that no signal finds the default action) and watches
// the parent ppid.
func newSupervisor(ppid int) *supervisor {
	w := &supervisor{ppid: ppid, pgid: syscall.Getpgrp(), sigs: make(chan os.Signal, 1), ticker: time.NewTicker(parentPoll)}
	signal.Notify(w.sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	return w
}

func (w *supervisor) stop() {
	signal.Stop(w.sigs)
	w.ticker.Stop()
}

// run runs spec's command with out as its standard output and error, in the
// wrapper's process group, and kills everything left below the wrapper when
// it ends. It returns the command's exit status (128+signal if a signal
// killed it). done is true when the wrapper must exit with that status
// instead of taking another step: it was told to stop, or its parent died,
// or it could not kill what the step left.
func (w *supervisor) run(spec stepSpec, out *os.File) (code int, done bool) {
	// A step that killed nothing between steps cannot have left a signal
	// or a parent's death unseen: check both before starting another.
	select {
	case sig := <-w.sigs:
		return killOwnGroup(w.pgid, fmt.Sprintf("got %v", sig)), true
	default:
	}
	if os.Getppid() != w.ppid {
		return killOwnGroup(w.pgid, "parent died"), true
	}
	cmd := exec.Command(spec.command[0], spec.command[1:]...)
	cmd.Dir, cmd.Env = spec.dir, spec.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, out, out
	// The command dies with the wrapper even when only the wrapper is
	// killed (a job running as the runner's user can do that).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: spec.cred}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(out, "volt exec-wrapper: start %s: %v\n", spec.command[0], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127, false
		}
		return 126, false
	}
	// As a subreaper the wrapper inherits the step's orphans: reap every
	// child, not only the command (whose status cmd.Wait would otherwise
	// report; it is never called).
	mainDone := make(chan syscall.WaitStatus, 1)
	allGone := make(chan struct{})
	go reapAll(cmd.Process.Pid, mainDone, allGone)
	for {
		select {
		case ws := <-mainDone:
			// Nothing the step started outlives it.
			if err := killBelow(os.Getpid()); err != nil {
				fmt.Fprintf(out, "volt exec-wrapper: kill what the step left running: %v\n", err)
				return killOwnGroup(w.pgid, "step ended"), true
			}
			select {
			case <-allGone:
			case <-time.After(killWait):
				fmt.Fprintf(out, "volt exec-wrapper: processes the step left did not die within %s\n", killWait)
				return killOwnGroup(w.pgid, "step ended"), true
			}
			return waitStatusCode(ws), false
		case sig := <-w.sigs:
			return killOwnGroup(w.pgid, fmt.Sprintf("got %v", sig)), true
		case <-w.ticker.C:
			if os.Getppid() != w.ppid {
				return killOwnGroup(w.pgid, "parent died"), true
			}
		}
	}
}

// reapAll reaps every child of the process until it has none: it sends
// main's wait status to mainDone, and closes allGone when no child is left.
func reapAll(main int, mainDone chan<- syscall.WaitStatus, allGone chan<- struct{}) {
	defer close(allGone)
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return // ECHILD: nothing left
		}
		if pid == main {
			mainDone <- ws
		}
	}
}

// killOwnGroup kills every process below the wrapper, then the wrapper's
// process group, the wrapper included. It returns only if the wrapper
// survived the kill.
func killOwnGroup(pgid int, why string) int {
	if err := killBelow(os.Getpid()); err != nil {
		fmt.Fprintf(os.Stderr, "volt exec-wrapper: %s: kill the processes below the wrapper: %v\n", why, err)
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
		fmt.Fprintf(os.Stderr, "volt exec-wrapper: %s: kill process group %d: %v\n", why, pgid, err)
	}
	return 128 + int(syscall.SIGKILL)
}

// waitStatusCode is the exit code in ws, or 128+signal if a signal killed the process.
func waitStatusCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 1
}
