//go:build plantedbugs

package plant

var active Bug

// On reports whether bug b is planted.
func On(b Bug) bool { return active == b }

// Enabled reports whether this binary can plant bugs.
const Enabled = true

// Set plants b (None for none). Not safe for concurrent use: tests that
// plant bugs run sequentially.
func Set(b Bug) { active = b }
