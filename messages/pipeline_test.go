package messages

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCellName(t *testing.T) {
	m := []*MatrixValue{{Name: "go", Value: "1.26"}, {Name: "db", Value: "sqlite"}}
	assert.Equal(t, "test (go=1.26, db=sqlite) 3/4", CellName("test", m, 2, 4))
	assert.Equal(t, "lint", CellName("lint", nil, 0, 0))
	assert.Equal(t, "unit 1/10", CellName("unit", nil, 0, 10))
}

func TestAggregate(t *testing.T) {
	P, F, E, C, S, T := Status_STATUS_PASSED, Status_STATUS_FAILED, Status_STATUS_ERRORED, Status_STATUS_CANCELLED, Status_STATUS_SKIPPED, Status_STATUS_TIMED_OUT
	assert.Equal(t, P, Aggregate([]Status{P, P, S}, nil))
	assert.Equal(t, F, Aggregate([]Status{P, F, C, E, S}, nil), "any failed job fails the build")
	assert.Equal(t, E, Aggregate([]Status{P, E, C}, nil))
	assert.Equal(t, C, Aggregate([]Status{P, C, S}, nil))
	assert.Equal(t, T, Aggregate([]Status{P, T, E}, nil))
	assert.Equal(t, S, Aggregate([]Status{S, S}, nil))
	assert.Equal(t, P, Aggregate([]Status{P, F}, []bool{false, true}), "allow-failure keeps a failure out")
	assert.Equal(t, C, Aggregate([]Status{C}, []bool{true}), "a cancel is not a failure to allow")
	for _, s := range []Status{P, F, E, C, S, T} {
		assert.Equal(t, s, Aggregate([]Status{s}, nil), "a one-job build has its job's status")
	}
}
