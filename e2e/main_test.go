package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/voltci/volt/internal/voltbin"
)

// voltBin is the volt binary built once by TestMain.
var voltBin string

func TestMain(m *testing.M) {
	if spec, ok := os.LookupEnv(attackerEnv); ok {
		// The test binary re-executed as an attacker (attacker_test.go):
		// nothing is built, no test runs.
		os.Exit(attackerMain(spec))
	}
	os.Exit(buildAndRun(m))
}

// buildAndRun builds ./cmd/volt once, runs the tests and removes the binary.
func buildAndRun(m *testing.M) int {
	bin, cleanup, err := voltbin.Build("..", "git", "python3", "sh", "sleep") // the module root: this package is e2e/
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer cleanup()
	voltBin = bin
	uncred, err := voltbin.IsolateCredentials()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer uncred()
	return m.Run()
}
