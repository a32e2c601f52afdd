package dispatcher

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
)

// TestIndexAgreesWithAMap drives the runner index and a Go map with the
// same random sets and deletions, over few keys so that probe chains wrap
// and backward shifts happen.
func TestIndexAgreesWithAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, byAddr := range []bool{false, true} {
		x := newIndex(byAddr)
		want := map[string]*runnerState{}
		for step := range 50000 {
			k := fmt.Sprintf("k%d", rng.IntN(300))
			switch rng.IntN(3) {
			case 0, 1:
				r := &runnerState{id: k, addr: actors.Addr(k)}
				x.set(r)
				want[k] = r
			case 2:
				x.del(k)
				delete(want, k)
			}
			require.Same(t, want[k], x.get(k), "step %d key %s", step, k)
			if step%1000 == 0 {
				require.Equal(t, len(want), x.n)
				for k, r := range want {
					require.Same(t, r, x.get(k), "step %d key %s", step, k)
				}
				rs := x.sorted()
				require.Len(t, rs, len(want))
				for i := 1; i < len(rs); i++ {
					require.Less(t, x.key(rs[i-1]), x.key(rs[i]))
				}
			}
		}
	}
}
