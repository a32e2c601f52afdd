package jobspec

import (
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/voltci/volt/messages"
)

// Limits of the jobs format. A file beyond them is an error with its place.
const (
	// MaxPipelineJobs caps the jobs one pipeline expands to, matrix cells
	// and shards counted.
	MaxPipelineJobs = 1000
	// MaxParallel caps parallel:, the shards of one job.
	MaxParallel = 100
	// MaxRetry caps retry:.
	MaxRetry = 10
	// MaxFileSize is the largest .volt.yml the observer reads.
	MaxFileSize = 256 << 10
	// maxMatrixVars caps the variables of one matrix.
	maxMatrixVars = 16
	// maxPipelineBytes caps the encoded Pipeline, so that a commit's
	// pipeline always fits in one message (the wire's limit is 4 MiB).
	maxPipelineBytes = 1 << 20
)

// jobKeys lists the keys a job under jobs: may have, in the order errors name them.
var jobKeys = []string{"steps", "needs", "runs-on", "matrix", "exclude", "parallel", "timeout", "env", "secrets", "reports", "artifacts", "branches", "retry", "fail-fast", "allow-failure"}

var (
	// jobName is a key under jobs:; it is shown in names and paths.
	jobName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$`)
	// matrixName is a matrix variable: VOLT_MATRIX_<NAME> must be a variable name.
	matrixName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,31}$`)
)

// matrixVar is one variable of a matrix and its values, in the file's order.
type matrixVar struct {
	name   string
	values []string
}

// jobDef is one key under jobs:, parsed.
type jobDef struct {
	key  string
	node *yaml.Node // the key, where errors about the whole job point
	// spec has the job's steps, timeout, env (the file's top-level env
	// under the job's own), secrets, artifacts and reports.
	spec         Spec
	needs        []*yaml.Node // scalars naming other jobs
	runsOn       []string
	matrix       []matrixVar
	matrixNode   *yaml.Node
	exclude      []map[string]string
	parallel     int
	parallelNode *yaml.Node
	retry        int
	failFast     bool
	allowFailure bool
	branches     []string
}

// pipelineFile is a .volt.yml in the jobs format, parsed and checked.
type pipelineFile struct {
	jobsNode *yaml.Node
	jobs     []*jobDef // in the file's order
	byKey    map[string]*jobDef
}

// pipelineRoot reports whether root is a .volt.yml in the jobs format: a
// mapping with a jobs: key.
func pipelineRoot(root *yaml.Node) bool {
	if root == nil || root.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := resolve(root.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "jobs" {
			return true
		}
	}
	return false
}

// ExpandPipeline reads a .volt.yml and returns the commit's Pipeline: for
// the jobs format one PipelineJob per matrix cell and shard, in an order
// where every job comes after the jobs it needs (the keys in the file's
// order where the needs allow; a key's cells in matrix order, the first
// variable changing slowest, shards innermost); needs are the indexes of
// every cell of each needed key. For the single-list format, a file that is
// not a mapping, or empty data it returns a Pipeline with no jobs: the
// runner reads those as it always has. A file that is not YAML, or a jobs
// format file with a mistake, gives a Pipeline with only Error set
// (".volt.yml line 3, column 5: ..."). The same data always gives the same
// Pipeline.
//
// The jobs format: jobs: maps each job's key to its steps and, optionally,
// needs, runs-on, matrix, exclude, parallel, timeout, env, secrets,
// reports, artifacts, branches, retry, fail-fast and allow-failure. Beside
// jobs:, the file may have timeout: and env:, which apply to every job: a
// job's own timeout wins, and its env is laid over the file's.
func ExpandPipeline(data []byte) *messages.Pipeline {
	f, err := parsePipeline(data)
	if err != nil {
		return &messages.Pipeline{Error: err.Error()}
	}
	if f == nil {
		return &messages.Pipeline{}
	}
	p, err := f.expand()
	if err != nil {
		return &messages.Pipeline{Error: err.Error()}
	}
	return p
}

