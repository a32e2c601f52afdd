package messages

import (
	"fmt"
	"strings"
)

// ValidateCommit checks that id is a full lowercase hexadecimal object id
// (40 characters for SHA-1, 64 for SHA-256). Anything else, in particular a
// value starting with '-' that git would read as an option, is rejected
// before it reaches git or a file path.
func ValidateCommit(id string) error {
	if len(id) != 40 && len(id) != 64 {
		return fmt.Errorf("invalid commit id %q: want a full 40- or 64-character hex id", truncate(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("invalid commit id %q: want lowercase hex", truncate(id))
		}
	}
	return nil
}

// ValidateRef checks a branch name by git's check-ref-format rules, and
// rejects names starting with '-' so that no branch can pass for an option.
func ValidateRef(name string) error {
	bad := func(why string) error { return fmt.Errorf("invalid branch name %q: %s", truncate(name), why) }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > 255:
		return bad("longer than 255 bytes")
	case strings.HasPrefix(name, "-"):
		return bad("starts with '-'")
	case name == "@":
		return bad("is '@'")
	case strings.HasSuffix(name, "/") || strings.HasPrefix(name, "/"):
		return bad("starts or ends with '/'")
	case strings.HasSuffix(name, "."):
		return bad("ends with '.'")
	case strings.Contains(name, ".."), strings.Contains(name, "@{"), strings.Contains(name, "//"):
		return bad("contains '..', '@{' or '//'")
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return bad("a component starts with '.' or ends with '.lock'")
		}
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return bad(fmt.Sprintf("contains %q", r))
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
