package jobspec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadJobWithoutACellSaysWhatIsWrongWithAPipeline: a rebuild of a
// build whose jobs: file could not be expanded runs its one job without a
// cell; the runner repeats the file's error, with its line and column.
func TestLoadJobWithoutACellSaysWhatIsWrongWithAPipeline(t *testing.T) {
	dir := t.TempDir()
	file := "jobs:\n  a:\n    needs: [b]\n    steps: [{run: \"true\"}]\n  b:\n    needs: [a]\n    steps: [{run: \"true\"}]\n"
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadJob(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "line ") || !strings.Contains(err.Error(), "column ") || strings.Contains(err.Error(), "update the observer") {
		t.Fatalf("LoadJob(nil) on a cyclic pipeline: %v", err)
	}
}
