package gitexec

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// This file answers two questions a runner asks before every job without
// starting git: is there a repository here, and does it already hold a
// commit. Both answers are only ever trusted when they are "yes": a "no"
// sends the caller to git, which has the final word.

// looksLikeRepo reports whether gitDir has the files every git directory
// has (what git's own is_git_directory checks, plus config). A damaged
// repository that passes fails in the git command that follows.
func looksLikeRepo(gitDir string) bool {
	for _, name := range []string{"HEAD", "config"} {
		if fi, err := os.Stat(filepath.Join(gitDir, name)); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	for _, name := range []string{"objects", "refs"} {
		if fi, err := os.Stat(filepath.Join(gitDir, name)); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// maxAlternateDepth is how deep alternates of alternates are followed, as git does.
const maxAlternateDepth = 5

// haveObject reports whether the object id (a full SHA-1, lower-case hex)
// is stored in the object directory objDir or one of its alternates, as a
// loose object or in a pack (idx version 2). It never starts git. false
// means "not found this way" (for example a SHA-256 id, an unknown index
// version), not "missing": ask git then.
func haveObject(objDir, id string) bool {
	if len(id) != 40 {
		return false
	}
	raw, err := hex.DecodeString(id)
	if err != nil {
		return false
	}
	seen := map[string]bool{}
	var look func(dir string, depth int) bool
	look = func(dir string, depth int) bool {
		if depth > maxAlternateDepth || seen[dir] {
			return false
		}
		seen[dir] = true
		if _, err := os.Lstat(filepath.Join(dir, id[:2], id[2:])); err == nil {
			return true
		}
		idxs, _ := filepath.Glob(filepath.Join(dir, "pack", "pack-*.idx")) // only ErrBadPattern, impossible here
		for _, idx := range idxs {
			// git ignores an index without its pack (a pack being written or deleted).
			pack, err := os.Stat(strings.TrimSuffix(idx, ".idx") + ".pack")
			if err == nil && pack.Mode().IsRegular() && packHas(idx, raw) {
				return true
			}
		}
		for _, alt := range readAlternates(dir) {
			if look(alt, depth+1) {
				return true
			}
		}
		return false
	}
	return look(filepath.Clean(objDir), 0)
}

// readAlternates returns the object directories objDir borrows from
// (objects/info/alternates), made absolute, read as git reads them: one
// path per line, taken literally up to the newline (a '\r' or a space is
// part of it), empty lines and lines starting with '#' skipped, a relative
// path resolved from objDir with its symbolic links resolved. Quoted paths
// are skipped: git unquotes them, this code does not need to.
func readAlternates(objDir string) []string {
	data, err := os.ReadFile(filepath.Join(objDir, "info", "alternates"))
	if err != nil {
		return nil
	}
	var dirs []string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || line[0] == '#' || line[0] == '"' {
			continue
		}
		if !filepath.IsAbs(line) {
			base, err := filepath.EvalSymlinks(objDir)
			if err == nil {
				base, err = filepath.Abs(base)
			}
			if err != nil {
				continue
			}
			line = filepath.Join(base, line)
		}
		dirs = append(dirs, filepath.Clean(line))
	}
	return dirs
}

// packIdxV2 is the magic number and version at the start of a version 2 pack index.
var packIdxV2 = []byte{0xff, 't', 'O', 'c', 0, 0, 0, 2}

// packHas reports whether the pack index at path (version 2, SHA-1) lists
// the object raw, by a binary search over its sorted names read in place.
func packHas(path string, raw []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	// The header, then the fan-out table: 256 counts of names whose first
	// byte is at most i.
	var head [8 + 256*4]byte
	if _, err := f.ReadAt(head[:], 0); err != nil || !bytes.Equal(head[:8], packIdxV2) {
		return false
	}
	fan := func(i int) uint32 { return binary.BigEndian.Uint32(head[8+4*i:]) }
	lo, hi := uint32(0), fan(int(raw[0]))
	if raw[0] > 0 {
		lo = fan(int(raw[0]) - 1)
	}
	var name [20]byte
	for lo < hi {
		mid := lo + (hi-lo)/2
		if _, err := f.ReadAt(name[:], int64(len(head))+int64(mid)*20); err != nil {
			return false
		}
		switch c := bytes.Compare(name[:], raw); {
		case c == 0:
			return true
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return false
}

// errNotLocalRepo means a local path has no git directory this code can borrow objects from.
var errNotLocalRepo = errors.New("not a local repository with an object directory")

// localObjectDir returns the object directory of the repository at path, a
// bare repository or a working tree whose .git is a directory or a
// "gitdir:" file (a linked worktree or submodule, whose objects live in the
// common directory). It reads files only; a repository laid out otherwise
// is errNotLocalRepo and is fetched from instead.
func localObjectDir(path string) (string, error) {
	// Where git looks: path/.git first, then path itself as a bare repository.
	gitDir := filepath.Join(path, ".git")
	fi, err := os.Stat(gitDir)
	switch {
	case err != nil:
		gitDir = path
	case fi.Mode().IsRegular():
		dir, ok, err := readGitLink(gitDir)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", errNotLocalRepo
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(path, dir)
		}
		gitDir = filepath.Clean(dir)
	}
	if common, err := os.ReadFile(filepath.Join(gitDir, "commondir")); err == nil {
		dir := strings.TrimSpace(string(common))
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(gitDir, dir)
		}
		gitDir = filepath.Clean(dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if !looksLikeRepo(gitDir) {
		return "", errNotLocalRepo
	}
	if _, err := os.Stat(filepath.Join(gitDir, "reftable")); err == nil {
		return "", errNotLocalRepo
	}
	return filepath.Join(gitDir, "objects"), nil
}

// readGitLink reads a ".git" file: "gitdir: DIR" (a linked worktree or a
// submodule). ok is false when the file says something else.
func readGitLink(file string) (dir string, ok bool, err error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", false, err
	}
	dir, ok = strings.CutPrefix(strings.TrimSpace(string(data)), "gitdir: ")
	return dir, ok, nil
}
