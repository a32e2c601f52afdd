package jobspec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/messages"
)

// issueExample is the example of issue 12, as written there.
const issueExample = `jobs:
  lint:
    steps: [{name: vet, run: go vet ./...}]
  test:
    needs: [lint]
    runs-on: [os=linux]
    matrix: {go: ["1.25", "1.26"], db: [sqlite, postgres]}
    exclude: [{go: "1.25", db: postgres}]
    parallel: 4                 # shards: VOLT_SHARD_INDEX (0..3) and VOLT_SHARD_TOTAL (4)
    timeout: 10m
    env: {GOFLAGS: -count=1}
    steps: [{name: test, run: go test -json ./... > report.json}]
    reports: {go-test-json: report.json}      # or junit: 'out/*.xml'
    artifacts: [coverage.out]
  package:
    needs: [test]
    branches: [main, "release/*"]   # runs only when the commit is on one of these
    steps: [{name: build, run: go build -o dist/app ./cmd/app}]
    artifacts: [dist/]
`

// brief is one line per job: "index name needs=[...] runs-on=[...] ...".
func brief(p *messages.Pipeline) []string {
	var out []string
	for i, j := range p.Jobs {
		s := fmt.Sprintf("%d %s needs=%v", i, j.Name, j.Needs)
		if len(j.RunsOn) > 0 {
			s += fmt.Sprintf(" runs-on=%v", j.RunsOn)
		}
		if len(j.Branches) > 0 {
			s += fmt.Sprintf(" branches=%v", j.Branches)
		}
		if j.Retry > 0 {
			s += fmt.Sprintf(" retry=%d", j.Retry)
		}
		if j.FailFast {
			s += " fail-fast"
		}
		if j.AllowFailure {
			s += " allow-failure"
		}
		out = append(out, s)
	}
	return out
}

func TestExpandIssueExample(t *testing.T) {
	p := ExpandPipeline([]byte(issueExample))
	require.Empty(t, p.Error)
	assert.Equal(t, []string{
		"0 lint needs=[]",
		"1 test (go=1.25, db=sqlite) 1/4 needs=[0] runs-on=[os=linux]",
		"2 test (go=1.25, db=sqlite) 2/4 needs=[0] runs-on=[os=linux]",
		"3 test (go=1.25, db=sqlite) 3/4 needs=[0] runs-on=[os=linux]",
		"4 test (go=1.25, db=sqlite) 4/4 needs=[0] runs-on=[os=linux]",
		"5 test (go=1.26, db=sqlite) 1/4 needs=[0] runs-on=[os=linux]",
		"6 test (go=1.26, db=sqlite) 2/4 needs=[0] runs-on=[os=linux]",
		"7 test (go=1.26, db=sqlite) 3/4 needs=[0] runs-on=[os=linux]",
		"8 test (go=1.26, db=sqlite) 4/4 needs=[0] runs-on=[os=linux]",
		"9 test (go=1.26, db=postgres) 1/4 needs=[0] runs-on=[os=linux]",
		"10 test (go=1.26, db=postgres) 2/4 needs=[0] runs-on=[os=linux]",
		"11 test (go=1.26, db=postgres) 3/4 needs=[0] runs-on=[os=linux]",
		"12 test (go=1.26, db=postgres) 4/4 needs=[0] runs-on=[os=linux]",
		"13 package needs=[1 2 3 4 5 6 7 8 9 10 11 12] branches=[main release/*]",
	}, brief(p))

	cell := p.Jobs[7]
	assert.Equal(t, "test", cell.Key)
	require.Len(t, cell.Matrix, 2)
	assert.True(t, proto.Equal(&messages.MatrixValue{Name: "go", Value: "1.26"}, cell.Matrix[0]), "in the file's key order")
	assert.True(t, proto.Equal(&messages.MatrixValue{Name: "db", Value: "sqlite"}, cell.Matrix[1]))
	assert.EqualValues(t, 2, cell.ShardIndex)
	assert.EqualValues(t, 4, cell.ShardTotal)
	assert.Equal(t, messages.CellName("test", cell.Matrix, 2, 4), cell.Name)
	assert.Zero(t, p.Jobs[0].ShardTotal, "no parallel: no shards")
	assert.Nil(t, p.Jobs[0].Matrix)

	// Jobs share no slices: changing one changes no other.
	p.Jobs[1].Needs[0] = 99
	p.Jobs[1].Matrix[0].Value = "x"
	assert.EqualValues(t, 0, p.Jobs[2].Needs[0])
	assert.Equal(t, "1.25", p.Jobs[2].Matrix[0].Value)

	again := ExpandPipeline([]byte(issueExample))
	assert.True(t, proto.Equal(again, ExpandPipeline([]byte(issueExample))), "the same file gives the same pipeline")
	b1, err := proto.MarshalOptions{Deterministic: true}.Marshal(again)
	require.NoError(t, err)
	b2, err := proto.MarshalOptions{Deterministic: true}.Marshal(ExpandPipeline([]byte(issueExample)))
	require.NoError(t, err)
	assert.Equal(t, b1, b2)
}

