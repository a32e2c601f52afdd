package jobspec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/voltci/volt/messages"
)

// LoadJob returns what a runner runs for one job of a build, from the
// .volt.yml in dir (the commit, checked out). With cell nil (a single-list
// build) it is Load. Else the file must be in the jobs format and have
// cell.Key: the Spec is that job's steps, timeout, env, secrets, artifacts
// and reports, with env extended by VOLT_MATRIX_<NAME> (upper case) for
// each of the cell's matrix values and, for a shard, VOLT_SHARD_INDEX
// (from 0) and VOLT_SHARD_TOTAL. The cell comes over the network: its
// values must be the job's own (in the same file), else it is refused.
func LoadJob(dir string, cell *messages.PipelineJob) (*Spec, error) {
	if cell == nil {
		spec, err := Load(dir)
		if err == nil {
			return spec, nil
		}
		// A jobs: file that cannot be expanded makes a build of one job
		// (the dispatcher errors it without a runner); a rebuild of it runs
		// that job here: say what is wrong with the file, not that a cell
		// is missing.
		if data, rerr := readCapped(filepath.Join(dir, FileName)); rerr == nil {
			if p := ExpandPipeline(data); p.GetError() != "" {
				return nil, errors.New(p.GetError())
			}
		}
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	data, err := readCapped(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("job %q: the commit has no %s: the build was made from one that did; build the commit again", cell.GetName(), FileName)
	}
	if err != nil {
		return nil, err
	}
	spec, err := JobSpec(data, cell)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	return spec, nil
}

// readCapped reads path, refusing a file larger than MaxFileSize.
func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("read %s: larger than %d KiB: make it smaller", path, MaxFileSize>>10)
	}
	return data, nil
}

// JobSpec is LoadJob on the contents of a .volt.yml.
func JobSpec(data []byte, cell *messages.PipelineJob) (*Spec, error) {
	f, err := parsePipeline(data)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return nil, fmt.Errorf("%s has no jobs: but this is its job %q: build the commit again", FileName, cell.GetName())
	}
	// The observer refused a file that gives an error here; a runner
	// refuses it the same way.
	if _, err := f.expand(); err != nil {
		return nil, err
	}
	j := f.byKey[cell.GetKey()]
	if j == nil {
		return nil, fmt.Errorf("%s has no job %q (its jobs are %s): build the commit again", FileName, cell.GetKey(), f.keyList())
	}
	spec := j.spec // the parse is this call's own: its slices are not shared
	env := make(map[string]string, len(spec.Env)+len(cell.GetMatrix())+2)
	for k, v := range spec.Env {
		env[k] = v
	}
	if err := matrixEnv(j, cell, env); err != nil {
		return nil, err
	}
	switch total, index := int(cell.GetShardTotal()), int(cell.GetShardIndex()); {
	case total != j.parallel:
		return nil, fmt.Errorf("job %q: %d shards, but %s gives %s parallel: %d: build the commit again", cell.GetName(), total, FileName, j.key, j.parallel)
	case total > 0 && (index < 0 || index >= total):
		return nil, fmt.Errorf("job %q: shard %d is not one of 0..%d", cell.GetName(), index, total-1)
	case total > 0:
		env["VOLT_SHARD_INDEX"] = strconv.Itoa(index)
		env["VOLT_SHARD_TOTAL"] = strconv.Itoa(total)
	}
	if len(env) > 0 {
		spec.Env = env
	}
	return &spec, nil
}

// matrixEnv adds VOLT_MATRIX_<NAME> for each of the cell's values, which
// must be exactly one value of each of the job's matrix variables.
func matrixEnv(j *jobDef, cell *messages.PipelineJob, env map[string]string) error {
	if len(cell.GetMatrix()) != len(j.matrix) {
		return fmt.Errorf("job %q: %d matrix values, but %s gives %s a matrix of %d variables: build the commit again", cell.GetName(), len(cell.GetMatrix()), FileName, j.key, len(j.matrix))
	}
	for i, mv := range cell.GetMatrix() {
		v := j.matrix[i]
		if mv.GetName() != v.name || !slices.Contains(v.values, mv.GetValue()) {
			return fmt.Errorf("job %q: %s=%q is not in %s's matrix in %s: build the commit again", cell.GetName(), mv.GetName(), mv.GetValue(), j.key, FileName)
		}
		env["VOLT_MATRIX_"+strings.ToUpper(v.name)] = mv.GetValue()
	}
	if j.excluded(cell.GetMatrix()) {
		return fmt.Errorf("job %q: %s's exclude: in %s leaves this cell out: build the commit again", cell.GetName(), j.key, FileName)
	}
	return nil
}
