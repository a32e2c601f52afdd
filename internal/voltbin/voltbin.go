// Package voltbin builds the volt binary for the tests that drive it from
// outside, as separate processes (e2e/ and bench/), and holds the small
// helpers they share. It is for tests only; nothing in the product imports it.
package voltbin

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Build checks that each of tools is in PATH, then builds ./cmd/volt of the
// module at moduleRoot into a new temporary directory, the way `make build`
// does (static: CGO_ENABLED=0; not -race, to keep it fast). cleanup removes
// the directory.
func Build(moduleRoot string, tools ...string) (bin string, cleanup func(), err error) {
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return "", nil, fmt.Errorf("%s not found in PATH: %w", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "volt-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	bin = filepath.Join(dir, "volt")
	if err := BuildPackage(moduleRoot, "./cmd/volt", bin); err != nil {
		cleanup()
		return "", nil, err
	}
	return bin, cleanup, nil
}

// BuildPackage builds the main package pkg (relative to moduleRoot) into
// out, as Build builds volt: static, CGO_ENABLED=0.
func BuildPackage(moduleRoot, pkg, out string) error {
	build := exec.Command("go", "build", "-o", out, pkg)
	build.Dir = moduleRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if output, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, output)
	}
	return nil
}

// Tail returns the last n lines of a file, or why it could not be read.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort returns a loopback port that was free a moment ago.
//
// It never returns a port it returned before in this process: two calls
// in a row may otherwise get the same port from the kernel, before the
// first caller has bound it (TestAttack's runner and observer once did).
func FreePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		handedMu.Lock()
		seen := handed[port]
		handed[port] = true
		handedMu.Unlock()
		if !seen {
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free port: the kernel kept offering ports handed out already")
}

var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// IsolateCredentials points this process's per-user configuration
// directory ($XDG_CONFIG_HOME), where volt roles keep the cluster CA they
// create, at a new temporary directory, so that tests neither read nor
// write the developer's ~/.config/volt. Every volt process the tests start
// inherits it. cleanup removes the directory.
func IsolateCredentials() (cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "volt-config-")
	if err != nil {
		return nil, err
	}
	if err := os.Setenv("XDG_CONFIG_HOME", dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return func() { os.RemoveAll(dir) }, nil
}