func TestExpandNoPipeline(t *testing.T) {
	for name, data := range map[string]string{
		"no file":       "",
		"only comments": "# nothing yet\n",
		"single list":   "timeout: 1m\nsteps:\n  - run: make\n",
		"single list that the runner will refuse": "steps: []\n",
		"not a mapping": "- run: make\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := ExpandPipeline([]byte(data))
			assert.Empty(t, p.Jobs)
			assert.Empty(t, p.Error)
		})
	}
}

func TestExpandOrderAndOptions(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "needs may name later jobs: the order puts each after its needs, else the file's",
			yaml: `jobs:
  deploy: {needs: [build, test], steps: [x]}
  docs: {steps: [x]}
  test: {needs: build, steps: [x]}
  build: {steps: [x]}
  lint: {steps: [x]}
`,
			want: []string{
				"0 docs needs=[]",
				"1 build needs=[]",
				"2 test needs=[1]",
				"3 deploy needs=[1 2]",
				"4 lint needs=[]",
			},
		},
		{
			name: "options are copied to every cell",
			yaml: `jobs:
  a:
    matrix: {os: [linux, mac]}
    runs-on: gpu
    retry: 2
    fail-fast: true
    allow-failure: true
    branches: main
    steps: [x]
`,
			want: []string{
				"0 a (os=linux) needs=[] runs-on=[gpu] branches=[main] retry=2 fail-fast allow-failure",
				"1 a (os=mac) needs=[] runs-on=[gpu] branches=[main] retry=2 fail-fast allow-failure",
			},
		},
		{
			name: "parallel without a matrix, and parallel 1",
			yaml: "jobs:\n  a: {parallel: 2, steps: [x]}\n  b: {parallel: 1, needs: [a], steps: [x]}\n",
			want: []string{"0 a 1/2 needs=[]", "1 a 2/2 needs=[]", "2 b 1/1 needs=[0 1]"},
		},
		{
			name: "exclude by one variable, and values written as numbers keep their text",
			yaml: `jobs:
  t:
    matrix: {go: [1.10, "1.26"], db: [a, b, c]}
    exclude: [{db: b}, {go: 1.10, db: c}]
    steps: [x]
`,
			want: []string{
				"0 t (go=1.10, db=a) needs=[]",
				"1 t (go=1.26, db=a) needs=[]",
				"2 t (go=1.26, db=c) needs=[]",
			},
		},
		{
			name: "a diamond",
			yaml: "jobs:\n  d: {needs: [b, c], steps: [x]}\n  c: {needs: [a], steps: [x]}\n  b: {needs: [a], parallel: 2, steps: [x]}\n  a: {steps: [x]}\n",
			want: []string{"0 a needs=[]", "1 c needs=[0]", "2 b 1/2 needs=[0]", "3 b 2/2 needs=[0]", "4 d needs=[2 3 1]"},
		},
		{
			name: "top-level timeout and env beside jobs",
			yaml: "timeout: 5m\nenv: {A: 1}\njobs:\n  a: {steps: [x]}\n",
			want: []string{"0 a needs=[]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ExpandPipeline([]byte(tt.yaml))
			require.Empty(t, p.Error)
			assert.Equal(t, tt.want, brief(p))
			for i, j := range p.Jobs {
				for _, n := range j.Needs {
					assert.Less(t, n, int32(i), "every need comes first")
				}
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // the exact error
	}{
		{"unknown job key", "jobs:\n  lint:\n    stage: x\n    steps: [x]\n",
			`.volt.yml line 3, column 5: lint: unknown key "stage": a job's keys are steps, needs, runs-on, matrix, exclude, parallel, timeout, env, secrets, reports, artifacts, branches, retry, fail-fast, allow-failure`},
		{"unknown top-level key", "jobs:\n  a: {steps: [x]}\nstages: [a]\n",
			`.volt.yml line 3, column 1: unknown key "stages": beside jobs: a file may have only timeout: and env:, which apply to every job`},
		{"steps beside jobs", "steps: [x]\njobs:\n  a: {steps: [x]}\n",
			".volt.yml line 1, column 1: steps: a file with jobs: gives steps under each job: move it there"},
		{"a cycle", "jobs:\n  a: {needs: [c], steps: [x]}\n  b: {needs: [a], steps: [x]}\n  c: {needs: [b], steps: [x]}\n  d: {steps: [x]}\n",
			".volt.yml line 3, column 15: b: needs: a cycle: a → c → b → a: remove one of these needs"},
		{"a cycle of two after a good job", "jobs:\n  ok: {steps: [x]}\n  a:\n    needs: [ok, b]\n    steps: [x]\n  b:\n    needs:\n      - a\n    steps: [x]\n",
			".volt.yml line 8, column 9: b: needs: a cycle: a → b → a: remove one of these needs"},
		{"needs itself", "jobs:\n  a: {needs: [a], steps: [x]}\n",
			".volt.yml line 2, column 15: a: needs: a job cannot need itself"},
		{"a need naming no job", "jobs:\n  lint: {steps: [x]}\n  test:\n    needs: [lint, biuld]\n    steps: [x]\n",
			`.volt.yml line 4, column 19: test: needs: no job is named "biuld": the jobs are lint, test`},
		{"an empty matrix", "jobs:\n  t:\n    matrix: {}\n    steps: [x]\n",
			".volt.yml line 3, column 5: t: matrix: the matrix is empty: give at least one variable with at least one value, or remove matrix:"},
		{"a matrix variable with no values", "jobs:\n  t:\n    matrix: {go: []}\n    steps: [x]\n",
			".volt.yml line 3, column 18: t: matrix: go: the list is empty: give at least one value"},
		{"exclude naming an unknown variable", "jobs:\n  t:\n    matrix: {go: [a, b]}\n    exclude: [{goo: a}]\n    steps: [x]\n",
			`.volt.yml line 4, column 16: t: exclude: "goo" is not a variable of the matrix: the variables are go`},
		{"exclude naming an unknown value", "jobs:\n  t:\n    matrix: {go: [a, b]}\n    exclude: [{go: c}]\n    steps: [x]\n",
			`.volt.yml line 4, column 20: t: exclude: go: "c" is not one of the matrix's values (a, b)`},
		{"exclude without a matrix", "jobs:\n  t:\n    exclude: [{go: c}]\n    steps: [x]\n",
			".volt.yml line 3, column 14: t: exclude: the job has no matrix: to exclude cells from"},
		{"exclude removing every cell", "jobs:\n  t:\n    matrix: {go: [a, b]}\n    exclude: [{go: a}, {go: b}]\n    steps: [x]\n",
			".volt.yml line 3, column 5: t: matrix: exclude: removes every cell: keep at least one"},
		{"parallel 0", "jobs:\n  t: {parallel: 0, steps: [x]}\n",
			`.volt.yml line 2, column 17: t: parallel: "0" is not a whole number from 1 to 100 (the number of shards)`},
		{"parallel 101", "jobs:\n  t: {parallel: 101, steps: [x]}\n",
			`.volt.yml line 2, column 17: t: parallel: "101" is not a whole number from 1 to 100 (the number of shards)`},
		{"too many cells", "jobs:\n  a: {parallel: 100, steps: [x]}\n  b:\n    matrix: {x: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n    parallel: 91\n    steps: [x]\n",
			".volt.yml line 5, column 15: b: the pipeline expands to 1010 jobs or more, beyond the 1000 allowed (each matrix cell and shard is a job)"},
		{"a matrix beyond the cap", "jobs:\n  t:\n    matrix: {a: [1,2,3,4,5,6,7,8,9,10], b: [1,2,3,4,5,6,7,8,9,10], c: [1,2,3,4,5,6,7,8,9,10,11]}\n    steps: [x]\n",
			".volt.yml line 3, column 5: t: matrix: more than 1000 cells: a pipeline has at most 1000 jobs"},
		{"a job with no steps", "jobs:\n  lint: {steps: [x]}\n  test:\n    needs: [lint]\n",
			".volt.yml line 3, column 3: test: no steps: add a steps: list with at least one run: command"},
		{"a job with an empty steps list", "jobs:\n  test:\n    steps: []\n",
			".volt.yml line 3, column 12: test: steps: the list is empty: add at least one step with a run: command"},
		{"a bad runs-on label", "jobs:\n  t:\n    runs-on: [gpu, 'arch=arm 64']\n    steps: [x]\n",
			`.volt.yml line 3, column 20: t: runs-on: label "arch=arm 64": the value "arm 64" after = must be 1 to 63 letters, digits, _, ., +, / or -`},
		{"a runs-on label with a comma", "jobs:\n  t:\n    runs-on: 'gpu,cuda'\n    steps: [x]\n",
			`.volt.yml line 3, column 14: t: runs-on: label "gpu,cuda": "gpu,cuda" is not a label word: use up to 63 letters, digits, _, . and -, starting with a letter or digit`},
		{"no jobs", "jobs: {}\n", ".volt.yml line 1, column 1: jobs: no jobs: add at least one, such as test: {steps: [{run: make test}]}"},
		{"jobs not a mapping", "jobs: [a]\n", ".volt.yml line 1, column 7: jobs: want a mapping of job names to jobs (lint: {steps: [...]}), found a list"},
		{"a bad job name", "jobs:\n  'a b': {steps: [x]}\n",
			`.volt.yml line 2, column 3: jobs: "a b" is not a job name: use up to 64 letters, digits, _, - and ., starting with a letter, digit or _`},
		{"a job given twice", "jobs:\n  a: {steps: [x]}\n  a: {steps: [y]}\n", ".volt.yml line 3, column 3: jobs: a given twice: keep one"},
		{"a bad step", "jobs:\n  a:\n    steps:\n      - name: x\n        script: y\n",
			`.volt.yml line 5, column 9: a: step 1: unknown key "script": allowed keys are name, run and timeout`},
		{"a bad timeout", "jobs:\n  a: {timeout: soon, steps: [x]}\n",
			`.volt.yml line 2, column 16: a: timeout: "soon" is not a duration: write it like 10m, 90s or 1h30m (a bare number means seconds)`},
		{"a bad top-level timeout", "timeout: soon\njobs:\n  a: {steps: [x]}\n",
			`.volt.yml line 1, column 10: timeout: "soon" is not a duration: write it like 10m, 90s or 1h30m (a bare number means seconds)`},
		{"a secret set in the top-level env", "env: {TOKEN: x}\njobs:\n  a: {secrets: [TOKEN], steps: [x]}\n",
			".volt.yml line 3, column 16: a: secrets: TOKEN is also set in env: keep one"},
		{"env naming a matrix variable", "jobs:\n  a: {env: {VOLT_MATRIX_GO: x}, steps: [x]}\n",
			".volt.yml line 2, column 12: a: env: VOLT_MATRIX_GO is set by Volt for matrix and shard jobs: choose another name"},
		{"a report kind", "jobs:\n  a: {reports: {tap: out.tap}, steps: [x]}\n",
			`.volt.yml line 2, column 17: a: reports: "tap" is not a report kind: use junit or go-test-json`},
		{"an artifact outside the repository", "jobs:\n  a: {artifacts: [../secret], steps: [x]}\n",
			`.volt.yml line 2, column 19: a: artifacts: "../secret" leaves the repository: remove the ..`},
		{"an absolute artifact", "jobs:\n  a: {artifacts: [/etc/passwd], steps: [x]}\n",
			`.volt.yml line 2, column 19: a: artifacts: "/etc/passwd" must be relative to the repository, with / between folders`},
		{"a bad branch pattern", "jobs:\n  a: {branches: ['release/[', main], steps: [x]}\n",
			`.volt.yml line 2, column 18: a: branches: "release/[" is not a valid pattern: syntax error in pattern`},
		{"retry too high", "jobs:\n  a: {retry: 11, steps: [x]}\n",
			`.volt.yml line 2, column 14: a: retry: "11" is not a whole number from 0 to 10 (how many times a failed run is run again)`},
		{"fail-fast not a bool", "jobs:\n  a: {fail-fast: maybe, steps: [x]}\n",
			`.volt.yml line 2, column 18: a: fail-fast: want true or false, found "maybe"`},
		{"matrix names that clash in upper case", "jobs:\n  a:\n    matrix: {go: [x], GO: [y]}\n    steps: [x]\n",
			".volt.yml line 3, column 23: a: matrix: go and GO are both VOLT_MATRIX_GO: keep one"},
		{"a matrix value given twice", "jobs:\n  a:\n    matrix: {go: [x, x]}\n    steps: [x]\n",
			".volt.yml line 3, column 22: a: matrix: go: x given twice: keep one"},
		{"a matrix value that would make two names alike", "jobs:\n  a:\n    matrix: {x: ['1, y=2', '1'], y: ['2, y=3', '3']}\n    steps: [x]\n",
			`.volt.yml line 3, column 18: a: matrix: x: want a value of up to 128 characters without , = ( ) or spaces around it (it is shown in the job's name), found "1, y=2"`},
		{"a blank matrix value", "jobs:\n  a:\n    matrix: {x: [' ']}\n    steps: [x]\n",
			`.volt.yml line 3, column 18: a: matrix: x: want a value of up to 128 characters without , = ( ) or spaces around it (it is shown in the job's name), found " "`},
		{"not YAML", "jobs:\n  a: {steps: [x}\n", ".volt.yml line 2: a: did not find expected ',' or ']'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ExpandPipeline([]byte(tt.yaml))
			assert.Empty(t, p.Jobs)
			assert.Equal(t, tt.want, p.Error)
		})
	}
}

