package sim

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Report is what one run found.
type Report struct {
	Seed        uint64
	Events      int
	VirtualTime time.Duration
	Commits     int
	// Results counts the builds the reporter recorded whole (every job),
	// Jobs the jobs' results it recorded.
	Results int
	Jobs    int
	// Reassignments counts attempts after the first (jobs moved to another runner).
	Reassignments int
	// Forged counts the malicious peer's messages delivered; Malicious is
	// its identity.
	Forged    int
	Malicious string
	Schedule  []Fault
	// Timers are the world's timers and attempt cap, and Kinds the fault
	// kinds it kept (search.go): they vary per seed when faults are drawn.
	Timers     string
	Kinds      []FaultKind
	Faults     []Fault // the faults actually injected
	Violations []Violation
	// Checked names the invariants that had something to check in this run.
	Checked   map[string]bool
	TraceHash uint64
	Trace     []string

	// SecretsGranted and SecretsRefused count the answers jobs heard to
	// their requests for secrets.
	SecretsGranted, SecretsRefused int
	// Failovers counts the times a dispatcher node took the lead (failover worlds).
	Failovers int
}

// OK reports whether every invariant held.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

// Summary writes the per-invariant verdicts and counts.
func (r *Report) Summary(out io.Writer) {
	fmt.Fprintf(out, "seed %d: %d events, %s virtual, %d commits observed, %d builds recorded (%d jobs), %d faults, %d reassignments, trace %016x\n",
		r.Seed, r.Events, r.VirtualTime, r.Commits, r.Results, r.Jobs, len(r.Faults), r.Reassignments, r.TraceHash)
	if r.Timers != "" {
		fmt.Fprintf(out, "  timers: %s; fault kinds kept: %v\n", r.Timers, r.Kinds)
	}
	for _, f := range r.Faults {
		fmt.Fprintf(out, "  fault: %s\n", f)
	}
	if r.Forged > 0 {
		fmt.Fprintf(out, "  malicious peer: %s, %d forged messages delivered\n", r.Malicious, r.Forged)
	}
	if r.SecretsGranted+r.SecretsRefused > 0 {
		fmt.Fprintf(out, "  secrets: %d requests granted, %d refused\n", r.SecretsGranted, r.SecretsRefused)
	}
	for _, inv := range Invariants {
		verdict := "ok"
		if !r.Checked[inv] {
			verdict = "n/a"
		}
		if slices.ContainsFunc(r.Violations, func(v Violation) bool { return v.Invariant == inv }) {
			verdict = "VIOLATED"
		}
		fmt.Fprintf(out, "  %-8s %s\n", verdict, inv)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(out, "  violation: %s\n", v)
	}
}

// Run runs one world.
func Run(cfg Config) *Report { return New(cfg).Run() }
