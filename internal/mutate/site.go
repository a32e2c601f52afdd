package mutate

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
	"strings"
)

// Kind names a class of mutation.
type Kind string

// The kinds of mutation, named as gremlins names its own where it has one.
const (
	Negation Kind = "conditionals-negation"
	Boundary Kind = "conditionals-boundary"
	IncDec   Kind = "increment-decrement"
	Logical  Kind = "invert-logical"
	Removed  Kind = "removed-statement"
	Swapped  Kind = "swapped-effects"
)

// noteCalls are the functions of package actors that build a trace note.
const noteCalls = "Info Warn Debug Refused"

// Kinds lists every kind, in the order reports print them.
var Kinds = []Kind{Negation, Boundary, IncDec, Logical, Removed, Swapped}

// Edit replaces the source bytes [Off, End) with Text.
type Edit struct {
	Off, End int
	Text     string
}

// Mutant is one mutation of one file: the edits that make it, where it is,
// and what it does.
type Mutant struct {
	File  string // as given to Sites (the driver passes paths relative to the module root)
	Line  int
	Col   int
	Kind  Kind
	Desc  string // what changed, for example "< → <=" or "removed: fx = append(fx, …)"
	Edits []Edit
}

// String is file:line:col, the kind and the change.
func (m Mutant) String() string {
	return fmt.Sprintf("%s:%d:%d %s: %s", m.File, m.Line, m.Col, m.Kind, m.Desc)
}

// Apply returns src with m's edits made. The edits of one mutant never
// overlap.
func Apply(src []byte, m Mutant) []byte {
	edits := append([]Edit(nil), m.Edits...)
	sort.Slice(edits, func(i, j int) bool { return edits[i].Off > edits[j].Off })
	out := append([]byte(nil), src...)
	for _, e := range edits {
		out = append(out[:e.Off:e.Off], append([]byte(e.Text), out[e.End:]...)...)
	}
	return out
}

var (
	negated  = map[token.Token]token.Token{token.EQL: token.NEQ, token.NEQ: token.EQL, token.LSS: token.GEQ, token.GEQ: token.LSS, token.GTR: token.LEQ, token.LEQ: token.GTR}
	boundary = map[token.Token]token.Token{token.LSS: token.LEQ, token.LEQ: token.LSS, token.GTR: token.GEQ, token.GEQ: token.GTR}
	flipped  = map[token.Token]token.Token{token.INC: token.DEC, token.DEC: token.INC, token.ADD_ASSIGN: token.SUB_ASSIGN, token.SUB_ASSIGN: token.ADD_ASSIGN, token.ADD: token.SUB, token.SUB: token.ADD, token.LAND: token.LOR, token.LOR: token.LAND}
)

// Sites parses one Go file and returns every mutant of it, in source order.
func Sites(file string, src []byte) ([]Mutant, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", file, err)
	}
	s := &scan{fset: fset, src: src, file: file}
	s.findSkipped(f)
	producers := map[string]bool{} // the functions of f that return effects
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Type.Results != nil && len(fn.Type.Results.List) == 1 && isEffectSlice(fn.Type.Results.List[0].Type) {
			producers[fn.Name.Name+"()"] = true
		}
	}
	for _, d := range f.Decls {
		// A Digest method hashes state for the simulator's checks; it is
		// the checker's instrument, not behaviour, so it is not mutated.
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Body != nil && fn.Name.Name != "Digest" {
			s.effectSlices = effectSlices(fn, producers)
			ast.Inspect(fn.Body, s.visit)
		}
	}
	sort.SliceStable(s.out, func(i, j int) bool { return s.out[i].Edits[0].Off < s.out[j].Edits[0].Off })
	return s.out, nil
}

type scan struct {
	fset         *token.FileSet
	src          []byte
	file         string
	skipped      [][2]token.Pos // trace notes and planted bugs
	effectSlices map[string]bool
	out          []Mutant
}

func (s *scan) text(n ast.Node) string { return s.span(n.Pos(), n.End()) }

func (s *scan) span(from, to token.Pos) string {
	return string(s.src[s.fset.Position(from).Offset:s.fset.Position(to).Offset])
}

func (s *scan) off(p token.Pos) int { return s.fset.Position(p).Offset }

func (s *scan) add(at token.Pos, kind Kind, desc string, edits ...Edit) {
	for _, r := range s.skipped {
		if at >= r[0] && at < r[1] {
			return
		}
	}
	p := s.fset.Position(at)
	s.out = append(s.out, Mutant{File: s.file, Line: p.Line, Col: p.Column, Kind: kind, Desc: desc, Edits: edits})
}

