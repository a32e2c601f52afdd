package gitexec

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is an io.Writer whose contents can be read while it is written.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// executorMode is a way of starting steps: directly, or through the wrapper
// (the test binary re-executed, see TestMain).
type executorMode struct {
	name string
	exec *Executor
	env  []string // added to every job's environment
}

func executorModes(t *testing.T) []executorMode {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	wrapperEnv := []string{envWrapper + "=1", raceNoExitDelay}
	// Closed: every step starts its wrapper when it starts.
	cold := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: wrapperEnv}
	cold.Close()
	warm := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: wrapperEnv}
	t.Cleanup(warm.Close)
	return []executorMode{
		{name: "direct", exec: &Executor{}},
		{name: "wrapper", exec: cold},
		{name: "warm wrapper", exec: warm},
	}
}

func (m executorMode) run(ctx context.Context, r Run) Outcome {
	r.Env = append(append([]string{"PATH=" + os.Getenv("PATH")}, m.env...), r.Env...)
	m.exec.Warm() // a no-op for the direct and the closed executor
	return m.exec.Execute(ctx, r)
}

// raceNoExitDelay stops a race-enabled wrapper from sleeping 1 s before it exits.
const raceNoExitDelay = "GORACE=atexit_sleep_ms=0"

var pidLine = regexp.MustCompile(`(?m)^(\w+)=(\d+)$`)

// pids collects the "name=pid" lines a command echoed.
func pids(t *testing.T, output string) map[string]int {
	t.Helper()
	found := map[string]int{}
	for _, m := range pidLine.FindAllStringSubmatch(output, -1) {
		pid, err := strconv.Atoi(m[2])
		require.NoError(t, err)
		found[m[1]] = pid
	}
	return found
}

func pidList(m map[string]int) []int {
	var list []int
	for _, pid := range m {
		list = append(list, pid)
	}
	return list
}

func TestExecute(t *testing.T) {
	t.Setenv("VOLT_TOKEN", "secret") // must not reach a step
	dir := t.TempDir()
	tests := []struct {
		name       string
		run        Run
		want       Outcome // Kept and Dropped are not compared
		wantOutput string  // exact, with dir replaced by DIR
		// wrapperReason replaces want.Reason in wrapper and sandbox modes,
		// where a signal that kills the shell reaches the executor as the
		// wrapper's (or bwrap's) exit status.
		wrapperReason string
	}{
		{
			name:       "pass",
			run:        Run{Steps: []Step{{Name: "a", Run: "echo hello"}, {Name: "b", Run: "echo world"}}},
			want:       Outcome{Status: Passed},
			wantOutput: "--- step a: echo hello\nhello\n--- step b: echo world\nworld\n",
		},
		{
			name: "first failure stops the job",
			run: Run{Steps: []Step{
				{Name: "a", Run: "echo one"},
				{Name: "b", Run: "echo two; exit 3"},
				{Name: "c", Run: "echo three"},
			}},
			want:       Outcome{Status: Failed, FailedStep: "b", ExitCode: 3, Reason: "step b exited with status 3"},
			wantOutput: "--- step a: echo one\none\n--- step b: echo two; exit 3\ntwo\n",
		},
		{
			name:       "stdout and stderr interleaved",
			run:        Run{Steps: []Step{{Name: "a", Run: "echo out; echo err >&2; echo out2"}}},
			want:       Outcome{Status: Passed},
			wantOutput: "--- step a: echo out; echo err >&2; echo out2\nout\nerr\nout2\n",
		},
		{
			name: "environment is the job's only",
			run: Run{
				Env:   []string{"FOO=bar baz"},
				Steps: []Step{{Name: "env", Run: `echo "$FOO"; echo "token=${VOLT_TOKEN:-none}"`}},
			},
			want:       Outcome{Status: Passed},
			wantOutput: "--- step env: echo \"$FOO\"; echo \"token=${VOLT_TOKEN:-none}\"\nbar baz\ntoken=none\n",
		},
		{
			name:       "runs in Dir",
			run:        Run{Dir: dir, Steps: []Step{{Name: "pwd", Run: "pwd"}}},
			want:       Outcome{Status: Passed},
			wantOutput: "--- step pwd: pwd\nDIR\n",
		},
		{
			name:       "unnamed steps are numbered",
			run:        Run{Steps: []Step{{Run: "true"}, {Run: "false"}}},
			want:       Outcome{Status: Failed, FailedStep: "step 2", ExitCode: 1, Reason: "step step 2 exited with status 1"},
			wantOutput: "--- step step 1: true\n--- step step 2: false\n",
		},
		{
			name:          "killed by a signal",
			run:           Run{Steps: []Step{{Name: "sig", Run: "kill -TERM $$"}}},
			want:          Outcome{Status: Failed, FailedStep: "sig", ExitCode: 143, Reason: "step sig was killed by a signal (exit status 143)"},
			wantOutput:    "--- step sig: kill -TERM $$\n",
			wrapperReason: "step sig exited with status 143",
		},
		{
			name:       "multi-line command header is indented",
			run:        Run{Steps: []Step{{Name: "m", Run: "echo a\necho b\n"}}},
			want:       Outcome{Status: Passed},
			wantOutput: "--- step m: echo a\n    echo b\na\nb\n",
		},
	}
	for _, mode := range append(executorModes(t), sandboxModes(t)...) {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				var out bytes.Buffer
				tt.run.Output = &out
				if tt.run.Dir == "" {
					tt.run.Dir = t.TempDir()
				}
				got := mode.run(context.Background(), tt.run)
				assert.Equal(t, int64(out.Len()), got.Kept)
				assert.Zero(t, got.Dropped)
				got.Kept, got.Dropped = 0, 0
				want := tt.want
				if tt.wrapperReason != "" && (len(mode.exec.Wrapper) > 0 || mode.exec.Isolation == IsolationBwrap) {
					want.Reason = tt.wrapperReason
				}
				assert.Equal(t, want, got)
				assert.Equal(t, tt.wantOutput, strings.ReplaceAll(out.String(), dir, "DIR"))
			})
		}
	}
}

