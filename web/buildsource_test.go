package web

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestListedAt: a finished build is listed at its newest finished job's
// result (the newest of the status a list asks for), whichever of its
// jobs' results a page of results holds.
func TestListedAt(t *testing.T) {
	at := func(ms int64) *time.Time { v := time.UnixMilli(ms); return &v }
	v := &BuildView{Jobs: []BuildJob{
		{JobID: 10, State: stateDone, Status: "passed", FinishedAt: at(100)},
		{JobID: 11, State: stateDone, Status: "failed", FinishedAt: at(300)},
		{JobID: 12, State: stateDone, Status: "failed", FinishedAt: at(200)},
		{JobID: 13, State: stateDone, Status: "skipped"},
		{JobID: 14, State: stateRunning, Status: stateRunning},
	}}
	tests := []struct {
		name, status string
		want         int64
	}{
		{"any status: the newest", "", 11},
		{"of a status: the newest of it", "passed", 10},
		{"the newest failure", "failed", 11},
		{"none of the status", "errored", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { assert.Equal(t, tt.want, listedAt(v, tt.status)) })
	}
	tie := &BuildView{Jobs: []BuildJob{{JobID: 20, State: stateDone, Status: "passed", FinishedAt: at(5)}, {JobID: 21, State: stateDone, Status: "passed", FinishedAt: at(5)}}}
	assert.Equal(t, int64(21), listedAt(tie, ""), "the store orders equal times by id, newest first")
}
