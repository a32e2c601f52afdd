package bench

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// voltBin is the volt binary built once by TestMain.
var voltBin string

// upHTTP and reporterHTTP tell whether `volt up` and `volt reporter` take
// --http (the web UI, on 127.0.0.1:8080 by default): the benchmarks then
// give it a free port, never the default.
var upHTTP, reporterHTTP bool

func TestMain(m *testing.M) {
	flag.Parse()
	// Only build (and only need git and python3) when benchmarks are asked
	// for: `go test ./...` must stay cheap.
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	os.Exit(buildAndRun(m))
}

// buildAndRun builds ./cmd/volt (a plain build: no -race) into a temporary
// directory, runs the benchmarks and removes the directory.
func buildAndRun(m *testing.M) int {
	for _, tool := range []string{"git", "python3", "sh", "sleep", "true"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s not found in PATH: %v\n", tool, err)
			return 1
		}
	}
	dir, err := os.MkdirTemp("", "volt-bench-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	voltBin = filepath.Join(dir, "volt")
	build := exec.Command("go", "build", "-o", voltBin, "./cmd/volt")
	build.Dir = ".."                                  // the module root: this package is bench/
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as `make build` builds it
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: go build ./cmd/volt: %v\n%s", err, out)
		return 1
	}
	upHTTP = helpMentions("up", "--http")
	reporterHTTP = helpMentions("reporter", "--http")
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("# volt-bench: %s, GOMAXPROCS %d, loadavg %s\n", runtime.Version(), runtime.GOMAXPROCS(0), strings.TrimSpace(string(load)))
	return m.Run()
}

// helpMentions reports whether `volt cmd --help` mentions flag.
func helpMentions(cmd, flag string) bool {
	out, _ := exec.Command(voltBin, cmd, "--help").CombinedOutput()
	return strings.Contains(string(out), flag)
}