func TestExecuteErrored(t *testing.T) {
	tests := []struct {
		name       string
		run        Run
		wantReason string
	}{
		{"missing directory", Run{Dir: "/nonexistent/volt", Steps: []Step{{Name: "a", Run: "true"}}}, "start step a: "},
		{"no steps", Run{Dir: os.TempDir()}, "the job has no steps"},
	}
	for _, mode := range append(executorModes(t), sandboxModes(t)...) {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				got := mode.run(context.Background(), tt.run)
				assert.Equal(t, Errored, got.Status)
				assert.Contains(t, got.Reason, tt.wantReason)
			})
		}
	}
}

// forking starts two background sleeps and a foreground one and says their pids.
const forking = `sleep 300 & echo bg1=$!; sleep 300 & echo bg2=$!; echo sh=$$; sleep 300`

func TestExecuteTimeoutKillsTheGroup(t *testing.T) {
	tests := []struct {
		name       string
		jobTimeout time.Duration
		stepLimit  time.Duration
		wantReason string
	}{
		{"step timeout", 0, time.Second, "step hang exceeded its timeout of 1s"},
		{"job timeout", time.Second, 0, "job exceeded its timeout of 1s during step hang"},
		{"step timeout sooner than the job's", time.Hour, time.Second, "step hang exceeded its timeout of 1s"},
		{"job timeout sooner than the step's", time.Second, time.Hour, "job exceeded its timeout of 1s during step hang"},
	}
	for _, mode := range executorModes(t) {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				var out syncBuffer
				start := time.Now()
				got := mode.run(context.Background(), Run{
					Dir:     t.TempDir(),
					Timeout: tt.jobTimeout,
					Steps:   []Step{{Name: "hang", Run: forking, Timeout: tt.stepLimit}},
					Output:  &out,
				})
				elapsed := time.Since(start)
				found := pids(t, out.String())
				require.Len(t, found, 3, out.String())
				waitDead(t, 2*time.Second, pidList(found)...)
				assert.Equal(t, TimedOut, got.Status)
				assert.Equal(t, "hang", got.FailedStep)
				assert.Equal(t, tt.wantReason, got.Reason)
				assert.Less(t, elapsed, 2*time.Second, "a timed-out job must end about when its timeout passes")
			})
		}
	}
}

