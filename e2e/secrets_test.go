package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/pki"
)

// deployKey is the secret's value: long and unusual, so that any leak of
// it (or of either half) is found.
const deployKey = "e2e-DEPLOY-Key-7f3a91c4d2b8"

// secretSpec prints the secret whole, then in two writes 0.3 s apart:
// longer than the runner's log flush interval (100 ms), so that without
// masking before the log stream the halves would travel in two log chunks.
const secretSpec = `secrets: [DEPLOY_KEY]
steps:
  - name: deploy
    run: |
      echo "whole=$DEPLOY_KEY"
      printf 'split=%s' "${DEPLOY_KEY%????????????}"; sleep 0.3; printf '%s\n' "${DEPLOY_KEY#${DEPLOY_KEY%????????????}}"
      test "$DEPLOY_KEY" = "$(printf '%s' "$DEPLOY_KEY")" && echo "length=${#DEPLOY_KEY}"
`

// runVoltStdin is runVolt with stdin.
func runVoltStdin(t *testing.T, timeout time.Duration, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, voltBin, args...)
	cmd.Dir = filepath.Dir(voltBin)
	cmd.Env = voltEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("volt %s: still running after %s", strings.Join(args, " "), timeout)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("volt %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// noLeak fails the test when a file under dir holds the value or either
// half of it.
func noLeak(t *testing.T, dir string) {
	t.Helper()
	halves := []string{deployKey, deployKey[:len(deployKey)-12], deployKey[len(deployKey)-12:]}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, h := range halves {
			if bytes.Contains(b, []byte(h)) {
				t.Errorf("%s holds %q of the secret", path, h)
			}
		}
		return nil
	})
	require.NoError(t, err)
}

