package gitexec

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImports keeps the import rule of doc.go true.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/asynkron/protoactor-go",
			"github.com/voltci/volt/actors",
			"github.com/voltci/volt/cluster",
			"github.com/voltci/volt/sim",
		} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("gitexec imports %s", dep)
			}
		}
	}
}
