package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/voltci/volt/messages"
)

// hub holds the newest rendering of the dashboard's live part and wakes the
// streams that follow it.
type hub struct {
	mu      sync.Mutex
	html    string
	version uint64
	changed chan struct{}
}

func newHub() *hub { return &hub{changed: make(chan struct{})} }

func (h *hub) publish(html string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.html = html
	h.version++
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *hub) current() (string, uint64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.html, h.version, h.changed
}

// poll watches the store and the dispatcher until ctx ends: new results feed
// the metrics, and any visible change re-renders the dashboard for the
// live streams.
func (s *Server) poll(ctx context.Context) {
	last, err := s.db.LastResultID()
	if err != nil {
		s.log.Warn("web: read the newest result", "error", err)
	}
	digest := ""
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		last = s.observeNew(last)
		st, stErr := s.status(ctx)
		stores := s.storeAlerts(ctx, st)
		if ctx.Err() != nil {
			return
		}
		if d := fingerprint(last, st, stErr, stores, time.Now()); d != digest {
			var buf bytes.Buffer
			if err := s.pages.ExecuteTemplate(&buf, "live", s.dashboardView(st, stErr, stores)); err != nil {
				s.log.Warn("web: render the dashboard", "error", err)
			} else {
				digest = d
				s.hub.publish(buf.String())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// observeNew feeds results recorded after row id last to the metrics and
// returns the newest row id seen.
func (s *Server) observeNew(last int64) int64 {
	for {
		rows, err := s.db.ResultsAfter(last, 500)
		if err != nil {
			s.log.Warn("web: read new results", "error", err)
			return last
		}
		for _, r := range rows {
			s.metrics.observeResult(r.Result)
			last = r.ID
		}
		if len(rows) < 500 {
			return last
		}
	}
}

// fingerprint summarises what the dashboard shows, heartbeat times aside
// (a runner turning lost is included).
func fingerprint(last int64, st *messages.StatusReply, stErr error, stores []string, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "r%d;", last)
	for _, line := range stores {
		fmt.Fprintf(&b, "store:%s;", line)
	}
	if stErr != nil {
		fmt.Fprintf(&b, "err:%v;", stErr)
		return b.String()
	}
	fmt.Fprintf(&b, "rep:%s;obs:%d;", st.GetReporter(), len(st.GetObservers()))
	for _, r := range st.GetRunners() {
		fmt.Fprintf(&b, "R%s/%d/%s/%d/%d/%t;", r.GetRunnerId(), r.GetIncarnation(), r.GetState(), r.GetJob().GetJobId(), r.GetJob().GetAttempt(), lost(r, now))
	}
	for _, j := range st.GetJobs() {
		if j.GetState() == messages.JobState_JOB_STATE_DONE {
			continue
		}
		fmt.Fprintf(&b, "J%d/%s/%d/%s;", j.GetJob().GetId(), j.GetState().Name(), j.GetAttempt(), j.GetRunnerId())
	}
	keys := make([]string, 0, len(st.GetCounters()))
	for k := range st.GetCounters() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d;", k, st.GetCounters()[k])
	}
	return b.String()
}

// lostAfter is how long without a heartbeat makes the dashboard call a
// runner lost (the dispatcher drops it soon after).
const lostAfter = 5 * time.Second

func lost(r *messages.RunnerStatus, now time.Time) bool {
	return r.GetLastHeartbeatUnixMs() > 0 && now.Sub(time.UnixMilli(r.GetLastHeartbeatUnixMs())) > lostAfter
}

// sse starts an event stream on w; it returns nil when w cannot stream.
func sse(w http.ResponseWriter) *http.ResponseController {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if _, err := io.WriteString(w, "retry: 1000\n\n"); err != nil {
		return nil
	}
	if err := rc.Flush(); err != nil {
		return nil
	}
	return rc
}

// writeEvent writes one server-sent event; data may span lines.
func writeEvent(w io.Writer, rc *http.ResponseController, event, id, data string) error {
	var b strings.Builder
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	data = strings.ReplaceAll(data, "\r", "")
	for line := range strings.SplitSeq(data, "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	return rc.Flush()
}

// keepAlive is how often an idle stream sends a comment, so that proxies and
// browsers keep it open.
const keepAlive = 15 * time.Second

// dashboardEvents streams the dashboard's live part ("dashboard" events,
// HTML) whenever it changes.
func (s *Server) dashboardEvents(w http.ResponseWriter, r *http.Request) {
	rc := sse(w)
	if rc == nil {
		return
	}
	var sent uint64
	ka := time.NewTicker(keepAlive)
	defer ka.Stop()
	for {
		html, version, changed := s.hub.current()
		if version > sent {
			if err := writeEvent(w, rc, "dashboard", strconv.FormatUint(version, 10), html); err != nil {
				return
			}
			sent = version
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-ka.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// logChunk is the most log bytes one event carries.
const logChunk = 64 << 10

// jobEvents follows one job: "log" events carry escaped HTML of new output
// (their id is "attempt:offset", so a reconnecting browser resumes where it
// was), "reset" starts over when a new attempt begins, and "done" carries
// the job's final summary (HTML) before the stream ends.
func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request) {
	id, ok := jobID(w, r)
	if !ok {
		return
	}
	attempt, offset := int32(0), int64(0)
	resume := r.Header.Get("Last-Event-ID")
	if resume == "" {
		resume = r.URL.Query().Get("attempt") + ":" + r.URL.Query().Get("offset")
	}
	if a, o, ok := strings.Cut(resume, ":"); ok {
		an, aerr := strconv.ParseInt(a, 10, 32)
		on, oerr := strconv.ParseInt(o, 10, 64)
		if aerr == nil && oerr == nil && an > 0 && on >= 0 {
			attempt, offset = int32(an), on
		}
	}
	rc := sse(w)
	if rc == nil {
		return
	}
	conv := &ansiHTML{}
	t := time.NewTicker(s.cfg.Poll / 2)
	defer t.Stop()
	idle := 0
	var doneSince time.Time
	for {
		v, err := s.lookupJob(r.Context(), id)
		if err != nil && r.Context().Err() != nil {
			return
		}
		if err == nil && v.Attempt > 0 {
			if v.Attempt != attempt {
				if attempt != 0 {
					if err := writeEvent(w, rc, "reset", fmt.Sprintf("%d:0", v.Attempt), ""); err != nil {
						return
					}
				}
				attempt, offset, conv = v.Attempt, 0, &ansiHTML{}
			}
			for {
				data, err := s.db.ReadLogFrom(v.job, attempt, offset, logChunk)
				if err != nil {
					s.log.Warn("web: follow a log", "job", id, "error", err)
					break
				}
				if len(data) == 0 {
					break
				}
				offset += int64(len(data))
				if err := writeEvent(w, rc, "log", fmt.Sprintf("%d:%d", attempt, offset), conv.Convert(data)); err != nil {
					return
				}
				idle = 0
			}
			if v.State == stateDone && doneSince.IsZero() {
				doneSince = time.Now()
			}
			// The log may trail the result a little: wait for the bytes
			// the result counts, but not for ever.
			if v.State == stateDone && (offset >= v.LogBytes || time.Since(doneSince) > 5*time.Second) {
				tail := conv.Flush()
				log, err := s.db.ReadLog(v.job, attempt)
				if err != nil {
					s.log.Warn("web: read a finished log", "job", id, "error", err)
				}
				var buf bytes.Buffer
				if err := s.pages.ExecuteTemplate(&buf, "summary", s.jobView(v, log)); err != nil {
					s.log.Warn("web: render a job summary", "job", id, "error", err)
				}
				if tail != "" {
					if err := writeEvent(w, rc, "log", fmt.Sprintf("%d:%d", attempt, offset), tail); err != nil {
						return
					}
				}
				if err := writeEvent(w, rc, "done", fmt.Sprintf("%d:%d", attempt, offset), buf.String()); err != nil {
					return
				}
				return
			}
		}
		idle++
		if time.Duration(idle)*s.cfg.Poll/2 >= keepAlive {
			idle = 0
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}
