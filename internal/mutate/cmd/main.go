// Command cmd runs Volt's mutation tests (`make mutants`): it mutates a
// sample of the cores' mutation sites and judges each mutant with the
// simulator and property tests alone. Run it from anywhere in the module:
//
//	go run ./internal/mutate/cmd -seed 7 -n 80
//
// -list prints the sampled mutants without judging them.
package main

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/voltci/volt/internal/mutate"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mutants:", err)
		os.Exit(1)
	}
}

func run() error {
	seed := flag.Uint64("seed", 0, "seed of the sample (and of the property tests' generator); 0 picks one and prints it")
	n := flag.Int("n", 150, "how many mutants to sample; 0 for all")
	timeout := flag.Duration("timeout", 90*time.Second, "time allowed to one mutant (compile and judge); a mutant that takes longer counts as killed")
	parallel := flag.Int("parallel", runtime.NumCPU(), "mutants judged at a time")
	files := flag.String("files", strings.Join(mutate.CorePatterns, ","), "comma-separated globs, relative to the module root, of the files to mutate (test files left out)")
	list := flag.Bool("list", false, "print the sampled mutants and stop")
	min := flag.Float64("min", 0, "fail when the efficacy, in percent, is below this")
	flag.Parse()

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if *seed == 0 {
		var b [8]byte
		if _, err := crand.Read(b[:]); err != nil {
			return fmt.Errorf("pick a seed: %w", err)
		}
		*seed = binary.LittleEndian.Uint64(b[:])>>1 | 1
	}
	found, err := mutate.Discover(root, strings.Split(*files, ","))
	if err != nil {
		return err
	}
	if *list {
		all, err := mutate.Enumerate(root, found)
		if err != nil {
			return err
		}
		sample := mutate.Sample(all, *n, *seed)
		fmt.Printf("seed %d: %d of %d sites\n", *seed, len(sample), len(all))
		for _, m := range sample {
			fmt.Println(m)
		}
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	sum, err := mutate.Run(ctx, mutate.Config{
		Root: root, Files: found, Seed: *seed, N: *n, Timeout: *timeout, Parallel: *parallel,
		Judge: mutate.DefaultJudge(*seed), Out: os.Stdout,
	})
	if err != nil {
		return err
	}
	if e := 100 * sum.Efficacy(); e < *min {
		return fmt.Errorf("efficacy %.1f %% is below %.1f %%", e, *min)
	}
	return nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module: run from the Volt checkout")
	}
	return filepath.Dir(gomod), nil
}
