package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/sim"
)

// quiet are the trace entries the default timeline leaves out: the steady
// beat of heartbeats, ticks and polls. --trace shows everything.
var quiet = []string{" Tick ", " Heartbeat ", " HeartbeatAck ", " Polled ", " LogAck ", "RegisterReporter", "ReporterRegistered"}

func newSimCommand() *cobra.Command {
	var (
		seed             uint64
		seeds            uint64
		from             uint64
		parallel         int
		runners          int
		duration, settle time.Duration
		faultList        string
		trace            bool
		dispatchers      int
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Simulate Volt under faults: what happens to my CI when runners crash, hang or lose the network?",
		Long: `Runs Volt's real dispatcher, runner, observer and reporter cores in a deterministic
simulated world: a virtual clock, a simulated network (delay, reordering, drops,
duplicates, partitions), a simulated repository and executor, and the faults you name.
One seed determines the whole run, so any run can be replayed exactly.

With --seed it runs one world and prints its timeline and a verdict per invariant.
With --seeds it sweeps that many seeds and prints the command that replays each failure.
Exits 1 when any invariant is violated.

Faults: ` + strings.Join(faultNames(), ", ") + ` (or all).`,
		Example: `  volt sim --seed 42
  volt sim --seed 42 --runners 5 --duration 10m --faults crash,hang,partition,dispatcher-loss,drop --trace
  volt sim --seeds 10000 --parallel 2
  volt sim --dispatchers 3 --seed 7               # a failover group: leaders crash, pause, resign`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			faults, err := sim.ParseFaults(faultList)
			if err != nil {
				return usageErr("--faults: %v", err)
			}
			if runners < 1 {
				return usageErr("--runners must be at least 1")
			}
			if parallel < 1 {
				return usageErr("--parallel must be at least 1")
			}
			if dispatchers < 1 {
				return usageErr("--dispatchers must be at least 1")
			}
			cfg := sim.Config{Runners: runners, Duration: duration, Settle: settle, Faults: faults, Dispatchers: dispatchers}
			replay := func(s uint64) string {
				d := ""
				if dispatchers > 1 {
					d = fmt.Sprintf(" --dispatchers %d", dispatchers)
				}
				return fmt.Sprintf("volt sim --seed %d --runners %d%s --duration %s --settle %s --faults %s --trace",
					s, runners, d, duration, settle, faultList)
			}
			if seeds == 0 {
				cfg.Seed, cfg.Trace = seed, true
				r := sim.Run(cfg)
				printTimeline(os.Stdout, r, trace)
				r.Summary(os.Stdout)
				if !r.OK() {
					return &exitError{code: exitRuntime, err: fmt.Errorf("seed %d violated %d invariant(s); replay: %s", seed, len(r.Violations), replay(seed))}
				}
				return nil
			}
			return sweep(cfg, from, seeds, parallel, replay)
		},
	}
	fs := cmd.Flags()
	fs.Uint64Var(&seed, "seed", 1, "the seed of one run")
	fs.Uint64Var(&seeds, "seeds", 0, "sweep this many seeds instead of running one")
	fs.Uint64Var(&from, "from", 1, "first seed of a sweep")
	fs.IntVar(&parallel, "parallel", runtime.GOMAXPROCS(0), "worlds run at once in a sweep")
	fs.IntVar(&runners, "runners", 3, "runners in the pool")
	fs.IntVar(&dispatchers, "dispatchers", 1, "dispatcher nodes: 2 or more make a failover group on a simulated etcd (leases, revisions, fenced writes), with the faults leader-pause, leader-resign, store-outage and store-slow added")
	fs.Var(newDuration(&duration, 60*time.Second), "duration", "virtual time during which commits arrive and faults strike")
	fs.Var(newDuration(&settle, 60*time.Second), "settle", "virtual calm after the faults, in which every commit must get its result")
	fs.StringVar(&faultList, "faults", "all", "comma-separated fault kinds to draw from ('' for none)")
	fs.BoolVar(&trace, "trace", false, "print every event, heartbeats and ticks included")
	return cmd
}

func faultNames() []string {
	var out []string
	for _, f := range sim.AllFaults {
		out = append(out, string(f))
	}
	out = append(out, string(sim.FaultDispatcherLoss))
	for _, f := range []sim.FaultKind{sim.FaultLeaderPause, sim.FaultLeaderResign, sim.FaultStoreOutage, sim.FaultStoreSlow} {
		out = append(out, string(f)+" (--dispatchers 2 or more)")
	}
	return out
}

func printTimeline(out io.Writer, r *sim.Report, all bool) {
	fmt.Fprintln(out, "  virtual  node  event  what")
	for _, line := range r.Trace {
		if !all {
			skip := false
			for _, q := range quiet {
				if strings.Contains(line+" ", q) {
					skip = true
					break
				}
			}
			if skip {
				continue
			}
		}
		fmt.Fprintln(out, line)
	}
}

// sweep runs seeds [from, from+n) on parallel workers with a progress line.
func sweep(cfg sim.Config, from, n uint64, parallel int, replay func(uint64) string) error {
	var (
		next, done, events, failed atomic.Uint64
		virtual                    atomic.Int64
		mu                         sync.Mutex
		failures                   []string
		wg                         sync.WaitGroup
	)
	next.Store(from)
	start := time.Now()
	stop := make(chan struct{})
	// On a terminal the progress line redraws itself; in a log it is a new
	// line every few seconds.
	interval, redraw := 2*time.Second, false
	if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		interval, redraw = 250*time.Millisecond, true
	}
	progress := func(final bool) {
		d, el := done.Load(), time.Since(start)
		rate := float64(d) / el.Seconds()
		eta := "-"
		if rate > 0 && !final {
			eta = (time.Duration(float64(n-d)/rate) * time.Second).Round(time.Second).String()
		}
		width := 30
		filled := int(float64(width) * float64(d) / float64(n))
		line := fmt.Sprintf("[%s%s] %d/%d seeds, %d failed, %.0f seeds/s, %.0f simulated s per wall s, ETA %s",
			strings.Repeat("#", filled), strings.Repeat(".", width-filled), d, n, failed.Load(), rate,
			time.Duration(virtual.Load()).Seconds()/el.Seconds(), eta)
		switch {
		case redraw:
			fmt.Fprintf(os.Stderr, "\r%s   ", line)
			if final {
				fmt.Fprintln(os.Stderr)
			}
		case !final:
			fmt.Fprintln(os.Stderr, line)
		}
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				progress(false)
			}
		}
	}()
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				s := next.Add(1) - 1
				if s >= from+n {
					return
				}
				c := cfg
				c.Seed = s
				r := sim.Run(c)
				events.Add(uint64(r.Events))
				virtual.Add(int64(r.VirtualTime))
				if !r.OK() {
					failed.Add(1)
					mu.Lock()
					failures = append(failures, fmt.Sprintf("seed %d: %s\n  replay: %s", s, r.Violations[0], replay(s)))
					mu.Unlock()
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	progress(true)
	el := time.Since(start)
	fmt.Printf("%d seeds in %s: %.0f seeds/s, %.0f events/s, %.0f simulated seconds per wall second, %d failed\n",
		n, el.Round(time.Millisecond), float64(n)/el.Seconds(), float64(events.Load())/el.Seconds(),
		time.Duration(virtual.Load()).Seconds()/el.Seconds(), failed.Load())
	for _, f := range failures {
		fmt.Println(f)
	}
	if len(failures) > 0 {
		return &exitError{code: exitRuntime, err: fmt.Errorf("%d of %d seeds violated an invariant", len(failures), n)}
	}
	return nil
}