// TestExpandErrorsAreTheRunnersToo: JobSpec refuses a broken file with the
// same error, so a runner never runs a job of a file the observer refused.
func TestExpandErrorsAreTheRunnersToo(t *testing.T) {
	data := []byte("jobs:\n  a: {needs: [b], steps: [x]}\n  b: {needs: [a], steps: [x]}\n")
	p := ExpandPipeline(data)
	require.NotEmpty(t, p.Error)
	_, err := JobSpec(data, &messages.PipelineJob{Key: "a", Name: "a"})
	require.Error(t, err)
	assert.Equal(t, p.Error, err.Error())
}

func TestExpandSizeCap(t *testing.T) {
	// 500 cells needing 500 cells each: 250,000 needs, within 1 MiB.
	ok := "jobs:\n  a: {parallel: 100, matrix: {x: [1, 2, 3, 4, 5]}, steps: [x]}\n  b: {needs: [a], parallel: 100, matrix: {x: [1, 2, 3, 4, 5]}, steps: [x]}\n"
	p := ExpandPipeline([]byte(ok))
	require.Empty(t, p.Error)
	assert.Len(t, p.Jobs, 1000)
	assert.Len(t, p.Jobs[999].Needs, 500)
	assert.LessOrEqual(t, proto.Size(p), maxPipelineBytes)

	// Long matrix values on every cell go beyond it.
	long := strings.Repeat("v", 120)
	var vals []string
	for i := 0; i < 10; i++ {
		vals = append(vals, fmt.Sprintf("%s%d", long, i))
	}
	list := "[" + strings.Join(vals, ", ") + "]"
	big := fmt.Sprintf("jobs:\n  a:\n    matrix: {a: %s, b: %s, c: %s, d: [%s], e: [%s]}\n    steps: [x]\n", list, list, list, long, long)
	p = ExpandPipeline([]byte(big))
	assert.Zero(t, len(p.Jobs))
	assert.Contains(t, p.Error, ".volt.yml line 1, column 1: jobs: the expanded pipeline takes ")
	assert.Contains(t, p.Error, "more than 1048576: use fewer matrix cells, shards or needs")
}

