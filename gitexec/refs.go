package gitexec

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// errRefFallback means the refs could not be read from files (a symbolic ref,
// a ref storage format this code does not know) and git must be asked.
var errRefFallback = errors.New("read ref with git")

// readRef reads refs/heads/<branch> from the files of the repository whose
// common git directory is commonDir, without running git: the loose ref file
// first, then packed-refs. It returns ErrNoBranch if the branch exists in
// neither and errRefFallback when git must be asked instead.
func readRef(commonDir, branch string) (string, error) {
	if _, err := os.Stat(filepath.Join(commonDir, "reftable")); err == nil {
		return "", errRefFallback
	}
	name := "refs/heads/" + branch
	data, err := os.ReadFile(filepath.Join(commonDir, filepath.FromSlash(name)))
	switch {
	case err == nil:
		id := strings.TrimSpace(string(data))
		if ValidateCommit(id) != nil {
			// A symbolic ref ("ref: refs/heads/other") or something unexpected.
			return "", errRefFallback
		}
		return id, nil
	case errors.Is(err, fs.ErrNotExist), isDirErr(err):
		// Not loose (refs/heads/a is a directory when the branch is a/b): try packed-refs.
	default:
		return "", errRefFallback
	}
	packed, err := os.ReadFile(filepath.Join(commonDir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNoBranch
	}
	if err != nil {
		return "", errRefFallback
	}
	id, ok := parsePackedRefs(packed, name)
	if !ok {
		return "", ErrNoBranch
	}
	if ValidateCommit(id) != nil {
		return "", errRefFallback
	}
	return id, nil
}

// isDirErr reports whether err comes from reading a directory as a file.
func isDirErr(err error) bool {
	return errors.Is(err, syscall.EISDIR)
}

// parsePackedRefs finds ref in the contents of a packed-refs file. Lines are
// "<id> <refname>", with '#' header lines and '^' peeled-tag lines between them.
func parsePackedRefs(data []byte, ref string) (string, bool) {
	for len(data) > 0 {
		var rest []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data, rest = data[:i], data[i+1:]
		}
		line := string(bytes.TrimSuffix(data, []byte("\r")))
		data = rest
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		id, name, ok := strings.Cut(line, " ")
		if ok && name == ref {
			return id, true
		}
	}
	return "", false
}
