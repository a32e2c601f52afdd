package main

import (
	"errors"
	"runtime"
	"slices"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSlotFlags(t *testing.T) {
	own := []string{"arch=" + runtime.GOARCH, "os=" + runtime.GOOS}
	tests := []struct {
		name   string
		prefix string
		args   []string
		labels []string
		slots  int
		error  string
	}{
		{"defaults", "", nil, own, 1, ""},
		{"labels and slots", "", []string{"--labels", "gpu,zone=eu", "--labels", "big", "--slots", "4"},
			[]string{"big", "gpu", "zone=eu", own[0], own[1]}, 4, ""},
		{"volt up's names", "runner-", []string{"--runner-labels", "gpu", "--runner-slots", "64"}, []string{"gpu", own[0], own[1]}, 64, ""},
		{"no slots", "", []string{"--slots", "0"}, nil, 0, "--slots 0: give 1 to 64"},
		{"too many slots", "runner-", []string{"--runner-slots", "65"}, nil, 0, "--runner-slots 65: give 1 to 64"},
		{"a bad label", "", []string{"--labels", "gpu,big disk"}, nil, 0, `--labels: label "big disk" has ' '`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f slotFlags
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			f.register(fs, tt.prefix)
			require.NoError(t, fs.Parse(tt.args))

			labels, slots, err := f.resolve()

			if tt.error != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.error)
				var ee *exitError
				require.True(t, errors.As(err, &ee))
				assert.Equal(t, exitUsage, ee.code)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, slices.Sorted(slices.Values(tt.labels)), labels, "sorted")
			assert.Equal(t, tt.slots, slots)
		})
	}
}
