// Package host is the one shell every role runs in, in production and in
// the simulator alike. A Host owns a role's core: it starts it, hands it
// its inputs, and carries out its effects in the order the core returned
// them. The effects every core shares (Send, Register, Watch, Unwatch,
// Exit, Note) go to the Platform the host runs on; the role's own effects
// go to the role's handler, written once in the role's package against its
// ports (store, executor, repository). A role whose writes must be durable
// before anyone hears of them (the dispatcher) gets group commit: its
// writes gather into batches, one batch is written at a time off the
// actor, and every effect after a write waits, in order, until that write
// is durable. A write that fails is retried with backoff; see store.go.
//
// Two platforms exist: Actor, a Proto.Actor actor (actor.go), and the
// simulator's world (sim/). The host itself does no I/O, starts no
// goroutine and reads no clock: blocking work goes through Platform.Go.
//
// It must not import os/exec, net, gitexec, store, cluster or sim.
package host
