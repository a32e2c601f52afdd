package testreport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// goEvent is one line of `go test -json` (cmd/test2json's TestEvent, and
// the build-output events of go 1.24 and later).
type goEvent struct {
	Time        time.Time
	Action      string
	Package     string
	Test        string
	Elapsed     *float64
	Output      string
	ImportPath  string
	FailedBuild string
}

// goTest is one test of a package as its events arrive.
type goTest struct {
	name           string
	running        bool
	out            tail
	started, lastT time.Time
}

// goPackage is one package as its events arrive.
type goPackage struct {
	name     string
	out      tail
	tests    map[string]*goTest
	order    []string // tests in the order they started
	failures int      // tests that ended failed
	ended    bool
}

// ParseGoTestJSON reads the output of `go test -json`, one event a line.
// A test's status is its pass, fail or skip action, its duration the
// action's Elapsed, and the message of a failed or skipped test the end of
// its output (without the "=== RUN" lines; at most MaxMessage bytes).
// Subtests are cases of their own under their full name ("TestX/sub"). A
// test still running when its package failed (a panic or a timeout ended
// the binary) failed; one still running where the report ends errored. A
// package that failed without a failed test (it did not build, TestMain
// failed) is a case named after the package, whose message is its build
// output and its own output. Lines that are not JSON (a build's stderr
// mixed in) are skipped, but a report without a single event is an error.
func ParseGoTestJSON(data []byte) ([]Case, error) {
	if err := checkSize(data); err != nil {
		return nil, err
	}
	p := goParser{pkgs: map[string]*goPackage{}, builds: map[string]*tail{}}
	events, other := 0, ""
	for lineNo := 1; len(data) > 0; lineNo++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var e goEvent
		if line[0] != '{' || json.Unmarshal(line, &e) != nil {
			if other == "" {
				other = fmt.Sprintf("line %d: %q", lineNo, clip(string(line), 80))
			}
			continue
		}
		events++
		if err := p.event(&e); err != nil {
			return nil, err
		}
	}
	if events == 0 && other != "" {
		return nil, fmt.Errorf("go test -json report without a single JSON event (%s): run `go test -json` and save its standard output", other)
	}
	for _, name := range p.order {
		if pkg := p.pkgs[name]; !pkg.ended {
			if err := p.unfinished(pkg, Errored, "the report ends before this test did: was go test killed?"); err != nil {
				return nil, err
			}
		}
	}
	return p.c.cases, nil
}

type goParser struct {
	c      collector
	pkgs   map[string]*goPackage
	order  []string
	builds map[string]*tail // build output by import path
}

func (p *goParser) event(e *goEvent) error {
	if e.Action == "build-output" {
		b := p.builds[e.ImportPath]
		if b == nil {
			if len(p.builds) >= MaxCases {
				return fmt.Errorf("go test -json report building more than %d packages: split it", MaxCases)
			}
			b = &tail{}
			p.builds[e.ImportPath] = b
		}
		b.add(e.Output)
		return nil
	}
	pkg := p.pkgs[e.Package]
	if pkg == nil {
		if len(p.pkgs) >= MaxCases {
			return fmt.Errorf("go test -json report of more than %d packages: split it", MaxCases)
		}
		pkg = &goPackage{name: e.Package, tests: map[string]*goTest{}}
		p.pkgs[e.Package] = pkg
		p.order = append(p.order, e.Package)
	}
	if e.Test == "" {
		return p.packageEvent(pkg, e)
	}
	t := pkg.tests[e.Test]
	if t == nil {
		if len(pkg.tests) >= MaxCases {
			return fmt.Errorf("go test -json report with more than %d tests in %s: split it", MaxCases, pkg.name)
		}
		t = &goTest{name: e.Test}
		pkg.tests[e.Test] = t
		pkg.order = append(pkg.order, e.Test)
	}
	switch e.Action {
	case "run":
		t.running, t.started, t.lastT = true, e.Time, e.Time
		t.out = tail{}
	case "output":
		if !strings.HasPrefix(e.Output, "=== ") {
			t.out.add(e.Output)
		}
		t.lastT = e.Time
	case "pass", "fail", "skip":
		st := map[string]Status{"pass": Passed, "fail": Failed, "skip": Skipped}[e.Action]
		d := span(t.started, t.lastT)
		if e.Elapsed != nil {
			d = secondsOf(*e.Elapsed)
		}
		k := Case{Suite: pkg.name, Name: t.name, Status: st, Duration: d}
		if st != Passed {
			k.Message = clipTail(t.out.String(), MaxMessage)
		}
		if st == Failed {
			pkg.failures++
		}
		t.running, t.out = false, tail{}
		return p.c.add(k)
	}
	return nil
}

func (p *goParser) packageEvent(pkg *goPackage, e *goEvent) error {
	switch e.Action {
	case "output":
		pkg.out.add(e.Output)
	case "pass", "skip":
		pkg.ended = true
		return p.unfinished(pkg, Errored, "the package passed without this test ending")
	case "fail":
		pkg.ended = true
		if err := p.unfinished(pkg, Failed, ""); err != nil {
			return err
		}
		if pkg.failures > 0 {
			return nil
		}
		msg := pkg.out.String()
		if b := p.builds[e.FailedBuild]; e.FailedBuild != "" && b != nil {
			msg = b.String() + msg
		}
		d := time.Duration(0)
		if e.Elapsed != nil {
			d = secondsOf(*e.Elapsed)
		}
		name := pkg.name
		if name == "" {
			name = "(package)" // test2json without -p names none
		}
		return p.c.add(Case{Suite: pkg.name, Name: name, Status: Failed, Duration: d, Message: clipTail(msg, MaxMessage)})
	}
	return nil
}

// unfinished ends the tests of pkg still running with st, adding note to
// their output.
func (p *goParser) unfinished(pkg *goPackage, st Status, note string) error {
	for _, name := range pkg.order {
		t := pkg.tests[name]
		if !t.running {
			continue
		}
		t.running = false
		msg := t.out.String()
		if note != "" {
			msg += note
		}
		if st == Failed {
			pkg.failures++
		}
		if err := p.c.add(Case{Suite: pkg.name, Name: t.name, Status: st, Duration: span(t.started, t.lastT), Message: clipTail(msg, MaxMessage)}); err != nil {
			return err
		}
	}
	return nil
}

// span is the time from a to b, 0 when either is unknown.
func span(a, b time.Time) time.Duration {
	if a.IsZero() || b.IsZero() || b.Before(a) {
		return 0
	}
	return b.Sub(a)
}

// tail keeps the end of a stream of output: at least its last MaxMessage
// bytes, at most four times that.
type tail struct{ b []byte }

func (t *tail) add(s string) {
	t.b = append(t.b, s...)
	if len(t.b) > 4*MaxMessage {
		t.b = append(t.b[:0:0], t.b[len(t.b)-MaxMessage:]...)
	}
}

func (t *tail) String() string { return string(t.b) }
