package messages

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// protoChecksum hashes every .proto file under proto/ in a stable order; the
// same computation runs in `make proto` (see the Makefile) and its result is
// recorded in proto.sum.
func protoChecksum(t *testing.T) string {
	t.Helper()
	var files []string
	err := filepath.WalkDir("proto", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".proto") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk proto: %v", err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		h.Write([]byte(f + "\n"))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestGeneratedCodeMatchesProto(t *testing.T) {
	want, err := os.ReadFile("proto.sum")
	if err != nil {
		t.Fatalf("read proto.sum: %v (run `make proto`)", err)
	}
	if got := protoChecksum(t); strings.TrimSpace(string(want)) != got {
		t.Fatalf("generated code is stale: the .proto files changed since the last `make proto` (checksum %s, recorded %s); run `make proto` and commit the result", got, strings.TrimSpace(string(want)))
	}
}

func TestProtoSumWriter(t *testing.T) {
	if os.Getenv("VOLT_WRITE_PROTO_SUM") == "" {
		t.Skip("set VOLT_WRITE_PROTO_SUM=1 to record proto.sum (done by `make proto`)")
	}
	if err := os.WriteFile("proto.sum", []byte(protoChecksum(t)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStatusNamesRoundTrip(t *testing.T) {
	for s := range statusNames {
		got, err := ParseStatus(s.Name())
		if err != nil || got != s {
			t.Fatalf("ParseStatus(%q) = %v, %v", s.Name(), got, err)
		}
	}
	if _, err := ParseStatus("bogus"); err == nil {
		t.Fatal("ParseStatus accepted bogus")
	}
}
