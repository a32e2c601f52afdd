package main

import (
	"runtime"

	"github.com/spf13/pflag"

	"github.com/voltci/volt/actors/runner"
)

// slotFlags are a runner's labels and concurrent job slots (volt runner
// --labels --slots; volt up --runner-labels --runner-slots).
type slotFlags struct {
	prefix string // "" for volt runner, "runner-" for volt up
	labels []string
	slots  int
}

func (f *slotFlags) register(fs *pflag.FlagSet, prefix string) {
	f.prefix = prefix
	fs.StringSliceVar(&f.labels, prefix+"labels", nil, "labels jobs' runs-on select this runner by: words (gpu) or key=value (arch=arm64), "+
		"comma-separated or repeated; os= and arch= of this machine are added unless given here, where the given ones win")
	fs.IntVar(&f.slots, prefix+"slots", 1, "jobs run at once, each in its own workspace (1 to 64)")
}

// resolve checks the flags and returns the labels the runner registers
// (os= and arch= included) and its slots.
func (f *slotFlags) resolve() ([]string, int, error) {
	if f.slots < 1 || f.slots > runner.MaxSlots {
		return nil, 0, usageErr("--%sslots %d: give 1 to %d", f.prefix, f.slots, runner.MaxSlots)
	}
	labels, err := runner.Labels(f.labels, runtime.GOOS, runtime.GOARCH)
	if err != nil {
		return nil, 0, usageErr("--%slabels: %v", f.prefix, err)
	}
	return labels, f.slots, nil
}
