package web_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/messages"
)

// The browser tests drive Debian's chromium against a real `volt up`
// process (the binary built once from ./cmd/volt) watching a temporary git
// repository. `make test` installs chromium; when it is missing the test
// tries apt-get itself and skips only when that fails too.

var (
	buildOnce sync.Once
	voltBin   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		if err := os.RemoveAll(benchDir); err != nil {
			fmt.Fprintln(os.Stderr, "web: remove the benchmark store:", err)
		}
	}
	if voltBin != "" {
		if err := os.RemoveAll(filepath.Dir(voltBin)); err != nil {
			fmt.Fprintln(os.Stderr, "web: remove the built volt:", err)
		}
	}
	os.Exit(code)
}

// buildVolt builds ./cmd/volt once per test binary (a plain build, not
// -race, to keep it fast) into a directory TestMain removes.
func buildVolt(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "volt-web-bin-")
		if err != nil {
			buildErr = err
			return
		}
		voltBin = filepath.Join(dir, "volt")
		cmd := exec.Command("go", "build", "-o", voltBin, "./cmd/volt")
		cmd.Dir = ".." // the module root: this package is web/
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/volt: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return voltBin
}

// chromium finds Debian's chromium, installing it with apt-get when it is
// missing and this process may (root); it skips the test only when both fail.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		t.Skip("chromium not found and cannot be installed here (needs apt-get as root): install Debian's chromium, or run `make test`")
	}
	t.Log("chromium not found: installing it with apt-get")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("chromium not found and `apt-get install chromium` failed (%v): install it by hand, or run `make test`\n%s", err, out)
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Skipf("chromium still not found after apt-get install: %v", err)
	}
	return p
}

// gitRepo is a bare repository with a working clone.
type gitRepo struct {
	t          *testing.T
	bare, work string
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.work
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=web", "GIT_AUTHOR_EMAIL=web@example.com", "GIT_COMMITTER_NAME=web", "GIT_COMMITTER_EMAIL=web@example.com")
	out, err := cmd.CombinedOutput()
	require.NoError(r.t, err, "git %s\n%s", strings.Join(args, " "), out)
	return strings.TrimSpace(string(out))
}

// commit writes .volt.yml, commits on the current branch and pushes it.
func (r *gitRepo) commit(spec, msg string) string {
	r.t.Helper()
	require.NoError(r.t, os.WriteFile(filepath.Join(r.work, ".volt.yml"), []byte(spec), 0o644))
	r.git("add", ".volt.yml")
	r.git("commit", "-q", "--allow-empty", "-m", msg)
	r.git("push", "-q", "origin", "HEAD")
	return r.git("rev-parse", "HEAD")
}

func newGitRepo(t *testing.T) *gitRepo {
	dir := t.TempDir()
	r := &gitRepo{t: t, bare: filepath.Join(dir, "proj.git"), work: filepath.Join(dir, "work")}
	cmd := exec.Command("git", "init", "-q", "--bare", "-b", "main", r.bare)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	cmd = exec.Command("git", "clone", "-q", r.bare, r.work)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	r.git("checkout", "-q", "-B", "main")
	return r
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// startUp runs `volt up` on repo until the test ends and returns its web URL.
func startUp(t *testing.T, bin string, repo *gitRepo, branches ...string) string {
	t.Helper()
	httpAddr, listen := freeAddr(t), freeAddr(t)
	dir := t.TempDir()
	args := []string{"up", "--repo", repo.bare, "--http", httpAddr, "--listen", listen, "--poll", "200ms",
		"--runners", "2", "--data-dir", filepath.Join(dir, "data")}
	for _, b := range branches {
		args = append(args, "--branch", b)
	}
	logPath := filepath.Join(dir, "up.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VOLT_TOKEN=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		if err := cmd.Wait(); err != nil {
			t.Logf("volt up exited: %v", err)
		}
	}()
	t.Cleanup(func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Logf("stop volt up: %v", err)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("volt up did not stop within 10s of SIGTERM; killing it")
			if err := cmd.Process.Kill(); err != nil {
				t.Logf("kill volt up: %v", err)
			}
			<-exited
		}
		if err := logFile.Close(); err != nil {
			t.Logf("close %s: %v", logPath, err)
		}
		if t.Failed() {
			b, err := os.ReadFile(logPath)
			if err == nil {
				t.Logf("--- volt up log:\n%s", b)
			}
		}
	})
	url := "http://" + httpAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case <-exited:
			t.Fatalf("volt up exited before serving %s", url)
		default:
		}
		require.True(t, time.Now().Before(deadline), "volt up did not serve %s within 30s", url)
		time.Sleep(50 * time.Millisecond) // polling interval, not a wait for a condition
	}
}

