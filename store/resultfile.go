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
func WriteResultFile(dir string, r *messages.Result, output io.Reader) error {
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
	return writeAtomic(path, resultHeader(r), output)
}

// resultHeader is the key: value block and the blank line that ends it.
func resultHeader(r *messages.Result) string {
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
	var d time.Duration
	if s, f := r.GetStartedUnixMs(), r.GetFinishedUnixMs(); s > 0 && f >= s {
		d = time.Duration(f-s) * time.Millisecond
	}
	line("duration", d.String())
	if r.GetReason() != "" {
		line("reason", r.GetReason())
	}
	if r.GetFailedStep() != "" {
		line("failed_step", r.GetFailedStep())
	}
	b.WriteByte('\n')
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

// writeAtomic replaces path with header followed by body.
func writeAtomic(path, header string, body io.Reader) (err error) {
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

func writeAndSync(f *os.File, header string, body io.Reader) error {
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 64<<10)
	if _, err := w.WriteString(header); err != nil {
		return err
	}
	if body != nil {
		if _, err := io.Copy(w, body); err != nil {
			return fmt.Errorf("copy output: %w", err)
		}
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
