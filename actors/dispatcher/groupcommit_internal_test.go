package dispatcher

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
)

// Under steady traffic a newer batch always has effects waiting when an
// older one lands. The held effects must still be released in order, and
// the space of released ones reused: memory stays flat, not growing with
// every effect until the dispatcher goes quiet.
func TestHeldEffectsReuseTheirSpace(t *testing.T) {
	var g groupCommit
	released := 0
	for batch := uint64(1); batch <= 10_000; batch++ {
		g.last = batch
		for i := range 3 {
			g.hold(held{effect: actors.Note{Msg: "effect", Args: []any{batch, i}}})
		}
		g.durable = batch - 1 // the previous batch lands; this one is still written
		for {
			h, ok := g.next()
			if !ok {
				break
			}
			require.Equal(t, []any{uint64(released/3 + 1), released % 3}, h.effect.(actors.Note).Args, "out of order")
			released++
		}
		require.True(t, g.waiting())
	}
	require.Equal(t, 3*9_999, released)
	require.LessOrEqual(t, len(g.held.buf), 16, "held effects kept the space of released ones")
}
