package web

import (
	"context"
	"fmt"

	"github.com/voltci/volt/messages"
)

// Counters of a role's StatusReply about its store, set by the dispatcher's
// and the reporter's shells: whether its writes fail now (0 or 1), and how
// many have failed since it started.
const (
	CounterStoreFailing     = "store_failing"
	CounterStoreWriteErrors = "store_write_errors"
)

// StatusSource answers a role's StatusRequest; Config.Reporter is one.
type StatusSource interface {
	Status(ctx context.Context) (*messages.StatusReply, error)
}

// StoreCondition is one line about a role's store while its writes fail,
// for `volt status` and the dashboard: "dispatcher store: failing — writes
// refused (3 errors); retrying". It is "" while the store works (a role
// that recovered keeps its store_write_errors counter, shown with the
// others).
func StoreCondition(st *messages.StatusReply) string {
	c := st.GetCounters()
	if c[CounterStoreFailing] == 0 {
		return ""
	}
	role := st.GetRole()
	if role == "" {
		role = "role"
	}
	n := c[CounterStoreWriteErrors]
	errs := "errors"
	if n == 1 {
		errs = "error"
	}
	return fmt.Sprintf("%s store: failing — writes refused (%d %s); retrying", role, n, errs)
}

// storeAlerts are the StoreCondition lines of the dispatcher's status and,
// when this server knows its reporter, of the reporter's.
func (s *Server) storeAlerts(ctx context.Context, disp *messages.StatusReply) []string {
	var out []string
	for _, st := range []*messages.StatusReply{disp, s.reporterStatus(ctx)} {
		if line := StoreCondition(st); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// reporterStatus asks the reporter of Config.Reporter for its status; nil
// when there is none or it did not answer (the dashboard then shows what
// the dispatcher says).
func (s *Server) reporterStatus(ctx context.Context) *messages.StatusReply {
	if s.cfg.Reporter == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StatusTimeout)
	defer cancel()
	st, err := s.cfg.Reporter.Status(ctx)
	if err != nil {
		s.log.Debug("web: ask the reporter for its status", "error", err)
		return nil
	}
	return st
}
