package gitexec

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Nothing a job starts may outlive it, whatever it does to get away: a
// process group is left with setsid, and a parent chain is cut by a double
// fork, after which the kernel hands the orphan to the nearest ancestor that
// is a child subreaper (PR_SET_CHILD_SUBREAPER), or to init. A sandboxed
// step cannot do either: bwrap runs it in a PID namespace of its own, which
// the kernel empties when the step ends, when bwrap is killed, and when the
// runner dies (see Executor.start). An unsandboxed one can, and Volt keeps
// every process of it in a tree it owns, at two levels:
//
//   - The exec wrapper (wrapper.go) is a child subreaper: whatever a step
//     starts stays below the wrapper however it forks. When the step's
//     command ends, when the wrapper is told to stop, and when the runner
//     dies, the wrapper stops and kills every process below it (killTree),
//     found by walking /proc's parent links.
//   - A runner that calls ReapOrphans is a child subreaper too, for the
//     case where a wrapper dies without cleaning up (the runner kills the
//     wrapper's process group on a timeout; a job running as the runner's
//     user can kill its wrapper). The wrapper's orphans then become
//     children of the runner process, and after every step the executor
//     kills every child of the process that gitexec did not start and that
//     is not in the process's own session, with everything below it
//     (sweepOrphans). Every step starts in a session of its own (the
//     wrapper, or a direct step, is started with setsid), and no process
//     can join an existing session, so every process of a job is in
//     another session than the runner's; gitexec records the children it
//     starts, so a live wrapper is never taken for an orphan. Children
//     that other code of the process started in the process's own session
//     (a test's helper commands) are left alone.
//
// Walking parent links is exact for a subreaper's tree (an orphan is
// reparented inside it, never out of it); a job cannot leave it short of
// being started by something outside the tree (a service manager, cron, an
// ssh login), which the sandbox (or, without one, a separate --job-user)
// has to prevent. A cgroup would do the same bookkeeping in the kernel, but
// needs a delegated cgroup tree that a runner started by hand does not
// have.

// killRounds bounds the freeze rounds of killTree: each round stops the
// processes the last scan found, so a process can fork only until its
// SIGSTOP lands, and the rounds end when a scan finds nothing new.
const killRounds = 1000

// killWait bounds how long killTree waits for killed processes to die (a
// process in uninterruptible sleep dies when its I/O ends).
var killWait = 10 * time.Second

// procInfo is what /proc/<pid>/stat says about a process.
type procInfo struct {
	pid, ppid, sid int
	zombie         bool
}

// readProcs lists the processes in /proc. A process that ends while it is
// read is left out.
func readProcs() ([]procInfo, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	procs := make([]procInfo, 0, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		p, ok := parseStat(pid, string(stat))
		if ok {
			procs = append(procs, p)
		}
	}
	return procs, nil
}

// parseStat reads the state, the parent pid and the session id out of a
// /proc/<pid>/stat line: "pid (comm) state ppid pgrp session ...", where
// comm may contain anything.
func parseStat(pid int, stat string) (procInfo, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return procInfo{}, false
	}
	fields := strings.Fields(stat[i+1:])
	if len(fields) < 4 {
		return procInfo{}, false
	}
	ppid, err1 := strconv.Atoi(fields[1])
	sid, err2 := strconv.Atoi(fields[3])
	if err1 != nil || err2 != nil {
		return procInfo{}, false
	}
	return procInfo{pid: pid, ppid: ppid, sid: sid, zombie: fields[0] == "Z" || fields[0] == "X"}, true
}

// below returns the live processes under the roots (the roots included
// when they are alive), given a snapshot of every process.
func below(procs []procInfo, roots []int) []int {
	children := map[int][]procInfo{}
	byPid := map[int]procInfo{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
		byPid[p.pid] = p
	}
	var live []int
	seen := map[int]bool{}
	queue := append([]int{}, roots...)
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		if p, ok := byPid[pid]; ok && !p.zombie {
			live = append(live, pid)
		}
		for _, c := range children[pid] {
			queue = append(queue, c.pid)
		}
	}
	return live
}

// killTree stops, then kills with SIGKILL, every live process that victims
// returns, until it returns none: first it sends SIGSTOP to each process
// found, scanning again until a scan finds no process it has not stopped
// (a stopped process cannot fork), then SIGKILL to all of them, and waits
// up to killWait for victims to come back empty. Reaping the dead is the
// caller's business.
func killTree(victims func() ([]int, error)) error {
	deadline := time.Now().Add(killWait)
	for {
		stopped := map[int]bool{}
		for round := 0; ; round++ {
			pids, err := victims()
			if err != nil {
				return err
			}
			fresh := 0
			for _, pid := range pids {
				if !stopped[pid] {
					stopped[pid] = true
					fresh++
					syscall.Kill(pid, syscall.SIGSTOP) //nolint:errcheck // it may have died since the scan
				}
			}
			if fresh == 0 || round == killRounds {
				break
			}
		}
		for pid := range stopped {
			syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // it may have died since the scan
		}
		if len(stopped) == 0 {
			return nil
		}
		pids, err := victims()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still alive %s after SIGKILL", pids, killWait)
		}
		time.Sleep(time.Millisecond)
	}
}

// childrenOf lists pid's children (zombies included) from
// /proc/<pid>/task/*/children, a few small reads where a walk of /proc
// reads a file per process. ok is false where the kernel does not provide
// those files (CONFIG_PROC_CHILDREN).
func childrenOf(pid int) (kids []int, ok bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, false
	}
	for _, task := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		if errors.Is(err, os.ErrNotExist) {
			if _, terr := os.Stat(fmt.Sprintf("/proc/%d/task/%s", pid, task.Name())); terr != nil {
				continue // the thread ended
			}
			return nil, false // no such file: not provided
		}
		if err != nil {
			return nil, false
		}
		for _, f := range strings.Fields(string(data)) {
			if kid, err := strconv.Atoi(f); err == nil {
				kids = append(kids, kid)
			}
		}
	}
	return kids, true
}

