package cluster

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/actors/observer"
	"github.com/voltci/volt/actors/reporter"
	"github.com/voltci/volt/actors/runner"
	"github.com/voltci/volt/gitexec"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/pki"
	"github.com/voltci/volt/store"
)

// secretValue is long and unusual enough to be found wherever it leaks.
const secretValue = "s3cr3t-DEPLOY-value-0d9f8e7a"

// TestSecretsInOneProcess: every role on a local actor system. A secret set
// through the dispatcher is sealed with a key in the credentials
// directory; a job that asks for it gets it in its environment and its log
// shows *** (also for a value printed in two writes); a job asking for a
// secret bound to another branch ends errored before its first step.
func TestSecretsInOneProcess(t *testing.T) {
	dir := t.TempDir()
	bare := filepath.Join(dir, "master.git")
	work := filepath.Join(dir, "work")
	git(t, dir, "init", "-q", "--bare", "-b", "main", bare)
	git(t, dir, "clone", "-q", bare, work)
	marker := filepath.Join(dir, "first-step-ran")
	spec := `secrets: [DEPLOY_KEY]
steps:
  - name: use
    run: |
      echo "whole: $DEPLOY_KEY"
      printf 'split: %s' "${DEPLOY_KEY%????????}"; sleep 0.3; printf '%s\n' "${DEPLOY_KEY#${DEPLOY_KEY%????????}}"
      test "$DEPLOY_KEY" = "` + secretValue + `" && echo value-is-right
`
	require.NoError(t, os.WriteFile(filepath.Join(work, ".volt.yml"), []byte(spec), 0o644))
	git(t, work, "add", ".volt.yml")
	git(t, work, "commit", "-qm", "first")

	creds := filepath.Join(dir, "credentials")
	nodeCreds, err := pki.Open(pki.Options{Dir: creds, Identity: pki.Identity{Role: pki.RoleDispatcher, Name: "d"}, Create: true})
	require.NoError(t, err)
	data := filepath.Join(dir, "data")
	db, err := store.Open(data)
	require.NoError(t, err)
	defer db.Close()
	node, err := Start(NodeConfig{Logger: quietLogger(t), ActorLogLevel: slog.LevelError + 100})
	require.NoError(t, err)
	defer node.Shutdown()
	node.Credentials = nodeCreds

	disp := node.Addr(DispatcherName)
	dpid, err := node.StartDispatcher(dispatcher.DefaultConfig(), db)
	require.NoError(t, err)
	askDispatcher := func(m proto.Message) any {
		t.Helper()
		res, err := node.System.Root.RequestFuture(dpid, m, 5*time.Second).Result()
		require.NoError(t, err)
		return res
	}
	reply := askDispatcher(&messages.SecretSet{Name: "DEPLOY_KEY", Repo: "master", Branches: []string{"main"}, Value: []byte(secretValue)})
	require.Empty(t, reply.(*messages.SecretSetReply).Error)
	reply = askDispatcher(&messages.SecretSet{Name: "RELEASE_KEY", Repo: "master", Branches: []string{"release/*"}, Value: []byte("release-value")})
	require.Empty(t, reply.(*messages.SecretSetReply).Error)
	list := askDispatcher(&messages.SecretList{}).(*messages.SecretListReply)
	require.Empty(t, list.Error)
	require.Len(t, list.Entries, 2)
	require.Equal(t, []string{"main"}, list.Entries[0].Branches)
	require.NotContains(t, list.String(), secretValue)

	st, err := os.Stat(filepath.Join(creds, store.SecretKeyFile))
	require.NoError(t, err, "the key is in the credentials directory")
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	_, err = os.Stat(filepath.Join(data, store.SecretKeyFile))
	require.ErrorIs(t, err, os.ErrNotExist, "never beside the database")

	_, err = node.StartReporter(reporter.Config{ID: "r", Dispatcher: disp}, db)
	require.NoError(t, err)
	_, err = node.StartRunner("runner-1", runner.Config{ID: "runner-1", Incarnation: 1, Dispatcher: disp, Grace: -1},
		RunnerSetup{WorkDir: filepath.Join(dir, "runner"), OutputCap: 1 << 20})
	require.NoError(t, err)
	repo, err := gitexec.OpenRepo(context.Background(), bare, filepath.Join(dir, "cache"))
	require.NoError(t, err)
	git(t, work, "push", "-q", "origin", "main")
	_, err = node.StartObserver(observer.Config{ID: "o", Dispatcher: disp, Poll: 100 * time.Millisecond, Grace: -1,
		Repos: []*messages.WatchedRepo{{Url: repo.URL(), Name: repo.Name(), Branches: []string{"main"}}}}, []*gitexec.Repo{repo})
	require.NoError(t, err)

	resultFile := func(sha string) string {
		b, err := os.ReadFile(filepath.Join(data, store.ResultDir, sha))
		if err != nil {
			return ""
		}
		return string(b)
	}
	first := git(t, work, "rev-parse", "HEAD")
	eventually(t, 20*time.Second, func() bool { return resultFile(first) != "" }, "the first commit's result")
	rf := resultFile(first)
	require.Contains(t, rf, "status: passed", rf)
	require.Contains(t, rf, "whole: ***\n", rf)
	require.Contains(t, rf, "split: ***\n", rf)
	require.Contains(t, rf, "value-is-right", "the step saw the value itself")
	require.NotContains(t, rf, secretValue[:8])

	// A secret bound to release/* asked for on main.
	require.NoError(t, os.WriteFile(filepath.Join(work, ".volt.yml"),
		[]byte("secrets: [RELEASE_KEY]\nsteps:\n  - run: touch "+marker+"\n"), 0o644))
	git(t, work, "commit", "-qam", "second")
	git(t, work, "push", "-q", "origin", "main")
	second := git(t, work, "rev-parse", "HEAD")
	eventually(t, 20*time.Second, func() bool { return resultFile(second) != "" }, "the second commit's result")
	rf = resultFile(second)
	require.Contains(t, rf, "status: errored", rf)
	require.Contains(t, rf, "reason: secret RELEASE_KEY: it serves only branches release/* of master, and this commit is on main", rf)
	require.NoFileExists(t, marker, "no step ran")

	reply = askDispatcher(&messages.SecretDelete{Name: "RELEASE_KEY", Repo: "master"})
	require.Empty(t, reply.(*messages.SecretSetReply).Error)
	reply = askDispatcher(&messages.SecretDelete{Name: "RELEASE_KEY", Repo: "master"})
	require.True(t, reply.(*messages.SecretSetReply).NotFound)
}