func TestExecuteJobTimeoutStopsLaterSteps(t *testing.T) {
	got := (&Executor{}).Execute(context.Background(), Run{
		Dir:     t.TempDir(),
		Timeout: 300 * time.Millisecond,
		Steps:   []Step{{Name: "slow", Run: "sleep 1"}, {Name: "never", Run: "true"}},
	})
	// sleep 1 is killed by the job timeout; "never" does not start.
	assert.Equal(t, TimedOut, got.Status)
	assert.Equal(t, "slow", got.FailedStep)
	assert.Equal(t, "job exceeded its timeout of 300ms during step slow", got.Reason)
}

func TestExecuteFinishedStepLeavesNoChild(t *testing.T) {
	tests := []struct {
		name        string
		run         string
		wantLonger  time.Duration // the executor may wait this long for the pipe
		escapedPids []string      // processes that left the group: killed by the test
	}{
		{name: "background child holding the pipe", run: "sleep 300 & echo bg=$!"},
		{name: "background child with its own output", run: "(sleep 300; echo late) & echo bg=$!; echo done"},
		// Without a wrapper, a child that left the group survives the step
		// (unless the runner reaps orphans: TestReapOrphans); a wrapper
		// kills it.
		{name: "child that left the group", run: "setsid sleep 300 & echo esc=$!", wantLonger: drainGrace, escapedPids: []string{"esc"}},
	}
	for _, mode := range executorModes(t) {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				var out syncBuffer
				start := time.Now()
				got := mode.run(context.Background(), Run{
					Dir:    t.TempDir(),
					Steps:  []Step{{Name: "bg", Run: tt.run, Timeout: time.Minute}},
					Output: &out,
				})
				elapsed := time.Since(start)
				found := pids(t, out.String())
				require.NotEmpty(t, found, out.String())
				if len(mode.exec.Wrapper) == 0 {
					for _, name := range tt.escapedPids {
						require.NoError(t, syscall.Kill(found[name], syscall.SIGKILL))
					}
				}
				waitDead(t, 2*time.Second, pidList(found)...)
				assert.Equal(t, Passed, got.Status, got.Reason)
				assert.Less(t, elapsed, tt.wantLonger+time.Second)
			})
		}
	}
}

func TestExecuteCancel(t *testing.T) {
	for _, mode := range executorModes(t) {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out syncBuffer
			done := make(chan Outcome, 1)
			go func() {
				done <- mode.run(ctx, Run{
					Dir:    t.TempDir(),
					Steps:  []Step{{Name: "hang", Run: forking}, {Name: "after", Run: "echo after"}},
					Output: &out,
				})
			}()
			require.Eventually(t, func() bool { return strings.Contains(out.String(), "sh=") }, 5*time.Second, 10*time.Millisecond)
			cancel()
			var got Outcome
			select {
			case got = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Execute did not return after cancel")
			}
			waitDead(t, 2*time.Second, pidList(pids(t, out.String()))...)
			assert.Equal(t, Cancelled, got.Status)
			assert.Equal(t, "hang", got.FailedStep)
			assert.Equal(t, "cancelled during step hang", got.Reason)
			assert.NotContains(t, out.String(), "after")
		})
	}
}

func TestExecuteCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := (&Executor{}).Execute(ctx, Run{Dir: t.TempDir(), Steps: []Step{{Name: "a", Run: "true"}}})
	assert.Equal(t, Cancelled, got.Status)
}

