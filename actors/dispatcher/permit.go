package dispatcher

import (
	"crypto/subtle"
	"fmt"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// permit says why the sender may not send in, or "" when it may: issue
// 10's role table, checked against the identity the connection proved, never
// against the sender the message claims. It runs before anything changes.
//
//   - RegisterRunner, Heartbeat, JobFinished, RunnerStopping: only the runner
//     they name (its certificate's name is its runner id). A JobFinished is
//     then fenced by its record: recorded only from the runner, incarnation
//     and attempt the job is assigned to.
//   - RegisterObserver, CommitObserved: an observer. Observer ids are not
//     certificate names (`volt observer` names itself HOST/ADDRESS, its
//     certificate names the host; `volt up`'s is "up"), so only the role is
//     checked.
//   - RegisterReporter, ResultRecordedAck: the reporter.
//   - Notify: notify (a post-receive hook), admin, the reporter (the webhook)
//     or an observer.
//   - StatusRequest, CancelRequest, RebuildRequest: admin, or the reporter
//     on behalf of a web user. Cancel and rebuild still need the token.
//   - Tick and PeerTerminated: only this process makes them.
//   - Anything else: no one but this process (which hears it is unknown),
//     so that a message type added to Step without a rule here is refused,
//     not open to all.
//
// The local role (every role of `volt up` in one process) may send anything;
// the zero Identity (an unauthenticated peer) nothing.
func (c *Core) permit(from actors.From, in any) string {
	if plant.On(plant.DispatcherTrustsClaimedSender) {
		return ""
	}
	who := from.Who
	switch m := in.(type) {
	case actors.Tick, actors.PeerTerminated:
		if !who.IsLocal() {
			return "only this process makes it"
		}
	case *messages.RegisterRunner:
		return asRunner(who, m.RunnerId)
	case *messages.Heartbeat:
		return asRunner(who, m.RunnerId)
	case *messages.JobFinished:
		return asRunner(who, m.RunnerId)
	case *messages.RunnerStopping:
		return asRunner(who, m.RunnerId)
	case *messages.RegisterObserver, *messages.CommitObserved, Observed:
		if !who.Is(actors.RoleObserver) {
			return "only an observer reports commits"
		}
	case *messages.RegisterReporter, *messages.ResultRecordedAck:
		if !who.Is(actors.RoleReporter) {
			return "only the reporter records results"
		}
	case *messages.Notify:
		if !who.IsAny(actors.RoleNotify, actors.RoleAdmin, actors.RoleReporter, actors.RoleObserver) {
			return "only notify, admin, the reporter or an observer may ask for a poll"
		}
	case *messages.StatusRequest:
		if !who.IsAny(actors.RoleAdmin, actors.RoleReporter) {
			return "only admin or the reporter may read the status"
		}
	case *messages.CancelRequest, Rebuild, *messages.RebuildRequest:
		if !who.IsAny(actors.RoleAdmin, actors.RoleReporter) {
			return "only admin or the reporter may cancel or rebuild"
		}
	case SecretAsk, *messages.SecretRequest, *messages.SecretSet, *messages.SecretDelete, *messages.SecretList:
		return secretPermit(who, in) // secrets.go
	default:
		if !who.IsLocal() {
			return "not a message the dispatcher takes from anyone"
		}
	}
	return ""
}

// asRunner says why who may not speak as runner id ("" when it may).
func asRunner(who actors.Identity, id string) string {
	switch {
	case who.IsRunner(id):
		return ""
	case who.Role == actors.RoleRunner:
		return fmt.Sprintf("runner %q may speak only for itself, not for %q", who.Name, id)
	}
	return "only runner " + fmt.Sprintf("%q", id) + " may send it"
}

func (c *Core) tokenOK(token string) bool {
	if c.cfg.Token == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(c.cfg.Token)) == 1
}
