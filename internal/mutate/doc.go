// Package mutate is Volt's mutation tester (`make mutants`). It finds
// mutation sites in the four deterministic cores with go/ast, samples them
// with a seed, and judges each mutant with the simulator and the property
// tests alone, never with the cores' own unit tests: a mutant that those
// tests let through is a bug the simulator would miss.
//
// The kinds of mutation are gremlins' (github.com/go-gremlins/gremlins),
// plus two that matter for Volt's effects:
//
//   - conditionals negated (== ↔ !=, < ↔ >=, > ↔ <=),
//   - conditional boundaries (< ↔ <=, > ↔ >=),
//   - increments and decrements (++ ↔ --, += ↔ -=, x+1 ↔ x-1),
//   - logical operators inverted (&& ↔ ||),
//   - statements removed (a call statement, an assignment, an increment),
//   - effects swapped (two neighbours in a slice of effects, two arguments
//     of one append to it, the arguments of two consecutive appends to the
//     same slice, or the two halves of a prepend).
//
// gremlins itself cannot serve: it runs the mutated package's own tests,
// or, in its integration mode, every test of the module (`go test ./...`);
// it cannot be limited to chosen test packages, it copies the module for
// each worker, and it neither samples nor swaps effects.
//
// Each mutant is compiled and tested in place through `go test -overlay`,
// which swaps one file for its mutated copy without touching the tree.
// Sites that only shape a trace note (actors.Info, Warn, Debug, Refused),
// live in a planted bug (plant.On, compiled out of every normal build) or
// in a Digest method (the state hash the checker uses) are not mutated:
// the contract says nothing of log lines, dead code cannot be killed, and
// a digest is the checker's instrument, not behaviour.
//
// The judge (DefaultJudge) is `go test ./sim/` without the frozen
// scenarios, the scenarios for their invariants only (a golden-trace diff
// alone kills nothing: any change of behaviour makes one), and
// `go test ./property_test/` with rapid seeded by the sample's seed. The
// unmodified tree must pass it first. A mutant that outlasts the timeout
// counts as killed; one that does not compile is left out of the efficacy,
// killed / (killed + survived).
//
// mutate is a development tool: nothing in the product imports it.
package mutate
