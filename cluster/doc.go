// Package cluster wires Volt's roles into processes: it starts the
// Proto.Actor actor system (its logger routed through slog) and remote,
// picks listening ports, resolves peer addresses once, supervises the role
// actors (a OneForOne strategy with a restart budget; past it the process
// exits with a clear error), and adapts gitexec and store to the ports the
// roles declare.
//
// cluster must not import sim.
package cluster