// parsePipeline parses data in the jobs format; nil and no error when data
// is not in it (see ExpandPipeline).
func parsePipeline(data []byte) (*pipelineFile, error) {
	root, err := document(data)
	if err != nil {
		return nil, err
	}
	if !pipelineRoot(root) {
		return nil, nil
	}
	var jobsNode, timeoutNode, envNode *yaml.Node
	var jobsKey *yaml.Node
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
		case "jobs":
			jobsKey, jobsNode = key, value
		case "timeout":
			timeoutNode = value
		case "env":
			envNode = value
		case "steps", "secrets":
			return nil, errorAt(key, "%s: a file with jobs: gives %s under each job: move it there", key.Value, key.Value)
		default:
			return nil, errorAt(key, "unknown key %q: beside jobs: a file may have only timeout: and env:, which apply to every job", key.Value)
		}
	}
	var defaults Spec
	if timeoutNode != nil {
		d, err := parseDuration(timeoutNode, "timeout")
		if err != nil {
			return nil, err
		}
		defaults.Timeout = d
	}
	if envNode != nil {
		env, err := parseEnv(envNode)
		if err != nil {
			return nil, err
		}
		if err := reservedEnv(envNode, env); err != nil {
			return nil, err
		}
		defaults.Env = env
	}
	if jobsNode.Kind != yaml.MappingNode {
		return nil, errorAt(jobsNode, "jobs: want a mapping of job names to jobs (lint: {steps: [...]}), found %s", kindName(jobsNode))
	}
	if len(jobsNode.Content) == 0 {
		return nil, errorAt(jobsKey, "jobs: no jobs: add at least one, such as test: {steps: [{run: make test}]}")
	}
	f := &pipelineFile{jobsNode: jobsKey, byKey: map[string]*jobDef{}}
	for i := 0; i+1 < len(jobsNode.Content); i += 2 {
		key, value := resolve(jobsNode.Content[i]), resolve(jobsNode.Content[i+1])
		if key.Kind != yaml.ScalarNode || key.Tag == "!!null" || !jobName.MatchString(key.Value) {
			return nil, errorAt(key, "jobs: %s is not a job name: use up to 64 letters, digits, _, - and ., starting with a letter, digit or _", kindName(key))
		}
		if f.byKey[key.Value] != nil {
			return nil, errorAt(key, "jobs: %s given twice: keep one", key.Value)
		}
		if len(f.jobs) == MaxPipelineJobs {
			return nil, errorAt(key, "jobs: more than %d jobs: a pipeline has at most %d", MaxPipelineJobs, MaxPipelineJobs)
		}
		j, err := parseJob(key, value, &defaults)
		if err != nil {
			return nil, err
		}
		f.jobs = append(f.jobs, j)
		f.byKey[j.key] = j
	}
	for _, j := range f.jobs {
		for _, n := range j.needs {
			if f.byKey[n.Value] == nil {
				return nil, errorAt(n, "%s: needs: no job is named %q: the jobs are %s", j.key, n.Value, f.keyList())
			}
		}
	}
	return f, nil
}

func (f *pipelineFile) keyList() string {
	keys := make([]string, 0, len(f.jobs))
	for _, j := range f.jobs {
		keys = append(keys, j.key)
	}
	if len(keys) > 10 {
		return strings.Join(keys[:10], ", ") + ", ..."
	}
	return strings.Join(keys, ", ")
}

// inJob prefixes the message of a parse error with the job's key.
func inJob(key string, err error) error {
	if pe, ok := err.(*parseError); ok {
		pe.msg = key + ": " + pe.msg
	}
	return err
}

// reservedEnv refuses env: names that Volt sets for a pipeline's jobs.
func reservedEnv(n *yaml.Node, env map[string]string) error {
	for _, k := range sortedKeys(env) {
		if reservedName(k) {
			return errorAt(n, "env: %s is set by Volt for matrix and shard jobs: choose another name", k)
		}
	}
	return nil
}

