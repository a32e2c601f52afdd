package dispatcher

import (
	"fmt"
	"time"

	"github.com/voltci/volt/jobspec"
)

// Config holds the dispatcher's timers and limits (docs/contract.md, Liveness and leases).
type Config struct {
	// Heartbeat is how often runners send a heartbeat.
	Heartbeat time.Duration
	// DeadAfter is how long a runner may go without a heartbeat before it is
	// declared dead and its job reassigned.
	DeadAfter time.Duration
	// Lease is how long a runner keeps its job without an acknowledgement;
	// it must be shorter than DeadAfter minus the network delay.
	Lease time.Duration
	// MaxAttempts caps the attempts of one build; past it the build ends errored.
	MaxAttempts int
	// JobTimeout is the job timeout runners apply when .volt.yml names none
	// (jobspec.Spec.JobTimeout).
	JobTimeout time.Duration
	// ResultRetry is how often an unacknowledged result is sent to the reporter again.
	ResultRetry time.Duration
	// StartGrace is how long a runner may take to confirm (in a heartbeat) a
	// job it was sent before the job is presumed lost in transit; never less
	// than Lease, however configured (see Core.startGrace).
	StartGrace time.Duration
	// Silence, when set, is how long a runner waits for any answer before
	// it looks for the dispatcher again (RunnerRegistered.silence_ms);
	// zero means DeadAfter. A failover group sets it shorter than the
	// lease (see WithFailover).
	Silence time.Duration
	// FailoverGrace is zero for a single dispatcher. For a node of a
	// failover group it is the longest leaderless gap a runner rides out
	// with its job (see WithFailover).
	FailoverGrace time.Duration
	// Token, when set, must accompany every registration, notify and status request.
	Token string
	// Epoch identifies this dispatcher incarnation (its start time in
	// nanoseconds, or for a failover leader FailoverEpoch of its election
	// revision); runners ignore RunJob and HeartbeatAck of other epochs.
	Epoch int64
	// LogKey signs each RunJob's log ticket (messages.LogTicket) and is
	// handed to the reporter when it registers, so that it keeps a log
	// chunk only from the runner that was given the attempt. Kept in a
	// file beside the CA, so that tickets survive a dispatcher restart.
	LogKey []byte
}

// DefaultConfig returns the contract's defaults: heartbeat 1 s, dead after
// 3 s, lease 2 s, 3 attempts, 10 minute jobs.
func DefaultConfig() Config {
	return Config{
		Heartbeat:   time.Second,
		DeadAfter:   3 * time.Second,
		Lease:       2 * time.Second,
		MaxAttempts: 3,
		JobTimeout:  jobspec.DefaultTimeout,
		ResultRetry: time.Second,
		StartGrace:  2 * time.Second,
	}
}

// WithFailover returns c for a node of a failover group whose runners
// must ride out a leaderless gap of up to grace (the election's TTL plus
// the time to find the new leader): the lease a runner holds its job by
// becomes grace, a runner is declared dead (and its job requeued, also by
// a new leader, for the jobs it finds running) only after grace plus one
// heartbeat, and runners look for another node after three heartbeats of
// silence. So a runner never holds a job past its last acknowledgement
// plus grace, and no leader requeues it before the runner's last
// heartbeat plus grace: never two attempts of one job at once with a
// working network, across failovers.
func (c Config) WithFailover(grace time.Duration) Config {
	c.FailoverGrace = grace
	c.Lease = grace
	c.DeadAfter = grace + c.Heartbeat
	c.Silence = 3 * c.Heartbeat
	return c
}

// Validate reports a configuration that breaks the timer contract.
func (c Config) Validate() error {
	switch {
	case c.Heartbeat <= 0 || c.DeadAfter <= 0 || c.Lease <= 0:
		return fmt.Errorf("heartbeat, dead-after and lease must be positive")
	case c.Lease >= c.DeadAfter:
		return fmt.Errorf("lease (%s) must be shorter than dead-after (%s) so that a runner gives its job up before it is declared dead", c.Lease, c.DeadAfter)
	case c.Heartbeat >= c.Lease:
		return fmt.Errorf("heartbeat (%s) must be shorter than the lease (%s)", c.Heartbeat, c.Lease)
	case c.Silence < 0 || (c.Silence > 0 && c.Silence >= c.DeadAfter):
		return fmt.Errorf("silence (%s) must be shorter than dead-after (%s)", c.Silence, c.DeadAfter)
	case c.MaxAttempts < 1:
		return fmt.Errorf("max attempts must be at least 1")
	}
	return nil
}
