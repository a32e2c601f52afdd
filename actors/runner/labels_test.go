package runner_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors/runner"
)

func TestLabels(t *testing.T) {
	tests := []struct {
		name string
		user []string
		want []string
	}{
		{"none: the runner's own", nil, []string{"arch=amd64", "os=linux"}},
		{"words and pairs, sorted", []string{"gpu", "zone=eu-west/1", "big_disk", "v1.2"},
			[]string{"arch=amd64", "big_disk", "gpu", "os=linux", "v1.2", "zone=eu-west/1"}},
		{"spaces around commas trimmed, duplicates dropped", []string{" gpu", "gpu ", "os=linux"}, []string{"arch=amd64", "gpu", "os=linux"}},
		{"a user's arch= replaces the runner's own", []string{"arch=arm64"}, []string{"arch=arm64", "os=linux"}},
		{"a user's os= too, even two of them", []string{"os=linux", "os=ubuntu"}, []string{"arch=amd64", "os=linux", "os=ubuntu"}},
		{"a word os is not os=", []string{"os", "arch"}, []string{"arch", "arch=amd64", "os", "os=linux"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runner.Labels(tt.user, "linux", "amd64")
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLabelsRefused(t *testing.T) {
	many := make([]string, 64)
	for i := range many {
		many[i] = fmt.Sprintf("l%d", i)
	}
	tests := []struct {
		name  string
		user  []string
		error string
	}{
		{"empty", []string{"gpu", ""}, "an empty label"},
		{"a space inside", []string{"big disk"}, `label "big disk" has ' '`},
		{"a comma's neighbour", []string{"gpu;cuda"}, `has ';'`},
		{"not ASCII", []string{"größe=1"}, `has 'ö'`},
		{"a quote", []string{`a"b`}, `has '"'`},
		{"no key", []string{"=arm64"}, "needs both a key and a value"},
		{"no value", []string{"arch="}, "needs both a key and a value"},
		{"two =", []string{"a=b=c"}, "more than one '='"},
		{"too long", []string{strings.Repeat("x", 129)}, "129 characters long: at most 128"},
		{"too many", many, "66 labels: a runner has at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runner.Labels(tt.user, "linux", "amd64")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.error)
			assert.Nil(t, got)
		})
	}
}