// replaceOp makes the edit that turns the operator at pos from old to new.
func (s *scan) replaceOp(pos token.Pos, old, new token.Token) Edit {
	o := s.off(pos)
	return Edit{Off: o, End: o + len(old.String()), Text: new.String()}
}

// findSkipped records the spans no mutant may start in: the arguments of
// trace notes, and the bodies and conditions of planted bugs.
func (s *scan) findSkipped(f *ast.File) {
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if isNote(n) || isPlant(n) {
				s.skipped = append(s.skipped, [2]token.Pos{n.Pos(), n.End()})
			}
		case *ast.IfStmt:
			if call, ok := n.Cond.(*ast.CallExpr); ok && isPlant(call) {
				s.skipped = append(s.skipped, [2]token.Pos{n.Pos(), n.Body.End()})
			}
		case *ast.BinaryExpr:
			if (n.Op == token.LAND || n.Op == token.LOR) && (mentionsPlant(n.X) || mentionsPlant(n.Y)) {
				s.skipped = append(s.skipped, [2]token.Pos{n.OpPos, n.OpPos + 1})
			}
		}
		return true
	})
}

func (s *scan) visit(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.BinaryExpr:
		s.binary(n)
	case *ast.IncDecStmt:
		s.add(n.TokPos, IncDec, n.Tok.String()+" → "+flipped[n.Tok].String(), s.replaceOp(n.TokPos, n.Tok, flipped[n.Tok]))
	case *ast.AssignStmt:
		if to, ok := flipped[n.Tok]; ok {
			s.add(n.TokPos, IncDec, n.Tok.String()+" → "+to.String(), s.replaceOp(n.TokPos, n.Tok, to))
		}
	case *ast.BlockStmt:
		s.statements(n.List)
	case *ast.CaseClause:
		s.statements(n.Body)
	case *ast.CommClause:
		s.statements(n.Body)
	case *ast.CompositeLit:
		if isEffectSlice(n.Type) {
			s.swapNeighbours(n.Elts, "element")
		}
	case *ast.CallExpr:
		s.appendArgs(n)
	}
	return true
}

func (s *scan) binary(n *ast.BinaryExpr) {
	if to, ok := negated[n.Op]; ok {
		s.add(n.OpPos, Negation, n.Op.String()+" → "+to.String(), s.replaceOp(n.OpPos, n.Op, to))
	}
	if to, ok := boundary[n.Op]; ok {
		s.add(n.OpPos, Boundary, n.Op.String()+" → "+to.String(), s.replaceOp(n.OpPos, n.Op, to))
	}
	if n.Op == token.LAND || n.Op == token.LOR {
		to := flipped[n.Op]
		s.add(n.OpPos, Logical, n.Op.String()+" → "+to.String(), s.replaceOp(n.OpPos, n.Op, to))
	}
	if (n.Op == token.ADD || n.Op == token.SUB) && (isOne(n.X) || isOne(n.Y)) {
		to := flipped[n.Op]
		s.add(n.OpPos, IncDec, s.text(n)+" → "+s.span(n.X.Pos(), n.OpPos)+to.String()+s.span(n.OpPos+1, n.End()),
			s.replaceOp(n.OpPos, n.Op, to))
	}
}

// statements proposes removing each statement of a list that does
// something on its own (a call, an assignment, an increment), and swapping
// the arguments of two consecutive appends to the same slice of effects.
func (s *scan) statements(list []ast.Stmt) {
	for i, st := range list {
		switch st := st.(type) {
		case *ast.ExprStmt:
			if call, ok := st.X.(*ast.CallExpr); ok && !isNote(call) {
				s.add(st.Pos(), Removed, "removed: "+short(s.text(st)), Edit{Off: s.off(st.Pos()), End: s.off(st.End())})
			}
		case *ast.IncDecStmt:
			s.add(st.Pos(), Removed, "removed: "+short(s.text(st)), Edit{Off: s.off(st.Pos()), End: s.off(st.End())})
		case *ast.AssignStmt:
			s.removeAssign(st)
		}
		if i+1 < len(list) {
			a, b := s.effectAppend(st), s.effectAppend(list[i+1])
			if a != nil && b != nil && s.text(a.Args[0]) == s.text(b.Args[0]) && !allNotes(a.Args[1:]) && !allNotes(b.Args[1:]) {
				ra, rb := s.tail(a), s.tail(b)
				s.add(st.Pos(), Swapped, fmt.Sprintf("appends swapped with line %d: %s ↔ %s", s.fset.Position(b.Pos()).Line, short(ra.Text), short(rb.Text)),
					Edit{Off: ra.Off, End: ra.End, Text: rb.Text}, Edit{Off: rb.Off, End: rb.End, Text: ra.Text})
			}
		}
	}
}

