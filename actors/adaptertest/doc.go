// Package adaptertest proves that the role shells (the thin Proto.Actor
// actors around the deterministic cores) carry out their cores' effects
// faithfully: with the real mailbox, supervision and restarts, under a
// deterministic actor.Dispatcher that queues every scheduled mailbox run and
// lets a seed (or rapid) choose which one runs next.
//
// The package holds tests only. It uses a purely local actor system: no
// remote, no futures, no receive timeouts; the shells' tickers are set to an
// interval that never fires, and ticks are sent by the tests.
//
// Like the rest of actors, it must not import os/exec, net, gitexec, sim,
// cluster or store: the ports are implemented by fakes in the tests.
package adaptertest
