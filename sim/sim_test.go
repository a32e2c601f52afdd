package sim

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
)

var update = flag.Bool("update", false, "rewrite the golden traces in testdata/scenarios")

func TestCalmRunPasses(t *testing.T) {
	r := Run(Config{Seed: 1})
	if !r.OK() {
		t.Fatalf("violations: %v", r.Violations)
	}
	if r.Commits == 0 || r.Results != r.Commits {
		t.Fatalf("want a result for each of the commits, got %d commits, %d results", r.Commits, r.Results)
	}
}

// TestDeterminism: one seed, one run: the same seed gives the same trace,
// byte for byte; different seeds give different ones.
func TestDeterminism(t *testing.T) {
	for _, seed := range []uint64{1, 2, 77, 12345} {
		cfg := Config{Seed: seed, Faults: AllFaults, Trace: true}
		a, b := Run(cfg), Run(cfg)
		if a.TraceHash != b.TraceHash || strings.Join(a.Trace, "\n") != strings.Join(b.Trace, "\n") {
			t.Fatalf("seed %d: two runs differ (hash %x vs %x)", seed, a.TraceHash, b.TraceHash)
		}
		if noTrace := Run(Config{Seed: seed, Faults: AllFaults}); noTrace.TraceHash != a.TraceHash {
			t.Fatalf("seed %d: tracing changed the run (hash %x vs %x)", seed, noTrace.TraceHash, a.TraceHash)
		}
	}
	seen := map[uint64]uint64{}
	for seed := uint64(1); seed <= 50; seed++ {
		h := Run(Config{Seed: seed, Faults: AllFaults}).TraceHash
		if other, dup := seen[h]; dup {
			t.Fatalf("seeds %d and %d gave the same trace %x", other, seed, h)
		}
		seen[h] = seed
	}
}

// sweepSeeds is how many seeds TestSweep runs: 2000 normally, fewer under
// the race detector (which is ten times slower; `make test` runs the full
// sweep once more without it).
func sweepSeeds() uint64 {
	if raceEnabled {
		return 200
	}
	return 2000
}

