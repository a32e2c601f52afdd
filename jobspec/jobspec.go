package jobspec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// FileName is the name of the job description at the root of a repository.
const FileName = ".volt.yml"

// DefaultTimeout limits a whole job when neither its .volt.yml nor the
// dispatcher's configuration (--job-timeout) sets a timeout. It is the one
// place the default is written: the dispatcher's default configuration
// takes it from here.
const DefaultTimeout = 10 * time.Minute

// DefaultCommand is the original design's convention for a repo with a tests/
// folder and no config.
const DefaultCommand = "python3 -m unittest discover -s tests -v"

// ErrNoSpec is returned (wrapped) by Load when a directory has neither a
// .volt.yml nor a tests/ folder, so there is nothing to run.
var ErrNoSpec = errors.New("no job description")

// Step is one shell command of a job.
type Step struct {
	// Name identifies the step in logs and results; "step N" when the file gives none.
	Name string
	// Run is the shell command, run with sh -c.
	Run string
	// Timeout limits this step; 0 means no limit beyond the job's.
	Timeout time.Duration
}

// Spec is a parsed job description.
type Spec struct {
	// Timeout limits the whole job; 0 when the file sets none (and in Load's
	// default spec), so that JobTimeout applies the dispatcher's.
	Timeout time.Duration
	// Env holds extra environment variables for every step; nil when none.
	Env map[string]string
	// Steps run in order; the first failing step ends the job. Never empty.
	Steps []Step
	// Secrets names the secrets the job asks for (secrets: [NAME, ...]), in
	// the file's order; nil when none. The dispatcher decides whether the job
	// gets them (by the repository and branch each secret is bound to), not
	// this file: whoever can push writes it.
	Secrets []string
	// Artifacts are the paths (files, directories ending in "/", or globs)
	// relative to the workspace that the runner uploads after the steps
	// (artifacts: in the jobs format); nil when none.
	Artifacts []string
	// Reports are the test reports the job writes (reports: in the jobs
	// format), by kind in the file's order; nil when none.
	Reports []Report
}

// Report kinds (the keys of reports:).
const (
	// ReportJUnit is JUnit XML.
	ReportJUnit = "junit"
	// ReportGoTestJSON is the output of `go test -json`.
	ReportGoTestJSON = "go-test-json"
)

// Report is one test report a job writes.
type Report struct {
	// Kind is ReportJUnit or ReportGoTestJSON.
	Kind string
	// Path is a file or glob relative to the workspace.
	Path string
}

// JobTimeout is the limit of the whole job: the file's timeout if it sets
// one, else configured (the dispatcher's --job-timeout, which RunJob
// carries), else DefaultTimeout.
func (s *Spec) JobTimeout(configured time.Duration) time.Duration {
	switch {
	case s.Timeout > 0:
		return s.Timeout
	case configured > 0:
		return configured
	}
	return DefaultTimeout
}

// parseError is an error at a place in .volt.yml.
type parseError struct {
	line int
	// column is shown for the jobs format only: the single-list format's
	// errors read as they always have (Parse clears it).
	column int
	msg    string
}

func (e *parseError) Error() string {
	switch {
	case e.line > 0 && e.column > 0:
		return fmt.Sprintf("%s line %d, column %d: %s", FileName, e.line, e.column, e.msg)
	case e.line > 0:
		return fmt.Sprintf("%s line %d: %s", FileName, e.line, e.msg)
	}
	return fmt.Sprintf("%s: %s", FileName, e.msg)
}

func errorAt(n *yaml.Node, format string, args ...any) error {
	return &parseError{line: n.Line, column: n.Column, msg: fmt.Sprintf(format, args...)}
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// parserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner) errors. yaml.v3 reports their line 0-based, and leaves the line
// out when it is the first one.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

var keyAtLineStart = regexp.MustCompile(`^\s*(?:-\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*:`)

// syntaxError turns a yaml.v3 syntax error into one that names .volt.yml, the
// 1-based line and, when that line starts with a key, the key.
func syntaxError(data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, convErr := strconv.Atoi(m[1])
		if convErr == nil {
			line, msg = n, m[2]
		}
	}
	if parserProblems[msg] {
		line++
	}
	if line > 0 {
		lines := strings.Split(string(data), "\n")
		if line <= len(lines) {
			if m := keyAtLineStart.FindStringSubmatch(lines[line-1]); m != nil {
				msg = m[1] + ": " + msg
			}
		}
	}
	return &parseError{line: line, msg: msg}
}

