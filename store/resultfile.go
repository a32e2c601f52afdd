package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/voltci/volt/messages"
)

// ResultDir is the directory inside a reporter's data directory that holds
// one result file per commit.
const ResultDir = "test_results"

// resultFileMu serialises the read-header-then-rename of WriteResultFile
// within a process, so two builds of one commit cannot both pass the
// latest-build check and land in the wrong order.
var resultFileMu sync.Mutex

// timeLayout is RFC 3339 in UTC with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// WriteResultFile writes <dir>/test_results/<commit> for r, followed by the
// build's output, replacing the file atomically (temporary file in the same
// directory, fsync, rename, fsync of the directory): a reader sees the old
// file or the new one, never a part.
//
// The format is `key: value` lines in this order: status, repo, branches
// (comma-separated), commit, build, attempt, runner, started, finished (RFC
// 3339 UTC with milliseconds, empty when unknown), duration (Go syntax, in
// milliseconds), then reason and failed_step only when not empty, then a
// blank line, then the output verbatim. Line breaks inside a value are
// written as spaces so that the header stays one line per key.
//
// The latest build wins: a file that already records a higher build is left
// alone (and nil is returned). The commit must be 4 to 64 lower-case hex
// digits (ErrInvalidCommit otherwise): a message never chooses a path.
//
// This is the file of a build of one job of the single-list format; the
// reporter writes every build's file with DB.WriteResultFile.
func WriteResultFile(dir string, r *messages.Result, output io.Reader) error {
	return writeResultFile(dir, r, resultHeader(r), func(w io.Writer) error {
		if output == nil {
			return nil
		}
		if _, err := io.Copy(w, output); err != nil {
			return fmt.Errorf("copy output: %w", err)
		}
		return nil
	})
}

// maxBuildOutput bounds the output in the result file of a pipeline build
// (a job's own log is bounded by its runner's --output-cap).
const maxBuildOutput = 16 << 20

// WriteResultFile writes the result file of the build r is a job of, from
// what the store holds, once every job of that build has a result; before
// that it writes nothing and returns nil (the file of the job that
// completes the build is the one written). The reporter calls it for every
// job result it records and for every duplicate, so a crash between the
// last job's insert and its file loses nothing: the dispatcher resends.
//
// A build of one job of the single-list format gets exactly the file of
// the package-level WriteResultFile, its job's log as the output. A
// pipeline build's file has the same key: value lines for the build as a
// whole (its aggregate status, every branch, its earliest start and latest
// finish; attempt, runner, reason and failed_step are those of the job that
// decided the status: see Build.Result), then a `jobs:` line and one line
// per job, by index, two spaces in:
//
//	NAME: STATUS, attempt N, runner ID, DURATION
//
// (runner "-" when the job never ran, as a skipped one; NAME holds no line
// break and is followed by the last ": " of the line), then the blank line,
// then the output: the log of every job that did not pass (nor was
// skipped), by index, each after a line `==> NAME: STATUS <==`, at most 16
// MiB of logs in all (a log cut short is followed by a line saying how many
// bytes are not shown). The latest build wins, as for WriteResultFile.
func (db *DB) WriteResultFile(r *messages.Result) error {
	j := r.GetJob()
	if j == nil {
		return errors.New("write result file: result without a job: this is a bug in the caller")
	}
	b, err := db.BuildOf(j.GetRepo(), j.GetCommit(), j.GetBuild())
	if err != nil {
		return fmt.Errorf("write result file of %s: %w", j.GetCommit(), err)
	}
	if !b.Complete {
		return nil
	}
	if b.JobCount == 1 && b.Jobs[0].Cell == nil {
		one := b.Jobs[0].Result
		return writeResultFile(db.dir, one, resultHeader(one), func(w io.Writer) error {
			_, err := db.CopyLog(w, one.GetJob(), one.GetAttempt())
			return err
		})
	}
	return writeResultFile(db.dir, b.Result, buildHeader(b), func(w io.Writer) error { return db.buildOutput(w, b, maxBuildOutput) })
}

// writeResultFile replaces the result file of r's commit with header and
// what body writes, unless it records a later build than r's.
func writeResultFile(dir string, r *messages.Result, header string, body func(io.Writer) error) error {
	j := r.GetJob()
	if j == nil {
		return errors.New("write result file: result without a job: this is a bug in the caller")
	}
	commit := j.GetCommit()
	if err := checkHex(commit, 4); err != nil {
		return fmt.Errorf("write result file: %w", err)
	}
	if strings.ToLower(commit) != commit {
		return fmt.Errorf("write result file: commit %q is not lower case: %w", commit, ErrInvalidCommit)
	}
	resDir := filepath.Join(dir, ResultDir)
	if err := os.MkdirAll(resDir, 0o755); err != nil {
		return fmt.Errorf("write result file: create %s: %w: check its permissions or pass another --data-dir", resDir, err)
	}
	path := filepath.Join(resDir, commit)

	resultFileMu.Lock()
	defer resultFileMu.Unlock()

	held, err := recordedBuild(path)
	if err != nil {
		return err
	}
	if held > j.GetBuild() {
		return nil // a later build already wrote this commit's file
	}
	return writeAtomic(path, header, body)
}

// resultHeader is the key: value block and the blank line that ends it.
func resultHeader(r *messages.Result) string {
	return headerLines(r) + "\n"
}

