//go:build !plantedbugs

package plant

// On reports whether bug b is planted: never, in this build.
func On(Bug) bool { return false }

// Enabled reports whether this binary can plant bugs.
const Enabled = false

// Set plants b (None for none); without the plantedbugs tag it panics.
func Set(Bug) { panic("plant: build with -tags plantedbugs to plant bugs") }
