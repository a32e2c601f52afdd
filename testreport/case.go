package testreport

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/voltci/volt/messages"
)

// Status is how one test case ended.
type Status string

// The statuses of a test case. Errored is JUnit's <error> (the test could
// not run to its verdict); go test has no such status.
const (
	Passed  Status = "passed"
	Failed  Status = "failed"
	Skipped Status = "skipped"
	Errored Status = "errored"
)

// rank orders statuses when one test appears twice in a report (go test
// -count=2, or a JUnit file naming it twice): the worse one is kept.
func (s Status) rank() int {
	switch s {
	case Errored:
		return 3
	case Failed:
		return 2
	case Passed:
		return 1
	}
	return 0
}

// Case is one test's result in a report.
type Case struct {
	// Suite groups the test: the Go package, or JUnit's classname (the
	// enclosing <testsuite>'s name when a case has no classname).
	Suite string
	// Name is the test's name; a Go subtest has its full name
	// ("TestX/sub").
	Name     string
	Status   Status
	Duration time.Duration
	// Message says why a test failed, errored or was skipped (bounded:
	// MaxMessage bytes); empty for a pass.
	Message string
}

// Limits on what a report may hold. A report beyond MaxReportBytes or
// MaxCases is refused; longer names and messages are cut.
const (
	MaxReportBytes = 64 << 20
	MaxCases       = 100_000
	MaxName        = 1024
	MaxMessage     = 4096
)

// Parse reads a report of kind messages.KindJUnit or
// messages.KindGoTestJSON.
func Parse(kind string, data []byte) ([]Case, error) {
	switch kind {
	case messages.KindJUnit:
		return ParseJUnit(data)
	case messages.KindGoTestJSON:
		return ParseGoTestJSON(data)
	}
	return nil, fmt.Errorf("test report of kind %q: Volt reads %q and %q", kind, messages.KindJUnit, messages.KindGoTestJSON)
}

// checkSize refuses a report larger than MaxReportBytes.
func checkSize(data []byte) error {
	if len(data) > MaxReportBytes {
		return fmt.Errorf("test report of %d bytes: at most %d are read: split it into several files", len(data), MaxReportBytes)
	}
	return nil
}

// collector gathers cases in report order, merging a test seen twice.
type collector struct {
	cases []Case
	index map[[2]string]int
}

func (c *collector) add(k Case) error {
	k.Suite = clip(k.Suite, MaxName)
	k.Name = clip(k.Name, MaxName)
	k.Message = clipTail(k.Message, MaxMessage)
	if k.Duration < 0 {
		k.Duration = 0
	}
	key := [2]string{k.Suite, k.Name}
	if c.index == nil {
		c.index = map[[2]string]int{}
	}
	if i, ok := c.index[key]; ok {
		old := &c.cases[i]
		old.Duration += k.Duration
		if k.Status.rank() > old.Status.rank() {
			old.Status, old.Message = k.Status, k.Message
		}
		return nil
	}
	if len(c.cases) >= MaxCases {
		return fmt.Errorf("test report with more than %d test cases: split it into several files", MaxCases)
	}
	c.index[key] = len(c.cases)
	c.cases = append(c.cases, k)
	return nil
}

// clip cuts s to at most n bytes on a rune boundary, and makes it valid
// UTF-8 (the store and the pages show it).
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// clipTail keeps the last n bytes of s (where a failure's output ends),
// on a rune boundary, marking the cut.
func clipTail(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	const mark = "…\n"
	i := len(s) - (n - len(mark))
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return mark + s[i:]
}

// seconds reads a duration in seconds ("0.25", "1,234.5"); anything else,
// negative or absurd is 0.
func seconds(s string) time.Duration {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return secondsOf(f)
}

func secondsOf(f float64) time.Duration {
	if f != f || f <= 0 || f > 1e6 { // NaN, negative, or beyond 11 days
		return 0
	}
	return time.Duration(f * float64(time.Second))
}