// buildHeader is the key: value block of a pipeline build, its jobs block
// and the blank line that ends them.
func buildHeader(b *Build) string {
	var s strings.Builder
	s.WriteString(headerLines(b.Result))
	s.WriteString("jobs:\n")
	for _, j := range b.Jobs {
		r := j.Result
		runner := r.GetRunnerId()
		if runner == "" {
			runner = "-"
		}
		fmt.Fprintf(&s, "  %s: %s, attempt %d, runner %s, %s\n", oneLine(j.Name), r.GetStatus().Name(), r.GetAttempt(),
			oneLine(runner), duration(r))
	}
	s.WriteByte('\n')
	return s.String()
}

// buildOutput writes the logs of b's jobs that did not pass, each after a
// line naming it, limit bytes of logs at most.
func (db *DB) buildOutput(w io.Writer, b *Build, limit int64) error {
	out := &budget{w: w, left: limit}
	for _, j := range b.Jobs {
		r := j.Result
		if st := r.GetStatus(); st == messages.Status_STATUS_PASSED || st == messages.Status_STATUS_SKIPPED {
			continue
		}
		if _, err := fmt.Fprintf(w, "==> %s: %s <==\n", oneLine(j.Name), r.GetStatus().Name()); err != nil {
			return err
		}
		out.wrote, out.cut = 0, 0
		if _, err := db.CopyLog(out, r.GetJob(), r.GetAttempt()); err != nil {
			return err
		}
		if out.wrote > 0 && out.last != '\n' {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
		if out.cut > 0 {
			if _, err := fmt.Fprintf(w, "volt: %d more bytes of this log are not shown here (a build's result file shows at most %d bytes of logs)\n",
				out.cut, limit); err != nil {
				return err
			}
		}
	}
	return nil
}

// budget writes to w up to left bytes in all and drops the rest, counting
// what it wrote and dropped since they were last reset.
type budget struct {
	w          io.Writer
	left       int64
	wrote, cut int64
	last       byte
}

func (b *budget) Write(p []byte) (int, error) {
	n := len(p)
	if int64(len(p)) > b.left {
		b.cut += int64(len(p)) - b.left
		p = p[:b.left]
	}
	if len(p) == 0 {
		return n, nil
	}
	if _, err := b.w.Write(p); err != nil {
		return 0, err
	}
	b.left -= int64(len(p))
	b.wrote += int64(len(p))
	b.last = p[len(p)-1]
	return n, nil
}

// duration is how long r ran, in Go syntax; 0s when it never started.
func duration(r *messages.Result) time.Duration {
	if s, f := r.GetStartedUnixMs(), r.GetFinishedUnixMs(); s > 0 && f >= s {
		return time.Duration(f-s) * time.Millisecond
	}
	return 0
}

// headerLines are the key: value lines of r.
func headerLines(r *messages.Result) string {
	j := r.GetJob()
	var b strings.Builder
	line := func(k, v string) {
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(oneLine(v))
		b.WriteByte('\n')
	}
	line("status", r.GetStatus().Name())
	line("repo", j.GetRepo())
	line("branches", strings.Join(j.GetBranches(), ","))
	line("commit", j.GetCommit())
	line("build", strconv.Itoa(int(j.GetBuild())))
	line("attempt", strconv.Itoa(int(r.GetAttempt())))
	line("runner", r.GetRunnerId())
	line("started", formatMS(r.GetStartedUnixMs()))
	line("finished", formatMS(r.GetFinishedUnixMs()))
	line("duration", duration(r).String())
	if r.GetReason() != "" {
		line("reason", r.GetReason())
	}
	if r.GetFailedStep() != "" {
		line("failed_step", r.GetFailedStep())
	}
	return b.String()
}

// formatMS formats Unix milliseconds; 0 (not known) is empty.
func formatMS(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(timeLayout)
}

var lineBreaks = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ")

func oneLine(s string) string { return lineBreaks.Replace(s) }

// recordedBuild returns the build number in the header of the result file at
// path, 0 when there is no file or its header holds no readable build (such a
// file is replaced).
func recordedBuild(path string) (int32, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read result file %s: %w", path, err)
	}
	build, scanErr := scanBuild(f)
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("read result file %s: %w", path, err)
	}
	if scanErr != nil {
		return 0, fmt.Errorf("read result file %s: %w", path, scanErr)
	}
	return build, nil
}

// scanBuild reads header lines up to the blank line and returns the value of
// build, 0 if absent or not a number.
func scanBuild(r io.Reader) (int32, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		v, ok := strings.CutPrefix(line, "build: ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return 0, nil // an unreadable header is replaced, not obeyed
		}
		return int32(n), nil
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		return 0, err
	}
	return 0, nil
}

// writeAtomic replaces path with header followed by what body writes.
func writeAtomic(path, header string, body func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write result file %s: %w", path, err)
	}
	defer func() {
		if err == nil {
			return
		}
		// Never leave a temporary file behind (it is already closed here).
		if rmErr := os.Remove(tmp.Name()); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", tmp.Name(), rmErr))
		}
	}()
	if err := writeAndSync(tmp, header, body); err != nil {
		return errors.Join(fmt.Errorf("write result file %s: %w", path, err), closeFile(tmp))
	}
	if err := closeFile(tmp); err != nil {
		return fmt.Errorf("write result file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write result file %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write result file %s: %w", path, err)
	}
	return nil
}

func writeAndSync(f *os.File, header string, body func(io.Writer) error) error {
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	if _, err := w.WriteString(header); err != nil {
		return err
	}
	if err := body(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

func closeFile(f *os.File) error {
	if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return errors.Join(err, d.Close())
	}
	return d.Close()
}
