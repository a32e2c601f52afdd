// Package actors holds Volt's four roles. Each role (subpackages dispatcher,
// runner, observer, reporter) is a deterministic state machine, its core,
// wrapped in a thin Proto.Actor actor that type-switches messages, calls the
// core and carries out the effects it returns.
//
// This package defines what the cores share: addresses; who sent an input
// (From: the claimed address and the Identity its connection proved, never
// the sender it claims), against which every core checks each message
// before it acts; the inputs every core understands (Tick, PeerTerminated)
// and the effects every shell carries out (Send, Watch, Exit, Note); Link,
// the registration state machine of the roles that register with the
// dispatcher; and Digest, the state hash the simulator uses to prove that a
// refused input changed nothing.
//
// Cores read no clock, start no goroutine, sleep never, run no process and
// touch no network: time arrives as an argument. actors must not import
// os/exec, net, gitexec, sim or cluster.
package actors
