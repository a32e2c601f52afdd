package mutate

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func fixture(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "core.go.txt"))
	require.NoError(t, err)
	return src
}

func TestSitesOfTheFixture(t *testing.T) {
	ms, err := Sites("core.go", fixture(t))
	require.NoError(t, err)
	var got []string
	for _, m := range ms {
		got = append(got, m.String())
	}
	require.Equal(t, []string{
		"core.go:5:9 conditionals-negation: < → >=",
		"core.go:5:9 conditionals-boundary: < → <=",
		"core.go:5:13 invert-logical: && → ||",
		"core.go:6:3 removed-statement: removed: c.n++",
		"core.go:6:6 increment-decrement: ++ → --",
		`core.go:7:3 removed-statement: removed: fx = append(fx, actors.Send{To: "a"})`,
		`core.go:7:3 swapped-effects: appends swapped with line 8: actors.Send{To: "a"} ↔ persist(c.n)`,
		"core.go:8:3 removed-statement: removed: fx = append(fx, persist(c.n))",
		// line 11, a planted bug's body, and the note's c.n+1 on line 13 are left alone
		`core.go:13:2 removed-statement: removed: c.count(actors.Info("stepped", "n", c.n+1))`,
		`core.go:14:41 swapped-effects: arguments swapped: actors.Send{To: "b"} ↔ actors.Watch{Addr: "c"}`,
		// nothing in Digest
	}, got)
}

func TestApplyMakesEachMutant(t *testing.T) {
	src := fixture(t)
	ms, err := Sites("core.go", src)
	require.NoError(t, err)
	want := map[string]string{
		"conditionals-boundary":       "if c.n <= 3 && c.ok {",
		"invert-logical":              "if c.n < 3 || c.ok {",
		"increment-decrement":         "\t\tc.n--\n",
		"removed: fx = append(fx, pe": "\t\t_ = append(fx, persist(c.n))\n",
		"appends swapped":             "fx = append(fx, persist(c.n))\n\t\tfx = append(fx, actors.Send{To: \"a\"})\n",
		"arguments swapped":           `actors.Info("done"), actors.Watch{Addr: "c"}, actors.Send{To: "b"})`,
	}
	for _, m := range ms {
		out := Apply(src, m)
		require.NotEqual(t, string(src), string(out), m.String())
		_, err := parser.ParseFile(token.NewFileSet(), "core.go", out, 0)
		require.NoError(t, err, "%s does not parse:\n%s", m, out)
		for key, text := range want {
			if strings.Contains(m.String(), key) {
				require.Contains(t, string(out), text, m.String())
				delete(want, key)
			}
		}
	}
	require.Empty(t, want, "mutants not found")
	require.Equal(t, string(fixture(t)), string(src), "Apply left its input alone")
}

func TestPrependSwapped(t *testing.T) {
	src := []byte(`package p

func (c *Core) tick() []actors.Effect { return nil }

func (c *Core) step() []actors.Effect {
	var fx []actors.Effect
	fx = append([]actors.Effect{persist(nil)}, fx...)
	return append(c.tick(), []actors.Effect{actors.Warn("x")}...)
}
`)
	ms, err := Sites("p.go", src)
	require.NoError(t, err)
	var swaps []Mutant
	for _, m := range ms {
		if m.Kind == Swapped {
			swaps = append(swaps, m)
		}
	}
	require.Len(t, swaps, 1, "a prepend of notes only is not swapped")
	require.Contains(t, string(Apply(src, swaps[0])), "fx = append(fx, []actors.Effect{persist(nil)}...)")
}

func TestSampleIsSeededAndInSourceOrder(t *testing.T) {
	var all []Mutant
	for i := range 40 {
		all = append(all, Mutant{File: []string{"a.go", "b.go"}[i%2], Edits: []Edit{{Off: i}}})
	}
	a, b, c := Sample(all, 10, 7), Sample(all, 10, 7), Sample(all, 10, 8)
	require.Len(t, a, 10)
	require.Equal(t, a, b, "one seed, one sample")
	require.NotEqual(t, a, c, "another seed, another sample")
	for i := 1; i < len(a); i++ {
		require.True(t, a[i-1].File < a[i].File || (a[i-1].File == a[i].File && a[i-1].Edits[0].Off < a[i].Edits[0].Off), "in source order")
	}
	require.Len(t, Sample(all, 0, 7), 40, "n 0: all")
	require.Len(t, Sample(all, 99, 7), 40, "n above the count: all")
}

func TestDiscoverFindsCoresByPattern(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"actors/dispatcher/core.go", "actors/dispatcher/core_runners.go", "actors/dispatcher/core_test.go",
		"actors/dispatcher/actor.go", "actors/runner/core.go"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, f), []byte("package x\n"), 0o644))
	}
	got, err := Discover(root, CorePatterns)
	require.NoError(t, err)
	require.Equal(t, []string{"actors/dispatcher/core.go", "actors/dispatcher/core_runners.go", "actors/runner/core.go"}, got)
	_, err = Discover(t.TempDir(), CorePatterns)
	require.ErrorContains(t, err, "no file")
}

func TestRemovedNilAssignmentCompiles(t *testing.T) {
	src := []byte("package p\n\nfunc (c *Core) f() {\n\tc.job = nil\n\tc.n = g()\n}\n")
	ms, err := Sites("p.go", src)
	require.NoError(t, err)
	require.Len(t, ms, 2)
	require.Equal(t, "package p\n\nfunc (c *Core) f() {\n\t\n\tc.n = g()\n}\n", string(Apply(src, ms[0])), "nil: the statement goes")
	require.Equal(t, "package p\n\nfunc (c *Core) f() {\n\tc.job = nil\n\t_ = g()\n}\n", string(Apply(src, ms[1])), "a call: its value is dropped, the call stays")
}
