package gitexec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePackedRefs(t *testing.T) {
	a, b := strings.Repeat("a", 40), strings.Repeat("b", 40)
	packed := "# pack-refs with: peeled fully-peeled sorted \n" +
		a + " refs/heads/main\n" +
		b + " refs/tags/v1\n^" + a + "\n" +
		b + " refs/heads/feature/x\r\n"
	tests := []struct {
		name   string
		ref    string
		wantID string
		wantOK bool
	}{
		{"branch", "refs/heads/main", a, true},
		{"hierarchical branch with CRLF", "refs/heads/feature/x", b, true},
		{"missing", "refs/heads/other", "", false},
		{"prefix is not a match", "refs/heads/mai", "", false},
		{"peeled line is not a ref", "^" + a, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := parsePackedRefs([]byte(packed), tt.ref)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.wantID, id)
		})
	}
}

func FuzzParsePackedRefs(f *testing.F) {
	f.Add([]byte("# pack-refs\n"+strings.Repeat("a", 40)+" refs/heads/main\n"), "refs/heads/main")
	f.Add([]byte("^\n\n \r\n"), "")
	f.Fuzz(func(t *testing.T, data []byte, ref string) {
		id, ok := parsePackedRefs(data, ref)
		if ok && !strings.Contains(string(data), id+" "+ref) {
			t.Fatalf("found %q for %q, which the data does not hold", id, ref)
		}
	})
}

func TestReadRef(t *testing.T) {
	id := strings.Repeat("c", 40)
	tests := []struct {
		name    string
		files   map[string]string
		branch  string
		want    string
		wantErr error
	}{
		{"loose", map[string]string{"refs/heads/main": id + "\n"}, "main", id, nil},
		{"packed", map[string]string{"packed-refs": id + " refs/heads/main\n"}, "main", id, nil},
		{"loose wins over packed", map[string]string{"refs/heads/main": id + "\n", "packed-refs": strings.Repeat("d", 40) + " refs/heads/main\n"}, "main", id, nil},
		{"directory in the way", map[string]string{"refs/heads/a/b": id + "\n", "packed-refs": id + " refs/heads/a\n"}, "a", id, nil},
		{"missing", map[string]string{"packed-refs": id + " refs/heads/main\n"}, "other", "", ErrNoBranch},
		{"no packed-refs", map[string]string{}, "main", "", ErrNoBranch},
		{"symbolic", map[string]string{"refs/heads/main": "ref: refs/heads/x\n"}, "main", "", errRefFallback},
		{"reftable", map[string]string{"reftable/tables.list": ""}, "main", "", errRefFallback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				path := filepath.Join(dir, name)
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
				require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
			}
			got, err := readRef(dir, tt.branch)
			assert.Equal(t, tt.want, got)
			assert.True(t, errors.Is(err, tt.wantErr), "error %v, want %v", err, tt.wantErr)
		})
	}
}