func TestExecuteOutputCap(t *testing.T) {
	const total = 40_000_000
	const header = "--- step big: head -c 40000000 /dev/zero\n"
	tests := []struct {
		name        string
		limit       int64
		wantKept    int64
		wantDropped int64
	}{
		{"over the cap", 1 << 20, 1 << 20, total + int64(len(header)) - 1<<20},
		{"cap inside the header", 10, 10, total + int64(len(header)) - 10},
		{"no cap", 0, total + int64(len(header)), 0},
	}
	for _, mode := range append(executorModes(t), sandboxModes(t)...) {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				var out bytes.Buffer
				got := mode.run(context.Background(), Run{
					Dir:       t.TempDir(),
					Steps:     []Step{{Name: "big", Run: "head -c 40000000 /dev/zero"}},
					OutputCap: tt.limit,
					Output:    &out,
				})
				assert.Equal(t, Passed, got.Status, got.Reason)
				assert.Equal(t, tt.wantKept, got.Kept)
				assert.Equal(t, tt.wantDropped, got.Dropped)
				if tt.wantDropped == 0 {
					assert.NotContains(t, out.String()[len(header):], "truncated")
					assert.Equal(t, tt.wantKept, int64(out.Len()))
					return
				}
				marker := "\n[volt: output truncated: " + strconv.FormatInt(tt.wantDropped, 10) +
					" bytes dropped after the first " + strconv.FormatInt(tt.wantKept, 10) + " bytes]\n"
				assert.Equal(t, tt.wantKept+int64(len(marker)), int64(out.Len()))
				assert.True(t, strings.HasSuffix(out.String(), marker), "output ends with %q", out.String()[max(0, out.Len()-200):])
			})
		}
	}
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, io.ErrClosedPipe
	}
	w.n -= len(p)
	return len(p), nil
}

func TestExecuteOutputWriteErrorStillDrains(t *testing.T) {
	got := (&Executor{}).Execute(context.Background(), Run{
		Dir:    t.TempDir(),
		Steps:  []Step{{Name: "a", Run: "head -c 1000000 /dev/zero; exit 4"}},
		Output: &failingWriter{n: 100},
	})
	assert.Equal(t, Failed, got.Status)
	assert.Equal(t, 4, got.ExitCode)
	assert.Equal(t, int64(100), got.Kept)
	assert.Contains(t, got.Reason, "output after 100 bytes lost")
}

func TestWrapperMainExitStatus(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"success", []string{"--", "sh", "-c", "exit 0"}, 0},
		{"exit code", []string{"--", "sh", "-c", "exit 7"}, 7},
		{"without --", []string{"sh", "-c", "exit 5"}, 5},
		{"signalled child", []string{"--", "sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM)},
		{"no command", []string{"--"}, 2},
		{"command not found", []string{"--", "/nonexistent/volt-command"}, 127},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(exe, tt.args...)
			cmd.Env = append(os.Environ(), envWrapper+"=1", raceNoExitDelay)
			err := cmd.Run()
			assert.Equal(t, tt.want, cmd.ProcessState.ExitCode(), "%v", err)
		})
	}
}

// readPids reads "name=pid" lines from r until it has all of names.
func readPids(t *testing.T, r io.Reader, names ...string) map[string]int {
	t.Helper()
	found := map[string]int{}
	sc := bufio.NewScanner(r)
	for len(found) < len(names) && sc.Scan() {
		if m := pidLine.FindStringSubmatch(sc.Text()); m != nil {
			pid, err := strconv.Atoi(m[2])
			require.NoError(t, err)
			found[m[1]] = pid
		}
	}
	require.NoError(t, sc.Err())
	for _, name := range names {
		require.Contains(t, found, name)
	}
	return found
}

func TestWrapperKillsGroupWhenRunnerIsKilled(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, warm := range []string{"cold", "warm"} {
		t.Run(warm, func(t *testing.T) {
			// The helper process plays the runner: it starts the wrapper through the
			// executor. The command reports its pids, including the wrapper's
			// ($PPID), and the helper the next step's warm wrapper's.
			helper := exec.Command(exe)
			helper.Env = append(os.Environ(), envHelper+"=1", raceNoExitDelay, envHelperWarm+"="+warm,
				"GITEXEC_TEST_RUN=sleep 300 & echo bg=$!; echo wrapper=$PPID; echo sh=$$; sleep 300")
			stdout, err := helper.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, helper.Start())
			found := readPids(t, stdout, "bg", "wrapper", "sh", "next")

			require.NoError(t, helper.Process.Signal(syscall.SIGKILL))
			waitErr := helper.Wait()
			require.Error(t, waitErr)
			waitDead(t, 3*time.Second, pidList(found)...)
		})
	}
}

