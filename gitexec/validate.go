package gitexec

import (
	"fmt"
	"strings"
)

// ValidateCommit reports whether id is a full commit id: 40 (SHA-1) or 64
// (SHA-256) lowercase hexadecimal digits. Abbreviations, revision expressions
// and anything that could be read as an option are rejected.
func ValidateCommit(id string) error {
	if len(id) != 40 && len(id) != 64 {
		return fmt.Errorf("invalid commit id %s: want a full id of 40 or 64 lowercase hex digits, got %d characters", quote(id), len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("invalid commit id %s: want a full id of 40 or 64 lowercase hex digits", quote(id))
		}
	}
	return nil
}

// ValidateRef reports whether name is a valid branch name, following the rules
// of git check-ref-format --branch: no empty name or "@" or "HEAD", no leading
// '-', no "..", "@{" or "//", no control characters, space or any of ~^:?*[\,
// no component starting with '.' or ending in ".lock", and no trailing '/' or '.'.
func ValidateRef(name string) error {
	if reason := refProblem(name); reason != "" {
		return fmt.Errorf("invalid branch name %s: %s", quote(name), reason)
	}
	return nil
}

func refProblem(name string) string {
	switch {
	case name == "":
		return "it is empty"
	case name == "@":
		return `"@" is not a branch name`
	case name == "HEAD":
		return `"HEAD" is not a branch name: pass the branch HEAD points to`
	case strings.HasPrefix(name, "-"):
		return "it starts with '-'"
	case strings.HasPrefix(name, "refs/"):
		return `give the short name, without "refs/heads/"`
	case strings.Contains(name, ".."):
		return `it contains ".."`
	case strings.Contains(name, "@{"):
		return `it contains "@{"`
	case strings.HasSuffix(name, "/"):
		return "it ends with '/'"
	case strings.HasSuffix(name, "."):
		return "it ends with '.'"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "it contains a control character"
		}
		if strings.ContainsRune(" ~^:?*[\\", r) {
			return fmt.Sprintf("it contains %q", r)
		}
	}
	for _, part := range strings.Split(name, "/") {
		switch {
		case part == "":
			return `it contains "//" or starts with '/'`
		case strings.HasPrefix(part, "."):
			return "a component starts with '.'"
		case strings.HasSuffix(part, ".lock"):
			return `a component ends with ".lock"`
		}
	}
	return ""
}

// quote quotes s for an error message, shortened if it is long.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
