package mutate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CorePatterns are the globs, relative to the module root, of the files
// mutated by default: the four cores' packages, however they split them
// (the dispatcher's core is nine files), less their shells (NotCore).
var CorePatterns = []string{
	"actors/dispatcher/*.go",
	"actors/runner/*.go",
	"actors/observer/*.go",
	"actors/reporter/*.go",
}

// NotCore are the file names, in the cores' packages, that hold their
// shells rather than their cores, and the state digests the checker reads
// (digest.go): Discover leaves them out. The simulator runs the shells
// too, but mutation testing judges the cores. artifacts.go is the runner's
// and the reporter's artifact transport: network and file I/O in front of
// the cores, as logstream.go is.
var NotCore = []string{"actor.go", "shell.go", "ports.go", "doc.go", "logstream.go", "artifacts.go", "digest.go"}

// Discover expands patterns under root, leaves out test files, and returns
// the paths relative to root, sorted.
func Discover(root string, patterns []string) ([]string, error) {
	var files []string
	for _, p := range patterns {
		matches, err := filepath.Glob(filepath.Join(root, p))
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", p, err)
		}
		for _, m := range matches {
			if strings.HasSuffix(m, "_test.go") || slices.Contains(NotCore, filepath.Base(m)) {
				continue
			}
			rel, err := filepath.Rel(root, m)
			if err != nil {
				return nil, err
			}
			files = append(files, rel)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no file under %s matches %v", root, patterns)
	}
	sort.Strings(files)
	return slices.Compact(files), nil
}

// Sample picks n of all with a generator seeded by seed (every one of them
// when n is 0 or at least len(all)), and returns them in source order.
func Sample(all []Mutant, n int, seed uint64) []Mutant {
	picked := append([]Mutant(nil), all...)
	if n > 0 && n < len(all) {
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		r.Shuffle(len(picked), func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
		picked = picked[:n]
	}
	sort.SliceStable(picked, func(i, j int) bool {
		if picked[i].File != picked[j].File {
			return picked[i].File < picked[j].File
		}
		return picked[i].Edits[0].Off < picked[j].Edits[0].Off
	})
	return picked
}

// Step is one `go test` run of the judge: go test [Flags] Pkg [TestFlags].
type Step struct {
	Flags     []string
	Pkg       string
	TestFlags []string
	// Tolerated, when set, is a message that does not kill a mutant: a
	// failure in which every failed subtest printed it counts as a pass.
	// Such a step runs every subtest (no -failfast).
	Tolerated string
}

// DefaultJudge is the simulator's tests and the property tests, with
// rapid's generator seeded by seed so that a run can be repeated, and no
// failure files written into the tree. The frozen scenarios count only for
// their invariants: a golden-trace diff alone does not kill a mutant, since
// any change of behaviour, harmless or not, makes one.
func DefaultJudge(seed uint64) []Step {
	return []Step{
		{Flags: []string{"-skip", "TestScenarios|TestTraceSeed"}, Pkg: "./sim/"},
		{Flags: []string{"-run", "TestScenarios"}, Pkg: "./sim/", Tolerated: "trace differs from"},
		{Pkg: "./property_test/", TestFlags: []string{"-rapid.seed=" + strconv.FormatUint(seed, 10), "-rapid.nofailfile"}},
	}
}

// Verdict is what the judge made of a mutant.
type Verdict string

// The verdicts. Efficacy counts TimedOut as Killed and leaves NotCompiled out.
const (
	Killed      Verdict = "KILLED"
	Survived    Verdict = "SURVIVED"
	TimedOut    Verdict = "TIMED OUT"
	NotCompiled Verdict = "NOT COMPILED"
)

// Result is one judged mutant.
type Result struct {
	Mutant  Mutant
	Verdict Verdict
	By      string // the test that failed, when killed
	Took    time.Duration
}

// Config says what to mutate and how to judge it.
type Config struct {
	Root     string   // the module root
	Files    []string // relative to Root
	Seed     uint64   // the sample's seed
	N        int      // sample size; 0 for every site
	Timeout  time.Duration
	Parallel int
	Judge    []Step
	Out      io.Writer // progress and the report
}

// Summary is the outcome of a run.
type Summary struct {
	Sites    int
	Results  []Result
	Baseline time.Duration
	Wall     time.Duration
}

// Count returns how many results have verdict v.
func (s *Summary) Count(v Verdict) int {
	n := 0
	for _, r := range s.Results {
		if r.Verdict == v {
			n++
		}
	}
	return n
}

// Efficacy is killed / (killed + survived), timeouts counted as killed and
// mutants that do not compile left out; 0 when nothing was judged.
func (s *Summary) Efficacy() float64 {
	k := s.Count(Killed) + s.Count(TimedOut)
	if d := k + s.Count(Survived); d > 0 {
		return float64(k) / float64(d)
	}
	return 0
}

// Enumerate returns every mutant of the files (relative to root).
func Enumerate(root string, files []string) ([]Mutant, error) {
	all, _, err := enumerate(root, files)
	return all, err
}

// enumerate also returns the sources it read, by file, so that mutants are
// made from the text their offsets were found in even if the tree changes
// during a run.
func enumerate(root string, files []string) ([]Mutant, map[string][]byte, error) {
	var all []Mutant
	srcs := map[string][]byte{}
	for _, f := range files {
		src, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, nil, err
		}
		ms, err := Sites(f, src)
		if err != nil {
			return nil, nil, err
		}
		srcs[f] = src
		all = append(all, ms...)
	}
	return all, srcs, nil
}