// Parse parses the contents of a .volt.yml file in the single-list format
// (timeout, env, secrets, steps). Errors name the file and, where known,
// the line, and say what to change. A file in the jobs format is refused:
// its jobs run as the jobs of a build (ExpandPipeline, LoadJob).
func Parse(data []byte) (*Spec, error) {
	spec, err := parseSingle(data)
	var pe *parseError
	if errors.As(err, &pe) {
		pe.column = 0
	}
	return spec, err
}

// document reads data as one YAML document and returns its root, or nil
// for a file with no content (empty, or only comments).
func document(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxError(data, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return resolve(doc.Content[0]), nil
}

func parseSingle(data []byte) (*Spec, error) {
	root, err := document(data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, &parseError{msg: "the file is empty: add a steps: list with at least one run: command"}
	}
	if root.Kind != yaml.MappingNode {
		return nil, errorAt(root, "want a mapping with timeout:, env: and steps:, found %s", kindName(root))
	}
	spec := &Spec{}
	var stepsNode, secretsNode *yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, value := resolve(root.Content[i]), resolve(root.Content[i+1])
		if key.Kind != yaml.ScalarNode {
			return nil, errorAt(key, "want a key name, found %s", kindName(key))
		}
		if seen[key.Value] {
			return nil, errorAt(key, "%s: given twice: keep one", key.Value)
		}
		seen[key.Value] = true
		switch key.Value {
		case "timeout":
			d, err := parseDuration(value, "timeout")
			if err != nil {
				return nil, err
			}
			spec.Timeout = d
		case "env":
			env, err := parseEnv(value)
			if err != nil {
				return nil, err
			}
			spec.Env = env
		case "secrets":
			secretsNode = value
			secrets, err := parseSecrets(value)
			if err != nil {
				return nil, err
			}
			spec.Secrets = secrets
		case "steps":
			stepsNode = value
		case "jobs":
			return nil, errorAt(key, "jobs: this file is a pipeline, and this job was started without naming one of its jobs: update the observer and the dispatcher to a Volt that knows pipelines")
		default:
			return nil, errorAt(key, "unknown key %q: allowed keys are timeout, env, secrets and steps", key.Value)
		}
	}
	if stepsNode == nil {
		return nil, errorAt(root, "no steps: add a steps: list with at least one run: command")
	}
	steps, err := parseSteps(stepsNode)
	if err != nil {
		return nil, err
	}
	spec.Steps = steps
	for _, name := range spec.Secrets {
		if _, both := spec.Env[name]; both {
			return nil, errorAt(secretsNode, "secrets: %s is also set in env: keep one", name)
		}
	}
	return spec, nil
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	default:
		return "something else"
	}
}

// parseDuration reads Go duration syntax ("90s", "10m") or a bare number of seconds.
func parseDuration(n *yaml.Node, what string) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return 0, errorAt(n, "%s: want a duration such as 10m or 90s, found %s", what, kindName(n))
	}
	s := strings.TrimSpace(n.Value)
	var d time.Duration
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if secs > 0 && secs < float64(1<<63-1)/float64(time.Second) {
			d = time.Duration(secs * float64(time.Second))
		}
	} else {
		parsed, err := time.ParseDuration(s)
		if err != nil {
			return 0, errorAt(n, "%s: %q is not a duration: write it like 10m, 90s or 1h30m (a bare number means seconds)", what, s)
		}
		d = parsed
	}
	if d <= 0 {
		return 0, errorAt(n, "%s: %q must be positive: write it like 10m or 90s", what, s)
	}
	return d, nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func parseEnv(n *yaml.Node) (map[string]string, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, errorAt(n, "env: want a mapping of NAME: value, found %s", kindName(n))
	}
	env := make(map[string]string, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := resolve(n.Content[i]), resolve(n.Content[i+1])
		if key.Kind != yaml.ScalarNode || !envName.MatchString(key.Value) {
			return nil, errorAt(key, "env: %s is not a valid variable name: use letters, digits and _, not starting with a digit", kindName(key))
		}
		if _, dup := env[key.Value]; dup {
			return nil, errorAt(key, "env: %s given twice: keep one", key.Value)
		}
		if value.Kind != yaml.ScalarNode {
			return nil, errorAt(value, "env: %s: want a plain value, found %s", key.Value, kindName(value))
		}
		v := value.Value
		if value.Tag == "!!null" {
			v = ""
		}
		if strings.ContainsRune(v, 0) {
			return nil, errorAt(value, "env: %s: value contains a NUL byte", key.Value)
		}
		env[key.Value] = v
	}
	return env, nil
}

