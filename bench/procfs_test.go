package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat (USER_HZ; 100 on
// every Linux this runs on).
const clockTick = 10 * time.Millisecond

// pstat is the part of /proc/PID/stat the benchmarks use.
type pstat struct {
	pid, ppid      int
	comm, state    string
	utime, stime   int64 // clock ticks, this process's threads (live and exited)
	cutime, cstime int64 // clock ticks, reaped children
	start          string
}

// readStat reads /proc/PID/stat; ok is false when the process is gone.
func readStat(pid int) (pstat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return pstat{}, false
	}
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
	// cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return pstat{}, false
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 20 {
		return pstat{}, false
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	return pstat{pid: pid, ppid: int(n(1)), comm: s[i+1 : j], state: f[0],
		utime: n(11), stime: n(12), cutime: n(13), cstime: n(14), start: f[19]}, true
}

// cpuTime is a process's own CPU time from /proc/PID/stat (10 ms resolution).
func (p pstat) cpuTime() time.Duration { return time.Duration(p.utime+p.stime) * clockTick }

// childTime is the CPU time of its reaped children.
func (p pstat) childTime() time.Duration { return time.Duration(p.cutime+p.cstime) * clockTick }

// schedTime is the CPU time of pid's live threads in nanoseconds, from
// /proc/PID/task/*/schedstat: far finer than stat's clock ticks, which
// matters when a process uses a fraction of a per cent of a core.
func schedTime(pid int) (time.Duration, bool) {
	cpu, _, ok := schedStats(pid)
	return cpu, ok
}

// schedStats sums /proc/PID/task/*/schedstat: CPU time and the number of
// times a thread was put on a CPU (each wake-up counts at least once).
func schedStats(pid int) (cpu time.Duration, slices int64, ok bool) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, 0, false
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(fmt.Sprintf("/proc/%d/task", pid), t.Name(), "schedstat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			continue
		}
		v, _ := strconv.ParseInt(f[0], 10, 64)
		n, _ := strconv.ParseInt(f[2], 10, 64)
		sum += v
		slices += n
	}
	return time.Duration(sum), slices, true
}

// rssMiB is VmRSS of pid in MiB.
func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// allProcs reads the stat of every process.
func allProcs() map[int]pstat {
	ents, _ := os.ReadDir("/proc")
	ps := make(map[int]pstat, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readStat(pid); ok {
			ps[pid] = p
		}
	}
	return ps
}

// descendsFrom reports whether pid is root or below it, walking ppid
// chains in ps (or in /proc when ps is nil).
func descendsFrom(ps map[int]pstat, pid, root int) bool {
	for seen := 0; pid > 1 && seen < 64; seen++ {
		if pid == root {
			return true
		}
		var p pstat
		var ok bool
		if ps != nil {
			p, ok = ps[pid]
		} else {
			p, ok = readStat(pid)
		}
		if !ok {
			return false
		}
		pid = p.ppid
	}
	return false
}

// cmdline reads a process's command line with spaces between arguments.
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// loadavg is the first three fields of /proc/loadavg.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// childCounter counts, by scanning /proc every `every`, the distinct
// processes seen below root, and among them those whose comm starts with
// "git" (a forked git keeps that comm until it execs something else). A
// process that starts and ends between two scans is missed, so the counts
// are lower bounds; cmds counts "child|grandchild comm: command line".
type childCounter struct {
	root  int
	stop  chan struct{}
	done  chan struct{}
	seen  map[string]bool // pid/starttime
	git   int
	cmds  map[string]int
	scans int
}

func countChildren(root int, every time.Duration) *childCounter {
	c := &childCounter{root: root, stop: make(chan struct{}), done: make(chan struct{}),
		seen: map[string]bool{}, cmds: map[string]int{}}
	go func() {
		defer close(c.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			c.scans++
			ps := allProcs()
			for pid, p := range ps {
				if pid == c.root || !descendsFrom(ps, pid, c.root) {
					continue
				}
				key := fmt.Sprintf("%d/%s", pid, p.start)
				if !c.seen[key] {
					c.seen[key] = true
					if strings.HasPrefix(p.comm, "git") {
						c.git++
					}
					cl := cmdline(pid)
					if f := strings.Fields(cl); len(f) > 3 {
						cl = strings.Join(f[:4], " ")
					}
					depth := "grandchild "
					if p.ppid == c.root {
						depth = "child "
					}
					c.cmds[depth+p.comm+": "+cl]++
				}
			}
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
		}
	}()
	return c
}

// finish stops the scans and returns the counts: all processes, git ones.
func (c *childCounter) finish() (all, git int) {
	close(c.stop)
	<-c.done
	return len(c.seen), c.git
}