// Run samples the mutants of cfg.Files, checks that the unmodified tree
// passes the judge, then judges each mutant, cfg.Parallel at a time, and
// prints progress and the report to cfg.Out.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	start := time.Now()
	all, srcs, err := enumerate(cfg.Root, cfg.Files)
	if err != nil {
		return nil, err
	}
	sample := Sample(all, cfg.N, cfg.Seed)
	sum := &Summary{Sites: len(all)}
	fmt.Fprintf(cfg.Out, "mutants: seed %d, %d of %d sites in %d files (%s)\n", cfg.Seed, len(sample), len(all), len(cfg.Files), kindCounts(all))
	for _, st := range cfg.Judge {
		fmt.Fprintf(cfg.Out, "judge: go %s\n", strings.Join(st.args("", cfg.Timeout), " "))
	}
	tmp, err := os.MkdirTemp("", "volt-mutants-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	base := time.Now()
	if v, by, out := judge(ctx, cfg, "", "", cfg.Timeout); v != Survived {
		return nil, fmt.Errorf("the unmodified tree does not pass the judge (%s, %s): fix that first\n%s", v, by, tail(out, 30))
	}
	sum.Baseline = time.Since(base)
	fmt.Fprintf(cfg.Out, "baseline: the unmodified tree passes the judge in %s; timeout per mutant %s, %d at a time\n",
		sum.Baseline.Round(100*time.Millisecond), cfg.Timeout, max(cfg.Parallel, 1))

	results := make([]Result, len(sample))
	next := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	done := 0
	for range max(cfg.Parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := judgeMutant(ctx, cfg, tmp, i, sample[i], srcs[sample[i].File])
				mu.Lock()
				results[i] = r
				done++
				fmt.Fprintf(cfg.Out, "[%3d/%d] %-12s %s (%s%s)\n", done, len(sample), r.Verdict, r.Mutant, r.Took.Round(100*time.Millisecond), byNote(r))
				mu.Unlock()
			}
		}()
	}
	for i := range sample {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mutation run stopped: %w", err)
	}
	sum.Results = results
	sum.Wall = time.Since(start)
	sum.Report(cfg.Out, cfg.Seed)
	return sum, nil
}

// Report prints the verdicts, the survivors and the efficacy.
func (s *Summary) Report(w io.Writer, seed uint64) {
	killed, timedOut, survived := s.Count(Killed), s.Count(TimedOut), s.Count(Survived)
	fmt.Fprintf(w, "\nseed %d: %d mutants of %d sites: %d killed, %d timed out (counted as killed), %d survived, %d did not compile (left out)\n",
		seed, len(s.Results), s.Sites, killed, timedOut, survived, s.Count(NotCompiled))
	byKind := map[Kind][2]int{}
	for _, r := range s.Results {
		c := byKind[r.Mutant.Kind]
		switch r.Verdict {
		case Killed, TimedOut:
			c[0]++
		case Survived:
			c[1]++
		}
		byKind[r.Mutant.Kind] = c
	}
	for _, k := range Kinds {
		if c := byKind[k]; c[0]+c[1] > 0 {
			fmt.Fprintf(w, "  %-22s %3d killed of %3d\n", k, c[0], c[0]+c[1])
		}
	}
	if survived > 0 {
		fmt.Fprintln(w, "survivors:")
		for _, r := range s.Results {
			if r.Verdict == Survived {
				fmt.Fprintf(w, "  %s\n", r.Mutant)
			}
		}
	}
	fmt.Fprintf(w, "efficacy: %.1f %% (%d of %d killed; killed / (killed + survived)), wall time %s, seed %d\n",
		100*s.Efficacy(), killed+timedOut, killed+timedOut+survived, s.Wall.Round(time.Second), seed)
}