// TestSweep runs many seeds with every fault kind; every fifth seed may also
// lose the dispatcher for good.
func TestSweep(t *testing.T) {
	withLoss := append(append([]FaultKind{}, AllFaults...), FaultDispatcherLoss)
	bad := 0
	for seed := uint64(1); seed <= sweepSeeds(); seed++ {
		f := AllFaults
		if seed%5 == 0 {
			f = withLoss
		}
		if r := Run(Config{Seed: seed, Faults: f}); !r.OK() {
			bad++
			if bad <= 5 {
				t.Errorf("seed %d (faults %v): %s; replay: volt sim --seed %d --faults %s --trace",
					seed, r.Faults, r.Violations[0], seed, faultList(f))
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d seeds broke an invariant", bad, sweepSeeds())
	}
}

func faultList(f []FaultKind) string {
	var s []string
	for _, k := range f {
		s = append(s, string(k))
	}
	return strings.Join(s, ",")
}

// scenarios freeze the schedules that once revealed real bugs in the
// cores; each keeps its trace as a golden file (go test ./sim -update).
var scenarios = []struct {
	name   string
	bug    string
	config Config
}{
	{"hung-runner-resumes-with-stale-runjob",
		"a frozen runner started a RunJob that had waited in its mailbox after its lease lapsed",
		Config{Seed: 1, Duration: 30 * time.Second, Settle: 20 * time.Second, Schedule: []Fault{
			{Kind: FaultHang, At: 6 * time.Second, Target: 0, Length: 2500 * time.Millisecond},
			{Kind: FaultHang, At: 12 * time.Second, Target: 1, Length: 3500 * time.Millisecond},
			{Kind: FaultHang, At: 20 * time.Second, Target: 2, Length: 2100 * time.Millisecond}}}},
	{"heartbeats-dropped-as-a-job-starts",
		"the lease ran from RunJob receipt, so a runner kept a job its dispatcher had already reassigned",
		Config{Seed: 273, Duration: 30 * time.Second, Settle: 20 * time.Second, Schedule: []Fault{
			{Kind: FaultDrop, At: 5 * time.Second, Length: 8 * time.Second},
			{Kind: FaultDrop, At: 18 * time.Second, Length: 7 * time.Second}}}},
	{"restarted-runner-and-late-terminated",
		"a restarted runner's new incarnation was taken down by the old one's late Terminated",
		Config{Seed: 2148, Duration: 30 * time.Second, Settle: 20 * time.Second, Schedule: []Fault{
			{Kind: FaultDelay, At: 3 * time.Second, Length: 20 * time.Second},
			{Kind: FaultRestart, At: 8 * time.Second, Target: 0},
			{Kind: FaultRestart, At: 14 * time.Second, Target: 1},
			{Kind: FaultRestart, At: 21 * time.Second, Target: 2}}}},
	{"replaced-runner-after-dispatcher-restart",
		"a restarted dispatcher forgot runner incarnations and took an older, replaced incarnation back",
		Config{Seed: 1969, Duration: 30 * time.Second, Settle: 20 * time.Second, Schedule: []Fault{
			{Kind: FaultReplace, At: 8 * time.Second, Target: 2, Length: 4600 * time.Millisecond},
			{Kind: FaultDispatcher, At: 9 * time.Second, Length: 3300 * time.Millisecond}}}},
	{"dispatcher-restart-while-an-attempt-dies",
		"a runner re-registered while its given-up attempt was still being killed, and the dispatcher started the attempt elsewhere",
		Config{Seed: 0x1fa1f78d, Duration: 40 * time.Second, Settle: 20 * time.Second, Schedule: []Fault{
			{Kind: FaultDispatcher, At: 39 * time.Second, Length: time.Second}}}},
}

func TestScenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			cfg := sc.config
			cfg.Trace, cfg.OneJobBuilds = true, true
			r := Run(cfg)
			if !r.OK() {
				t.Fatalf("%s (once: %s): %v", sc.name, sc.bug, r.Violations)
			}
			got := "# " + sc.bug + "\n" + strings.Join(r.Trace, "\n") + "\n"
			path := filepath.Join("testdata", "scenarios", sc.name+".trace")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden trace: %v (run go test ./sim -run TestScenarios -update)", err)
			}
			if got != string(want) {
				gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
				for i := 0; i < len(gl) && i < len(wl); i++ {
					if gl[i] != wl[i] {
						t.Fatalf("trace differs from %s at line %d:\n got: %s\nwant: %s\n(if the change is intended: go test ./sim -run TestScenarios -update, and review the diff)", path, i+1, gl[i], wl[i])
					}
				}
				t.Fatalf("trace differs from %s in length: %d lines, want %d", path, len(gl), len(wl))
			}
		})
	}
}

// TestMaliciousPeerChangesNothing: the malicious peer's forgeries (whatever
// certificate it holds) are refused, so a world with it runs as the same
// world without it: the same faults, commits, results and reassignments,
// and every invariant holds.
func TestMaliciousPeerChangesNothing(t *testing.T) {
	others := AllFaults[:len(AllFaults)-1]
	require := func(ok bool, format string, args ...any) {
		t.Helper()
		if !ok {
			t.Fatalf(format, args...)
		}
	}
	require(AllFaults[len(AllFaults)-1] == FaultMalicious, "malicious is the last of AllFaults")
	identities := map[string]bool{}
	for seed := uint64(1); seed <= 60; seed++ {
		with := Run(Config{Seed: seed, Faults: AllFaults})
		without := Run(Config{Seed: seed, Faults: others})
		require(with.OK() && without.OK(), "seed %d: %v %v", seed, with.Violations, without.Violations)
		require(with.Forged > 0 && with.Checked[InvMalicious], "seed %d: the peer sent nothing", seed)
		require(with.Commits == without.Commits && with.Results == without.Results && with.Reassignments == without.Reassignments,
			"seed %d: with the peer %d commits, %d results, %d reassignments; without %d, %d, %d", seed,
			with.Commits, with.Results, with.Reassignments, without.Commits, without.Results, without.Reassignments)
		var faults []Fault
		for _, f := range with.Faults {
			if f.Kind != FaultMalicious {
				faults = append(faults, f)
			}
		}
		require(fmt.Sprint(faults) == fmt.Sprint(without.Faults), "seed %d: faults %v, without the peer %v", seed, faults, without.Faults)
		identities[with.Malicious] = true
	}
	require(len(identities) == len(malIdentities), "every identity tried: %v", identities)
}