// browser starts a headless chromium with a fresh profile.
func browser(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start chromium")
	return ctx
}

// waitFor evaluates a JavaScript boolean expression in the page until it is
// true, failing the test after timeout.
func waitFor(t *testing.T, ctx context.Context, timeout time.Duration, expr, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, berr := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			if berr != nil {
				body = berr.Error()
			}
			t.Fatalf("after %s: %s (last error %v)\npage text:\n%s", timeout, what, err, body)
		}
		time.Sleep(100 * time.Millisecond) // polling interval of the deadline loop
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	require.NoError(t, err, expr)
	return v
}

// artifactDir is where screenshots go: $VOLT_TEST_ARTIFACTS when set, else
// the test's own artifact directory (kept with `go test -artifacts
// -outputdir DIR`).
func artifactDir(t *testing.T) string {
	if d := os.Getenv("VOLT_TEST_ARTIFACTS"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.ArtifactDir()
}

const (
	quickSpec = "steps:\n  - name: unit\n    run: echo all good\n"
	// slowSpec prints a line every 500 ms, so the log is watched arriving.
	slowSpec = "steps:\n  - name: slow\n    run: for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo tick $i; sleep 0.5; done\n"
	// xssBranch is a valid git branch name that is also an HTML payload.
	xssBranch = "x<script>window.__xss=1</script>"
	xssSpec   = "steps:\n  - name: \"<script>window.__xss=2</script>\"\n" +
		"    run: printf '<script>window.__xss=3</script><img src=x onerror=\"window.__xss=4\">\\n\\033[31mred\\033[0m\\n'\n"
)

func TestDashboardInABrowser(t *testing.T) {
	exe := chromium(t)
	bin := buildVolt(t)
	repo := newGitRepo(t)
	first := repo.commit(quickSpec, "first")
	repo.git("checkout", "-q", "-b", xssBranch)
	xss := repo.commit(xssSpec, "<script>window.__xss=5</script>")
	repo.git("checkout", "-q", "main")
	url := startUp(t, bin, repo, "main", xssBranch)
	ctx := browser(t, exe)

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url+"/")))
	waitFor(t, ctx, 60*time.Second, fmt.Sprintf(`document.querySelector('tr.commit.status-passed[data-commit="%s"]')`, first),
		"the first commit's row is green")
	// A marker that a reload would wipe out.
	eval[any](t, ctx, `window.__noReload = 42`)

	t.Run("a pushed commit appears and turns green without a reload", func(t *testing.T) {
		sha := repo.commit(quickSpec, "second")
		waitFor(t, ctx, 30*time.Second, fmt.Sprintf(`document.querySelector('tr.commit[data-commit="%s"]')`, sha), "the new commit's row appears")
		waitFor(t, ctx, 60*time.Second, fmt.Sprintf(`document.querySelector('tr.commit.status-passed[data-commit="%s"]')`, sha), "the new commit's row turns green")
		require.Equal(t, float64(42), eval[float64](t, ctx, `window.__noReload`), "the page was reloaded")
		require.Greater(t, eval[float64](t, ctx, `Number(document.body.dataset.updates || 0)`), float64(0), "no live update arrived")
	})

	t.Run("branch names, step names and output from the repository render as text", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url+"/")))
		waitFor(t, ctx, 60*time.Second, fmt.Sprintf(`document.querySelector('tr.commit.status-passed[data-commit="%s"]')`, xss), "the XSS branch's build finishes")
		require.Contains(t, eval[string](t, ctx, `document.body.innerText`), xssBranch, "the branch name shows as text")
		jobID := eval[string](t, ctx, fmt.Sprintf(`document.querySelector('tr.commit[data-commit="%s"]').dataset.job`, xss))
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url+"/jobs/"+jobID)))
		waitFor(t, ctx, 10*time.Second, `document.getElementById('log') && document.getElementById('log').innerText.includes('red')`, "the job page shows its log")
		text := eval[string](t, ctx, `document.body.innerText`)
		require.Contains(t, text, "<script>window.__xss=3</script><img src=x onerror=\"window.__xss=4\">")
		require.Contains(t, text, "<script>window.__xss=2</script>")
		require.Equal(t, "undefined", eval[string](t, ctx, `typeof window.__xss`), "a script from the repository ran")
		require.Equal(t, float64(1), eval[float64](t, ctx, `document.scripts.length`), "only Volt's own script is in the page")
		require.Equal(t, "ansi-fg2", eval[string](t, ctx, `document.querySelector('#log span').className`), "colour codes become spans")
		require.NotContains(t, text, "\x1b[31m")
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url+"/")))
		waitFor(t, ctx, 10*time.Second, `document.querySelector('tr.commit')`, "the dashboard is back")
		require.Equal(t, "undefined", eval[string](t, ctx, `typeof window.__xss`), "a script from the repository ran on the dashboard")
	})

	t.Run("a running job's log arrives line by line", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url+"/")))
		sha := repo.commit(slowSpec, "slow")
		sel := fmt.Sprintf(`document.querySelector('tr.commit.status-running[data-commit="%s"]')`, sha)
		waitFor(t, ctx, 30*time.Second, sel, "the slow commit runs")
		jobID := eval[string](t, ctx, sel+`.dataset.job`)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url+"/jobs/"+jobID)))
		waitFor(t, ctx, 20*time.Second, `document.getElementById('log').innerText.includes('tick 2')`, "the first lines arrive")
		require.False(t, eval[bool](t, ctx, `document.getElementById('log').innerText.includes('tick 12')`), "the whole log was there at once")
		require.Equal(t, "running", eval[string](t, ctx, `document.getElementById('job-status').innerText`))
		waitFor(t, ctx, 30*time.Second, `document.getElementById('log').innerText.includes('tick 12')`, "the last line arrives")
		waitFor(t, ctx, 20*time.Second, `document.getElementById('job-status').innerText === 'passed'`, "the job page turns passed")
		log := eval[string](t, ctx, `document.getElementById('log').innerText`)
		require.Equal(t, 1, strings.Count(log, "tick 7\n"), "each line once:\n%s", log)
	})

	t.Run("screenshot", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url+"/")))
		waitFor(t, ctx, 10*time.Second, `document.querySelectorAll('tr.commit.status-passed').length >= 2`, "the dashboard shows the builds")
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		path := filepath.Join(artifactDir(t), "dashboard.png")
		require.NoError(t, os.WriteFile(path, png, 0o644))
		t.Logf("dashboard screenshot: %s", path)
	})
}

