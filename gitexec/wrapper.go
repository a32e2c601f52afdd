package gitexec

import (
	"errors"
	"fmt"
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
// [ARG...]`), the process through which the runner starts each step. The
// runner starts it as the leader of a new process group with a parent-death
// signal (SIGTERM). It runs args (an optional leading "--" is skipped) as a
// child in its own process group and returns the child's exit status, or
// 128+signal if the child was killed by a signal. When it receives SIGTERM,
// SIGINT or SIGHUP, or sees its parent die (it polls its parent pid, because
// the parent-death signal fires when the thread that started it exits, see
// golang/go#27505), it kills its whole process group, itself included, with
// SIGKILL. The caller exits with the returned status.
//
// Started with no command and VOLT_EXEC_WRAPPER_CONTROL_FD set, it is a
// warm wrapper (see warm.go): it reads its directory, environment and
// command from that file descriptor first.
func WrapperMain(args []string) int {
	// Before anything that can wait: the parent to watch is the one that started us.
	ppid := os.Getppid()
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	var dir string
	var env []string
	if fd := os.Getenv(controlFDEnv); fd != "" && len(args) == 0 {
		n, err := strconv.Atoi(fd)
		if err != nil || n < 3 {
			fmt.Fprintf(os.Stderr, "volt exec-wrapper: %s=%s: want a file descriptor number of at least 3\n", controlFDEnv, fd)
			return 2
		}
		ctl := os.NewFile(uintptr(n), "control")
		var ok bool
		dir, env, args, ok, err = readControl(ctl)
		// The pipe must not leak into the step.
		if cerr := ctl.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close the control pipe: %w", cerr)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "volt exec-wrapper: %v\n", err)
			return 1
		}
		if !ok {
			return 0 // dismissed before it got a step
		}
	} else {
		env = os.Environ()
	}
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
	pgid := os.Getpid()
	// Listen before the child starts, so that no signal finds the default action.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "volt exec-wrapper: start %s: %v\n", args[0], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127
		}
		return 126
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The status is read from cmd.ProcessState below; a non-zero exit is
		// not an error here.
		if err := cmd.Wait(); err != nil && cmd.ProcessState == nil {
			fmt.Fprintf(os.Stderr, "volt exec-wrapper: wait for %s: %v\n", args[0], err)
		}
	}()
	ticker := time.NewTicker(parentPoll)
	defer ticker.Stop()
	for {
		select {
		case <-done:
			return exitStatus(cmd.ProcessState)
		case sig := <-sigs:
			return killOwnGroup(pgid, fmt.Sprintf("got %v", sig))
		case <-ticker.C:
			if os.Getppid() != ppid {
				return killOwnGroup(pgid, "parent died")
			}
		}
	}
}

// killOwnGroup kills the wrapper's process group, the wrapper included. It
// returns only if the wrapper survived the kill.
func killOwnGroup(pgid int, why string) int {
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
		fmt.Fprintf(os.Stderr, "volt exec-wrapper: %s: kill process group %d: %v\n", why, pgid, err)
	}
	return 128 + int(syscall.SIGKILL)
}

// exitStatus is a finished process's exit code, or 128+signal if a signal killed it.
func exitStatus(state *os.ProcessState) int {
	if state == nil {
		return 1
	}
	if state.Exited() {
		return state.ExitCode()
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return 1
}