// TestSecretsChangeNothingElse: secrets (jobs asking for them, the
// operator rotating them, the malicious peer's secret forgeries) draw on
// streams of their own and change no job, so a world with them runs as the
// same world without them: the trace without its secret lines is the
// same, line for line. And the sweep's worlds exercise them: grants,
// refusals, and every secret invariant with something to check.
func TestSecretsChangeNothingElse(t *testing.T) {
	var granted, refused int
	checked := map[string]bool{}
	for seed := uint64(1); seed <= 40; seed++ {
		cfg := Config{Seed: seed, Faults: AllFaults, Trace: true}
		with := Run(cfg)
		w := New(cfg)
		w.noSecrets = true
		without := w.Run()
		if !with.OK() || !without.OK() {
			t.Fatalf("seed %d: %v %v", seed, with.Violations, without.Violations)
		}
		var kept []string
		for _, line := range with.Trace {
			if !strings.Contains(strings.ToLower(line), "secret") {
				kept = append(kept, line)
			}
		}
		if len(kept) == len(with.Trace) && seed <= 5 {
			t.Errorf("seed %d: no secret traffic at all", seed)
		}
		for i := range min(len(kept), len(without.Trace)) {
			if kept[i] != without.Trace[i] {
				t.Fatalf("seed %d: without its secret lines the trace differs at line %d:\n with: %s\n  w/o: %s", seed, i+1, kept[i], without.Trace[i])
			}
		}
		if len(kept) != len(without.Trace) {
			t.Fatalf("seed %d: without its secret lines the trace has %d lines, without secrets %d", seed, len(kept), len(without.Trace))
		}
		if without.SecretsGranted+without.SecretsRefused != 0 {
			t.Fatalf("seed %d: secrets off, yet %d granted, %d refused", seed, without.SecretsGranted, without.SecretsRefused)
		}
		granted += with.SecretsGranted
		refused += with.SecretsRefused
		for _, inv := range []string{InvSecretGrant, InvSecretAllOrNone, InvSecretMalicious} {
			checked[inv] = checked[inv] || with.Checked[inv]
		}
	}
	if granted == 0 || refused == 0 || !checked[InvSecretGrant] || !checked[InvSecretAllOrNone] || !checked[InvSecretMalicious] {
		t.Fatalf("the sweep hardly tried secrets: %d granted, %d refused, invariants checked %v", granted, refused, checked)
	}
	t.Logf("40 seeds: jobs were granted their secrets %d times and refused %d times", granted, refused)
}

// TestPoisonViolationsInOrder: with two or more poison commits that end
// wrongly, the checker reports them in one order (by commit), so one seed
// prints one trace hash and one first violation (bug E: it ranged over a
// map).
func TestPoisonViolationsInOrder(t *testing.T) {
	var first []string
	var firstHash uint64
	for i := range 20 {
		w := New(Config{Seed: 1, Duration: 10 * time.Second, Settle: 10 * time.Second})
		w.Run()
		c := w.check
		c.violations = nil
		for _, commit := range []string{"aaaa0000000000000000", "bbbb0000000000000000", "cccc0000000000000000", "dddd0000000000000000"} {
			c.poison[commit] = true
			c.reported[fmt.Sprintf("%s@%s#1/0", w.repo.URL, commit)] = &messages.Result{Status: messages.Status_STATUS_PASSED}
		}
		c.end(w)
		var got []string
		for _, v := range c.violations {
			if v.Invariant == InvAttemptCap {
				got = append(got, v.Detail)
			}
		}
		if len(got) != 4 {
			t.Fatalf("want 4 attempt-cap violations, got %v", got)
		}
		if i == 0 {
			first, firstHash = got, w.hash
			continue
		}
		if strings.Join(got, "\n") != strings.Join(first, "\n") || w.hash != firstHash {
			t.Fatalf("run %d reported the poison violations in another order (hash %x, first %x):\n%v\nfirst:\n%v", i, w.hash, firstHash, got, first)
		}
	}
}

