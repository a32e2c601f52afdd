package voltbin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	require.NoError(t, os.WriteFile(p, []byte("a\nb\nc\n"), 0o644))
	require.Equal(t, "b\nc", Tail(p, 2))
	require.Equal(t, "a\nb\nc", Tail(p, 10))
	require.True(t, strings.HasPrefix(Tail(filepath.Join(t.TempDir(), "none"), 2), "("), "a missing file says why")
}

func TestFreePort(t *testing.T) {
	port, err := FreePort()
	require.NoError(t, err)
	require.Greater(t, port, 0)
}

func TestBuildRefusesAMissingTool(t *testing.T) {
	_, _, err := Build("../..", "no-such-tool-volt-needs")
	require.ErrorContains(t, err, "no-such-tool-volt-needs not found in PATH")
}
