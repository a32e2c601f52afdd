// Package plant holds deliberate bugs (twenty-nine) that keep the simulator's
// checker honest: a test plants one, runs the simulator, and proves the
// checker catches it. The bugs exist only in test binaries built with the build tag
// `plantedbugs`; in every other build On is a constant false that the
// compiler removes, and no user flag can reach them.
//
// plant must not import anything of Volt.
package plant

// Bug names one planted bug.
type Bug int

// The planted bugs. Each names the mistake, in the core it lives in.
const (
	None Bug = iota
	// LostJobNotRequeued: the dispatcher forgets a lost runner's job.
	LostJobNotRequeued
	// ResultsNotFenced: the dispatcher records a result from any attempt.
	ResultsNotFenced
	// OldIncarnationAccepted: the dispatcher takes messages from any incarnation.
	OldIncarnationAccepted
	// DeadRunnerStaysIdle: a lost runner stays in the idle pool.
	DeadRunnerStaysIdle
	// RunnerIgnoresDispatcherLoss: a runner never gives up on its dispatcher.
	RunnerIgnoresDispatcherLoss
	// ObserverAdvancesEarly: the observer moves its cursor when it sends,
	// not when the dispatcher acknowledges, and does not resend.
	ObserverAdvancesEarly
	// AttemptCapIgnored: a job that kills runners is retried forever.
	AttemptCapIgnored
	// QueueNotRestored: a restarted dispatcher forgets its queued jobs.
	QueueNotRestored
	// DuplicateObservedCreatesJobs: the dispatcher does not deduplicate commits.
	DuplicateObservedCreatesJobs
	// LeaseIgnored: a runner keeps its job when its lease lapses.
	LeaseIgnored
	// DispatcherTrustsClaimedSender: the dispatcher skips its identity
	// check and takes any message from anyone, as the sender it claims.
	DispatcherTrustsClaimedSender
	// RunnerTrustsClaimedSender: a runner skips its identity check and takes
	// a RunJob (or any dispatcher reply) from whoever claims the
	// dispatcher's address.
	RunnerTrustsClaimedSender
	// SecretsIgnoreBranches: the dispatcher grants a job every secret bound
	// to its repository, whatever branches the binding names.
	SecretsIgnoreBranches
	// SecretsToAnyRunner: the dispatcher grants a running job's secrets to
	// any runner that asks as itself, not only to the one running the job's
	// current attempt at its incarnation.
	SecretsToAnyRunner
	// SecretsPartlyGranted: the dispatcher, refusing a request because some
	// of its secrets are not the job's, still sends the values of the others.
	SecretsPartlyGranted
	// ReporterSkipsLogTicket: the reporter keeps a log chunk from any
	// runner, without checking the attempt's log ticket.
	ReporterSkipsLogTicket
	// AckBeforePersist: the dispatcher acknowledges (or sends) before the
	// change it acknowledges is persisted: the effect order inside one step.
	AckBeforePersist
	// AttemptCapOffByOne: the dispatcher errors a job one lost attempt late.
	AttemptCapOffByOne
	// FirstCommitSkipped: the first commit seen on a new branch is never built.
	FirstCommitSkipped
	// DeadAfterIsLease: the dispatcher declares a silent runner dead after
	// the lease, not after dead-after (a timer mix-up).
	DeadAfterIsLease
	// LeaseFromLastContact: a runner times its lease from the last message
	// it received, not from the last acknowledged heartbeat.
	LeaseFromLastContact
	// CancelNotResent: the dispatcher sends CancelJob once and never again,
	// not even to a runner that re-registers holding the cancelled job.
	CancelNotResent
	// ResultFileNotRewritten: the reporter writes a result's file only when
	// its record is new, so a crash between the two loses the file for good.
	ResultFileNotRewritten
	// ReporterTrustsClaimedSender: the reporter records a result from any
	// sender, not only from the dispatcher.
	ReporterTrustsClaimedSender
	// NeedErroredSatisfies: the dispatcher starts a job whose need errored,
	// as if it had passed.
	NeedErroredSatisfies
	// NeedsNotAwaited: the dispatcher lets every job of a build start at
	// once, whatever it needs.
	NeedsNotAwaited
	// LabelsIgnored: the dispatcher gives a job to a runner whatever the
	// labels its runs-on asks for.
	LabelsIgnored
	// SlotsIgnored: the dispatcher gives a runner more jobs than its slots.
	SlotsIgnored
	// EndedJobCancelled: a failed fail-fast cell cancels the other cells of
	// its matrix even when they have already ended, recording them twice.
	EndedJobCancelled
	// UnfencedWrite: a failover leader's shell writes its batches without
	// the fence of its election key, so a deposed leader's writes commit.
	UnfencedWrite
	// StaleLeaderActs: a failover leader's shell ignores that its lease ran
	// out by its own clock and goes on acting (a paused leader that wakes up).
	StaleLeaderActs
	// RunnerAcceptsOlderEpoch: a runner of a failover group registers with a
	// leader of an older epoch than one it has registered with.
	RunnerAcceptsOlderEpoch
	// StandbyLeadsBlind: a standby that wins the election leads from an
	// empty queue instead of reading the durable one.
	StandbyLeadsBlind
	bugCount
)

// All lists every planted bug.
func All() []Bug {
	var out []Bug
	for b := None + 1; b < bugCount; b++ {
		out = append(out, b)
	}
	return out
}

var names = map[Bug]string{
	LostJobNotRequeued: "lost job not requeued", ResultsNotFenced: "results not fenced by attempt",
	OldIncarnationAccepted: "older incarnation accepted", DeadRunnerStaysIdle: "dead runner left idle",
	RunnerIgnoresDispatcherLoss: "runner ignores dispatcher loss", ObserverAdvancesEarly: "observer advances before ack",
	AttemptCapIgnored: "attempt cap ignored", QueueNotRestored: "queue not restored after restart",
	DuplicateObservedCreatesJobs: "duplicate CommitObserved creates jobs", LeaseIgnored: "lease ignored",
	DispatcherTrustsClaimedSender: "dispatcher trusts the claimed sender", RunnerTrustsClaimedSender: "runner trusts the claimed sender",
	SecretsIgnoreBranches: "secrets granted whatever the branch binding", SecretsToAnyRunner: "secrets granted to any runner",
	SecretsPartlyGranted: "secrets refused with values", ReporterSkipsLogTicket: "reporter skips the log ticket",
	AckBeforePersist: "acknowledged before persisted", AttemptCapOffByOne: "attempt cap off by one",
	FirstCommitSkipped: "first commit of a branch skipped", DeadAfterIsLease: "runner declared dead after the lease",
	LeaseFromLastContact: "lease timed from last contact", CancelNotResent: "cancel not resent",
	ResultFileNotRewritten: "result file not rewritten on a duplicate", ReporterTrustsClaimedSender: "reporter trusts the claimed sender",
	NeedErroredSatisfies: "errored need satisfies its dependents", NeedsNotAwaited: "needs not awaited",
	LabelsIgnored: "runs-on labels ignored", SlotsIgnored: "runner slots ignored", EndedJobCancelled: "fail-fast cancels ended jobs",
	UnfencedWrite: "unfenced write", StaleLeaderActs: "stale leader acts", RunnerAcceptsOlderEpoch: "runner accepts an older epoch",
	StandbyLeadsBlind: "standby leads without reading the queue",
}

func (b Bug) String() string { return names[b] }