// removeAssign turns `x, y = a, b` (or `x += a`) into `_, _ = a, b`, so
// that what the right-hand side computes still compiles and only the
// assignment is gone. Declarations (:=) stay.
func (s *scan) removeAssign(st *ast.AssignStmt) {
	if st.Tok == token.DEFINE {
		return
	}
	blank := true
	for _, l := range st.Lhs {
		if id, ok := l.(*ast.Ident); !ok || id.Name != "_" {
			blank = false
		}
	}
	if blank {
		return
	}
	if call := effectAppendCall(st, s.effectSlices); call != nil && allNotes(call.Args[1:]) {
		return
	}
	for _, r := range st.Rhs {
		if id, ok := r.(*ast.Ident); ok && id.Name == "nil" {
			// `_ = nil` does not compile, and nil computes nothing: drop it all.
			s.add(st.Pos(), Removed, "removed: "+short(s.text(st)), Edit{Off: s.off(st.Pos()), End: s.off(st.End())})
			return
		}
	}
	blanks := strings.TrimSuffix(strings.Repeat("_, ", len(st.Lhs)), ", ")
	s.add(st.Pos(), Removed, "removed: "+short(s.text(st)),
		Edit{Off: s.off(st.Pos()), End: s.off(st.TokPos) + len(st.Tok.String()), Text: blanks + " ="})
}

// tail is the span of an append's arguments after the slice, with a
// trailing "..." if there is one.
func (s *scan) tail(call *ast.CallExpr) Edit {
	from, to := s.off(call.Args[1].Pos()), s.off(call.Args[len(call.Args)-1].End())
	if call.Ellipsis.IsValid() {
		to = s.off(call.Ellipsis) + 3
	}
	return Edit{Off: from, End: to, Text: string(s.src[from:to])}
}

// effectAppend returns the append of `fx = append(fx, …)` or
// `return append(fx, …)` when fx is a slice of effects.
func (s *scan) effectAppend(st ast.Stmt) *ast.CallExpr {
	switch st := st.(type) {
	case *ast.AssignStmt:
		return effectAppendCall(st, s.effectSlices)
	case *ast.ReturnStmt:
		if len(st.Results) == 1 {
			if call, ok := st.Results[0].(*ast.CallExpr); ok && isAppend(call) && len(call.Args) >= 2 && isEffectExpr(call.Args[0], s.effectSlices) {
				return call
			}
		}
	}
	return nil
}

func effectAppendCall(st *ast.AssignStmt, slices map[string]bool) *ast.CallExpr {
	if st.Tok != token.ASSIGN || len(st.Lhs) != 1 || len(st.Rhs) != 1 {
		return nil
	}
	call, ok := st.Rhs[0].(*ast.CallExpr)
	if !ok || !isAppend(call) || len(call.Args) < 2 || !isEffectExpr(call.Args[0], slices) {
		return nil
	}
	return call
}

// appendArgs proposes swapping neighbouring effects appended by one call,
// and the two halves of a prepend: append([]Effect{p}, fx...) ↔ append(fx, []Effect{p}...).
func (s *scan) appendArgs(call *ast.CallExpr) {
	if !isAppend(call) || len(call.Args) < 2 || !isEffectExpr(call.Args[0], s.effectSlices) {
		return
	}
	if call.Ellipsis.IsValid() {
		if len(call.Args) == 2 && isEffectExpr(call.Args[1], s.effectSlices) && !isNoteExpr(call.Args[0]) && !isNoteExpr(call.Args[1]) {
			a, b := call.Args[0], call.Args[1]
			s.add(call.Pos(), Swapped, fmt.Sprintf("prepend swapped: append(%s, %s...)", short(s.text(b)), short(s.text(a))),
				Edit{Off: s.off(a.Pos()), End: s.off(a.End()), Text: s.text(b)}, Edit{Off: s.off(b.Pos()), End: s.off(b.End()), Text: s.text(a)})
		}
		return
	}
	s.swapNeighbours(call.Args[1:], "argument")
}

func (s *scan) swapNeighbours(elts []ast.Expr, what string) {
	for i := 0; i+1 < len(elts); i++ {
		a, b := elts[i], elts[i+1]
		if isNoteExpr(a) || isNoteExpr(b) || s.text(a) == s.text(b) {
			continue
		}
		s.add(a.Pos(), Swapped, fmt.Sprintf("%ss swapped: %s ↔ %s", what, short(s.text(a)), short(s.text(b))),
			Edit{Off: s.off(a.Pos()), End: s.off(a.End()), Text: s.text(b)}, Edit{Off: s.off(b.Pos()), End: s.off(b.End()), Text: s.text(a)})
	}
}