// TestBuildPageInABrowser opens the page of a build of four jobs (lint →
// two tests → package) in chromium, over a real store and a dispatcher
// that holds the build: a box per job with its status, an arrow per need
// joining the right boxes, the page following the build as it ends, and a
// job's log one click away.
func TestBuildPageInABrowser(t *testing.T) {
	exe := chromium(t)
	f := start(t, "")
	recs := pipelineBuild(60)
	f.withBuild(t, recs)
	_, err := f.db.AppendLog(recs[1].Job, 2, 0, []byte("--- step test: go test ./...\nFAIL: TestThing\n"))
	require.NoError(t, err)
	_, err = f.db.AppendArtifact(recs[1].Job, 2, "report.json", messages.KindArtifact, 0, []byte("{}"))
	require.NoError(t, err)
	sum := sha256.Sum256([]byte("{}"))
	_, err = f.db.CloseArtifact(61, 2, "report.json", 2, sum[:], 0o644)
	require.NoError(t, err)
	ctx := browser(t, exe)

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.url+"/builds/60")))
	waitFor(t, ctx, 10*time.Second, `document.querySelector('#graph g.job')`, "the pipeline is drawn")
	boxes := `Array.from(document.querySelectorAll('#graph g.job')).map(g => g.id + ' ' + g.getAttribute('class') + ' ' + g.dataset.name)`
	require.Equal(t, []string{
		"job-0 job status-passed lint",
		"job-1 job status-failed test (go=1.25)",
		"job-2 job status-running test (go=1.26)",
		"job-3 job status-queued package",
	}, eval[[]string](t, ctx, boxes))
	require.Equal(t, []string{"0>1", "0>2", "1>3", "2>3"},
		eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#graph path.need')).map(p => p.dataset.from + '>' + p.dataset.to)`))

	// Each arrow starts on its need's right edge and ends on its
	// dependent's left edge, as the browser lays them out; stages go
	// left to right.
	geometry := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#graph path.need')).map(p => {
		const from = document.getElementById('job-' + p.dataset.from).querySelector('rect').getBBox();
		const to = document.getElementById('job-' + p.dataset.to).querySelector('rect').getBBox();
		const a = p.getPointAtLength(0), b = p.getPointAtLength(p.getTotalLength());
		const on = (pt, x, box) => Math.abs(pt.x - x) < 0.5 && pt.y >= box.y && pt.y <= box.y + box.height;
		return p.id + ' ' + on(a, from.x + from.width, from) + ' ' + on(b, to.x, to) + ' ' + (from.x < to.x);
	})`)
	require.Equal(t, []string{"need-0-1 true true true", "need-0-2 true true true", "need-1-3 true true true", "need-2-3 true true true"}, geometry)
	require.Equal(t, "rgb(26, 127, 55)", eval[string](t, ctx, `getComputedStyle(document.querySelector('#job-0 rect')).stroke`),
		"a passed job is drawn in the dashboard's green")
	require.Equal(t, []string{"/builds/60/jobs/1#log", "/builds/60/jobs/1#tests", "/builds/60/jobs/1#artifacts"},
		eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#jobs tr[data-index="1"] td.links a')).map(a => a.getAttribute('href'))`))

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(artifactDir(t), "build.png"), png, 0o644))

	// The build goes on without a reload: the second test passes, then
	// package is skipped (a test failed) and the build ends failed.
	eval[any](t, ctx, `window.__noReload = 42`)
	recs[2].State, recs[2].Result = messages.JobState_JOB_STATE_DONE, &messages.Result{Job: recs[2].Job, Attempt: 1, Status: messages.Status_STATUS_PASSED}
	f.withBuild(t, recs)
	waitFor(t, ctx, 10*time.Second, `document.querySelector('#job-2.status-passed')`, "the second test turns passed")
	recs[3].State, recs[3].Waiting, recs[3].Result = messages.JobState_JOB_STATE_DONE, "", &messages.Result{Job: recs[3].Job, Status: messages.Status_STATUS_SKIPPED}
	f.withBuild(t, recs)
	waitFor(t, ctx, 10*time.Second, `document.getElementById('build').dataset.done === 'true'`, "the page sees the build end")
	require.Equal(t, "job status-skipped", eval[string](t, ctx, `document.getElementById('job-3').getAttribute('class')`))
	require.Equal(t, "failed", eval[string](t, ctx, `document.getElementById('build-status').innerText`))
	require.Equal(t, float64(42), eval[float64](t, ctx, `window.__noReload`), "the page was reloaded")
	require.Equal(t, 4, len(eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#graph path.need')).map(p => p.id)`)))

	// A click on a box opens its job, with its log.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#job-1 rect`))))
	waitFor(t, ctx, 10*time.Second, `location.pathname === '/builds/60/jobs/1' && document.getElementById('log')`, "the box opens its job")
	require.Contains(t, eval[string](t, ctx, `document.getElementById('log').innerText`), "FAIL: TestThing")
	require.Contains(t, eval[string](t, ctx, `document.querySelector('h1').innerText`), "test (go=1.25)")
	require.Equal(t, "/api/v2/builds/60/jobs/1/artifacts/report.json", eval[string](t, ctx, `document.querySelector('#artifacts a').getAttribute('href')`),
		"its artifacts are there to download")
}

// TestBuildPageOfARealBuild: a `volt up` builds a commit of the
// single-list format; the dashboard's row opens its build page, which
// draws one green box named "build" and no arrow, and the box opens the
// job with its log.
func TestBuildPageOfARealBuild(t *testing.T) {
	exe := chromium(t)
	bin := buildVolt(t)
	repo := newGitRepo(t)
	sha := repo.commit(quickSpec, "first")
	url := startUp(t, bin, repo, "main")
	ctx := browser(t, exe)

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(url+"/")))
	row := fmt.Sprintf(`tr.commit.status-passed[data-commit="%s"]`, sha)
	// The dashboard redraws its rows as results come: the row is read in
	// the expression that finds it.
	buildOf := fmt.Sprintf(`(document.querySelector('%s') || {dataset: {}}).dataset.build`, row)
	waitFor(t, ctx, 60*time.Second, buildOf, "the commit's row is green")
	var id string
	waitFor(t, ctx, 10*time.Second, buildOf, "the commit's row stays")
	for i := 0; id == "" && i < 100; i++ {
		if i > 0 {
			time.Sleep(50 * time.Millisecond) // the row is being redrawn
		}
		id = eval[string](t, ctx, buildOf+` || ""`)
	}
	require.NotEmpty(t, id, "the commit's row names its build")
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(row+` a`))))
	waitFor(t, ctx, 10*time.Second, `document.querySelector('#graph g.job')`, "the row opens the build page")
	require.Equal(t, "/builds/"+id, eval[string](t, ctx, `location.pathname`))
	require.Equal(t, []string{"job-0 job status-passed build"},
		eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#graph g.job')).map(g => g.id + ' ' + g.getAttribute('class') + ' ' + g.dataset.name)`))
	require.Equal(t, float64(0), eval[float64](t, ctx, `document.querySelectorAll('#graph path.need').length`))
	require.Equal(t, "passed", eval[string](t, ctx, `document.getElementById('build-status').innerText`))

	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#job-0 rect`))))
	waitFor(t, ctx, 10*time.Second, `document.getElementById('log') && document.getElementById('log').innerText.includes('all good')`, "the box opens the job's log")
	require.Equal(t, "/builds/"+id+"/jobs/0", eval[string](t, ctx, `location.pathname`))
}