func TestWarmWrapperExitsUnused(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	e := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: []string{envWrapper + "=1", raceNoExitDelay}}
	e.Warm()
	require.Len(t, e.idle, 1)
	w := e.idle[0].cmd
	e.Close()
	require.NotNil(t, w.ProcessState, "Close reaps the warm wrapper")
	assert.True(t, w.ProcessState.Exited() || !w.ProcessState.Success())
	// A closed executor still runs steps, starting their wrappers then.
	o := e.Execute(context.Background(), Run{Dir: t.TempDir(), Env: []string{envWrapper + "=1", raceNoExitDelay}, Steps: []Step{{Run: "exit 3"}}})
	assert.Equal(t, Failed, o.Status)
	assert.Equal(t, 3, o.ExitCode)
	assert.Empty(t, e.idle, "nor does it keep them")
}

func TestWarmWrapperDeadBeforeItsStep(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	env := []string{envWrapper + "=1", raceNoExitDelay}
	e := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: env}
	defer e.Close()
	e.Warm()
	pid := e.idle[0].cmd.Process.Pid
	require.NoError(t, e.idle[0].cmd.Process.Kill())
	// Dead, its pipes closed (and reaped by the goroutine that waits for it).
	require.Eventually(t, func() bool { return !alive(pid) }, 5*time.Second, time.Millisecond)
	// The step notices the dead wrapper and starts another.
	var out strings.Builder
	o := e.Execute(context.Background(), Run{Dir: t.TempDir(), Env: env, Steps: []Step{{Run: "echo hi"}}, Output: &out})
	assert.Equal(t, Passed, o.Status, out.String())
	assert.Contains(t, out.String(), "hi\n")
}

func TestReadControl(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    stepSpec
		ok      bool
		wantErr string
	}{
		{name: "empty", in: ""},
		{name: "step", in: "/d\x00\x002\x00A=1\x00B=\x00/bin/sh\x00-c\x00x\x00", want: stepSpec{dir: "/d", env: []string{"A=1", "B="}, command: []string{"/bin/sh", "-c", "x"}}, ok: true},
		{name: "no env", in: "/d\x00\x000\x00/bin/true\x00", want: stepSpec{dir: "/d", env: []string{}, command: []string{"/bin/true"}}, ok: true},
		{name: "user", in: "/d\x0065534:65533:65533,27\x000\x00/bin/true\x00", want: stepSpec{dir: "/d", env: []string{}, command: []string{"/bin/true"},
			cred: &syscall.Credential{Uid: 65534, Gid: 65533, Groups: []uint32{65533, 27}}}, ok: true},
		{name: "user without groups", in: "/d\x001:2:\x000\x00/bin/true\x00", want: stepSpec{dir: "/d", env: []string{}, command: []string{"/bin/true"},
			cred: &syscall.Credential{Uid: 1, Gid: 2, Groups: []uint32{}}}, ok: true},
		{name: "bad user", in: "/d\x00x:2:\x000\x00/bin/true\x00", wantErr: "bad user"},
		{name: "truncated", in: "/d\x00\x001\x00A=", wantErr: "truncated"},
		{name: "short", in: "/d\x00\x00", wantErr: "too short"},
		{name: "bad count", in: "/d\x00\x00x\x00", wantErr: "bad environment count"},
		{name: "count too big", in: "/d\x00\x005\x00A=1\x00", wantErr: "bad environment count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, ok, err := readControl(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.ok, ok)
			if tt.ok {
				assert.Equal(t, tt.want, spec)
				// What controlMessage writes, readControl reads.
				msg, err := controlMessage(spec)
				require.NoError(t, err)
				again, ok, err := readControl(bytes.NewReader(msg))
				require.NoError(t, err)
				assert.True(t, ok)
				assert.Equal(t, spec, again)
			}
		})
	}
}

