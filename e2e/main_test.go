package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// voltBin is the volt binary built once by TestMain.
var voltBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

// buildAndRun builds ./cmd/volt into a temporary directory (a plain build, not
// -race, to keep it fast), runs the tests and removes the directory.
func buildAndRun(m *testing.M) int {
	for _, tool := range []string{"git", "python3", "sh", "sleep"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s not found in PATH: %v\n", tool, err)
			return 1
		}
	}
	dir, err := os.MkdirTemp("", "volt-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	voltBin = filepath.Join(dir, "volt")
	build := exec.Command("go", "build", "-o", voltBin, "./cmd/volt")
	build.Dir = ".."                                  // the module root: this package is e2e/
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as `make build` builds it
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/volt: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}
