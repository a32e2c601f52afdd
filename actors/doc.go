// Package actors holds Volt's four roles. Each role (subpackages dispatcher,
// runner, observer, reporter) is a deterministic state machine, its core,
// wrapped in a thin Proto.Actor actor that type-switches messages, calls the
// core and carries out the effects it returns.
//
// This package defines what the cores share: addresses, the inputs every
// core understands (Tick, PeerTerminated) and the effects every shell carries
// out (Send, Watch, Exit, Note), plus Link, the registration state machine
// of the roles that register with the dispatcher.
//
// Cores read no clock, start no goroutine, sleep never, run no process and
// touch no network: time arrives as an argument. actors must not import
// os/exec, net, gitexec, sim or cluster.
package actors
