package messages

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// The kinds of file a job uploads after its steps (ArtifactChunk.kind): an
// artifact its .volt.yml declares, or a test report of one of the formats
// the reporter parses.
const (
	KindArtifact    = "artifact"
	KindJUnit       = "junit"
	KindGoTestJSON  = "go-test-json"
	maxArtifactPath = 1024
)

// ArtifactChunkSize is the size of the chunks artifacts travel in, both
// ways: the runner uploads in chunks of it and the reporter answers each
// ArtifactFetch with that much (less at a file's end). Small chunks in a
// small window leave room for heartbeats on the same connection.
const ArtifactChunkSize = 64 << 10

// ValidArtifactKind reports whether kind is one a runner may upload.
func ValidArtifactKind(kind string) bool {
	return kind == KindArtifact || kind == KindJUnit || kind == KindGoTestJSON
}

// ValidateArtifactPath checks an artifact's path as it travels and is
// stored: relative to the job's workspace, slash-separated and clean, with
// no ".." element, no empty or "." one, no control character and at most
// 1,024 bytes. Every side checks it: a path is written into a workspace.
func ValidateArtifactPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty artifact path")
	case len(p) > maxArtifactPath:
		return fmt.Errorf("artifact path of %d bytes: at most %d", len(p), maxArtifactPath)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("artifact path %q is absolute: paths are relative to the workspace", p)
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }):
		return fmt.Errorf("artifact path %q holds a control character or a backslash", p)
	case path.Clean(p) != p || p == ".":
		return fmt.Errorf("artifact path %q is not clean (write it as %q)", p, path.Clean(p))
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return fmt.Errorf("artifact path %q leaves the workspace", p)
		}
	}
	return nil
}

// ArtifactMode is the permission bits an artifact is kept and placed with:
// 0755 when the uploaded file was executable by anyone, else 0644 (nothing
// else of the uploader's mode, its owner or umask, travels).
func ArtifactMode(perm uint32) uint32 {
	if perm&0o111 != 0 {
		return 0o755
	}
	return 0o644
}
