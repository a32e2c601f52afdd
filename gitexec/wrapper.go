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
	var spec stepSpec
	if fd := os.Getenv(controlFDEnv); fd != "" && len(args) == 0 {
		n, err := strconv.Atoi(fd)
		if err != nil || n < 3 {
			fmt.Fprintf(os.Stderr, "volt exec-wrapper: %s=%s: want a file descriptor number of at least 3\n", controlFDEnv, fd)
			return 2
		}
		ctl := os.NewFile(uintptr(n), "control")
		var ok bool
		spec, ok, err = readControl(ctl)
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
		spec = stepSpec{env: os.Environ(), command: args}
	}
	if len(spec.command) == 0 {
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

	cmd := exec.Command(spec.command[0], spec.command[1:]...)
	cmd.Dir, cmd.Env = spec.dir, spec.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The command dies with the wrapper even when only the wrapper is
	// killed (a job running as the runner's user can do that).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: spec.cred}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "volt exec-wrapper: start %s: %v\n", spec.command[0], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127
		}
		return 126
	}
	// As a subreaper the wrapper inherits the step's orphans: reap every
	// child, not only the command (whose status cmd.Wait would otherwise
	// report; it is never called).
	mainDone := make(chan syscall.WaitStatus, 1)
	allGone := make(chan struct{})
	go reapAll(cmd.Process.Pid, mainDone, allGone)

	ticker := time.NewTicker(parentPoll)
	defer ticker.Stop()
	for {
		select {
		case ws := <-mainDone:
			// Nothing the step started outlives it.
			if err := killBelow(os.Getpid()); err != nil {
				fmt.Fprintf(os.Stderr, "volt exec-wrapper: kill what the step left running: %v\n", err)
				return killOwnGroup(pgid, "step ended")
			}
			select {
			case <-allGone:
			case <-time.After(killWait):
				fmt.Fprintf(os.Stderr, "volt exec-wrapper: processes the step left did not die within %s\n", killWait)
			}
			return waitStatusCode(ws)
		case sig := <-sigs:
			return killOwnGroup(pgid, fmt.Sprintf("got %v", sig))
		case <-ticker.C:
			if os.Getppid() != ppid {
				return killOwnGroup(pgid, "parent died")
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

// exitStatus is a finished process's exit code, or 128+signal if a signal killed it.
func exitStatus(state *os.ProcessState) int {
	if state == nil {
		return 1
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok {
		return waitStatusCode(ws)
	}
	return state.ExitCode()
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
