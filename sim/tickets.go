package sim

import "github.com/voltci/volt/messages"

// Log tickets in the simulated world. The dispatcher signs each RunJob's
// log ticket with the world's key (dispCfg.LogKey, which in production is
// a file beside the CA) and hands the key to the reporter when it accepts
// it; the reporter takes a runner's log chunk only when its ticket verifies
// for the runner that sent it.
//
// Simulated runners stream no log, so the checker asks the reporter core,
// as each attempt starts, whether it would take that runner's chunks with
// the ticket the attempt came with (InvLogTicket): a ticket no reporter
// accepts would otherwise go unnoticed. The malicious peer, for its part,
// sends log chunks and closes for attempts it copied, with no ticket or a
// wrong one (forgedLog); InvMalicious requires that none is taken.

// ticketStarted checks, as runner n starts run, that the reporter would
// take the attempt's log from n. A reporter that is down, or has not yet
// been accepted by a dispatcher (it holds no key), cannot tell: the
// runner's log stream resends until it can.
func (c *checker) ticketStarted(w *World, n *node, run *messages.RunJob) {
	rep := w.reporterNode()
	if !rep.up || rep.rep == nil {
		return
	}
	valid, keyHeld := rep.rep.TicketValid(n.identity(), run.Job, run.Attempt, run.LogTicket)
	if !keyHeld {
		return
	}
	c.checked[InvLogTicket] = true
	if !valid {
		c.fail(InvLogTicket, "%s started job %d attempt %d with a log ticket the reporter refuses", n.runnerID, run.Job.GetId(), run.Attempt)
	}
}

// forgedLog is the malicious peer's log chunk (or close) to the reporter
// for job's attempt, or now and then for the attempt victim v runs now,
// with a ticket that is not the peer's for it.
func (w *World) forgedLog(v *node, job *messages.Job, attempt int32, closed bool) any {
	if v.oneProc() != nil && w.mal.IntN(2) == 0 {
		job, attempt = v.oneProc().job, v.oneProc().ref.Attempt
	}
	ticket := w.forgedTicket(v, job, attempt)
	if closed {
		return &messages.LogClosed{Job: job, Attempt: attempt, Size: 1 + w.mal.Int64N(100), Ticket: ticket}
	}
	return &messages.LogChunk{Job: job, Attempt: attempt, Offset: w.mal.Int64N(100), Data: []byte("forged output\n"), Ticket: ticket}
}

// forgedTicket draws a ticket for job's attempt that must not let the
// peer write its log: none; bytes that are no ticket; the ticket of the
// runner the peer aims at (as if it had leaked: it names that runner); or
// one in the peer's own name for another attempt, another job, or under
// another key. The peer was given no attempt, so it holds no good one.
func (w *World) forgedTicket(v *node, job *messages.Job, attempt int32) []byte {
	key, own := w.dispCfg.LogKey, w.malWho.Name
	switch w.mal.IntN(6) {
	case 0:
		return nil
	case 1:
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(w.mal.UintN(256))
		}
		return b
	case 2:
		return messages.LogTicket(key, job, attempt, v.runnerID)
	case 3:
		return messages.LogTicket(key, job, attempt+1, own)
	case 4:
		other := &messages.Job{Id: job.GetId() + 1, Repo: job.GetRepo(), Commit: job.GetCommit(), Build: job.GetBuild()}
		return messages.LogTicket(key, other, attempt, own)
	}
	return messages.LogTicket([]byte("mallory's own log-ticket key...."), job, attempt, own)
}
