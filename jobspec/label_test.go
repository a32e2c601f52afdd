package jobspec

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateLabel(t *testing.T) {
	for _, ok := range []string{"gpu", "os=linux", "arch=arm64", "go=1.26", "cuda-12.1", "x_y", "0", "pool=team/a+b"} {
		assert.NoError(t, ValidateLabel(ok), ok)
	}
	tests := map[string]string{
		"":          "empty label: give a word such as gpu or key=value such as arch=arm64",
		"gpu,cuda":  `label "gpu,cuda": "gpu,cuda" is not a label word: use up to 63 letters, digits, _, . and -, starting with a letter or digit`,
		"a b":       `label "a b": "a b" is not a label word: use up to 63 letters, digits, _, . and -, starting with a letter or digit`,
		"-gpu":      `label "-gpu": "-gpu" is not a label word: use up to 63 letters, digits, _, . and -, starting with a letter or digit`,
		"=x":        `label "=x": "" is not a label word: use up to 63 letters, digits, _, . and -, starting with a letter or digit`,
		"os=":       `label "os=": the value "" after = must be 1 to 63 letters, digits, _, ., +, / or -`,
		"a=b=c":     `label "a=b=c": the value "b=c" after = must be 1 to 63 letters, digits, _, ., +, / or -`,
		"os=lin ux": `label "os=lin ux": the value "lin ux" after = must be 1 to 63 letters, digits, _, ., +, / or -`,
		"gpu\n":     `label "gpu\n": "gpu\n" is not a label word: use up to 63 letters, digits, _, . and -, starting with a letter or digit`,
	}
	for label, want := range tests {
		assert.EqualError(t, ValidateLabel(label), want, "%q", label)
	}
}

func TestParseLabels(t *testing.T) {
	labels, err := ParseLabels(" gpu, arch=arm64,gpu ")
	require.NoError(t, err)
	assert.Equal(t, []string{"gpu", "arch=arm64"}, labels, "in order, without repeats")
	labels, err = ParseLabels("")
	require.NoError(t, err)
	assert.Nil(t, labels)
	_, err = ParseLabels("gpu,,x")
	assert.Error(t, err, "an empty label between commas")
}

func TestMissingLabels(t *testing.T) {
	have := []string{"os=linux", "arch=amd64", "gpu"}
	tests := []struct {
		name string
		want []string
		miss []string
	}{
		{"nothing asked", nil, nil},
		{"all there", []string{"gpu", "os=linux"}, nil},
		{"a missing word", []string{"gpu", "docker"}, []string{"docker"}},
		{"another value", []string{"arch=arm64"}, []string{"arch=arm64"}},
		{"a word is not a key", []string{"os"}, []string{"os"}},
		{"a key is not a word", []string{"gpu=a100"}, []string{"gpu=a100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.miss, MissingLabels(have, tt.want))
			assert.Equal(t, tt.miss == nil, LabelsSatisfy(have, tt.want))
		})
	}
}
