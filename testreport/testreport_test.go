package testreport_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/testreport"
)

// brief is a Case without its message, and whether the message holds want.
type brief struct {
	Suite, Name string
	Status      testreport.Status
	Duration    time.Duration
}

func briefs(cs []testreport.Case) []brief {
	var out []brief
	for _, c := range cs {
		out = append(out, brief{c.Suite, c.Name, c.Status, c.Duration})
	}
	return out
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func TestParseSamples(t *testing.T) {
	const (
		bad, broken, ok, panics, slow = "example.com/gj/bad", "example.com/gj/broken", "example.com/gj/ok", "example.com/gj/panics", "example.com/gj/slow"
		calc                          = "com.example.CalculatorTest"
	)
	ms := time.Millisecond
	tests := []struct {
		name     string
		kind     string
		file     string
		want     []brief
		messages map[string][]string // case name -> substrings of its message
	}{
		{
			name: "go test -json of go 1.26: failures, subtests, a build failure, a panic, skips",
			kind: messages.KindGoTestJSON, file: "gotest-mixed.json",
			want: []brief{
				{bad, "TestFails", testreport.Failed, 0},
				{bad, "TestSubFails/good", testreport.Passed, 0},
				{bad, "TestSubFails/bad", testreport.Failed, 0},
				{bad, "TestSubFails", testreport.Failed, 0},
				{bad, "TestPasses", testreport.Passed, 0},
				{broken, broken, testreport.Failed, 0},
				{ok, "TestAdd", testreport.Passed, 0},
				{ok, "TestSkip", testreport.Skipped, 0},
				{ok, "TestTable/one", testreport.Passed, 0},
				{ok, "TestTable/two_words", testreport.Passed, 0},
				{ok, "TestTable", testreport.Passed, 0},
				{panics, "TestFirst", testreport.Passed, 0},
				{panics, "TestPanics", testreport.Failed, 0},
			},
			messages: map[string][]string{
				"TestFails":        {"bad_test.go:6: setting up\n", "bad_test.go:7: got 3, want 4\n", "--- FAIL: TestFails"},
				"TestSubFails/bad": {"sub broke"},
				broken:             {"broken_test.go:5:32: undefined: undefined", "[build failed]"},
				"TestSkip":         {"needs a database"},
				"TestPanics":       {"about to panic", "panic: assignment to entry in nil map", "panics_test.go:10"},
				"TestAdd":          nil,
			},
		},
		{
			name: "go test -json: a test the timeout killed failed, with the panic as its message",
			kind: messages.KindGoTestJSON, file: "gotest-timeout.json",
			want: []brief{
				{slow, "TestQuick", testreport.Passed, 0},
				{slow, "TestHangs", testreport.Failed, 1002976159 * time.Nanosecond},
			},
			messages: map[string][]string{"TestHangs": {"waiting forever", "panic: test timed out after 1s"}},
		},
		{
			name: "go test -json before go 1.24: build errors on non-JSON lines; -count=2 keeps the worse run and adds up",
			kind: messages.KindGoTestJSON, file: "gotest-oldbuild.json",
			want: []brief{
				{broken, broken, testreport.Failed, 0},
				{ok, "TestAdd", testreport.Failed, 2 * time.Second},
			},
			messages: map[string][]string{broken: {"[build failed]"}, "TestAdd": {"flaked"}},
		},
		{
			name: "JUnit in Maven Surefire's format (written by hand): failure, error, skipped, properties and system-out",
			kind: messages.KindJUnit, file: "junit-surefire.xml",
			want: []brief{
				{calc, "adds", testreport.Passed, 4 * ms},
				{calc, "divides", testreport.Failed, 11 * ms},
				{calc, "connects", testreport.Errored, 1204500 * ms},
				{calc, "later", testreport.Skipped, 0},
			},
			messages: map[string][]string{
				"divides":  {"AssertionFailedError: expected: <2> but was: <3>\n\tat com.example.CalculatorTest.divides"},
				"connects": {"Connection refused"},
				"later":    {"not ready"},
				"adds":     nil,
			},
		},
		{
			name: "JUnit in pytest's format (written by hand): classname tells apart two tests of one name",
			kind: messages.KindJUnit, file: "junit-pytest.xml",
			want: []brief{
				{"tests.test_math", "test_add", testreport.Passed, ms},
				{"tests.test_math", "test_sub", testreport.Failed, 2 * ms},
				{"tests.test_io", "test_add", testreport.Passed, ms},
			},
			messages: map[string][]string{"test_sub": {"assert 1 == 2\nE       assert 1 == 2", "AssertionError"}},
		},
		{
			name: "JUnit written by node --test: cases right under <testsuites>, a nested suite",
			kind: messages.KindJUnit, file: "junit-node.xml",
			want: []brief{
				{"test", "adds", testreport.Passed, 5081 * time.Microsecond},
				{"test", "fails", testreport.Failed, 988 * time.Microsecond},
				{"test", "skips", testreport.Skipped, 111 * time.Microsecond},
				{"test", "inner passes", testreport.Passed, 133 * time.Microsecond},
				{"test", "inner throws", testreport.Failed, 102 * time.Microsecond},
			},
			messages: map[string][]string{"fails": {"math is broken"}, "inner throws": {"boom <&>"}, "skips": {"no network"}},
		},
		{
			name: "JUnit in Latin-1 with nested suites and no classnames: the innermost suite",
			kind: messages.KindJUnit, file: "junit-nested-latin1.xml",
			want: []brief{
				{"inner", "café", testreport.Passed, 0},
				{"outer", "after inner", testreport.Passed, 0},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cases, err := testreport.Parse(tc.kind, read(t, tc.file))
			require.NoError(t, err)
			assert.Equal(t, tc.want, briefs(cases))
			for _, c := range cases {
				want, ok := tc.messages[c.Name]
				if !ok {
					continue
				}
				if want == nil {
					assert.Empty(t, c.Message, c.Name)
				}
				for _, w := range want {
					assert.Contains(t, c.Message, w, c.Name)
				}
				assert.NotContains(t, c.Message, "=== RUN", c.Name)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name, kind, data, want string
	}{
		{"malformed XML", messages.KindJUnit, `<testsuite><testcase name="a"></testsuite>`, "well-formed"},
		{"truncated XML", messages.KindJUnit, `<testsuites><testsuite name="s"><testcase name="a"><failure>boom`, "unexpected EOF"},
		{"not JUnit", messages.KindJUnit, `<html><body/></html>`, "root is <html>"},
		{"empty JUnit", messages.KindJUnit, ``, "empty"},
		{"unknown charset", messages.KindJUnit, `<?xml version="1.0" encoding="EBCDIC"?><testsuite/>`, "UTF-8"},
		{"too deep", messages.KindJUnit, "<testsuites>" + strings.Repeat("<testsuite>", 300) + strings.Repeat("</testsuite>", 300) + "</testsuites>", "nested"},
		{"plain text for go test -json", messages.KindGoTestJSON, "ok  \texample.com/x\t0.01s\n", "without a single JSON event"},
		{"an unknown kind", "tap", "ok 1", `kind "tap"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testreport.Parse(tc.kind, []byte(tc.data))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestParseLimits(t *testing.T) {
	t.Run("too many cases", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("<testsuite>")
		for i := 0; i <= testreport.MaxCases; i++ {
			b.WriteString(`<testcase name="t` + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + strconv.Itoa(i) + `"/>`)
		}
		b.WriteString("</testsuite>")
		_, err := testreport.ParseJUnit([]byte(b.String()))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "more than 100000 test cases")
	})
	t.Run("long names and messages are cut, the output's end kept", func(t *testing.T) {
		long := strings.Repeat("é", testreport.MaxName)
		out := strings.Repeat("noise\n", 2000) + "the reason\n"
		data := `{"Action":"run","Package":"p","Test":"` + long + `"}
{"Action":"output","Package":"p","Test":"` + long + `","Output":` + quote(out) + `}
{"Action":"fail","Package":"p","Test":"` + long + `","Elapsed":0.1}
`
		cases, err := testreport.ParseGoTestJSON([]byte(data))
		require.NoError(t, err)
		require.Len(t, cases, 1)
		assert.LessOrEqual(t, len(cases[0].Name), testreport.MaxName)
		assert.True(t, strings.HasPrefix(long, cases[0].Name))
		assert.LessOrEqual(t, len(cases[0].Message), testreport.MaxMessage)
		assert.True(t, strings.HasSuffix(cases[0].Message, "the reason\n"))
		assert.Equal(t, 100*time.Millisecond, cases[0].Duration)
	})
	t.Run("missing attributes and odd times", func(t *testing.T) {
		cases, err := testreport.ParseJUnit([]byte(`<testsuite><testcase time="-3"/><testcase name="n" time="NaN"><skipped/></testcase></testsuite>`))
		require.NoError(t, err)
		assert.Equal(t, []brief{{"", "(unnamed)", testreport.Passed, 0}, {"", "n", testreport.Skipped, 0}}, briefs(cases))
	})
	t.Run("go tool test2json without -p: no package", func(t *testing.T) {
		cases, err := testreport.ParseGoTestJSON([]byte(`{"Action":"run","Test":"TestX"}
{"Action":"pass","Test":"TestX","Elapsed":0.01}
{"Action":"output","Output":"panic after the tests\n"}
{"Action":"fail","Elapsed":0.02}
`))
		require.NoError(t, err)
		assert.Equal(t, []brief{{"", "TestX", testreport.Passed, 10 * time.Millisecond}, {"", "(package)", testreport.Failed, 20 * time.Millisecond}}, briefs(cases))
		assert.Equal(t, "panic after the tests\n", cases[1].Message)
	})
	t.Run("a report that ends while a test runs", func(t *testing.T) {
		cases, err := testreport.ParseGoTestJSON([]byte(`{"Action":"run","Package":"p","Test":"TestX"}` + "\n"))
		require.NoError(t, err)
		require.Len(t, cases, 1)
		assert.Equal(t, testreport.Errored, cases[0].Status)
		assert.Contains(t, cases[0].Message, "the report ends")
	})
}

func quote(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "\n", `\n`) + `"`
}

// TestParseRealGoTest runs `go test -json` on a small module and parses
// what it wrote.
func TestParseRealGoTest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module with the go command")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	dir := t.TempDir()
	write := func(name, content string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	write("go.mod", "module example.com/tiny\n\ngo 1.24\n")
	write("a/a_test.go", `package a

import "testing"

func TestOK(t *testing.T) {}

func TestBad(t *testing.T) { t.Run("inner", func(t *testing.T) { t.Error("inner went wrong") }) }
`)
	cmd := exec.Command(goBin, "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	out, err := cmd.Output()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "go test should fail: %s", out)
	cases, err := testreport.ParseGoTestJSON(out)
	require.NoError(t, err)
	got := map[string]testreport.Status{}
	for _, c := range cases {
		assert.Equal(t, "example.com/tiny/a", c.Suite)
		got[c.Name] = c.Status
		if c.Name == "TestBad/inner" {
			assert.Contains(t, c.Message, "inner went wrong")
		}
	}
	assert.Equal(t, map[string]testreport.Status{"TestOK": testreport.Passed, "TestBad": testreport.Failed, "TestBad/inner": testreport.Failed}, got)
}

// FuzzParseJUnit: no input makes the JUnit parser panic, and what it
// returns keeps the limits.
func FuzzParseJUnit(f *testing.F) {
	for _, name := range []string{"junit-surefire.xml", "junit-pytest.xml", "junit-node.xml", "junit-nested-latin1.xml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`<testsuite><testcase name="a"><failure message="m">t</failure><error/><skipped/></testcase></testsuite>`))
	f.Add([]byte(`<testsuites><testcase`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cases, err := testreport.ParseJUnit(data)
		if err != nil {
			return
		}
		checkCases(t, cases)
	})
}

// FuzzParseGoTestJSON: no input makes the go test -json parser panic.
func FuzzParseGoTestJSON(f *testing.F) {
	for _, name := range []string{"gotest-mixed.json", "gotest-timeout.json", "gotest-oldbuild.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(`{"Action":"fail","Package":"p","FailedBuild":"p","Elapsed":1e300}` + "\n" + `{"Action":"run","Package":"p","Test":"T","Time":"0001-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cases, err := testreport.ParseGoTestJSON(data)
		if err != nil {
			return
		}
		checkCases(t, cases)
	})
}

func checkCases(t *testing.T, cases []testreport.Case) {
	t.Helper()
	if len(cases) > testreport.MaxCases {
		t.Fatalf("%d cases", len(cases))
	}
	for _, c := range cases {
		if c.Name == "" || len(c.Name) > testreport.MaxName || len(c.Suite) > testreport.MaxName || len(c.Message) > testreport.MaxMessage {
			t.Fatalf("case out of bounds: %q/%q (%d-byte message)", c.Suite, c.Name, len(c.Message))
		}
		if c.Duration < 0 {
			t.Fatalf("negative duration %v", c.Duration)
		}
		switch c.Status {
		case testreport.Passed, testreport.Failed, testreport.Skipped, testreport.Errored:
		default:
			t.Fatalf("status %q", c.Status)
		}
	}
}
