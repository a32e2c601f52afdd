package reporter_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/host"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

// platform is a host.Platform that keeps what is sent and logged.
type platform struct {
	now   time.Time
	sent  []proto.Message
	notes []actors.Note
}

func (p *platform) Now() time.Time                            { return p.now }
func (p *platform) Address() string                           { return "rep" }
func (p *platform) Send(_ actors.Addr, m proto.Message)       { p.sent = append(p.sent, m) }
func (p *platform) Register(actors.Addr, proto.Message)       {}
func (p *platform) Watch(actors.Addr)                         {}
func (p *platform) Unwatch(actors.Addr)                       {}
func (p *platform) Exit(int, string)                          {}
func (p *platform) Log(n actors.Note)                         { p.notes = append(p.notes, n) }
func (p *platform) ArmTimer(time.Time)                        {}
func (p *platform) Go(func() any)                             {}
func (p *platform) Self(any)                                  {}
func (p *platform) Stepped(actors.From, any, []actors.Effect) {}
func (p *platform) Carried(actors.From, any, []actors.Effect) {}
func (p *platform) Started(host.Core)                         {}
func (p *platform) Crash(any, int, []actors.Effect) bool      { return false }

// results is a reporter.Store whose result file write fails while
// fileErr is set (the process dies between the insert and the file).
type results struct {
	recorded map[int64]bool
	files    map[string]int32
	fileErr  error
}

func (s *results) RecordResult(r *messages.Result) (bool, error) {
	if s.recorded[r.Job.Id] {
		return false, nil
	}
	s.recorded[r.Job.Id] = true
	return true, nil
}
func (s *results) AppendLog(*messages.Job, int32, int64, []byte) (int64, error) { return 0, nil }
func (s *results) LogHave(*messages.Job, int32) (int64, error)                  { return 0, nil }
func (s *results) WriteResultFile(r *messages.Result) error {
	if s.fileErr != nil {
		return s.fileErr
	}
	s.files[r.Job.Commit] = r.Job.Build
	return nil
}

// TestResultFileWrittenForADuplicate (bug B of issue 11): the reporter
// records a result, then fails before its file is written (a crash, a
// full disk). The dispatcher sends the result again; it is a duplicate
// now, and its file must still be written, and the result acknowledged
// only then. Before the fix the duplicate wrote nothing: the file was
// lost for good.
func TestResultFileWrittenForADuplicate(t *testing.T) {
	p := &platform{now: time.Unix(1000, 0)}
	store := &results{recorded: map[int64]bool{}, files: map[string]int32{}, fileErr: errors.New("no space left on device")}
	shell := reporter.NewShell(reporter.Config{ID: "rep", Dispatcher: dispAddr}, store)
	h := host.New(p, shell)
	h.SetStoreRetry(time.Nanosecond)
	h.Start()
	res := &messages.Result{Job: &messages.Job{Id: 7, Repo: "r", Commit: coretest.Commit(7), Build: 1}, Attempt: 1, Status: messages.Status_STATUS_PASSED}

	shell.Record(reporter.Record{Result: res, ReplyTo: dispAddr})
	require.Empty(t, p.sent, "acknowledged without its file")
	require.True(t, h.StoreFailing())

	store.fileErr = nil
	p.now = p.now.Add(time.Second)
	shell.Record(reporter.Record{Result: res, ReplyTo: dispAddr}) // the dispatcher's resend: a duplicate
	require.Equal(t, map[string]int32{coretest.Commit(7): 1}, store.files, "the duplicate's file was not written")
	require.Len(t, p.sent, 1)
	require.IsType(t, &messages.ResultRecordedAck{}, p.sent[0])
	require.False(t, h.StoreFailing())
}

// TestEveryJobAcknowledgedByItsID: the jobs of a build are recorded and
// acknowledged one by one, each by its own job id, a skipped one (no
// runner, no log) like any other; the build's file is asked for after
// each, and the failure of the file of the job that completes the build
// holds back that job's acknowledgement until a resend writes it.
func TestEveryJobAcknowledgedByItsID(t *testing.T) {
	p := &platform{now: time.Unix(1000, 0)}
	store := &results{recorded: map[int64]bool{}, files: map[string]int32{}}
	shell := reporter.NewShell(reporter.Config{ID: "rep", Dispatcher: dispAddr}, store)
	h := host.New(p, shell)
	h.SetStoreRetry(time.Nanosecond)
	h.Start()
	jobOf := func(i int32) *messages.Job {
		return &messages.Job{Id: 70 + int64(i), BuildId: 70, Index: i, BuildJobs: 2, Repo: "r", Commit: coretest.Commit(7), Build: 1,
			Cell: &messages.PipelineJob{Key: "k", Name: fmt.Sprint("k", i)}}
	}
	skipped := &messages.Result{Job: jobOf(1), Status: messages.Status_STATUS_SKIPPED}
	shell.Record(reporter.Record{Result: skipped, ReplyTo: dispAddr})
	require.Len(t, p.sent, 1)
	require.Equal(t, int64(71), p.sent[0].(*messages.ResultRecordedAck).JobId)

	store.fileErr = errors.New("no space left on device")
	first := &messages.Result{Job: jobOf(0), Attempt: 1, RunnerId: "r1", Status: messages.Status_STATUS_PASSED}
	shell.Record(reporter.Record{Result: first, ReplyTo: dispAddr})
	require.Len(t, p.sent, 1, "acknowledged without its build's file")
	store.fileErr = nil
	p.now = p.now.Add(time.Second)
	shell.Record(reporter.Record{Result: first, ReplyTo: dispAddr})
	require.Len(t, p.sent, 2)
	require.Equal(t, int64(70), p.sent[1].(*messages.ResultRecordedAck).JobId)
	require.Equal(t, map[string]int32{coretest.Commit(7): 1}, store.files)
}
