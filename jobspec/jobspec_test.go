package jobspec

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want *Spec
	}{
		{
			name: "full example",
			yaml: `timeout: 10m
env:
  PYTHONDONTWRITEBYTECODE: "1"
steps:
  - name: unit
    run: python3 -m unittest discover -s tests -v
  - name: lint
    run: ./scripts/lint.sh
    timeout: 2m
`,
			want: &Spec{
				Timeout: 10 * time.Minute,
				Env:     map[string]string{"PYTHONDONTWRITEBYTECODE": "1"},
				Steps: []Step{
					{Name: "unit", Run: "python3 -m unittest discover -s tests -v"},
					{Name: "lint", Run: "./scripts/lint.sh", Timeout: 2 * time.Minute},
				},
			},
		},
		{
			name: "no timeout and default names",
			yaml: "steps:\n  - run: make test\n  - run: make lint\n",
			want: &Spec{
				Steps: []Step{{Name: "step 1", Run: "make test"}, {Name: "step 2", Run: "make lint"}},
			},
		},
		{
			name: "bare number is seconds",
			yaml: "timeout: 90\nsteps:\n  - run: x\n    timeout: 1.5\n",
			want: &Spec{Timeout: 90 * time.Second, Steps: []Step{{Name: "step 1", Run: "x", Timeout: 1500 * time.Millisecond}}},
		},
		{
			name: "step timeout may exceed job timeout",
			yaml: "timeout: 1m\nsteps:\n  - run: x\n    timeout: 1h\n",
			want: &Spec{Timeout: time.Minute, Steps: []Step{{Name: "step 1", Run: "x", Timeout: time.Hour}}},
		},
		{
			name: "plain string step",
			yaml: "steps:\n  - ./test.sh\n",
			want: &Spec{Steps: []Step{{Name: "step 1", Run: "./test.sh"}}},
		},
		{
			name: "env values of any scalar type are text",
			yaml: "env:\n  A: 1\n  B: true\n  C:\n  _d9: x y\nsteps: [{run: x}]\n",
			want: &Spec{
				Env:   map[string]string{"A": "1", "B": "true", "C": "", "_d9": "x y"},
				Steps: []Step{{Name: "step 1", Run: "x"}},
			},
		},
		{
			name: "multi-line run",
			yaml: "steps:\n  - name: script\n    run: |\n      echo a\n      echo b\n",
			want: &Spec{Steps: []Step{{Name: "script", Run: "echo a\necho b\n"}}},
		},
		{
			name: "secrets in file order",
			yaml: "secrets: [DEPLOY_KEY, _npm2]\nsteps: [{run: x}]\n",
			want: &Spec{Secrets: []string{"DEPLOY_KEY", "_npm2"}, Steps: []Step{{Name: "step 1", Run: "x"}}},
		},
		{
			name: "secrets as a block list",
			yaml: "secrets:\n  - A\n  - B\nsteps: [{run: x}]\n",
			want: &Spec{Secrets: []string{"A", "B"}, Steps: []Step{{Name: "step 1", Run: "x"}}},
		},
		{
			name: "empty or null secrets",
			yaml: "secrets:\nsteps: [{run: x}]\n",
			want: &Spec{Steps: []Step{{Name: "step 1", Run: "x"}}},
		},
		{
			name: "anchors and aliases",
			yaml: "x: &cmd make\nsteps: [{run: *cmd}]\n",
			want: nil, // unknown key x
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.yaml))
			if tt.want == nil {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // exact error text
	}{
		{"syntax", "steps:\n  - name: a\n    run: [x, y\n", ".volt.yml line 3: run: did not find expected ',' or ']'"},
		{"empty file", "", ".volt.yml: the file is empty: add a steps: list with at least one run: command"},
		{"not a mapping", "- run: x\n", ".volt.yml line 1: want a mapping with timeout:, env: and steps:, found a list"},
		{"no steps", "timeout: 1m\n", ".volt.yml line 1: no steps: add a steps: list with at least one run: command"},
		{"empty steps", "steps: []\n", ".volt.yml line 1: steps: the list is empty: add at least one step with a run: command"},
		{"steps not a list", "steps: make\n", `.volt.yml line 1: steps: want a list of steps (- name: ..., run: ...), found "make"`},
		{"unknown key", "steps:\n  - run: x\nstage: y\n", `.volt.yml line 3: unknown key "stage": allowed keys are timeout, env, secrets and steps`},
		{"unknown step key", "steps:\n  - run: x\n    script: y\n", `.volt.yml line 3: step 1: unknown key "script": allowed keys are name, run and timeout`},
		{"missing run", "steps:\n  - run: x\n  - name: lint\n", ".volt.yml line 3: lint: run: is missing or empty: give the shell command to run"},
		{"blank run", "steps:\n  - run: '  '\n", ".volt.yml line 2: step 1: run: is missing or empty: give the shell command to run"},
		{"null run", "steps:\n  - run:\n", ".volt.yml line 2: step 1: run: want a shell command, found nothing"},
		{"bad duration", "timeout: soon\nsteps: [{run: x}]\n", `.volt.yml line 1: timeout: "soon" is not a duration: write it like 10m, 90s or 1h30m (a bare number means seconds)`},
		{"zero duration", "timeout: 0\nsteps: [{run: x}]\n", `.volt.yml line 1: timeout: "0" must be positive: write it like 10m or 90s`},
		{"negative step duration", "steps:\n  - run: x\n    timeout: -1m\n", `.volt.yml line 3: step 1: timeout: "-1m" must be positive: write it like 10m or 90s`},
		{"bad env name", "env:\n  1A: x\nsteps: [{run: x}]\n", `.volt.yml line 2: env: "1A" is not a valid variable name: use letters, digits and _, not starting with a digit`},
		{"env name with dash", "env:\n  A-B: x\nsteps: [{run: x}]\n", `.volt.yml line 2: env: "A-B" is not a valid variable name: use letters, digits and _, not starting with a digit`},
		{"env not mapping", "env: [A]\nsteps: [{run: x}]\n", ".volt.yml line 1: env: want a mapping of NAME: value, found a list"},
		{"env nested value", "env:\n  A: [1]\nsteps: [{run: x}]\n", ".volt.yml line 2: env: A: want a plain value, found a list"},
		{"secrets not a list", "secrets: DEPLOY_KEY\nsteps: [{run: x}]\n", `.volt.yml line 1: secrets: want a list of secret names such as [DEPLOY_KEY], found "DEPLOY_KEY"`},
		{"secrets mapping", "secrets:\n  A: b\nsteps: [{run: x}]\n", ".volt.yml line 2: secrets: want a list of secret names such as [DEPLOY_KEY], found a mapping"},
		{"bad secret name", "secrets:\n  - OK\n  - 9LIVES\nsteps: [{run: x}]\n", `.volt.yml line 3: secrets: "9LIVES" is not a valid secret name: use letters, digits and _, not starting with a digit (it becomes the variable's name)`},
		{"secret name with a dash", "secrets: [DEPLOY-KEY]\nsteps: [{run: x}]\n", `.volt.yml line 1: secrets: "DEPLOY-KEY" is not a valid secret name: use letters, digits and _, not starting with a digit (it becomes the variable's name)`},
		{"nested secret", "secrets: [[A]]\nsteps: [{run: x}]\n", ".volt.yml line 1: secrets: a list is not a valid secret name: use letters, digits and _, not starting with a digit (it becomes the variable's name)"},
		{"null secret", "secrets:\n  -\nsteps: [{run: x}]\n", ".volt.yml line 2: secrets: nothing is not a valid secret name: use letters, digits and _, not starting with a digit (it becomes the variable's name)"},
		{"duplicate secret", "secrets:\n  - A\n  - A\nsteps: [{run: x}]\n", ".volt.yml line 3: secrets: A given twice: keep one"},
		{"secret also in env", "env:\n  A: x\nsecrets:\n  - A\nsteps: [{run: x}]\n", ".volt.yml line 4: secrets: A is also set in env: keep one"},
		{"duplicate key", "steps: [{run: x}]\nsteps: [{run: y}]\n", ".volt.yml line 2: steps: given twice: keep one"},
		{"duplicate step name", "steps:\n  - {name: a, run: x}\n  - {name: a, run: y}\n", `.volt.yml line 3: steps: name "a" is used twice: give each step its own name`},
		{"empty name", "steps:\n  - {name: '', run: x}\n", ".volt.yml line 2: step 1: name: want a non-empty single line"},
		{"parser error at end of file", "steps: [a\n", ".volt.yml line 2: did not find expected ',' or ']'"},
		{"tab indentation", "steps:\n\t- run: x\n", ".volt.yml line 2: run: found character that cannot start any token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := Parse([]byte(tt.yaml))
			require.Error(t, err)
			assert.Nil(t, spec)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string // path -> content; a trailing "/" makes a directory
		want    *Spec
		wantErr string
	}{
		{
			name:  "volt.yml wins over tests folder",
			files: map[string]string{FileName: "steps: [{name: t, run: make}]\n", "tests/": ""},
			want:  &Spec{Steps: []Step{{Name: "t", Run: "make"}}},
		},
		{
			name:  "tests folder gives the default",
			files: map[string]string{"tests/": ""},
			want:  &Spec{Steps: []Step{{Name: "unittest", Run: DefaultCommand}}},
		},
		{
			name:    "tests is a file",
			files:   map[string]string{"tests": "x"},
			wantErr: "add a .volt.yml with steps, or a tests/ folder of Python unittest files",
		},
		{
			name:    "neither",
			wantErr: "add a .volt.yml with steps, or a tests/ folder of Python unittest files",
		},
		{
			name:    "broken volt.yml",
			files:   map[string]string{FileName: "steps: {\n"},
			wantErr: ".volt.yml line 2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				path := filepath.Join(dir, name)
				if name[len(name)-1] == '/' {
					require.NoError(t, os.MkdirAll(path, 0o755))
					continue
				}
				require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
			}
			got, err := Load(dir)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Contains(t, err.Error(), dir)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLoadNoSpecIsErrNoSpec(t *testing.T) {
	_, err := Load(t.TempDir())
	assert.ErrorIs(t, err, ErrNoSpec)
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"timeout: 10m\nenv:\n  A: \"1\"\nsteps:\n  - name: unit\n    run: make\n    timeout: 2m\n",
		"steps: [x, {run: y}]",
		"a: &a [*a]",
		"steps:\n  - run: [x, y\n",
		"timeout: 1e300\nsteps: [{run: x}]",
		"env: {A: *b}",
		"--- !!binary\n",
		"secrets: [A, B]\nsteps: [{run: x}]",
		"env: {A: 1}\nsecrets: [A]\nsteps: [x]",
		"secrets: [&a A, *a]\nsteps: [x]",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := Parse(data)
		if err != nil {
			if spec != nil {
				t.Fatalf("spec and error both returned")
			}
			return
		}
		if len(spec.Steps) == 0 || spec.Timeout < 0 {
			t.Fatalf("accepted spec without steps or timeout: %+v", spec)
		}
		seen := map[string]bool{}
		for _, name := range spec.Secrets {
			if !envName.MatchString(name) || seen[name] {
				t.Fatalf("accepted invalid or repeated secret name %q", name)
			}
			if _, ok := spec.Env[name]; ok {
				t.Fatalf("accepted secret %q that env: sets too", name)
			}
			seen[name] = true
		}
		for _, s := range spec.Steps {
			if s.Name == "" || s.Run == "" || s.Timeout < 0 {
				t.Fatalf("accepted invalid step %+v", s)
			}
		}
	})
}

// TestJobTimeout: the dispatcher's --job-timeout applies to a repository
// without .volt.yml (issue 11, bug A); a .volt.yml timeout still wins.
func TestJobTimeout(t *testing.T) {
	const configured = 30 * time.Second
	noFile := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(noFile, "tests"), 0o755))
	withFile := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(withFile, FileName), []byte("timeout: 5m\nsteps: [{run: make}]\n"), 0o644))
	tests := []struct {
		name       string
		dir        string
		configured time.Duration
		want       time.Duration
	}{
		{"no .volt.yml takes the dispatcher's", noFile, configured, configured},
		{"no .volt.yml and nothing configured", noFile, 0, DefaultTimeout},
		{".volt.yml wins", withFile, configured, 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := Load(tt.dir)
			require.NoError(t, err)
			assert.Equal(t, tt.want, spec.JobTimeout(tt.configured))
		})
	}
}