func TestWrapperKillsGroupWhenParentDiesWithoutSignal(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	// An intermediate shell starts the wrapper without a parent-death signal
	// and outside a group of its own: only the wrapper's parent polling can
	// notice the shell's death.
	parent := exec.Command("sh", "-c", `"$0" -- sh -c 'sleep 300 & echo bg=$!; echo sh=$$; sleep 300' & echo wrapper=$!; wait`, exe)
	parent.Env = append(os.Environ(), envWrapper+"=1", raceNoExitDelay)
	stdout, err := parent.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, parent.Start())
	found := readPids(t, stdout, "bg", "wrapper", "sh")

	require.NoError(t, parent.Process.Signal(syscall.SIGKILL))
	waitErr := parent.Wait()
	require.Error(t, waitErr)
	waitDead(t, 3*time.Second, pidList(found)...)
}

func TestWrapperKillsGroupOnSIGTERM(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	wrapper := exec.Command(exe, "--", "sh", "-c", "sleep 300 & echo bg=$!; echo sh=$$; sleep 300")
	wrapper.Env = append(os.Environ(), envWrapper+"=1", raceNoExitDelay)
	wrapper.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := wrapper.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, wrapper.Start())
	found := readPids(t, stdout, "bg", "sh")

	require.NoError(t, wrapper.Process.Signal(syscall.SIGTERM))
	waitErr := wrapper.Wait()
	require.Error(t, waitErr)
	waitDead(t, 3*time.Second, append(pidList(found), wrapper.Process.Pid)...)
}

func TestWarmWrapperRefusesNUL(t *testing.T) {
	// NUL separates the fields of the control pipe: a step with a NUL in its
	// environment or command would reach the wrapper cut differently. It is
	// started the cold way instead, where the operating system refuses it,
	// and the warm wrapper waits for the next step.
	exe, err := os.Executable()
	require.NoError(t, err)
	env := []string{envWrapper + "=1", raceNoExitDelay}
	e := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: env}
	defer e.Close()
	e.Warm()
	require.Len(t, e.idle, 1)
	w := e.idle[0]
	dir := t.TempDir()
	for _, r := range []Run{
		{Dir: dir, Env: append([]string{"X=a\x00b"}, env...), Steps: []Step{{Run: "echo hi"}}},
		{Dir: dir, Env: env, Steps: []Step{{Run: "echo a\x00b"}}},
	} {
		o := e.Execute(context.Background(), r)
		assert.Equal(t, Errored, o.Status, o.Reason)
		assert.Contains(t, o.Reason, "start step", "refused by exec, as without a warm wrapper")
		assert.Equal(t, []*warmWrapper{w}, e.idle, "the warm wrapper is kept")
	}
	var out strings.Builder
	o := e.Execute(context.Background(), Run{Dir: dir, Env: env, Steps: []Step{{Run: "echo hi; echo wrapper=$PPID"}}, Output: &out})
	assert.Equal(t, Passed, o.Status, out.String())
	assert.Contains(t, out.String(), "hi\n")
	assert.Equal(t, w.cmd.Process.Pid, pids(t, out.String())["wrapper"], "the warm wrapper ran the step")
}

func TestWarmWrapperStoppedBeforeItsStep(t *testing.T) {
	// A stopped wrapper does not read its control pipe: a step larger than
	// the pipe's buffer must not wait for it, but start the cold way.
	defer func(d time.Duration) { controlWriteTimeout = d }(controlWriteTimeout)
	controlWriteTimeout = 200 * time.Millisecond
	exe, err := os.Executable()
	require.NoError(t, err)
	env := []string{envWrapper + "=1", raceNoExitDelay}
	e := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: env}
	defer e.Close()
	e.Warm()
	pid := e.idle[0].cmd.Process.Pid
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	big := strings.Repeat("x", 50_000)
	stepEnv := append([]string{"BIG1=" + big, "BIG2=" + big}, env...)

	var out syncBuffer
	done := make(chan Outcome, 1)
	go func() {
		done <- e.Execute(context.Background(), Run{Dir: t.TempDir(), Env: stepEnv, Steps: []Step{{Run: "echo ${#BIG1}"}}, Output: &out})
	}()
	select {
	case o := <-done:
		assert.Equal(t, Passed, o.Status, out.String())
		assert.Contains(t, out.String(), "50000\n")
	case <-time.After(time.Minute):
		syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // unblocks the executor
		t.Fatal("the step waited for the stopped wrapper")
	}
	waitDead(t, 5*time.Second, pid)
}

