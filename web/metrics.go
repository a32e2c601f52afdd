package web

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// Dispatcher counter names (StatusReply.counters) that get metrics of their own.
const (
	counterReassigned = "reassignments"
	counterStale      = "stale_results_ignored"
)

// Metrics is one process's Prometheus registry: process and Go runtime
// basics always; the dispatcher's jobs, runners and counters, recorded
// results, job duration and queue-wait histograms once a dispatcher or a
// store is watched; the observer's poll duration when an observer reports it.
type Metrics struct {
	reg          *prometheus.Registry
	duration     *prometheus.HistogramVec
	queueWait    prometheus.Histogram
	pollDuration prometheus.Histogram

	mu      sync.Mutex
	watched bool
}

// buckets for job durations and queue waits: 100 ms to about 1.5 h.
var jobBuckets = prometheus.ExponentialBuckets(0.1, 2.5, 13)

// NewMetrics returns a registry with the process and Go collectors.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "volt_job_duration_seconds", Help: "Run time of recorded builds (started to finished), by status.", Buckets: jobBuckets,
	}, []string{"status"})
	m.queueWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "volt_job_queue_wait_seconds", Help: "Time recorded builds waited in the queue (queued to started).", Buckets: jobBuckets,
	})
	m.pollDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "volt_observer_poll_duration_seconds", Help: "Time the observer took to read one branch of one repository.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	})
	m.reg.MustRegister(m.pollDuration)
	return m
}

// ObservePoll records one observer poll; pass it to the observer.
func (m *Metrics) ObservePoll(d time.Duration) { m.pollDuration.Observe(d.Seconds()) }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// WatchDispatcher adds the dispatcher's gauges and counters, read from
// backend at each scrape (a process that runs a dispatcher but no web
// server uses it alone).
func (m *Metrics) WatchDispatcher(backend Backend, timeout time.Duration) {
	m.reg.MustRegister(&dispatcherCollector{backend: backend, timeout: timeout})
}

// watch adds everything a web server knows: the dispatcher and the store.
func (m *Metrics) watch(backend Backend, db *store.DB, timeout time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watched {
		return
	}
	m.watched = true
	m.WatchDispatcher(backend, timeout)
	m.reg.MustRegister(m.duration, m.queueWait, &storeCollector{db: db})
}

// observeResult feeds a newly recorded result to the histograms.
func (m *Metrics) observeResult(r *messages.Result) {
	if r.GetStartedUnixMs() > 0 && r.GetFinishedUnixMs() >= r.GetStartedUnixMs() {
		m.duration.WithLabelValues(r.GetStatus().Name()).Observe(float64(r.GetFinishedUnixMs()-r.GetStartedUnixMs()) / 1000)
	}
	if r.GetQueuedUnixMs() > 0 && r.GetStartedUnixMs() >= r.GetQueuedUnixMs() {
		m.queueWait.Observe(float64(r.GetStartedUnixMs()-r.GetQueuedUnixMs()) / 1000)
	}
}

var (
	descUp = prometheus.NewDesc("volt_dispatcher_up",
		"1 when the dispatcher answered the last scrape's status request.", nil, nil)
	descJobs = prometheus.NewDesc("volt_jobs",
		"Builds the dispatcher holds, by state (queued, running).", []string{"state"}, nil)
	descRunners = prometheus.NewDesc("volt_runners",
		"Registered runners, by state (idle, busy, lost).", []string{"state"}, nil)
	descReassigned = prometheus.NewDesc("volt_reassignments_total",
		"Jobs given to another runner after theirs was lost.", nil, nil)
	descStale = prometheus.NewDesc("volt_stale_results_ignored_total",
		"Results from superseded attempts or older runner incarnations, ignored.", nil, nil)
	descEvents = prometheus.NewDesc("volt_dispatcher_events_total",
		"Every counter of the dispatcher's status, by name.", []string{"event"}, nil)
	descResults = prometheus.NewDesc("volt_results",
		"Recorded results in the store, by status.", []string{"status"}, nil)
)

// dispatcherCollector asks the dispatcher for its status at each scrape.
type dispatcherCollector struct {
	backend Backend
	timeout time.Duration
}

func (c *dispatcherCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descJobs, descRunners, descReassigned, descStale, descEvents} {
		ch <- d
	}
}

func (c *dispatcherCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.backend.Status(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	jobs := map[string]float64{"queued": 0, "running": 0}
	for _, rec := range st.GetJobs() {
		if rec.GetState() != messages.JobState_JOB_STATE_DONE {
			jobs[rec.GetState().Name()]++
		}
	}
	for state, n := range jobs {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, n, state)
	}
	runners := map[string]float64{"idle": 0, "busy": 0, "lost": 0}
	now := time.Now()
	for _, r := range st.GetRunners() {
		state := r.GetState()
		if lost(r, now) {
			state = "lost"
		}
		runners[state]++
	}
	for state, n := range runners {
		ch <- prometheus.MustNewConstMetric(descRunners, prometheus.GaugeValue, n, state)
	}
	counters := st.GetCounters()
	ch <- prometheus.MustNewConstMetric(descReassigned, prometheus.CounterValue, float64(counters[counterReassigned]))
	ch <- prometheus.MustNewConstMetric(descStale, prometheus.CounterValue, float64(counters[counterStale]))
	for name, v := range counters {
		if name == "queued" { // a gauge, already in volt_jobs
			continue
		}
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(v), name)
	}
}

// storeCollector counts recorded results by status at each scrape.
type storeCollector struct{ db *store.DB }

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descResults }

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.db.StatusCounts()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descResults, err)
		return
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(descResults, prometheus.GaugeValue, float64(n), st)
	}
}
