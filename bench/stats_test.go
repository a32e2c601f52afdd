package bench

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ---- samples and metrics ----

// samples collects one value per iteration for each unit and reports their
// mean with ReportMetric (the /op convention benchstat expects; benchstat's
// median is then over -count runs). The run's median and range go to one
// "summary" log line. Go keeps only the first ten lines of a benchmark's log,
// so the samples themselves go to the file named by $VOLT_BENCH_SAMPLES,
// when set, one line per iteration ("<benchmark> unit=value ..."), for
// medians pooled over every sample (see BENCHMARKS.md).
type samples struct {
	units []string
	vals  map[string][]float64
}

func newSamples() *samples { return &samples{vals: map[string][]float64{}} }

// record adds one iteration's values: pairs of unit and value (float64, int
// or time.Duration, which is recorded in milliseconds).
func (s *samples) record(b *testing.B, pairs ...any) {
	b.Helper()
	var line strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		unit := pairs[i].(string)
		var v float64
		switch x := pairs[i+1].(type) {
		case float64:
			v = x
		case int:
			v = float64(x)
		case time.Duration:
			v = ms(x)
		default:
			b.Fatalf("record %s: %T", unit, x)
		}
		if _, ok := s.vals[unit]; !ok {
			s.units = append(s.units, unit)
		}
		s.vals[unit] = append(s.vals[unit], v)
		fmt.Fprintf(&line, " %s=%.3f", unit, v)
	}
	if path := os.Getenv("VOLT_BENCH_SAMPLES"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			b.Fatalf("VOLT_BENCH_SAMPLES: %v", err)
		}
		fmt.Fprintf(f, "%s%s\n", b.Name(), line.String())
		f.Close()
	}
}

// report reports the mean of every unit, suppresses ns/op (the length of a
// whole iteration, set-up and clean-up included) and logs one line with the
// median and range of each unit and the load average.
func (s *samples) report(b *testing.B) {
	b.Helper()
	b.ReportMetric(0, "ns/op")
	var sum strings.Builder
	for _, u := range s.units {
		v := s.vals[u]
		b.ReportMetric(mean(v), u)
		fmt.Fprintf(&sum, " | %s %.1f [%.1f..%.1f]", u, median(v), slices.Min(v), slices.Max(v))
	}
	b.Logf("summary n=%d loadavg %s, median [min..max]:%s", len(s.vals[s.units[0]]), loadavg(), sum.String())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	c := slices.Clone(v)
	slices.Sort(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

// ---- the processes' logs ----

// logEntry is one slog text line: time=... level=... msg=... key=value...
type logEntry struct {
	t   time.Time
	msg string
	kv  map[string]string
}

// readLog parses a volt log file. Lines that are not slog text are skipped.
func readLog(path string) []logEntry {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []logEntry
	for _, line := range strings.Split(string(b), "\n") {
		kv := parseLogLine(line)
		t, err := time.Parse(time.RFC3339Nano, kv["time"])
		if err != nil {
			continue
		}
		out = append(out, logEntry{t: t, msg: kv["msg"], kv: kv})
	}
	return out
}

// parseLogLine splits key=value pairs; values may be Go-quoted.
func parseLogLine(line string) map[string]string {
	kv := map[string]string{}
	for len(line) > 0 {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			break
		}
		key := line[:eq]
		line = line[eq+1:]
		var val string
		if strings.HasPrefix(line, `"`) {
			end := 1
			for end < len(line) && line[end] != '"' {
				if line[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(line) {
				break
			}
			val, _ = strconv.Unquote(line[:end+1])
			line = line[end+1:]
		} else {
			sp := strings.IndexByte(line, ' ')
			if sp < 0 {
				sp = len(line)
			}
			val, line = line[:sp], line[sp:]
		}
		kv[key] = val
	}
	return kv
}

// logs is the parsed logs of one or more processes.
type logs []logEntry

func readLogs(paths ...string) logs {
	var all logs
	for _, p := range paths {
		all = append(all, readLog(p)...)
	}
	slices.SortStableFunc(all, func(a, b logEntry) int { return a.t.Compare(b.t) })
	return all
}

// find returns the time of the first entry at or after since with msg and
// every key=value of pairs.
func (l logs) find(since time.Time, msg string, pairs ...string) (time.Time, bool) {
	for _, e := range l {
		if e.t.Before(since.Truncate(time.Millisecond)) || e.msg != msg {
			continue
		}
		ok := true
		for i := 0; i+1 < len(pairs); i += 2 {
			if e.kv[pairs[i]] != pairs[i+1] {
				ok = false
				break
			}
		}
		if ok {
			return e.t, true
		}
	}
	return time.Time{}, false
}

// jobOf returns the job id the dispatcher gave commit ("commit queued").
func (l logs) jobOf(commit string) string {
	for _, e := range l {
		if e.msg == "commit queued" && e.kv["commit"] == commit {
			return e.kv["job"]
		}
	}
	return ""
}

// phases of one job through the logs of volt up (or of the separate roles),
// as offsets in ms from t0; a phase whose line is missing is NaN.
type jobPhases struct {
	queued, assigned, started, finished, recorded, reported float64
}

func (l logs) phases(t0 time.Time, commit string) jobPhases {
	p := jobPhases{math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	off := func(t time.Time, ok bool) float64 {
		if !ok {
			return math.NaN()
		}
		return ms(t.Sub(t0))
	}
	job := l.jobOf(commit)
	if job == "" {
		return p
	}
	since := t0.Add(-time.Second) // log times are truncated to the millisecond
	p.queued = off(l.find(since, "commit queued", "commit", commit))
	p.assigned = off(l.find(since, "job assigned", "job", job))
	p.started = off(l.find(since, "job started", "job", job))
	p.finished = off(l.find(since, "job finished", "job", job))
	p.recorded = off(l.find(since, "result recorded", "role", "dispatcher", "job", job))
	p.reported = off(l.find(since, "result recorded", "role", "reporter", "commit", commit))
	return p
}

// waitPhases reads the phases of commit from the log files, waiting up to 2 s
// for the reporter's line: it may be written just after the result file.
func waitPhases(t0 time.Time, commit string, paths ...string) jobPhases {
	deadline := time.Now().Add(2 * time.Second)
	for {
		p := readLogs(paths...).phases(t0, commit)
		if !math.IsNaN(p.reported) || time.Now().After(deadline) {
			return p
		}
		<-time.After(10 * time.Millisecond)
	}
}