func TestWrapperIsKeptForTheNextStepOnlyAfterACleanEnd(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	env := []string{envWrapper + "=1", raceNoExitDelay}
	e := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: env}
	defer e.Close()
	wrapperOf := func(step Step) (Outcome, int) {
		t.Helper()
		var out syncBuffer
		step.Run = "echo wrapper=$PPID; " + step.Run
		o := e.Execute(context.Background(), Run{Dir: t.TempDir(), Env: env, Steps: []Step{step}, Output: &out})
		return o, pids(t, out.String())["wrapper"]
	}
	o, first := wrapperOf(Step{Run: "true"})
	require.Equal(t, Passed, o.Status, o.Reason)
	o, again := wrapperOf(Step{Run: "exit 4"})
	require.Equal(t, Failed, o.Status, o.Reason)
	assert.Equal(t, first, again, "a step that ended, even failing, leaves its wrapper to the next")
	o, same := wrapperOf(Step{Run: "true"})
	require.Equal(t, Passed, o.Status, o.Reason)
	assert.Equal(t, first, same)

	// A timeout kills the step's process group, its wrapper included.
	o, timedOut := wrapperOf(Step{Run: "sleep 30", Timeout: 200 * time.Millisecond})
	require.Equal(t, TimedOut, o.Status, o.Reason)
	assert.Equal(t, first, timedOut)
	waitDead(t, 5*time.Second, first)
	o, next := wrapperOf(Step{Run: "true"})
	require.Equal(t, Passed, o.Status, o.Reason)
	assert.NotEqual(t, first, next)

	// A step that kills its wrapper fails, and the next one gets another.
	o, killed := wrapperOf(Step{Run: "kill -9 $PPID; sleep 30"})
	assert.Equal(t, Failed, o.Status, o.Reason)
	assert.Equal(t, 128+9, o.ExitCode)
	o, after := wrapperOf(Step{Run: "true"})
	require.Equal(t, Passed, o.Status, o.Reason)
	assert.NotEqual(t, killed, after)
	assert.False(t, alive(killed))
}

func TestKeptWrapperStartsEachStepWithNothingLeft(t *testing.T) {
	// A step leaves a daemon in a session of its own and a double-forked
	// process: they are gone before the wrapper takes the next step.
	exe, err := os.Executable()
	require.NoError(t, err)
	env := []string{envWrapper + "=1", raceNoExitDelay}
	e := &Executor{Wrapper: []string{exe, "--"}, WrapperEnv: env}
	defer e.Close()
	marker := newMarker()
	var out syncBuffer
	o := e.Execute(context.Background(), Run{Dir: t.TempDir(), Env: env, Output: &out, Steps: []Step{
		{Name: "leave", Run: fmt.Sprintf(`echo wrapper=$PPID
			setsid sh -c 'echo $$ > a.pid; exec sleep %s' &
			(sh -c 'echo $$ > b.pid; exec sleep %s' &)
			until [ -s a.pid ] && [ -s b.pid ]; do sleep 0.01; done`, marker, marker)},
		{Name: "next", Run: `echo next=$PPID; kill -0 $(cat a.pid) || kill -0 $(cat b.pid) || echo nothing left`},
	}})
	require.Equal(t, Passed, o.Status, "%s\n%s", o.Reason, out.String())
	found := pids(t, out.String())
	assert.Equal(t, found["wrapper"], found["next"], "one wrapper ran both steps")
	assert.Contains(t, out.String(), "nothing left\n")
	assert.Empty(t, marked(t, marker))
}