func byNote(r Result) string {
	if r.By == "" {
		return ""
	}
	return ", " + r.By
}

func kindCounts(ms []Mutant) string {
	n := map[Kind]int{}
	for _, m := range ms {
		n[m.Kind]++
	}
	var parts []string
	for _, k := range Kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, n[k]))
	}
	return strings.Join(parts, ", ")
}

// judgeMutant writes the mutant and its overlay into dir, checks that the
// mutated package compiles, and runs the judge.
func judgeMutant(ctx context.Context, cfg Config, dir string, i int, m Mutant, src []byte) Result {
	start := time.Now()
	r := Result{Mutant: m}
	overlay, err := writeMutant(cfg.Root, dir, i, m, src)
	if err != nil {
		r.Verdict, r.By = NotCompiled, err.Error()
	} else {
		r.Verdict, r.By, _ = judge(ctx, cfg, overlay, "./"+filepath.Dir(m.File), cfg.Timeout)
	}
	r.Took = time.Since(start)
	return r
}

// writeMutant writes m's file (src, mutated) into dir, and the overlay
// file that puts it in place of the original for the go command.
func writeMutant(root, dir string, i int, m Mutant, src []byte) (overlay string, err error) {
	orig := filepath.Join(root, m.File)
	mutated := filepath.Join(dir, fmt.Sprintf("m%04d-%s", i, filepath.Base(m.File)))
	if err := os.WriteFile(mutated, Apply(src, m), 0o644); err != nil {
		return "", fmt.Errorf("write mutant: %w", err)
	}
	b, err := json.Marshal(map[string]map[string]string{"Replace": {orig: mutated}})
	if err != nil {
		return "", err
	}
	overlay = filepath.Join(dir, fmt.Sprintf("m%04d.json", i))
	if err := os.WriteFile(overlay, b, 0o644); err != nil {
		return "", fmt.Errorf("write overlay: %w", err)
	}
	return overlay, nil
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)

// judge compiles pkg (when given) and runs the judge's steps with the
// overlay, within timeout. The unmodified tree passes with Survived.
func judge(ctx context.Context, cfg Config, overlay, pkg string, timeout time.Duration) (Verdict, string, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if pkg != "" {
		args := []string{"build", "-o", os.DevNull}
		if overlay != "" {
			args = append(args, "-overlay", overlay)
		}
		if out, err := goCmd(ctx, cfg.Root, append(args, pkg)...); err != nil {
			if ctx.Err() != nil {
				return TimedOut, "compiling", out
			}
			return NotCompiled, "", out
		}
	}
	for _, st := range cfg.Judge {
		out, err := goCmd(ctx, cfg.Root, st.args(overlay, timeout)...)
		if err == nil {
			continue
		}
		switch {
		case ctx.Err() != nil || strings.Contains(out, "panic: test timed out"):
			return TimedOut, st.Pkg, out
		case strings.Contains(out, "[build failed]") || strings.Contains(out, "[setup failed]"):
			return NotCompiled, st.Pkg, out
		case st.tolerates(out):
			continue
		}
		by := st.Pkg
		if m := failLeaf.FindStringSubmatch(out); m != nil {
			by = m[1]
		} else if m := failLine.FindStringSubmatch(out); m != nil {
			by = m[1]
		}
		return Killed, by, out
	}
	return Survived, "", ""
}

var failLeaf = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+/\S+)`)

// tolerates reports whether a failed run's every failed subtest printed
// st.Tolerated (each subtest fails once, with one message).
func (st Step) tolerates(out string) bool {
	if st.Tolerated == "" || strings.Contains(out, "panic:") {
		return false
	}
	leaves := len(failLeaf.FindAllString(out, -1))
	return leaves > 0 && strings.Count(out, st.Tolerated) == leaves
}

func (st Step) args(overlay string, timeout time.Duration) []string {
	args := []string{"test", "-count=1", "-timeout", (timeout + 5*time.Second).String()}
	if st.Tolerated == "" {
		args = append(args, "-failfast")
	}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	args = append(args, st.Flags...)
	args = append(args, st.Pkg)
	return append(args, st.TestFlags...)
}

// goCmd runs go in dir, in a process group of its own that a cancelled ctx
// kills whole (the test binaries with it), and returns its combined output.
func goCmd(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) && ctx.Err() == nil {
		return out.String(), fmt.Errorf("run go %s: %w", args[0], err)
	}
	return out.String(), err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