func reservedName(k string) bool {
	return strings.HasPrefix(k, "VOLT_MATRIX_") || k == "VOLT_SHARD_INDEX" || k == "VOLT_SHARD_TOTAL"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func parseJob(key, n *yaml.Node, defaults *Spec) (*jobDef, error) {
	j := &jobDef{key: key.Value, node: key}
	if n.Kind != yaml.MappingNode {
		return nil, errorAt(n, "%s: want a mapping with steps: and the job's other keys, found %s", j.key, kindName(n))
	}
	j.spec.Timeout = defaults.Timeout
	var stepsNode, secretsNode, excludeNode *yaml.Node
	var ownEnv map[string]string
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, errorAt(k, "%s: want a key name, found %s", j.key, kindName(k))
		}
		if seen[k.Value] {
			return nil, errorAt(k, "%s: %s given twice: keep one", j.key, k.Value)
		}
		seen[k.Value] = true
		var err error
		switch k.Value {
		case "steps":
			stepsNode = v
		case "needs":
			j.needs, err = parseNeeds(v, j.key)
		case "runs-on":
			j.runsOn, err = parseLabels(v)
		case "matrix":
			j.matrixNode = k
			j.matrix, err = parseMatrix(k, v)
		case "exclude":
			excludeNode = v
		case "parallel":
			j.parallelNode = v
			j.parallel, err = parseInt(v, "parallel", 1, MaxParallel, "the number of shards")
		case "timeout":
			j.spec.Timeout, err = parseDuration(v, "timeout")
		case "env":
			ownEnv, err = parseEnv(v)
			if err == nil {
				err = reservedEnv(v, ownEnv)
			}
		case "secrets":
			secretsNode = v
			j.spec.Secrets, err = parseSecrets(v)
		case "reports":
			j.spec.Reports, err = parseReports(v)
		case "artifacts":
			j.spec.Artifacts, err = parseArtifacts(v)
		case "branches":
			j.branches, err = parseBranches(v)
		case "retry":
			j.retry, err = parseInt(v, "retry", 0, MaxRetry, "how many times a failed run is run again")
		case "fail-fast":
			j.failFast, err = parseBool(v, "fail-fast")
		case "allow-failure":
			j.allowFailure, err = parseBool(v, "allow-failure")
		default:
			err = errorAt(k, "unknown key %q: a job's keys are %s", k.Value, strings.Join(jobKeys, ", "))
		}
		if err != nil {
			return nil, inJob(j.key, err)
		}
	}
	if stepsNode == nil {
		return nil, errorAt(key, "%s: no steps: add a steps: list with at least one run: command", j.key)
	}
	steps, err := parseSteps(stepsNode)
	if err != nil {
		return nil, inJob(j.key, err)
	}
	j.spec.Steps = steps
	if len(defaults.Env)+len(ownEnv) > 0 {
		j.spec.Env = make(map[string]string, len(defaults.Env)+len(ownEnv))
		for k, v := range defaults.Env {
			j.spec.Env[k] = v
		}
		for k, v := range ownEnv {
			j.spec.Env[k] = v
		}
	}
	for _, name := range j.spec.Secrets {
		if _, both := j.spec.Env[name]; both {
			return nil, errorAt(secretsNode, "%s: secrets: %s is also set in env: keep one", j.key, name)
		}
		if reservedName(name) {
			return nil, errorAt(secretsNode, "%s: secrets: %s is set by Volt for matrix and shard jobs: choose another name", j.key, name)
		}
	}
	if excludeNode != nil {
		if j.matrix == nil {
			return nil, errorAt(excludeNode, "%s: exclude: the job has no matrix: to exclude cells from", j.key)
		}
		j.exclude, err = parseExclude(excludeNode, j)
		if err != nil {
			return nil, inJob(j.key, err)
		}
	}
	return j, nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// textItem is a scalar that is not null, contains no control character
