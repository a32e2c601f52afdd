package gitexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrFileTooLarge is returned (wrapped) by Repo.ReadFile when the file is
// larger than the limit given.
var ErrFileTooLarge = errors.New("file too large")

// ErrNotAFile is returned (wrapped) by Repo.ReadFile when the path names a
// folder, a symbolic link or a submodule rather than a regular file.
var ErrNotAFile = errors.New("not a regular file")

// ReadFile returns the contents of the file at name (relative to the
// repository's root, such as ".volt.yml") in commit, without a worktree:
// nil and no error when commit has no such file. A file larger than limit
// bytes is not read: the error wraps ErrFileTooLarge. A folder, symbolic
// link or submodule at name wraps ErrNotAFile. commit must be a full id
// (ValidateCommit) that the repository has; name a plain relative path.
// It runs one git process when there is no file, two when there is.
func (r *Repo) ReadFile(ctx context.Context, commit, name string, limit int64) ([]byte, error) {
	if err := ValidateCommit(commit); err != nil {
		return nil, err
	}
	if err := validatePath(name); err != nil {
		return nil, err
	}
	// -z: the path is never quoted; -l: the size, to refuse before reading.
	out, err := git(ctx, r.gitDir, "ls-tree", "-z", "-l", "--full-tree", "--end-of-options", commit, "--", name)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s in %s: %w", name, commit, r.url, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	// "<mode> SP <type> SP <object> SP+ <size> TAB <path> NUL"
	entry, _, _ := bytes.Cut(out, []byte{0})
	meta, path, ok := strings.Cut(string(entry), "\t")
	fields := strings.Fields(meta)
	if !ok || path != name || len(fields) != 4 {
		return nil, fmt.Errorf("read %s at %s in %s: git ls-tree: unexpected output %q", name, commit, r.url, truncateOut(entry))
	}
	mode, typ, object, sizeText := fields[0], fields[1], fields[2], fields[3]
	if typ != "blob" || (mode != "100644" && mode != "100755") {
		what := map[string]string{"tree": "a folder", "commit": "a submodule", "blob": "a symbolic link"}[typ]
		if what == "" {
			what = typ
		}
		return nil, fmt.Errorf("read %s at %s in %s: it is %s: %w: make it a file", name, commit, r.url, what, ErrNotAFile)
	}
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || ValidateCommit(object) != nil {
		return nil, fmt.Errorf("read %s at %s in %s: git ls-tree: unexpected output %q", name, commit, r.url, truncateOut(entry))
	}
	if size > limit {
		return nil, fmt.Errorf("read %s at %s in %s: %d bytes, more than %d: %w: make it smaller", name, commit, r.url, size, limit, ErrFileTooLarge)
	}
	data, err := git(ctx, r.gitDir, "cat-file", "blob", object)
	if err != nil {
		return nil, fmt.Errorf("read %s at %s in %s: %w", name, commit, r.url, err)
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("read %s at %s in %s: git gave %d bytes, ls-tree said %d", name, commit, r.url, len(data), size)
	}
	return data, nil
}

// validatePath accepts a relative path of plain names: no leading "-" or
// "/", no empty, "." or ".." part, no trailing "/", no glob or control
// character (ls-tree would read more into them).
func validatePath(name string) error {
	bad := func(why string) error { return fmt.Errorf("invalid path %s: %s", quote(name), why) }
	switch {
	case name == "":
		return bad("empty")
	case strings.HasPrefix(name, "-"):
		return bad("starts with '-'")
	case strings.ContainsAny(name, "*?[\\:"):
		return bad("holds a pattern character")
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			return bad("holds a control character")
		}
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return bad("want a path relative to the repository's root, such as .volt.yml")
		}
	}
	return nil
}

// truncateOut shortens unexpected git output for an error message.
func truncateOut(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
