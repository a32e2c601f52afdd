package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gitEnv is the environment of every git command the benchmarks run: no user
// or system configuration, a fixed identity.
func gitEnv() []string {
	return append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com")
}

// git runs git in dir and returns its trimmed output.
func git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("git %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// timeGit runs git in dir and returns how long it took.
func timeGit(tb testing.TB, dir string, args ...string) time.Duration {
	tb.Helper()
	start := time.Now()
	git(tb, dir, args...)
	return time.Since(start)
}

// repo is a bare repository master.git (what Volt watches) and a working
// clone of it (where the benchmark commits).
type repo struct {
	tb   testing.TB
	bare string
	work string
	n    int // commits made by next
}

// newRepo creates master.git (branch main) and a clone with files, committed
// and pushed. Files are written with one `git add -A`, so thousands are fine.
func newRepo(tb testing.TB, dir string, files map[string]string) *repo {
	tb.Helper()
	r := &repo{tb: tb, bare: filepath.Join(dir, "master.git"), work: filepath.Join(dir, "work")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	git(tb, dir, "init", "-q", "--bare", "-b", "main", r.bare)
	git(tb, dir, "clone", "-q", r.bare, r.work)
	git(tb, r.work, "checkout", "-q", "-B", "main")
	for name, content := range files {
		p := filepath.Join(r.work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	git(tb, r.work, "add", "-A")
	r.commit("seed")
	r.push()
	return r
}

// write writes one file of the clone and stages it.
func (r *repo) write(name, content string) {
	r.tb.Helper()
	p := filepath.Join(r.work, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.tb.Fatal(err)
	}
	git(r.tb, r.work, "add", "--", name)
}

// commit commits what is staged (or nothing) and returns the new sha.
func (r *repo) commit(msg string) string {
	r.tb.Helper()
	git(r.tb, r.work, "commit", "-q", "--allow-empty", "-m", msg)
	return git(r.tb, r.work, "rev-parse", "HEAD")
}

// push pushes main and returns how long it took.
func (r *repo) push() time.Duration {
	r.tb.Helper()
	return timeGit(r.tb, r.work, "push", "-q", "origin", "main")
}

func (r *repo) head() string {
	r.tb.Helper()
	return git(r.tb, r.work, "rev-parse", "HEAD")
}

// next commits a change of one small file (counter.txt) and returns its sha:
// each commit is a neighbour of the one before.
func (r *repo) next() string {
	r.tb.Helper()
	r.n++
	r.write("counter.txt", fmt.Sprintf("%d %d\n", r.n, time.Now().UnixNano()))
	return r.commit(fmt.Sprintf("commit %d", r.n))
}

// commits makes n commits on main in one `git fast-import` (each changes
// counter.txt) without pushing them, and returns their shas, oldest first.
func (r *repo) commits(n int) []string {
	r.tb.Helper()
	parent := r.head()
	var in bytes.Buffer
	now := time.Now().Unix()
	for i := range n {
		r.n++
		msg := fmt.Sprintf("batch commit %d", r.n)
		content := fmt.Sprintf("%d %d\n", r.n, time.Now().UnixNano())
		fmt.Fprintf(&in, "commit refs/heads/main\ncommitter bench <bench@example.com> %d +0000\ndata %d\n%s\n", now+int64(i), len(msg), msg)
		if i == 0 {
			fmt.Fprintf(&in, "from %s\n", parent)
		}
		fmt.Fprintf(&in, "M 100644 inline counter.txt\ndata %d\n%s\n", len(content), content)
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = r.work
	cmd.Env = gitEnv()
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		r.tb.Fatalf("git fast-import: %v\n%s", err, out)
	}
	git(r.tb, r.work, "reset", "-q", "--hard", "main")
	shas := strings.Fields(git(r.tb, r.work, "rev-list", "--reverse", parent+"..main"))
	if len(shas) != n {
		r.tb.Fatalf("fast-import made %d commits, want %d", len(shas), n)
	}
	return shas
}

// specTrue is a .volt.yml with one trivial step.
const specTrue = "steps:\n  - name: t\n    run: \"true\"\n"
