// Package jobspec reads a repository's job description, the .volt.yml file at
// the root of the commit under test, and turns it into a Spec: the steps to run
// in order, their timeouts, the extra environment and the names of the
// secrets the job asks for (which the dispatcher grants or refuses).
//
// A repository without a .volt.yml but with a tests/ folder gets the original
// design's convention: one step running Python's unittest discovery.
//
// jobspec parses outside input only; it does no I/O beyond reading the file in
// Load. It must not import any Volt package (actors, gitexec, store, cluster,
// sim, messages) nor Proto.Actor, so that every role and the simulator can use it.
package jobspec
