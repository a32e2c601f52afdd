package runner

import (
	"fmt"
	"slices"
	"strings"
)

// Limits on a runner's labels: every label travels in each registration
// and every dispatcher keeps them.
const (
	maxLabelLen = 128
	maxLabels   = 64
)

// CheckLabel says what is wrong with label, or returns nil: a label is a
// plain word (gpu) or key=value (arch=arm64), of ASCII letters, digits and
// - _ . /, at most 128 characters, with a non-empty key and value.
func CheckLabel(label string) error {
	if label == "" {
		return fmt.Errorf("an empty label: give a word (gpu) or key=value (arch=arm64)")
	}
	if len(label) > maxLabelLen {
		return fmt.Errorf("label %.20q… is %d characters long: at most %d", label, len(label), maxLabelLen)
	}
	for _, r := range label {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=", r)
		if !ok {
			return fmt.Errorf("label %q has %q: use ASCII letters, digits and - _ . / (a word, or key=value)", label, r)
		}
	}
	key, value, isPair := strings.Cut(label, "=")
	switch {
	case !isPair:
	case key == "" || value == "":
		return fmt.Errorf("label %q: key=value needs both a key and a value", label)
	case strings.Contains(value, "="):
		return fmt.Errorf("label %q has more than one '=': give key=value", label)
	}
	return nil
}

// Labels returns the labels a runner registers, sorted and without
// duplicates: the user's (--labels), each checked by CheckLabel and
// trimmed of spaces, then os=goos and arch=goarch, the runner's own. A
// user's os= or arch= label replaces the runner's own (a runner under an
// emulator or in a container may know better): those keys then have the
// user's values only.
func Labels(user []string, goos, goarch string) ([]string, error) {
	var labels []string
	own := map[string]string{"os": "os=" + goos, "arch": "arch=" + goarch}
	for _, l := range user {
		l = strings.TrimSpace(l)
		if err := CheckLabel(l); err != nil {
			return nil, err
		}
		if key, _, ok := strings.Cut(l, "="); ok {
			delete(own, key)
		}
		labels = append(labels, l)
	}
	for _, l := range own {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	labels = slices.Compact(labels)
	if len(labels) > maxLabels {
		return nil, fmt.Errorf("%d labels: a runner has at most %d", len(labels), maxLabels)
	}
	return labels, nil
}