func TestJobSpec(t *testing.T) {
	data := []byte("timeout: 5m\nenv: {A: top, B: top}\n" + strings.TrimPrefix(issueExample, "") +
		"  other:\n    env: {B: own}\n    secrets: [TOKEN]\n    reports: {junit: ['out/*.xml', more.xml], go-test-json: r.json}\n    steps: [{run: make}]\n")
	p := ExpandPipeline(data)
	require.Empty(t, p.Error)

	spec, err := JobSpec(data, p.Jobs[7]) // test (go=1.26, db=sqlite) 3/4
	require.NoError(t, err)
	assert.Equal(t, &Spec{
		Timeout: 10 * time.Minute,
		Env: map[string]string{
			"A": "top", "B": "top", "GOFLAGS": "-count=1",
			"VOLT_MATRIX_GO": "1.26", "VOLT_MATRIX_DB": "sqlite",
			"VOLT_SHARD_INDEX": "2", "VOLT_SHARD_TOTAL": "4",
		},
		Steps:     []Step{{Name: "test", Run: "go test -json ./... > report.json"}},
		Reports:   []Report{{Kind: ReportGoTestJSON, Path: "report.json"}},
		Artifacts: []string{"coverage.out"},
	}, spec)

	spec, err = JobSpec(data, p.Jobs[13]) // package
	require.NoError(t, err)
	assert.Equal(t, &Spec{
		Timeout:   5 * time.Minute,
		Env:       map[string]string{"A": "top", "B": "top"},
		Steps:     []Step{{Name: "build", Run: "go build -o dist/app ./cmd/app"}},
		Artifacts: []string{"dist/"},
	}, spec, "the file's timeout and env apply")

	spec, err = JobSpec(data, p.Jobs[14]) // other
	require.NoError(t, err)
	assert.Equal(t, &Spec{
		Timeout: 5 * time.Minute,
		Env:     map[string]string{"A": "top", "B": "own"},
		Secrets: []string{"TOKEN"},
		Steps:   []Step{{Name: "step 1", Run: "make"}},
		Reports: []Report{{Kind: ReportJUnit, Path: "out/*.xml"}, {Kind: ReportJUnit, Path: "more.xml"}, {Kind: ReportGoTestJSON, Path: "r.json"}},
	}, spec, "a job's env is laid over the file's")

	spec, err = JobSpec([]byte(issueExample), p.Jobs[0])
	require.NoError(t, err)
	assert.Nil(t, spec.Env, "no env, no matrix, no shards: nil")
}

