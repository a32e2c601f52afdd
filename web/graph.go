package web

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// The pipeline graph's geometry, in SVG user units: one column per stage,
// one box per job, arrows from a need's right edge to its dependent's left.
const (
	boxWidth   = 210
	boxHeight  = 44
	columnGap  = 70
	rowGap     = 14
	graphPad   = 10
	labelRunes = 27 // what fits in a box at the stylesheet's font size
)

// graphBox is one job drawn as a box.
type graphBox struct {
	Index int32
	// Stage is the job's column: the longest path of needs from a job
	// that needs none. Row is its place in the column, by index.
	Stage, Row int
	X, Y, W, H int
	// TextX, NameY and StateY place the box's two lines of text.
	TextX, NameY, StateY int
	// Name is the job's full name; Label is what fits in the box.
	Name, Label string
	// Status is the job's status (BuildJob.Status), a CSS class.
	Status string
	Href   string
}

// graphArrow is one need: an arrow from job From (the need) to job To.
type graphArrow struct {
	From, To       int32
	X1, Y1, X2, Y2 int
	// Path is the arrow's SVG path data.
	Path string
}

// pipelineGraph is a build's jobs laid out for drawing.
type pipelineGraph struct {
	Width, Height int
	Stages        int
	Boxes         []graphBox
	Arrows        []graphArrow
}

// layout places jobs by stage, deterministically: stage 0 holds the jobs
// that need none, and a job's stage is one more than its needs' highest.
// Within a stage jobs go down by index, and shorter columns are centred
// against the tallest. A need that is not an earlier job of the build (the
// contract orders needs first, but the view comes from stored records) is
// not drawn and does not place the job.
func layout(jobs []BuildJob) pipelineGraph {
	pos := make(map[int32]int, len(jobs)) // index -> place in jobs
	for i, j := range jobs {
		pos[j.Index] = i
	}
	stage := make([]int, len(jobs))
	var arrows []graphArrow
	drawn := map[[2]int32]bool{}
	order := make([]int, len(jobs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return int(jobs[a].Index) - int(jobs[b].Index) })
	for _, i := range order {
		j := jobs[i]
		for _, n := range j.Needs {
			p, ok := pos[n]
			if !ok || n >= j.Index || drawn[[2]int32{n, j.Index}] {
				continue
			}
			drawn[[2]int32{n, j.Index}] = true
			stage[i] = max(stage[i], stage[p]+1)
			arrows = append(arrows, graphArrow{From: n, To: j.Index})
		}
	}
	g := pipelineGraph{}
	var columns [][]int // places in jobs, per stage
	for _, i := range order {
		for len(columns) <= stage[i] {
			columns = append(columns, nil)
		}
		columns[stage[i]] = append(columns[stage[i]], i)
	}
	tallest := 0
	for _, c := range columns {
		tallest = max(tallest, len(c))
	}
	g.Stages = len(columns)
	g.Width = 2*graphPad + len(columns)*boxWidth + max(len(columns)-1, 0)*columnGap
	g.Height = 2*graphPad + tallest*boxHeight + max(tallest-1, 0)*rowGap
	boxes := make([]graphBox, len(jobs))
	for s, c := range columns {
		offset := (tallest - len(c)) * (boxHeight + rowGap) / 2
		for r, i := range c {
			j := jobs[i]
			x, y := graphPad+s*(boxWidth+columnGap), graphPad+offset+r*(boxHeight+rowGap)
			boxes[i] = graphBox{Index: j.Index, Stage: s, Row: r, X: x, Y: y, W: boxWidth, H: boxHeight, TextX: x + 10, NameY: y + 18, StateY: y + 35,
				Name: j.Name, Label: shorten(j.Name, labelRunes), Status: j.Status, Href: j.PageURL}
		}
	}
	for _, i := range order {
		g.Boxes = append(g.Boxes, boxes[i])
	}
	for k := range arrows {
		a := &arrows[k]
		from, to := boxes[pos[a.From]], boxes[pos[a.To]]
		a.X1, a.Y1 = from.X+boxWidth, from.Y+boxHeight/2
		a.X2, a.Y2 = to.X, to.Y+boxHeight/2
		mid := (a.X1 + a.X2) / 2
		a.Path = fmt.Sprintf("M%d %d C%d %d %d %d %d %d", a.X1, a.Y1, mid, a.Y1, mid, a.Y2, a.X2, a.Y2)
	}
	g.Arrows = arrows
	return g
}

// shorten cuts s to at most n runes, ending it with an ellipsis when cut.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