// killBelow kills every process under pid (pid itself excluded).
func killBelow(pid int) error {
	if kids, ok := childrenOf(pid); ok && len(kids) == 0 {
		return nil // the usual case at the end of a step: nothing to look for
	}
	return killTree(func() ([]int, error) {
		procs, err := readProcs()
		if err != nil {
			return nil, err
		}
		var children []int
		for _, p := range procs {
			if p.ppid == pid {
				children = append(children, p.pid)
			}
		}
		return below(procs, children), nil
	})
}

// setSubreaper makes the calling process a child subreaper: orphans below
// it are reparented to it instead of init.
func setSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become a child subreaper: %w", err)
	}
	return nil
}

// children tracks the processes gitexec started in this process, so that
// sweepOrphans can tell them from orphans reparented to it.
var children struct {
	// start is held (shared) from a Start until its pid is recorded, and
	// exclusively by a sweep, so that a sweep never sees a child it started
	// before the child is recorded.
	start sync.RWMutex
	mu    sync.Mutex
	pids  map[int]bool
	// reaping is set once by ReapOrphans.
	reaping bool
}

// ReapOrphans makes this process a child subreaper (PR_SET_CHILD_SUBREAPER)
// and turns on the orphan sweep: after every step, an Executor kills every
// child of this process that gitexec did not start, with everything below
// it, and reaps it. A runner calls it once at start (repeated calls are
// harmless). Only a process that starts all its children through gitexec
// may call it: any other child would be taken for a job's orphan.
func ReapOrphans() error {
	if err := setSubreaper(); err != nil {
		return err
	}
	children.start.Lock()
	children.reaping = true
	children.start.Unlock()
	return nil
}

// startTracked starts cmd and records its pid as one of gitexec's own children.
func startTracked(cmd *exec.Cmd) error {
	children.start.RLock()
	defer children.start.RUnlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	children.mu.Lock()
	if children.pids == nil {
		children.pids = map[int]bool{}
	}
	children.pids[cmd.Process.Pid] = true
	children.mu.Unlock()
	return nil
}

// startPinned starts cmd like startTracked, from a goroutine locked to its
// OS thread until cmd has been waited for, and returns the function that
// waits for it (waitTracked's answer; it may be called more than once).
// cmd has a parent-death signal (SysProcAttr.Pdeathsig): the kernel sends it
// when the thread that started the process ends, not the process
// (golang/go#27505), and the Go runtime ends a thread when a goroutine that
// locked it ends without unlocking it (modernc.org/libc, SQLite's, locks
// threads). Started from any thread, the process could be killed while its
// runner lives; started from this one, only when the runner dies or after
// the process has ended.
func startPinned(cmd *exec.Cmd) (wait func() error, err error) {
	started := make(chan error, 1)
	waited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := startTracked(cmd); err != nil {
			started <- err
			return
		}
		started <- nil
		waited <- waitTracked(cmd)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return sync.OnceValue(func() error { return <-waited }), nil
}

// waitTracked waits for a command started by startTracked and forgets its pid.
func waitTracked(cmd *exec.Cmd) error {
	err := cmd.Wait()
	children.mu.Lock()
	delete(children.pids, cmd.Process.Pid)
	children.mu.Unlock()
	return err
}

// sweepOrphans kills and reaps every child of this process that gitexec did
// not start and that is in another session than this process, with
// everything below it, if ReapOrphans was called; else it does nothing.
// Children of gitexec's own children are left alone: their parent (a
// wrapper, git) answers for them.
func sweepOrphans() error {
	children.start.Lock()
	defer children.start.Unlock()
	if !children.reaping {
		return nil
	}
	self := os.Getpid()
	if kids, ok := childrenOf(self); ok {
		untracked := false
		children.mu.Lock()
		for _, kid := range kids {
			untracked = untracked || !children.pids[kid]
		}
		children.mu.Unlock()
		if !untracked {
			return nil // the usual case: only gitexec's own children
		}
	}
	session, err := unix.Getsid(0)
	if err != nil {
		return fmt.Errorf("find this process's session: %w", err)
	}
	orphans := func(procs []procInfo) []int {
		children.mu.Lock()
		defer children.mu.Unlock()
		var found []int
		for _, p := range procs {
			if p.ppid == self && p.sid != session && !children.pids[p.pid] {
				found = append(found, p.pid)
			}
		}
		return found
	}
	deadline := time.Now().Add(killWait)
	for {
		procs, err := readProcs()
		if err != nil {
			return err
		}
		found := orphans(procs)
		if len(found) == 0 {
			return nil
		}
		err = killTree(func() ([]int, error) {
			procs, err := readProcs()
			if err != nil {
				return nil, err
			}
			return below(procs, orphans(procs)), nil
		})
		if err != nil {
			return fmt.Errorf("kill orphaned job processes: %w", err)
		}
		// The dead are this process's children: reap them. Their own
		// children were reparented here as they died: the next round
		// finds them.
		for _, pid := range found {
			var ws unix.WaitStatus
			_, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if err != nil && !errors.Is(err, unix.ECHILD) {
				return fmt.Errorf("reap orphaned job process %d: %w", pid, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("orphaned job processes %v not reaped after %s", found, killWait)
		}
		time.Sleep(time.Millisecond)
	}
}
