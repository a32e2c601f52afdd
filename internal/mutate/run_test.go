package mutate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tinyModule writes a module with one core file and one judge package
// that tests it, and returns its root.
func tinyModule(t *testing.T, judgeTest string) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.22\n",
		"core/core.go": `package core

// Max returns the larger of a and b.
func Max(a, b int) int {
	if a > b {
		return a
	}
	return b
}
`,
		"judge/judge_test.go": judgeTest,
	}
	for name, text := range files {
		require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, name), []byte(text), 0o644))
	}
	return root
}

const judgeMax = `package judge

import (
	"testing"

	"example.com/m/core"
)

func TestMax(t *testing.T) {
	if core.Max(2, 1) != 2 || core.Max(1, 2) != 2 {
		t.Fatal("wrong max")
	}
}
`

// TestRunJudgesThroughAnOverlay runs the whole driver on a tiny module:
// "> → <=" breaks Max and is killed; "> → >=" is an equivalent mutant and
// survives; the tree is never written.
func TestRunJudgesThroughAnOverlay(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	root := tinyModule(t, judgeMax)
	before, err := os.ReadFile(filepath.Join(root, "core", "core.go"))
	require.NoError(t, err)
	var out bytes.Buffer
	sum, err := Run(context.Background(), Config{
		Root: root, Files: []string{"core/core.go"}, Seed: 3, Timeout: time.Minute, Parallel: 2,
		Judge: []Step{{Pkg: "./judge/"}}, Out: &out,
	})
	require.NoError(t, err, out.String())
	require.Len(t, sum.Results, 2, out.String())
	verdicts := map[string]Verdict{}
	for _, r := range sum.Results {
		verdicts[r.Mutant.Desc] = r.Verdict
	}
	require.Equal(t, map[string]Verdict{"> → <=": Killed, "> → >=": Survived}, verdicts, out.String())
	require.InDelta(t, 0.5, sum.Efficacy(), 1e-9)
	require.Contains(t, out.String(), "survivors:\n  core/core.go:5:7 conditionals-boundary: > → >=")
	require.Contains(t, out.String(), "efficacy: 50.0 %")
	after, err := os.ReadFile(filepath.Join(root, "core", "core.go"))
	require.NoError(t, err)
	require.Equal(t, string(before), string(after))
}

// TestRunRefusesAFailingBaseline: when the unmodified tree fails the
// judge, every mutant would look killed; the driver stops instead.
func TestRunRefusesAFailingBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	root := tinyModule(t, "package judge\n\nimport \"testing\"\n\nfunc TestBroken(t *testing.T) { t.Fatal(\"broken\") }\n")
	_, err := Run(context.Background(), Config{
		Root: root, Files: []string{"core/core.go"}, Seed: 3, Timeout: time.Minute, Parallel: 1,
		Judge: []Step{{Pkg: "./judge/"}}, Out: &bytes.Buffer{},
	})
	require.ErrorContains(t, err, "the unmodified tree does not pass the judge")
}

func TestTimeoutCountsAsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	root := tinyModule(t, `package judge

import (
	"testing"

	"example.com/m/core"
)

func TestMax(t *testing.T) {
	for core.Max(2, 1) != 2 {
	}
}
`)
	src, err := os.ReadFile(filepath.Join(root, "core", "core.go"))
	require.NoError(t, err)
	ms, err := Sites("core/core.go", src)
	require.NoError(t, err)
	var negated Mutant
	for _, m := range ms {
		if m.Kind == Negation {
			negated = m
		}
	}
	overlay, err := writeMutant(root, t.TempDir(), 0, negated, src)
	require.NoError(t, err)
	cfg := Config{Root: root, Judge: []Step{{Pkg: "./judge/"}}}
	v, _, _ := judge(context.Background(), cfg, overlay, "./core/", 5*time.Second)
	require.Equal(t, TimedOut, v)
	s := &Summary{Results: []Result{{Verdict: TimedOut}, {Verdict: Survived}, {Verdict: NotCompiled}}}
	require.InDelta(t, 0.5, s.Efficacy(), 1e-9, "a timeout counts as killed, a mutant that does not compile not at all")
}

func TestToleratedFailures(t *testing.T) {
	st := Step{Tolerated: "trace differs from"}
	golden := "    --- FAIL: TestScenarios/a (0.01s)\n        sim_test.go:153: trace differs from a.trace at line 3\n"
	invariant := "    --- FAIL: TestScenarios/b (0.01s)\n        sim_test.go:135: b (once: x): [never two attempts]\n"
	for _, c := range []struct {
		name string
		out  string
		want bool
	}{
		{"golden diffs only", "--- FAIL: TestScenarios (0.02s)\n" + golden + strings.Replace(golden, "/a", "/c", 1), true},
		{"an invariant too", "--- FAIL: TestScenarios (0.02s)\n" + golden + invariant, false},
		{"a panic", "--- FAIL: TestScenarios (0.02s)\n" + golden + "panic: boom\n", false},
		{"no subtest named", "FAIL\n", false},
	} {
		t.Run(c.name, func(t *testing.T) { require.Equal(t, c.want, st.tolerates(c.out)) })
	}
	require.False(t, Step{}.tolerates("    --- FAIL: T/a\ntrace differs from\n"), "nothing tolerated unless asked")
}
