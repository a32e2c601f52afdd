package main

import (
	"github.com/spf13/pflag"

	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/gitexec"
)

// jobFlags confine a runner's jobs (volt runner, volt up): see SECURITY.md.
type jobFlags struct {
	isolation gitexec.Isolation
	passEnv   gitexec.EnvNames
	jobUser   string
	hide      []string
	// maxArtifactSize caps what a job uploads and fetches (artifacts).
	maxArtifactSize sizeValue
}

func (f *jobFlags) register(fs *pflag.FlagSet) {
	fs.Var(&f.isolation, "isolation", "how job steps are confined: bwrap (a bubblewrap sandbox) or none (default bwrap where it works here, else none with a warning)")
	fs.Var(&f.passEnv, "pass-env", "pass this variable of the runner's environment to jobs (repeatable, or comma-separated; never VOLT_*)")
	fs.StringVar(&f.jobUser, "job-user", "", "run job steps as `USER` (the runner must run as root)")
	fs.StringArrayVar(&f.hide, "hide", nil, "hide `PATH` from sandboxed jobs, besides the work and credentials directories (repeatable)")
	f.maxArtifactSize = sizeValue(runner.DefaultMaxArtifactSize)
	fs.Var(&f.maxArtifactSize, "max-artifact-size", "bytes a job may upload as artifacts and test reports in all, and fetch from the jobs it needs (KiB/MiB/GiB suffix); past it the job errors")
}

// apply passes the flags to a runner's setup; hidden are the paths the
// command itself hides (its credentials, its data).
func (f *jobFlags) apply(s cluster.RunnerSetup, hidden ...string) cluster.RunnerSetup {
	s.Isolation, s.PassEnv, s.JobUser = f.isolation, f.passEnv, f.jobUser
	s.MaxArtifactSize = int64(f.maxArtifactSize)
	s.Hide = append(append([]string{}, hidden...), f.hide...)
	return s
}