// TestCancelResent: a runner that registers again holding a job cancelled
// meanwhile (the simulated user cancels just after a dispatcher restart)
// is told again, so the cancel wins (issue 11's bug C).
func TestCancelResent(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		if r := Run(Config{Seed: seed, Faults: AllFaults}); !r.OK() {
			t.Fatalf("seed %d: %s", seed, r.Violations[0])
		}
	}
}

// TestOlderIncarnationAnsweredTruthfully: a message from an older runner
// incarnation may be answered, truthfully, and changes nothing (the
// seed-440 rule): the checker passes a "recorded" ack only for the
// incarnation whose result was recorded, any "not recorded", and fails a
// changed state or a persist.
func TestOlderIncarnationAnsweredTruthfully(t *testing.T) {
	w := New(Config{Seed: 1})
	n := w.dispatcherNode()
	fin := &messages.JobFinished{RunnerId: "r1", Incarnation: 1,
		Result: &messages.Result{Job: &messages.Job{Id: 7}, Attempt: 2}}
	ack := func(recorded bool) []actors.Effect {
		return []actors.Effect{actors.Send{To: "r1", Msg: &messages.JobFinishedAck{Recorded: recorded}}}
	}
	cases := []struct {
		name          string
		recordedBy    *recordedBy
		before, after uint64
		fx            []actors.Effect
		ok            bool
	}{
		{"duplicate of the recorded result, acknowledged as recorded", &recordedBy{2, runnerKey{"r1", 1}}, 5, 5, ack(true), true},
		{"told not recorded", nil, 5, 5, ack(false), true},
		{"recorded claimed for another incarnation's result", &recordedBy{2, runnerKey{"r1", 2}}, 5, 5, ack(true), false},
		{"recorded claimed for nothing recorded", nil, 5, 5, ack(true), false},
		{"state changed", &recordedBy{2, runnerKey{"r1", 1}}, 5, 6, ack(true), false},
		{"persisted", nil, 5, 5, []actors.Effect{dispatcher.Persist{}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newChecker(w)
			c.maxInc["r1"] = 3
			if tc.recordedBy != nil {
				c.recordedBy[7] = *tc.recordedBy
			}
			if !c.stale(n, fin) {
				t.Fatal("a JobFinished from incarnation 1 of 3 is not stale")
			}
			c.staleStep(n, fin, tc.before, tc.after, tc.fx)
			if got := len(c.violations) == 0; got != tc.ok {
				t.Fatalf("ok = %v, want %v: %v", got, tc.ok, c.violations)
			}
		})
	}
}

// TestResultFileChecked: a result the reporter recorded whose file the
// reporter's shell never wrote (resultFileWritten, called where it
// writes test_results/<commit>) fails InvResultFile.
func TestResultFileChecked(t *testing.T) {
	w := New(Config{Seed: 3, Duration: 20 * time.Second, Settle: 20 * time.Second})
	if r := w.Run(); !r.OK() || len(w.check.reported) == 0 {
		t.Fatalf("want a passing world with results: %v", r.Violations)
	}
	c := w.check
	for commit := range c.model.files {
		delete(c.model.files, commit)
		break
	}
	c.violations = nil
	c.endModel(w)
	if len(c.violations) != 1 || c.violations[0].Invariant != InvResultFile {
		t.Fatalf("want one %q violation, got %v", InvResultFile, c.violations)
	}
}
