// Package jobspec reads a repository's job description, the .volt.yml file at
// the root of the commit under test.
//
// The single-list format (timeout, env, secrets, steps) describes a build of
// one job: Parse and Load turn it into a Spec, the steps to run in order,
// their timeouts, the extra environment and the names of the secrets the
// job asks for (which the dispatcher grants or refuses). A repository
// without a .volt.yml but with a tests/ folder gets the original design's
// convention: one step running Python's unittest discovery.
//
// The jobs format (jobs: with needs, runs-on, matrix, exclude, parallel and
// the rest, docs/pipelines.md) describes a pipeline: ExpandPipeline turns it
// into the commit's messages.Pipeline for the observer, one job per matrix
// cell and shard, with errors that give the line and column; LoadJob gives
// a runner the Spec of one of those jobs, with its matrix and shard in the
// environment. ValidateLabel, ParseLabels and MissingLabels are the rules of
// runner labels and runs-on.
//
// jobspec parses outside input only; it does no I/O beyond reading the file
// in Load and LoadJob. It must not import actors, cluster or Proto.Actor,
// nor any Volt package but messages, so that every role and the simulator
// can use it.
package jobspec
