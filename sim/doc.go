// Package sim is Volt's deterministic simulator. One seed determines a whole
// run: a single-threaded world with a virtual clock, an event queue ordered
// by (virtual time, sequence), one seeded PRNG (and, from the same seed,
// one for the malicious peer and two for secrets), a simulated network
// (delay, reordering, drop, duplicate, partitions), a simulated repository
// (commits arriving on several branches, force pushes, merges), a simulated
// executor (durations, failures, hangs past the timeout, jobs that kill
// their runner), a durable store that survives a dispatcher crash while
// memory does not, a supervisor model that restarts crashed roles as new
// incarnations, a secret store on the dispatcher's side whose secrets jobs
// ask for (see secrets.go), and a malicious peer that forges messages to
// every role (see malicious.go). Every node proves an identity to the nodes
// it sends to, as mutual TLS would.
//
// It runs the production cores from actors/ unchanged, inside their
// production shells: each node is an actors/host Host, whose platform is
// the world (platform.go), around its role's own Shell (group commit, the
// reporter's records and result files, job starts and cancels, polls);
// the world supplies only fakes of the roles' ports (ports.go). A node can
// crash between two effects of one step and while a batch is written, and
// a store can refuse writes (fault kinds crashpoint, batchcrash,
// storefail). A Checker verifies the safety invariants after every step
// (among them that nothing the malicious peer sends changes a core's state
// or makes a runner run a job, and that a secret's value goes only to the
// runner running its job's current attempt, only when its binding serves
// the job, and never to the malicious peer) and the liveness ones after
// the faults heal. `volt sim` exposes it to users.
//
// sim must not import gitexec, cluster, os/exec or net.
package sim
