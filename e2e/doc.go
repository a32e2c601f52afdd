// Package e2e holds Volt's end-to-end tests. They build the volt binary from
// ./cmd/volt once, then drive it the way a user does: the dispatcher, reporter,
// runners and observer (or `volt up`) run as separate processes talking over
// loopback, on free ports, against real git repositories and Python unittest
// suites in temporary directories. The tests kill processes with SIGKILL and
// SIGTERM and inspect /proc to check that no job process outlives its runner.
//
// The package contains only tests and must not be imported.
package e2e