// effectSlices returns the names that hold a slice of effects in fn: its
// parameters and results of that type, the variables declared with it or
// with what a producer returns, and whatever fn returns when it returns
// effects. producers (keyed "name()") are carried into the result.
func effectSlices(fn *ast.FuncDecl, producers map[string]bool) map[string]bool {
	names := map[string]bool{}
	for p := range producers {
		names[p] = true
	}
	returnsEffects := false
	if fn.Type.Results != nil {
		for _, r := range fn.Type.Results.List {
			if isEffectSlice(r.Type) {
				returnsEffects = true
				for _, n := range r.Names {
					names[n.Name] = true
				}
			}
		}
	}
	for _, p := range fn.Type.Params.List {
		if isEffectSlice(p.Type) {
			for _, n := range p.Names {
				names[n.Name] = true
			}
		}
	}
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ValueSpec:
			if isEffectSlice(n.Type) {
				for _, id := range n.Names {
					names[id.Name] = true
				}
			}
		case *ast.AssignStmt:
			if n.Tok == token.DEFINE && len(n.Lhs) == len(n.Rhs) {
				for i, r := range n.Rhs {
					if id, ok := n.Lhs[i].(*ast.Ident); ok && isEffectExpr(r, names) {
						names[id.Name] = true
					}
				}
			}
		case *ast.ReturnStmt:
			if returnsEffects && len(n.Results) == 1 {
				if id, ok := n.Results[0].(*ast.Ident); ok && id.Name != "nil" {
					names[id.Name] = true
				}
			}
		}
		return true
	})
	return names
}

// isEffectExpr reports whether e is, on its face, a slice of effects: a
// name in slices, a []Effect literal, a make of one, an append to one, or
// a call of a producer (a function whose name, with "()", is in slices).
func isEffectExpr(e ast.Expr, slices map[string]bool) bool {
	switch e := e.(type) {
	case *ast.Ident:
		return slices[e.Name]
	case *ast.CompositeLit:
		return isEffectSlice(e.Type)
	case *ast.CallExpr:
		switch f := e.Fun.(type) {
		case *ast.Ident:
			switch f.Name {
			case "append":
				return len(e.Args) > 0 && isEffectExpr(e.Args[0], slices)
			case "make":
				return len(e.Args) > 0 && isEffectSlice(e.Args[0])
			}
			return slices[f.Name+"()"]
		case *ast.SelectorExpr:
			return slices[f.Sel.Name+"()"]
		}
	}
	return false
}

// isEffectSlice reports whether t is []Effect or []pkg.Effect.
func isEffectSlice(t ast.Expr) bool {
	at, ok := t.(*ast.ArrayType)
	if !ok || at.Len != nil {
		return false
	}
	switch e := at.Elt.(type) {
	case *ast.Ident:
		return e.Name == "Effect"
	case *ast.SelectorExpr:
		return e.Sel.Name == "Effect"
	}
	return false
}

func isAppend(call *ast.CallExpr) bool {
	id, ok := call.Fun.(*ast.Ident)
	return ok && id.Name == "append"
}

func isOne(e ast.Expr) bool {
	l, ok := e.(*ast.BasicLit)
	return ok && l.Kind == token.INT && l.Value == "1"
}

// isNote reports whether call builds a trace note: actors.Info, Warn, Debug
// or Refused.
func isNote(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "actors" && strings.Contains(" "+noteCalls+" ", " "+sel.Sel.Name+" ")
}

// isNoteExpr reports whether e is a trace note, or a literal slice of
// nothing but notes.
func isNoteExpr(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.CallExpr:
		return isNote(e)
	case *ast.CompositeLit:
		return isEffectSlice(e.Type) && allNotes(e.Elts)
	}
	return false
}

func allNotes(es []ast.Expr) bool {
	for _, e := range es {
		if !isNoteExpr(e) {
			return false
		}
	}
	return len(es) > 0
}

// isPlant reports whether call is plant.On(…), a planted bug's switch.
func isPlant(call *ast.CallExpr) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "plant" && sel.Sel.Name == "On"
}

func mentionsPlant(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.CallExpr:
		return isPlant(e)
	case *ast.UnaryExpr:
		return mentionsPlant(e.X)
	case *ast.ParenExpr:
		return mentionsPlant(e.X)
	}
	return false
}

// short puts s on one line and cuts it to 60 characters.
func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 60 {
		return string(r[:59]) + "…"
	}
	return s
}
