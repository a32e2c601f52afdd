package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// smallFS mounts a file system of about size bytes on a new temporary
// directory and unmounts it when the test ends (after the processes the
// test starts later have stopped: cleanups run last first): a tmpfs where
// this process may mount one, else a loop-mounted ext4 image. It skips the
// test when neither can be mounted here.
func smallFS(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	unmount := func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Logf("unmount %s: %v; detaching it", mnt, err)
			if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", mnt, err)
			}
		}
	}
	tmpfsErr := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size))
	if tmpfsErr == nil {
		t.Cleanup(unmount)
		t.Logf("a %d KiB tmpfs on %s", size>>10, mnt)
		return mnt
	}
	img := filepath.Join(dir, "fs.img")
	loopErr := func() error {
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			return err
		}
		if err := os.Truncate(img, 2*size); err != nil { // ext4 takes some for itself
			return err
		}
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
			return fmt.Errorf("mkfs.ext4: %v: %s", err, out)
		}
		if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
			return fmt.Errorf("mount -o loop: %v: %s", err, out)
		}
		return nil
	}()
	if loopErr != nil {
		t.Skipf("cannot mount a small file system here (tmpfs: %v; loop-mounted ext4: %v): run the test as root, or where mount is allowed", tmpfsErr, loopErr)
	}
	t.Cleanup(unmount)
	t.Logf("a %d KiB loop-mounted ext4 on %s", 2*size>>10, mnt)
	return mnt
}

// fill writes path until the file system is full and returns how much it wrote.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("create the filler: %v", err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(chunk)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatalf("fill the file system: %v", err)
		}
	}
	// Whatever is left is smaller than a block: take it byte by byte.
	for {
		if _, err := f.Write(chunk[:1]); err != nil {
			break
		}
		n++
	}
	return n
}

// delaySpec runs a job that sleeps for the seconds in the commit's file
// delay (none when it is missing), then says which commit it built.
const delaySpec = "steps:\n  - name: sleep\n    run: sleep $(cat delay 2>/dev/null || echo 0); echo built $VOLT_COMMIT\n"

// storeError matches a log line that names a store write refused for lack of
// space: SQLite says "database or disk is full", a file write "no space left
// on device".
var storeError = regexp.MustCompile(`(?i)no space left on device|disk is full`)