// parseSecrets reads secrets: [NAME, ...]: names of environment variables,
// each given once.
func parseSecrets(n *yaml.Node) ([]string, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, errorAt(n, "secrets: want a list of secret names such as [DEPLOY_KEY], found %s", kindName(n))
	}
	var names []string
	seen := map[string]bool{}
	for _, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.ScalarNode || item.Tag == "!!null" || !envName.MatchString(item.Value) {
			return nil, errorAt(item, "secrets: %s is not a valid secret name: use letters, digits and _, not starting with a digit (it becomes the variable's name)", kindName(item))
		}
		if seen[item.Value] {
			return nil, errorAt(item, "secrets: %s given twice: keep one", item.Value)
		}
		seen[item.Value] = true
		names = append(names, item.Value)
	}
	return names, nil
}

func parseSteps(n *yaml.Node) ([]Step, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errorAt(n, "steps: want a list of steps (- name: ..., run: ...), found %s", kindName(n))
	}
	if len(n.Content) == 0 {
		return nil, errorAt(n, "steps: the list is empty: add at least one step with a run: command")
	}
	steps := make([]Step, 0, len(n.Content))
	names := map[string]bool{}
	for i, item := range n.Content {
		item = resolve(item)
		step, err := parseStep(item, i+1)
		if err != nil {
			return nil, err
		}
		if names[step.Name] {
			return nil, errorAt(item, "steps: name %q is used twice: give each step its own name", step.Name)
		}
		names[step.Name] = true
		steps = append(steps, step)
	}
	return steps, nil
}

func parseStep(n *yaml.Node, number int) (Step, error) {
	step := Step{Name: fmt.Sprintf("step %d", number)}
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		// "- ./test.sh" is a step with only a command.
		step.Run = n.Value
	} else {
		if n.Kind != yaml.MappingNode {
			return Step{}, errorAt(n, "step %d: want name: and run:, found %s", number, kindName(n))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := resolve(n.Content[i]), resolve(n.Content[i+1])
			if key.Kind != yaml.ScalarNode {
				return Step{}, errorAt(key, "step %d: want a key name, found %s", number, kindName(key))
			}
			if seen[key.Value] {
				return Step{}, errorAt(key, "step %d: %s given twice: keep one", number, key.Value)
			}
			seen[key.Value] = true
			switch key.Value {
			case "name":
				if value.Kind != yaml.ScalarNode || value.Tag == "!!null" {
					return Step{}, errorAt(value, "step %d: name: want text, found %s", number, kindName(value))
				}
				name := strings.TrimSpace(value.Value)
				if name == "" || strings.ContainsFunc(name, isControl) {
					return Step{}, errorAt(value, "step %d: name: want a non-empty single line", number)
				}
				step.Name = name
			case "run":
				if value.Kind != yaml.ScalarNode || value.Tag == "!!null" {
					return Step{}, errorAt(value, "step %d: run: want a shell command, found %s", number, kindName(value))
				}
				step.Run = value.Value
			case "timeout":
				d, err := parseDuration(value, fmt.Sprintf("step %d: timeout", number))
				if err != nil {
					return Step{}, err
				}
				step.Timeout = d
			default:
				return Step{}, errorAt(key, "step %d: unknown key %q: allowed keys are name, run and timeout", number, key.Value)
			}
		}
	}
	if strings.TrimSpace(step.Run) == "" {
		return Step{}, errorAt(n, "%s: run: is missing or empty: give the shell command to run", step.Name)
	}
	if strings.ContainsRune(step.Run, 0) {
		return Step{}, errorAt(n, "%s: run: contains a NUL byte", step.Name)
	}
	return step, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Load reads dir/.volt.yml; if absent and dir/tests is a directory, returns the
// default spec (one step named "unittest" running DefaultCommand, no timeout
// of its own: JobTimeout gives it the dispatcher's); if neither, returns an error wrapping ErrNoSpec that names
// both options.
func Load(dir string) (*Spec, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		spec, err := Parse(data)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", dir, err)
		}
		return spec, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	info, err := os.Stat(filepath.Join(dir, "tests"))
	if err == nil && info.IsDir() {
		return &Spec{Steps: []Step{{Name: "unittest", Run: DefaultCommand}}}, nil
	}
	return nil, fmt.Errorf("%w in %s: add a %s with steps, or a tests/ folder of Python unittest files", ErrNoSpec, dir, FileName)
}
