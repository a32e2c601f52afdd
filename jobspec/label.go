package jobspec

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

var (
	labelWord  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	labelValue = regexp.MustCompile(`^[A-Za-z0-9_.+/-]{1,63}$`)
)

// ValidateLabel checks a runner label or a runs-on label: a word (gpu) or
// key=value (arch=arm64). Words and keys are up to 63 letters, digits, _,
// . and -, starting with a letter or digit; values up to 63 letters,
// digits and _ . + / -. No label holds a comma, a space or a second =, so
// that `--labels gpu,arch=arm64` reads one way only.
func ValidateLabel(label string) error {
	key, value, isPair := strings.Cut(label, "=")
	switch {
	case label == "":
		return fmt.Errorf("empty label: give a word such as gpu or key=value such as arch=arm64")
	case !labelWord.MatchString(key):
		return fmt.Errorf("label %q: %q is not a label word: use up to 63 letters, digits, _, . and -, starting with a letter or digit", label, key)
	case isPair && !labelValue.MatchString(value):
		return fmt.Errorf("label %q: the value %q after = must be 1 to 63 letters, digits, _, ., +, / or -", label, value)
	}
	return nil
}

// ParseLabels reads a comma-separated list of labels (`--labels
// gpu,arch=arm64`), each checked by ValidateLabel, in order and without
// repeats; "" gives none.
func ParseLabels(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var labels []string
	for _, l := range strings.Split(s, ",") {
		l = strings.TrimSpace(l)
		if err := ValidateLabel(l); err != nil {
			return nil, err
		}
		if !slices.Contains(labels, l) {
			labels = append(labels, l)
		}
	}
	return labels, nil
}

// MissingLabels returns the labels of want that have lacks, in want's
// order: none when a runner with the labels have can run a job that
// runs-on want. Labels match exactly (arch=arm64 is not arch=amd64, and
// gpu is not gpu=a100).
func MissingLabels(have, want []string) []string {
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

// LabelsSatisfy reports whether a runner with the labels have may run a job
// that runs-on want: it has every one of them.
func LabelsSatisfy(have, want []string) bool { return len(MissingLabels(have, want)) == 0 }
