package web

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func graphJobs(needs ...[]int32) []BuildJob {
	out := make([]BuildJob, len(needs))
	for i, n := range needs {
		out[i] = BuildJob{Index: int32(i), Name: string(rune('a' + i)), Needs: n, Status: "queued", PageURL: "/p"}
	}
	return out
}

func TestLayout(t *testing.T) {
	type box struct {
		Index      int32
		Stage, Row int
		X, Y       int
	}
	type arrow struct {
		From, To       int32
		X1, Y1, X2, Y2 int
	}
	tests := []struct {
		name          string
		jobs          []BuildJob
		stages        int
		width, height int
		boxes         []box
		arrows        []arrow
	}{
		{
			name:   "lint, two tests, package: the short columns are centred",
			jobs:   graphJobs(nil, []int32{0}, []int32{0}, []int32{1, 2}),
			stages: 3, width: 2*graphPad + 3*boxWidth + 2*columnGap, height: 2*graphPad + 2*boxHeight + rowGap,
			boxes: []box{{0, 0, 0, 10, 39}, {1, 1, 0, 290, 10}, {2, 1, 1, 290, 68}, {3, 2, 0, 570, 39}},
			arrows: []arrow{
				{0, 1, 220, 61, 290, 32}, {0, 2, 220, 61, 290, 90},
				{1, 3, 500, 32, 570, 61}, {2, 3, 500, 90, 570, 61},
			},
		},
		{
			name:   "the stage is the longest path of needs, not the shortest",
			jobs:   graphJobs(nil, []int32{0}, []int32{0, 1}),
			stages: 3, width: 2*graphPad + 3*boxWidth + 2*columnGap, height: 2*graphPad + boxHeight,
			boxes:  []box{{0, 0, 0, 10, 10}, {1, 1, 0, 290, 10}, {2, 2, 0, 570, 10}},
			arrows: []arrow{{0, 1, 220, 32, 290, 32}, {0, 2, 220, 32, 570, 32}, {1, 2, 500, 32, 570, 32}},
		},
		{
			name:   "needs on itself, a later job, a job not in the build and twice the same are not drawn",
			jobs:   graphJobs([]int32{0, 1, 7}, []int32{0, 0, -1}),
			stages: 2, width: 2*graphPad + 2*boxWidth + columnGap, height: 2*graphPad + boxHeight,
			boxes:  []box{{0, 0, 0, 10, 10}, {1, 1, 0, 290, 10}},
			arrows: []arrow{{0, 1, 220, 32, 290, 32}},
		},
		{
			name:   "one job",
			jobs:   graphJobs(nil),
			stages: 1, width: 2*graphPad + boxWidth, height: 2*graphPad + boxHeight,
			boxes: []box{{0, 0, 0, 10, 10}},
		},
		{name: "no jobs", stages: 0, width: 2 * graphPad, height: 2 * graphPad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := layout(tt.jobs)
			assert.Equal(t, tt.stages, g.Stages)
			assert.Equal(t, tt.width, g.Width)
			assert.Equal(t, tt.height, g.Height)
			var boxes []box
			for _, b := range g.Boxes {
				boxes = append(boxes, box{b.Index, b.Stage, b.Row, b.X, b.Y})
				assert.Equal(t, boxWidth, b.W)
				assert.LessOrEqual(t, b.X+b.W+graphPad, g.Width, "box %d inside the drawing", b.Index)
				assert.LessOrEqual(t, b.Y+b.H+graphPad, g.Height, "box %d inside the drawing", b.Index)
			}
			assert.Equal(t, tt.boxes, boxes)
			var arrows []arrow
			for _, a := range g.Arrows {
				arrows = append(arrows, arrow{a.From, a.To, a.X1, a.Y1, a.X2, a.Y2})
			}
			assert.Equal(t, tt.arrows, arrows)
		})
	}
}

func TestLayoutIsDeterministic(t *testing.T) {
	jobs := graphJobs(nil, nil, []int32{0}, []int32{1}, []int32{2, 3}, []int32{0})
	want := layout(jobs)
	shuffled := []BuildJob{jobs[4], jobs[1], jobs[5], jobs[0], jobs[3], jobs[2]}
	got := layout(shuffled)
	assert.Equal(t, want.Boxes, got.Boxes, "boxes come in index order whatever the input order")
	assert.Equal(t, want.Arrows, got.Arrows)
	assert.Equal(t, "M220 61 C255 61 255 32 290 32", want.Arrows[0].Path, "a cubic curve from the need's right edge to the dependent's left")
}

func TestLayoutShortensLongNames(t *testing.T) {
	jobs := []BuildJob{{Name: "test (go=1.26, db=postgres, os=linux) 12/16", Status: "running"}, {Index: 1, Name: "lint", Status: "passed"}}
	g := layout(jobs)
	require.Len(t, g.Boxes, 2)
	assert.Equal(t, "test (go=1.26, db=postgres…", g.Boxes[0].Label)
	assert.Equal(t, jobs[0].Name, g.Boxes[0].Name, "the full name stays for the tooltip")
	assert.Equal(t, "lint", g.Boxes[1].Label)
}
