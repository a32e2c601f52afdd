package cluster

import (
	"context"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/testreport"
)

// report is one test report the reporter kept, waiting to be parsed.
type report struct {
	job     *messages.Job
	attempt int32
	kind    string
	data    []byte
}

// reportQueue bounds the reports waiting to be parsed: past it the
// reporter's actor waits for the parser (backpressure on the uploads).
const reportQueue = 64

// recordReports parses and stores the test reports the reporter keeps, one
// at a time, off the reporter's actor (a large report takes a while), until
// the node stops; it returns the hook the actor hands each report to.
func (n *Node) recordReports(db *store.DB) func(*messages.Job, int32, string, []byte) {
	ch := make(chan report, reportQueue)
	log := n.logger.With("role", "reporter")
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		for {
			select {
			case <-n.stopBG:
				return
			case r := <-ch:
				if err := testreport.RecordReport(context.Background(), db, r.job, r.attempt, r.kind, r.data); err != nil {
					log.Warn("test report not recorded: its file is kept, its tests are not listed", "job", r.job.GetId(),
						"name", r.job.DisplayName(), "attempt", r.attempt, "kind", r.kind, "error", err.Error())
				}
			}
		}
	}()
	return func(job *messages.Job, attempt int32, kind string, data []byte) {
		select {
		case ch <- report{job: job, attempt: attempt, kind: kind, data: data}:
		case <-n.stopBG:
		}
	}
}