func TestJobSpecRefusesCellsNotInTheFile(t *testing.T) {
	cell := func(key string, shard, total int32, mv ...string) *messages.PipelineJob {
		c := &messages.PipelineJob{Key: key, ShardIndex: shard, ShardTotal: total}
		for i := 0; i+1 < len(mv); i += 2 {
			c.Matrix = append(c.Matrix, &messages.MatrixValue{Name: mv[i], Value: mv[i+1]})
		}
		c.Name = messages.CellName(key, c.Matrix, shard, total)
		return c
	}
	tests := []struct {
		name string
		cell *messages.PipelineJob
		want string
	}{
		{"no such key", cell("deploy", 0, 0), `.volt.yml has no job "deploy" (its jobs are lint, test, package): build the commit again`},
		{"a value not in the matrix", cell("test", 0, 4, "go", "1.27", "db", "sqlite"), `job "test (go=1.27, db=sqlite) 1/4": go="1.27" is not in test's matrix in .volt.yml: build the commit again`},
		{"variables out of order", cell("test", 0, 4, "db", "sqlite", "go", "1.26"), `job "test (db=sqlite, go=1.26) 1/4": db="sqlite" is not in test's matrix in .volt.yml: build the commit again`},
		{"a missing variable", cell("test", 0, 4, "go", "1.26"), `job "test (go=1.26) 1/4": 1 matrix values, but .volt.yml gives test a matrix of 2 variables: build the commit again`},
		{"an excluded cell", cell("test", 0, 4, "go", "1.25", "db", "postgres"), `job "test (go=1.25, db=postgres) 1/4": test's exclude: in .volt.yml leaves this cell out: build the commit again`},
		{"a shard beyond the total", cell("test", 4, 4, "go", "1.26", "db", "sqlite"), `job "test (go=1.26, db=sqlite) 5/4": shard 4 is not one of 0..3`},
		{"a negative shard", cell("test", -1, 4, "go", "1.26", "db", "sqlite"), `job "test (go=1.26, db=sqlite) 0/4": shard -1 is not one of 0..3`},
		{"another shard total", cell("test", 0, 2, "go", "1.26", "db", "sqlite"), `job "test (go=1.26, db=sqlite) 1/2": 2 shards, but .volt.yml gives test parallel: 4: build the commit again`},
		{"shards where there are none", cell("lint", 0, 2), `job "lint 1/2": 2 shards, but .volt.yml gives lint parallel: 0: build the commit again`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := JobSpec([]byte(issueExample), tt.cell)
			require.Error(t, err)
			assert.Nil(t, spec)
			assert.Equal(t, tt.want, err.Error())
		})
	}
	_, err := JobSpec([]byte("steps: [x]\n"), cell("lint", 0, 0))
	assert.EqualError(t, err, `.volt.yml has no jobs: but this is its job "lint": build the commit again`)
}

