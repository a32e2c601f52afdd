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
// The checker holds a reference model (model.go), keyed by (build, job),
// that derives what must happen from the simulator's own records (pushes
// to the simulated repository, crashes, deliveries, the answers carried
// back), never from the dispatcher's numbering or log text: every pushed
// commit built or skipped as the contract says, attempts up by one, errored
// after exactly the attempt cap's lost attempts, a runner declared dead
// only after dead-after without a word, a cancel that wins (a simulated
// user cancels and rebuilds, user.go), a result file for each recorded
// result. Worlds whose faults are drawn search at the deadlines
// (search.go): timers vary per seed inside their legal ranges, each seed
// keeps its own mix of fault kinds, and runner faults aim at a busy
// runner's lease and dead-after.
//
// Older incarnations. A runner restarted (or replaced) is a new
// incarnation, and a message from an older one changes nothing: the
// dispatcher's state (its Digest) is the same after the step as before,
// it persists nothing and assigns nothing. It may still answer, as long as
// the answer is true: a duplicate JobFinished from the incarnation whose
// result was recorded may be acknowledged as recorded (the checker knows
// which attempt and incarnation delivered each recorded result), and any
// other may be told "not recorded". See checker.staleStep.
//
// sim must not import gitexec, cluster, os/exec or net.
package sim