// and is not blank.
func textItem(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && !isNull(n) && strings.TrimSpace(n.Value) != "" && !strings.ContainsFunc(n.Value, isControl)
}

// list returns the items of a list, or of a single scalar as a list of
// one; nil for null.
func list(n *yaml.Node, what, example string) ([]*yaml.Node, error) {
	switch {
	case isNull(n):
		return nil, nil
	case n.Kind == yaml.ScalarNode:
		return []*yaml.Node{n}, nil
	case n.Kind != yaml.SequenceNode:
		return nil, errorAt(n, "%s: want a list such as %s, found %s", what, example, kindName(n))
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, item := range n.Content {
		items[i] = resolve(item)
	}
	return items, nil
}

func parseNeeds(n *yaml.Node, self string) ([]*yaml.Node, error) {
	items, err := list(n, "needs", "[lint, build]")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, item := range items {
		if item.Kind != yaml.ScalarNode || isNull(item) {
			return nil, errorAt(item, "needs: want the name of a job, found %s", kindName(item))
		}
		if item.Value == self {
			return nil, errorAt(item, "needs: a job cannot need itself")
		}
		if seen[item.Value] {
			return nil, errorAt(item, "needs: %s given twice: keep one", item.Value)
		}
		seen[item.Value] = true
	}
	return items, nil
}

func parseLabels(n *yaml.Node) ([]string, error) {
	items, err := list(n, "runs-on", "[gpu, arch=arm64]")
	if err != nil {
		return nil, err
	}
	var labels []string
	for _, item := range items {
		if item.Kind != yaml.ScalarNode || isNull(item) {
			return nil, errorAt(item, "runs-on: want a label such as gpu or arch=arm64, found %s", kindName(item))
		}
		if err := ValidateLabel(item.Value); err != nil {
			return nil, errorAt(item, "runs-on: %v", err)
		}
		if slices.Contains(labels, item.Value) {
			return nil, errorAt(item, "runs-on: %s given twice: keep one", item.Value)
		}
		labels = append(labels, item.Value)
	}
	return labels, nil
}

func parseMatrix(key, n *yaml.Node) ([]matrixVar, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errorAt(n, "matrix: want a mapping of variables to lists of values, such as {go: [\"1.25\", \"1.26\"]}, found %s", kindName(n))
	}
	if len(n.Content) == 0 {
		return nil, errorAt(key, "matrix: the matrix is empty: give at least one variable with at least one value, or remove matrix:")
	}
	if len(n.Content)/2 > maxMatrixVars {
		return nil, errorAt(key, "matrix: %d variables, more than %d", len(n.Content)/2, maxMatrixVars)
	}
	var vars []matrixVar
	upper := map[string]string{}
	cells := 1
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || !matrixName.MatchString(k.Value) {
			return nil, errorAt(k, "matrix: %s is not a variable name: use up to 32 letters, digits and _, not starting with a digit (it becomes VOLT_MATRIX_<NAME>)", kindName(k))
		}
		if other, dup := upper[strings.ToUpper(k.Value)]; dup {
			return nil, errorAt(k, "matrix: %s and %s are both VOLT_MATRIX_%s: keep one", other, k.Value, strings.ToUpper(k.Value))
		}
		upper[strings.ToUpper(k.Value)] = k.Value
		if v.Kind != yaml.SequenceNode {
			return nil, errorAt(v, "matrix: %s: want a list of values, found %s", k.Value, kindName(v))
		}
		if len(v.Content) == 0 {
			return nil, errorAt(v, "matrix: %s: the list is empty: give at least one value", k.Value)
		}
		mv := matrixVar{name: k.Value}
		for _, item := range v.Content {
			item = resolve(item)
			if !textItem(item) || len(item.Value) > 128 || strings.TrimSpace(item.Value) != item.Value || strings.ContainsAny(item.Value, ",=()") {
				return nil, errorAt(item, "matrix: %s: want a value of up to 128 characters without , = ( ) or spaces around it (it is shown in the job's name), found %s", k.Value, kindName(item))
			}
			if slices.Contains(mv.values, item.Value) {
				return nil, errorAt(item, "matrix: %s: %s given twice: keep one", k.Value, item.Value)
			}
			mv.values = append(mv.values, item.Value)
		}
		cells *= len(mv.values)
		if cells > MaxPipelineJobs {
			return nil, errorAt(key, "matrix: more than %d cells: a pipeline has at most %d jobs", MaxPipelineJobs, MaxPipelineJobs)
		}
		vars = append(vars, mv)
	}
	return vars, nil
}