// TestSecretsEndToEnd: `volt up` with a runner that joined over mutual TLS.
// A secret set with `volt secret set` (value on stdin) reaches the job
// whose repository and branch it is bound to; the result file, the API,
// the reporter's database, every log and the runner's disk show *** and
// never the value, also for a value printed in two writes. A job asking
// for a secret bound to another branch, or to another repository, ends
// errored naming the secret, before its first step.
func TestSecretsEndToEnd(t *testing.T) {
	t.Parallel()
	r := newRepo(t, map[string]string{".volt.yml": "steps:\n  - run: echo seed\n"})
	data := filepath.Join(t.TempDir(), "data")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	web := "127.0.0.1:" + strconv.Itoa(freePort(t))
	up := startVolt(t, "up", "up", "--repo", r.bare, "--poll", "1s", "--runners", "0", "--data-dir", data,
		"--listen", addr, "--http", web)
	creds := filepath.Join(data, "credentials")
	eventually(t, startTimeout, func() bool { return fileExists(filepath.Join(creds, pki.CACertFile)) }, "volt up made no CA in %s", creds)
	tok := runVolt(t, 10*time.Second, "join-token", "create", "--credentials", creds)
	require.Equal(t, 0, tok.code, tok.stderr)
	workDir := filepath.Join(t.TempDir(), "w")
	runner := startVolt(t, "runner", "runner", "--join", strings.TrimSpace(tok.stdout), "--id", "secret-runner",
		"--credentials", filepath.Join(t.TempDir(), "runner-creds"), "--dispatcher-server", addr,
		"--listen", "127.0.0.1:0", "--work-dir", workDir)
	waitResult(t, data, r.head(), resultTimeout).wantStatus(t, "passed")

	// The CLI finds volt up's admin credentials by itself.
	set := func(stdin string, args ...string) result {
		t.Helper()
		return runVoltStdin(t, 20*time.Second, stdin, append([]string{"secret", "set", "--dispatcher-server", addr}, args...)...)
	}
	res := set(deployKey+"\n", "DEPLOY_KEY", "--repo", "master", "--branches", "main")
	require.Equal(t, 0, res.code, "stdout: %s\nstderr: %s", res.stdout, res.stderr)
	require.Contains(t, res.stdout, "secret DEPLOY_KEY set for master, branches main")
	res = set("release-only-value", "RELEASE_KEY", "--repo", "master", "--branches", "release/*")
	require.Equal(t, 0, res.code, res.stderr)
	res = set("other-repo-value", "OTHER_KEY", "--repo", "other")
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stderr, "anyone who can push a branch to other can read OTHER_KEY", "every branch is said out loud")
	res = set("", "EMPTY", "--repo", "master")
	require.Equal(t, 2, res.code, "an empty value is a usage error: %s", res.stderr)

	list := runVolt(t, 20*time.Second, "secret", "list", "--dispatcher-server", addr)
	require.Equal(t, 0, list.code, list.stderr)
	for _, want := range []string{"DEPLOY_KEY", "RELEASE_KEY", "release/*", "OTHER_KEY"} {
		require.Contains(t, list.stdout, want)
	}
	require.NotContains(t, list.stdout, deployKey)

	key, err := os.Stat(filepath.Join(creds, "secrets.key"))
	require.NoError(t, err, "the key is kept in the credentials directory")
	require.Equal(t, os.FileMode(0o600), key.Mode().Perm())

	// Granted: the job sees the value, its output shows ***.
	deploy := r.commitPush("deploy", map[string]string{".volt.yml": secretSpec})
	rf := waitResult(t, data, deploy, resultTimeout)
	rf.wantStatus(t, "passed")
	require.Equal(t, "secret-runner", rf.header["runner"])
	require.Contains(t, rf.output, "whole=***\n")
	require.Contains(t, rf.output, "split=***\n")
	require.Contains(t, rf.output, "length="+strconv.Itoa(len(deployKey)), "the step had the value itself")
	require.NotContains(t, rf.raw, deployKey[:8])

	resp, err := http.Get("http://" + web + "/api/v1/results/" + deploy)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), "whole=***")
	require.Contains(t, string(body), "split=***")
	res = runVolt(t, 20*time.Second, "results", deploy, "--data-dir", data)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "split=***")

	// Refused: another branch's secret, another repository's.
	for _, tc := range []struct{ name, want string }{
		{"RELEASE_KEY", "secret RELEASE_KEY: it serves only branches release/* of master, and this commit is on main"},
		{"OTHER_KEY", "secret OTHER_KEY: none is set for repository master"},
	} {
		marker := filepath.Join(t.TempDir(), "first-step-ran")
		sha := r.commitPush("wants "+tc.name, map[string]string{".volt.yml": "secrets: [" + tc.name + "]\nsteps:\n" +
			"  - name: first\n    run: echo first-step-ran; touch " + marker + "\n"})
		rf := waitResult(t, data, sha, resultTimeout)
		rf.wantStatus(t, "errored")
		require.Contains(t, rf.header["reason"], tc.want, rf.raw)
		require.NotContains(t, rf.output, "first-step-ran", "no step ran")
		require.NoFileExists(t, marker, "no step ran")
	}

	res = runVolt(t, 20*time.Second, "secret", "rm", "OTHER_KEY", "--repo", "other", "--dispatcher-server", addr)
	require.Equal(t, 0, res.code, res.stderr)
	res = runVolt(t, 20*time.Second, "secret", "rm", "OTHER_KEY", "--repo", "other", "--dispatcher-server", addr)
	require.Equal(t, 3, res.code, "deleting what is not there is not found: %s", res.stderr)

	// Nowhere on disk, in no log: not in volt up's data directory (the
	// database holds it sealed), not on the runner, not in either log.
	up.stop(10 * time.Second)
	runner.stop(10 * time.Second)
	noLeak(t, data)
	noLeak(t, workDir)
	require.NotContains(t, up.logText(), deployKey[:8])
	require.NotContains(t, runner.logText(), deployKey[:8])
}
