package jobspec

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImports keeps the import rule of doc.go true: no Volt package, no Proto.Actor.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, dep := range strings.Fields(string(out)) {
		if dep == "github.com/voltci/volt/jobspec" {
			continue
		}
		if strings.HasPrefix(dep, "github.com/voltci/volt/") || strings.HasPrefix(dep, "github.com/asynkron/") {
			t.Errorf("jobspec imports %s", dep)
		}
	}
}