func TestLoadJob(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(issueExample), 0o644))
	p := ExpandPipeline([]byte(issueExample))

	spec, err := LoadJob(dir, p.Jobs[1])
	require.NoError(t, err)
	assert.Equal(t, "0", spec.Env["VOLT_SHARD_INDEX"])
	assert.Equal(t, "1.25", spec.Env["VOLT_MATRIX_GO"])

	_, err = LoadJob(dir, &messages.PipelineJob{Key: "nope", Name: "nope"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), dir)
	assert.Contains(t, err.Error(), `no job "nope"`)

	_, err = LoadJob(dir, nil)
	require.Error(t, err, "a single-list build of a pipeline file")
	assert.Contains(t, err.Error(), ".volt.yml line 1: jobs: this file is a pipeline")

	single := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(single, FileName), []byte("steps: [make]\n"), 0o644))
	spec, err = LoadJob(single, nil)
	require.NoError(t, err)
	assert.Equal(t, &Spec{Steps: []Step{{Name: "step 1", Run: "make"}}}, spec, "nil is Load")

	_, err = LoadJob(t.TempDir(), p.Jobs[0])
	require.Error(t, err)
	assert.Contains(t, err.Error(), `job "lint": the commit has no .volt.yml`)

	huge := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(huge, FileName), []byte(issueExample+"#"+strings.Repeat("x", MaxFileSize)), 0o644))
	_, err = LoadJob(huge, p.Jobs[0])
	require.Error(t, err)
	assert.Contains(t, err.Error(), "larger than 256 KiB")
}

