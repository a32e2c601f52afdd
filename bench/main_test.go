package bench

import (
	cmap "github.com/orcaman/concurrent-map"

	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/voltci/volt/internal/voltbin"
)

// voltBin is the volt binary built once by TestMain.
var voltBin string

// upHTTP and reporterHTTP tell whether `volt up` and `volt reporter` take
// --http (the web UI, on 127.0.0.1:8080 by default): the benchmarks then
// give it a free port, never the default.
var upHTTP, reporterHTTP bool

func TestMain(m *testing.M) {
	// The in-process benchmarks run actor systems set up as cmd/volt's are:
	// one shard per registry map, set before any system exists.
	cmap.SHARD_COUNT = 1
	flag.Parse()
	// Only build (and only need git and python3) when benchmarks are asked
	// for: `go test ./...` must stay cheap.
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		os.Exit(m.Run())
	}
	os.Exit(buildAndRun(m))
}

// buildAndRun builds ./cmd/volt once, runs the benchmarks and removes the binary.
func buildAndRun(m *testing.M) int {
	bin, cleanup, err := voltbin.Build("..", "git", "python3", "sh", "sleep", "true") // the module root: this package is bench/
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	defer cleanup()
	voltBin = bin
	uncred, err := voltbin.IsolateCredentials()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	defer uncred()
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