func parseExclude(n *yaml.Node, j *jobDef) ([]map[string]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errorAt(n, "exclude: want a list of matrix cells such as [{go: \"1.25\", db: postgres}], found %s", kindName(n))
	}
	if len(n.Content) > MaxPipelineJobs {
		return nil, errorAt(n, "exclude: more than %d entries", MaxPipelineJobs)
	}
	var out []map[string]string
	for _, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.MappingNode {
			return nil, errorAt(item, "exclude: want a mapping of matrix variables to values, found %s", kindName(item))
		}
		if len(item.Content) == 0 {
			return nil, errorAt(item, "exclude: an empty entry would exclude every cell: name at least one variable")
		}
		entry := map[string]string{}
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, v := resolve(item.Content[i]), resolve(item.Content[i+1])
			var mv *matrixVar
			for x := range j.matrix {
				if k.Kind == yaml.ScalarNode && j.matrix[x].name == k.Value {
					mv = &j.matrix[x]
				}
			}
			if mv == nil {
				return nil, errorAt(k, "exclude: %s is not a variable of the matrix: the variables are %s", kindName(k), j.varList())
			}
			if _, dup := entry[k.Value]; dup {
				return nil, errorAt(k, "exclude: %s given twice: keep one", k.Value)
			}
			if v.Kind != yaml.ScalarNode || !slices.Contains(mv.values, v.Value) {
				return nil, errorAt(v, "exclude: %s: %s is not one of the matrix's values (%s)", k.Value, kindName(v), strings.Join(mv.values, ", "))
			}
			entry[k.Value] = v.Value
		}
		out = append(out, entry)
	}
	return out, nil
}

func (j *jobDef) varList() string {
	names := make([]string, len(j.matrix))
	for i, v := range j.matrix {
		names[i] = v.name
	}
	return strings.Join(names, ", ")
}

func parseInt(n *yaml.Node, what string, lo, hi int, means string) (int, error) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return 0, errorAt(n, "%s: want a whole number from %d to %d (%s), found %s", what, lo, hi, means, kindName(n))
	}
	v, err := strconv.Atoi(strings.TrimSpace(n.Value))
	if err != nil || v < lo || v > hi {
		return 0, errorAt(n, "%s: %q is not a whole number from %d to %d (%s)", what, n.Value, lo, hi, means)
	}
	return v, nil
}

func parseBool(n *yaml.Node, what string) (bool, error) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, nil
		}
	}
	return false, errorAt(n, "%s: want true or false, found %s", what, kindName(n))
}

// parseReports reads reports: {junit: 'out/*.xml', go-test-json: report.json};
// each kind takes one path or a list of them.
func parseReports(n *yaml.Node) ([]Report, error) {
	if isNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, errorAt(n, "reports: want a mapping of report kinds to paths, such as {junit: 'out/*.xml'}, found %s", kindName(n))
	}
	var reports []Report
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || (k.Value != ReportJUnit && k.Value != ReportGoTestJSON) {
			return nil, errorAt(k, "reports: %s is not a report kind: use %s or %s", kindName(k), ReportJUnit, ReportGoTestJSON)
		}
		if seen[k.Value] {
			return nil, errorAt(k, "reports: %s given twice: keep one (it takes a list)", k.Value)
		}
		seen[k.Value] = true
		items, err := list(v, "reports: "+k.Value, "['out/*.xml']")
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return nil, errorAt(v, "reports: %s: give a path", k.Value)
		}
		for _, item := range items {
			p, err := workspacePath(item, "reports: "+k.Value)
			if err != nil {
				return nil, err
			}
			reports = append(reports, Report{Kind: k.Value, Path: p})
		}
	}
	return reports, nil
}