func FuzzExpandPipeline(f *testing.F) {
	for _, s := range []string{
		issueExample,
		"",
		"steps: [x]",
		"jobs:\n  a: {needs: [b], steps: [x]}\n  b: {needs: [a], steps: [x]}\n",
		"jobs:\n  a: {matrix: {x: [1, 2]}, exclude: [{x: 1}], parallel: 3, steps: [x]}\n  b: {needs: a, steps: [x]}\n",
		"jobs:\n  a: &a {steps: [x]}\n  b: *a\n",
		"env: {A: 1}\ntimeout: 1m\njobs: {a: {steps: [x], retry: 2, fail-fast: true, runs-on: [gpu, os=linux]}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := ExpandPipeline(data)
		if p.Error != "" {
			if len(p.Jobs) > 0 {
				t.Fatalf("jobs and an error: %v", p)
			}
			return
		}
		if len(p.Jobs) > MaxPipelineJobs {
			t.Fatalf("%d jobs", len(p.Jobs))
		}
		names := map[string]bool{}
		for i, j := range p.Jobs {
			if names[j.Name] {
				t.Fatalf("two jobs named %q", j.Name)
			}
			names[j.Name] = true
			for _, n := range j.Needs {
				if n < 0 || n >= int32(i) {
					t.Fatalf("job %d needs %d", i, n)
				}
			}
			for _, l := range j.RunsOn {
				if ValidateLabel(l) != nil {
					t.Fatalf("bad label %q", l)
				}
			}
			spec, err := JobSpec(data, j)
			if err != nil {
				t.Fatalf("the runner refuses job %q: %v", j.Name, err)
			}
			if len(spec.Steps) == 0 {
				t.Fatalf("job %q has no steps", j.Name)
			}
		}
		if !proto.Equal(p, ExpandPipeline(data)) {
			t.Fatal("not deterministic")
		}
	})
}
