package gitexec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path"
	"path/filepath"
)

// mayHaveUntracked reports whether the worktree wt may hold a file,
// symbolic link or directory that its index (at indexPath) does not track:
// what `git clean -ffdx` would delete, ignored files included. It reads the
// index and the directories and starts no process. false is a promise that
// git clean has nothing to do; any doubt (an index feature this code does
// not read, a submodule, a sparse checkout, an unreadable directory) is
// true, and the caller runs git clean.
func mayHaveUntracked(wt, indexPath string) bool {
	files, dirs, ok := readIndexPaths(indexPath)
	if !ok {
		return true
	}
	var walk func(dir, rel string) bool
	walk = func(dir, rel string) bool {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return true
		}
		for _, e := range entries {
			name := e.Name()
			if rel == "" && name == ".git" {
				continue
			}
			p := name
			if rel != "" {
				p = rel + "/" + name
			}
			if e.IsDir() {
				if !dirs[p] || walk(filepath.Join(dir, name), p) {
					return true
				}
				continue
			}
			if !files[p] {
				return true
			}
		}
		return false
	}
	return walk(wt, "")
}

// errIndexFeature means the index uses something readIndexPaths does not read.
var errIndexFeature = errors.New("index feature not read")

// readIndexPaths reads the paths of a git index file (versions 2 to 4, SHA-1
// object names) and returns the tracked files and every directory above
// them. ok is false for an index it cannot vouch for: unreadable, another
// version or hash, a split index, a sparse index or any other required
// extension, skip-worktree or conflicted entries, or a submodule (gitlink).
func readIndexPaths(indexPath string) (files, dirs map[string]bool, ok bool) {
	data, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, nil, false
	}
	files, dirs, err = parseIndex(data)
	if err != nil {
		return nil, nil, false
	}
	return files, dirs, true
}

// parseIndex is readIndexPaths on the index file's contents.
func parseIndex(data []byte) (files, dirs map[string]bool, err error) {
	const (
		hashLen      = 20 // SHA-1
		fixed        = 40 + hashLen + 2
		flagExtended = 0x4000
		flagStage    = 0x3000
		nameMask     = 0x0fff
		extSkipWT    = 0x4000
		modeType     = 0o170000
		modeGitlink  = 0o160000
	)
	if len(data) < 12+hashLen || !bytes.Equal(data[:4], []byte("DIRC")) {
		return nil, nil, errIndexFeature
	}
	version := binary.BigEndian.Uint32(data[4:])
	if version < 2 || version > 4 {
		return nil, nil, errIndexFeature
	}
	n := binary.BigEndian.Uint32(data[8:])
	body := data[:len(data)-hashLen] // the trailing checksum is git's to verify
	if int64(n) > int64(len(body)/fixed) {
		return nil, nil, errIndexFeature // more entries than fit: do not size maps by it
	}
	files = make(map[string]bool, n)
	dirs = map[string]bool{}
	off := 12
	prev := ""
	for i := uint32(0); i < n; i++ {
		start := off
		if off+fixed > len(body) {
			return nil, nil, errIndexFeature
		}
		mode := binary.BigEndian.Uint32(body[off+24:])
		flags := binary.BigEndian.Uint16(body[off+40+hashLen:])
		off += fixed
		if flags&flagStage != 0 || mode&modeType == modeGitlink {
			return nil, nil, errIndexFeature
		}
		if flags&flagExtended != 0 {
			if version < 3 || off+2 > len(body) {
				return nil, nil, errIndexFeature
			}
			if binary.BigEndian.Uint16(body[off:])&extSkipWT != 0 {
				return nil, nil, errIndexFeature
			}
			off += 2
		}
		var name string
		if version == 4 {
			strip, w := gitVarint(body[off:])
			if w <= 0 || strip > uint64(len(prev)) {
				return nil, nil, errIndexFeature
			}
			off += w
			end := bytes.IndexByte(body[off:], 0)
			if end < 0 {
				return nil, nil, errIndexFeature
			}
			name = prev[:len(prev)-int(strip)] + string(body[off:off+end])
			off += end + 1
		} else {
			end := bytes.IndexByte(body[off:], 0)
			if end < 0 {
				return nil, nil, errIndexFeature
			}
			if l := int(flags & nameMask); l != nameMask && l != end {
				return nil, nil, errIndexFeature
			}
			name = string(body[off : off+end])
			// 1 to 8 NULs pad the entry to a multiple of 8 bytes.
			off = start + (off+end-start+8)&^7
		}
		if name == "" || name[0] == '/' || files[name] {
			return nil, nil, errIndexFeature
		}
		files[name] = true
		prev = name
		for d := path.Dir(name); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	// Extensions: one whose signature starts with 'A'..'Z' is optional (a
	// cache); any other is required, and may change what the entries mean:
	// a split index ("link") or a sparse index ("sdir") lists entries
	// elsewhere, and an unknown one may do anything.
	for off+8 <= len(body) {
		required := body[off] < 'A' || body[off] > 'Z'
		size := int(binary.BigEndian.Uint32(body[off+4:]))
		if required || size < 0 || off+8+size > len(body) {
			return nil, nil, errIndexFeature
		}
		off += 8 + size
	}
	if off != len(body) {
		return nil, nil, errIndexFeature
	}
	return files, dirs, nil
}

// gitVarint decodes git's variable-length integer (varint.c: big-endian
// groups of 7 bits, each continuation adding one) and returns it and the
// number of bytes read, or 0 bytes when buf ends early or the value overflows.
func gitVarint(buf []byte) (uint64, int) {
	if len(buf) == 0 {
		return 0, 0
	}
	c := buf[0]
	val := uint64(c & 127)
	i := 1
	for c&128 != 0 {
		val++
		if val == 0 || val>>(64-7) != 0 || i >= len(buf) {
			return 0, 0
		}
		c = buf[i]
		i++
		val = val<<7 + uint64(c&127)
	}
	return val, i
}