func parseArtifacts(n *yaml.Node) ([]string, error) {
	items, err := list(n, "artifacts", "[coverage.out, dist/]")
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, item := range items {
		p, err := workspacePath(item, "artifacts")
		if err != nil {
			return nil, err
		}
		if slices.Contains(paths, p) {
			return nil, errorAt(item, "artifacts: %s given twice: keep one", p)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// workspacePath checks a path or glob inside the workspace: relative, with
// no .. and a valid pattern. A trailing "/" (a directory) is kept.
func workspacePath(n *yaml.Node, what string) (string, error) {
	if !textItem(n) {
		return "", errorAt(n, "%s: want a path relative to the repository, found %s", what, kindName(n))
	}
	p := strings.TrimSpace(n.Value)
	if strings.HasPrefix(p, "/") || strings.Contains(p, `\`) {
		return "", errorAt(n, "%s: %q must be relative to the repository, with / between folders", what, p)
	}
	for _, part := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if part == ".." {
			return "", errorAt(n, "%s: %q leaves the repository: remove the ..", what, p)
		}
	}
	if _, err := path.Match(p, ""); err != nil {
		return "", errorAt(n, "%s: %q is not a valid pattern: %v", what, p, err)
	}
	if p == "." || p == "./" {
		return "", errorAt(n, "%s: %q is the whole repository: name the files or folders", what, p)
	}
	return p, nil
}

func parseBranches(n *yaml.Node) ([]string, error) {
	items, err := list(n, "branches", `[main, "release/*"]`)
	if err != nil {
		return nil, err
	}
	var patterns []string
	for _, item := range items {
		if !textItem(item) {
			return nil, errorAt(item, "branches: want a branch name or pattern, found %s", kindName(item))
		}
		if _, err := path.Match(item.Value, ""); err != nil {
			return nil, errorAt(item, "branches: %q is not a valid pattern: %v", item.Value, err)
		}
		patterns = append(patterns, item.Value)
	}
	return patterns, nil
}

// order returns the jobs so that each comes after the jobs it needs: the
// first in the file's order whose needs are all placed, again and again.
// A cycle is an error at the need that closes it.
func (f *pipelineFile) order() ([]*jobDef, error) {
	placed := map[string]bool{}
	var out []*jobDef
	for len(out) < len(f.jobs) {
		progress := false
		for _, j := range f.jobs {
			if placed[j.key] {
				continue
			}
			ready := true
			for _, n := range j.needs {
				ready = ready && placed[n.Value]
			}
			if ready {
				placed[j.key] = true
				out = append(out, j)
				progress = true
				break
			}
		}
		if !progress {
			return nil, f.cycle(placed)
		}
	}
	return out, nil
}

// cycle finds a cycle among the jobs not placed (each of which needs one
// of them) and returns the error at the need that closes it.
func (f *pipelineFile) cycle(placed map[string]bool) error {
	var start *jobDef
	for _, j := range f.jobs {
		if !placed[j.key] {
			start = j
			break
		}
	}
	// Follow the first unplaced need of each job until a job repeats.
	at := map[string]int{}
	var path []*jobDef
	var via []*yaml.Node
	j := start
	for {
		if i, ok := at[j.key]; ok {
			names := make([]string, 0, len(path)-i+1)
			for _, x := range path[i:] {
				names = append(names, x.key)
			}
			names = append(names, j.key)
			return errorAt(via[len(via)-1], "%s: needs: a cycle: %s: remove one of these needs", path[len(path)-1].key, strings.Join(names, " → "))
		}
		at[j.key] = len(path)
		path = append(path, j)
		for _, n := range j.needs {
			if !placed[n.Value] {
				via = append(via, n)
				j = f.byKey[n.Value]
				break
			}
		}
	}
}

// cellValues are the matrix cells of j in order (the first variable
// changing slowest), without the excluded ones; one empty cell for a job
// without a matrix.
func (j *jobDef) cells() [][]*messages.MatrixValue {
	if len(j.matrix) == 0 {
		return [][]*messages.MatrixValue{nil}
	}
	var out [][]*messages.MatrixValue
	idx := make([]int, len(j.matrix))
	for {
		cell := make([]*messages.MatrixValue, len(j.matrix))
		for v, i := range idx {
			cell[v] = &messages.MatrixValue{Name: j.matrix[v].name, Value: j.matrix[v].values[i]}
		}
		if !j.excluded(cell) {
			out = append(out, cell)
		}
		v := len(idx) - 1
		for v >= 0 {
			idx[v]++
			if idx[v] < len(j.matrix[v].values) {
				break
			}
			idx[v] = 0
			v--
		}
		if v < 0 {
			return out
		}
	}
}

func (j *jobDef) excluded(cell []*messages.MatrixValue) bool {
	for _, entry := range j.exclude {
		all := true
		for _, mv := range cell {
			if want, ok := entry[mv.Name]; ok && want != mv.Value {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (f *pipelineFile) expand() (*messages.Pipeline, error) {
	jobs, err := f.order()
	if err != nil {
		return nil, err
	}
	p := &messages.Pipeline{}
	indexes := map[string][]int32{}
	for _, j := range jobs {
		cells := j.cells()
		if len(cells) == 0 {
			return nil, errorAt(j.matrixNode, "%s: matrix: exclude: removes every cell: keep at least one", j.key)
		}
		shards := max(j.parallel, 1)
		if len(p.Jobs)+len(cells)*shards > MaxPipelineJobs {
			at := j.node
			if j.parallelNode != nil {
				at = j.parallelNode
			} else if j.matrixNode != nil {
				at = j.matrixNode
			}
			return nil, errorAt(at, "%s: the pipeline expands to %d jobs or more, beyond the %d allowed (each matrix cell and shard is a job)", j.key, len(p.Jobs)+len(cells)*shards, MaxPipelineJobs)
		}
		var needs []int32
		for _, n := range j.needs {
			needs = append(needs, indexes[n.Value]...)
		}
		for _, cell := range cells {
			for s := 0; s < shards; s++ {
				// Each job has its own slices: a PipelineJob is shared once
				// made, and an append to one must not reach another.
				pj := &messages.PipelineJob{
					Key: j.key, Matrix: cloneMatrix(cell), Needs: slices.Clone(needs), RunsOn: slices.Clone(j.runsOn),
					Retry: int32(j.retry), AllowFailure: j.allowFailure, FailFast: j.failFast, Branches: slices.Clone(j.branches),
				}
				if j.parallel > 0 {
					pj.ShardIndex, pj.ShardTotal = int32(s), int32(j.parallel)
				}
				pj.Name = messages.CellName(j.key, cell, pj.ShardIndex, pj.ShardTotal)
				indexes[j.key] = append(indexes[j.key], int32(len(p.Jobs)))
				p.Jobs = append(p.Jobs, pj)
			}
		}
	}
	if size := proto.Size(p); size > maxPipelineBytes {
		return nil, errorAt(f.jobsNode, "jobs: the expanded pipeline takes %d bytes, more than %d: use fewer matrix cells, shards or needs", size, maxPipelineBytes)
	}
	return p, nil
}

func cloneMatrix(cell []*messages.MatrixValue) []*messages.MatrixValue {
	if cell == nil {
		return nil
	}
	out := make([]*messages.MatrixValue, len(cell))
	for i, mv := range cell {
		out[i] = &messages.MatrixValue{Name: mv.Name, Value: mv.Value}
	}
	return out
}