// TestFullDiskUp puts `volt up`'s data directory on a small file system,
// records a commit, then fills the file system while a job runs (so that
// both the dispatcher, taking new commits and the result, and the reporter,
// taking the log, the result and its file, meet the full disk) and pushes
// more commits meanwhile. volt up must stay up, log the cause once per role
// (an ERROR naming the path and the lack of space), and show it in `volt
// status` and /api/v1/status; once space is back, every commit pushed
// meanwhile gets exactly one result.
func TestFullDiskUp(t *testing.T) {
	mnt := smallFS(t, 4<<20)
	r := newRepo(t, map[string]string{".volt.yml": delaySpec})
	data := filepath.Join(mnt, "data")
	creds := filepath.Join(t.TempDir(), "creds") // credentials and the runner's work stay off the small disk
	addr, webAddr := loopback(t), loopback(t)
	up := startVolt(t, "up", "up", "--repo", r.bare, "--poll", "500ms", "--runners", "0", "--data-dir", data,
		"--credentials", creds, "--listen", addr, "--http", webAddr)
	waitListening(t, up, addr)
	startVolt(t, "runner", "runner", "--id", "fill-runner", "--credentials", creds, "--dispatcher-server", addr,
		"--listen", "127.0.0.1:0", "--work-dir", filepath.Join(t.TempDir(), "w"))
	waitResult(t, data, r.head(), resultTimeout).wantStatus(t, "passed")

	status := func() string {
		res := runVolt(t, 20*time.Second, "status", "--credentials", creds, "--dispatcher-server", addr)
		return res.stdout + res.stderr
	}
	alive := func(when string) {
		t.Helper()
		if up.exited() {
			t.Fatalf("volt up exited (code %d) %s; the last lines of its log:\n%s", up.code, when, tail(up.log, 30))
		}
	}

	// A job runs while the disk fills: its log, its result and its result
	// file all meet the full disk.
	slow := r.commitPush("slow", map[string]string{"delay": "4"})
	eventuallyEvery(t, resultTimeout, 200*time.Millisecond, func() bool {
		for _, line := range strings.Split(status(), "\n") {
			if strings.Contains(line, slow[:12]) && strings.Contains(line, "running") {
				return true
			}
		}
		return false
	}, "%s never ran", slow)
	filler := filepath.Join(mnt, "filler")
	n := fill(t, filler)
	full := time.Now()
	t.Logf("filled the file system with %d KiB", n>>10)
	meanwhile := []string{slow, r.commitPush("while full 1", map[string]string{"delay": "0"})}

	// volt up stays up and says why it cannot write, in its log and its status.
	var st string
	eventuallyEvery(t, 30*time.Second, 250*time.Millisecond, func() bool {
		alive("with the disk full")
		st = status()
		return strings.Contains(st, "store: failing — writes refused") && len(storeErrors(up.logText())) > 0
	}, "with the disk full, volt status does not say a store is failing or the log names no store error; status:\n%s\nlog:\n%s",
		lazy(func() string { return st }), lazy(func() string { return tail(up.log, 30) }))
	t.Logf("volt status %s after the disk filled:\n%s", time.Since(full).Round(time.Millisecond), st)
	api := httpGet(t, "http://"+webAddr+"/api/v1/status")
	if !strings.Contains(api, `"stores": [`) || !strings.Contains(api, "store: failing") {
		t.Errorf("/api/v1/status does not show the failing store:\n%s", api)
	}

	// More commits while it is full, and time for a few retries.
	meanwhile = append(meanwhile, r.commitPush("while full 2", map[string]string{"delay": "0"}))
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		alive("with the disk full")
	}
	meanwhile = append(meanwhile, r.commitPush("while full 3", map[string]string{"delay": "0"}))

	// The cause, once per role: an ERROR with the data directory's path.
	perRole := map[string]int{}
	for _, line := range storeErrors(up.logText()) {
		if !strings.Contains(line, data) {
			t.Errorf("the store error does not name the path under %s:\n%s", data, line)
		}
		role := "(no role)"
		if m := regexp.MustCompile(`\brole=(\S+)`).FindStringSubmatch(line); m != nil {
			role = m[1]
		}
		perRole[role]++
	}
	for role, n := range perRole {
		if n != 1 {
			t.Errorf("%s logged the store error %d times, want once:\n%s", role, n, strings.Join(storeErrors(up.logText()), "\n"))
		}
	}

	// Space is back: everything resumes by itself, each commit once.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	for _, sha := range meanwhile {
		rf := waitResult(t, data, sha, resultTimeout)
		rf.wantStatus(t, "passed")
		if rf.header["build"] != "1" {
			t.Errorf("%s: build %s, want 1 (one result):\n%s", sha, rf.header["build"], rf.raw)
		}
		// The job that ran while the disk filled keeps its log: the runner
		// hands it over again until the reporter's store takes it. The
		// others run once space is back, but the dispatcher's core has
		// restarted from its durable state and sends them out before the
		// reporter registers again (its refresh, up to 5 s), so they run
		// with no log sink: a known gap after any in-place restart of the
		// dispatcher (issue 11's closing note), not checked here.
		if sha == slow && !strings.Contains(rf.output, "built "+sha) {
			t.Errorf("%s: the output lacks its job's log:\n%s", sha, rf.raw)
		}
	}
	t.Logf("every commit pushed meanwhile has its result %s after space came back", time.Since(freed).Round(time.Millisecond))
	res := runVolt(t, 20*time.Second, "results", "--data-dir", data, "--limit", "100")
	for _, sha := range append([]string{r.head()}, meanwhile...) {
		if n := strings.Count(res.stdout, sha[:12]); n != 1 {
			t.Errorf("volt results lists %s %d times, want once:\n%s", sha[:12], n, res.stdout)
		}
	}
	eventuallyEvery(t, 20*time.Second, 250*time.Millisecond, func() bool {
		st = status()
		return !strings.Contains(st, "store: failing")
	}, "volt status still says a store is failing after space came back:\n%s", lazy(func() string { return st }))
	alive("after space came back")
}

// storeErrors are the ERROR lines of a log that name a lack of space.
func storeErrors(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "level=ERROR") && storeError.MatchString(line) {
			out = append(out, line)
		}
	}
	return out
}

// httpGet returns the body of a GET of url.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(b)
}
