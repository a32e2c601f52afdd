// Package property_test lets rapid choose the faults: it draws fault
// schedules (which runner crashes or hangs when, partitions and their
// length, dispatcher crashes and loss, message drops, duplicates and
// delays, a malicious peer's bursts of forgeries), with durations drawn
// around the heartbeat, lease and dead-after timers where the bugs live,
// runs them in the simulator, and shrinks any broken invariant to a
// minimal schedule. A PCG seeded by one rapid draw supplies the background
// noise (and the malicious peer's choices), so shrinking stays fast.
//
// Failures rapid finds are saved under testdata/rapid and replayed first on
// every run: the regression corpus. planted_test.go (build tag plantedbugs)
// proves the checker catches deliberate bugs.
package property_test
