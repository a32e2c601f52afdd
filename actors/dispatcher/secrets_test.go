package dispatcher_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/internal/coretest"
	"github.com/voltci/volt/messages"
)

// stored are the secrets the shell would load for a request.
var stored = []dispatcher.Secret{
	{Name: "DEPLOY_KEY", Repo: repoName, Branches: []string{"main", "release/*"}, Value: []byte("deploy-value")},
	{Name: "DEPLOY_KEY", Repo: "other", Value: []byte("other-repo-value")},
	{Name: "URL_KEY", Repo: repoURL, Value: []byte("url-value")},
	{Name: "OTHER_REPO_KEY", Repo: "other", Value: []byte("not-for-app")},
	{Name: "RELEASE_KEY", Repo: repoName, Branches: []string{"release", "release/*"}, Value: []byte("release-value")},
	{Name: "BROKEN", Repo: repoName, Err: "sealed with key ab12, and secrets.key is key cd34"},
	// Bound by URL to main only, by name to every branch: either binding may serve.
	{Name: "TWO_WAYS", Repo: repoURL, Branches: []string{"nope"}, Value: []byte("by-url")},
	{Name: "TWO_WAYS", Repo: repoName, Value: []byte("by-name")},
}

func runnerID(id string) actors.Identity { return actors.Identity{Role: actors.RoleRunner, Name: id} }

var admin = actors.Identity{Role: actors.RoleAdmin, Name: "ops"}

// secretWorld has job 1 (commit 1 on main) running on r1 (incarnation 1)
// at attempt 1, and r2 idle.
func secretWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t, dispatcher.DefaultConfig())
	w.addObserver(obsAddr)
	w.addRunner("r1", 1)
	w.observe("main", "", coretest.Commit(1))
	w.addRunner("r2", 1)
	require.Equal(t, "r1", w.job(1).RunnerId)
	require.EqualValues(t, 1, w.job(1).Attempt)
	return w
}

func ask(job int64, attempt int32, runner string, inc int64, names ...string) *messages.SecretRequest {
	return &messages.SecretRequest{JobId: job, Attempt: attempt, RunnerId: runner, Incarnation: inc, Names: names}
}

// TestSecretGrantRules: every way a request can be refused, and the grants.
func TestSecretGrantRules(t *testing.T) {
	cases := []struct {
		name    string
		who     actors.Identity
		req     *messages.SecretRequest
		secrets []dispatcher.Secret
		loadErr string
		want    map[string]string // granted values; nil when refused
		wantErr []string          // in the error, when refused
		forged  bool              // refused without an answer
	}{
		{name: "granted by repository name and branch", who: runnerID("r1"), req: ask(1, 1, "r1", 1, "DEPLOY_KEY"),
			want: map[string]string{"DEPLOY_KEY": "deploy-value"}},
		{name: "granted by URL, every branch", who: runnerID("r1"), req: ask(1, 1, "r1", 1, "URL_KEY", "DEPLOY_KEY"),
			want: map[string]string{"URL_KEY": "url-value", "DEPLOY_KEY": "deploy-value"}},
		{name: "another binding of the same name may serve", who: runnerID("r1"), req: ask(1, 1, "r1", 1, "TWO_WAYS"),
			want: map[string]string{"TWO_WAYS": "by-name"}},
		{name: "this process (volt up's own runners)", who: actors.Local, req: ask(1, 1, "r1", 1, "DEPLOY_KEY"),
			want: map[string]string{"DEPLOY_KEY": "deploy-value"}},
		{name: "nothing asked, nothing given", who: runnerID("r1"), req: ask(1, 1, "r1", 1), want: map[string]string{}},

		{name: "another runner asking for r1's job", who: runnerID("r2"), req: ask(1, 1, "r2", 1, "DEPLOY_KEY"),
			wantErr: []string{"DEPLOY_KEY", "job 1 attempt 1 is not running on runner r2"}},
		{name: "a runner speaking as another", who: runnerID("r2"), req: ask(1, 1, "r1", 1, "DEPLOY_KEY"), forged: true},
		{name: "an observer", who: actors.Identity{Role: actors.RoleObserver, Name: "o"}, req: ask(1, 1, "r1", 1, "DEPLOY_KEY"), forged: true},
		{name: "admin", who: admin, req: ask(1, 1, "r1", 1, "DEPLOY_KEY"), forged: true},
		{name: "the reporter", who: actors.Identity{Role: actors.RoleReporter, Name: "rep"}, req: ask(1, 1, "r1", 1, "DEPLOY_KEY"), forged: true},
		{name: "unauthenticated", who: actors.Identity{}, req: ask(1, 1, "r1", 1, "DEPLOY_KEY"), forged: true},
		{name: "an old attempt", who: runnerID("r1"), req: ask(1, 0, "r1", 1, "DEPLOY_KEY"),
			wantErr: []string{"job 1 attempt 0 is not running on runner r1", "only the current attempt"}},
		{name: "a future attempt", who: runnerID("r1"), req: ask(1, 2, "r1", 1, "DEPLOY_KEY"),
			wantErr: []string{"job 1 attempt 2 is not running"}},
		{name: "an older incarnation", who: runnerID("r1"), req: ask(1, 1, "r1", 0, "DEPLOY_KEY"),
			wantErr: []string{"(incarnation 0)"}},
		{name: "an unknown job", who: runnerID("r1"), req: ask(99, 1, "r1", 1, "DEPLOY_KEY"),
			wantErr: []string{"job 99 attempt 1 is not running"}},
		{name: "another repository's secret", who: runnerID("r1"), req: ask(1, 1, "r1", 1, "OTHER_REPO_KEY"),
			wantErr: []string{"secret OTHER_REPO_KEY: none is set for repository app", "volt secret set OTHER_REPO_KEY --repo app"}},
		{name: "another branch", who: runnerID("r1"), req: ask(1, 1, "r1", 1, "RELEASE_KEY"),
			wantErr: []string{"secret RELEASE_KEY: it serves only branches release, release/* of app, and this commit is on main"}},
		{name: "an unknown secret", who: runnerID("r1"), req: ask(1, 1, "r1", 1, "NO_SUCH"),
			wantErr: []string{"secret NO_SUCH: none is set for repository app"}},
		{name: "one refused refuses all", who: runnerID("r1"), req: ask(1, 1, "r1", 1, "DEPLOY_KEY", "RELEASE_KEY", "NO_SUCH"),
			wantErr: []string{"secret RELEASE_KEY: it serves only", "; secret NO_SUCH: none is set"}},
		{name: "a secret the dispatcher cannot open", who: runnerID("r1"), req: ask(1, 1, "r1", 1, "BROKEN"),
			wantErr: []string{"secret BROKEN: the dispatcher cannot read it: sealed with key ab12"}},
		{name: "an invalid name", who: runnerID("r1"), req: ask(1, 1, "r1", 1, "NOT-A-NAME"),
			wantErr: []string{`secret "NOT-A-NAME" is not a valid secret name`}},
		{name: "the store failed", who: runnerID("r1"), req: ask(1, 1, "r1", 1, "DEPLOY_KEY"), loadErr: "disk I/O error",
			wantErr: []string{"secret DEPLOY_KEY: the dispatcher could not read its secrets: disk I/O error"}},
		{name: "nothing loaded", who: runnerID("r1"), req: ask(1, 1, "r1", 1, "DEPLOY_KEY"), secrets: []dispatcher.Secret{},
			wantErr: []string{"secret DEPLOY_KEY: none is set"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := secretWorld(t)
			secrets := stored
			if tc.secrets != nil {
				secrets = tc.secrets
			}
			before := w.d.Counter(dispatcher.CounterForgedRefused)
			from := actors.From{Addr: runnerAddr(tc.req.RunnerId), Who: tc.who}
			fx := w.stepAs(from, dispatcher.SecretAsk{Msg: tc.req, Secrets: secrets, Err: tc.loadErr})
			grants := coretest.Sends[*messages.SecretGrant](fx)
			if tc.forged {
				assert.Empty(t, grants, "a forgery gets no answer")
				assert.Equal(t, before+1, w.d.Counter(dispatcher.CounterForgedRefused))
				return
			}
			require.Len(t, grants, 1)
			require.Len(t, coretest.SendsTo[*messages.SecretGrant](fx, from.Addr), 1, "answered to the asker")
			g := grants[0]
			assert.Equal(t, tc.req.JobId, g.JobId)
			assert.Equal(t, tc.req.Attempt, g.Attempt)
			if tc.want != nil {
				require.Empty(t, g.Error)
				got := map[string]string{}
				for k, v := range g.Values {
					got[k] = string(v)
				}
				assert.Equal(t, tc.want, got)
				return
			}
			assert.Empty(t, g.Values, "a refusal carries no value")
			for _, want := range tc.wantErr {
				assert.Contains(t, g.Error, want)
			}
			for _, s := range secrets {
				if len(s.Value) > 0 {
					assert.NotContains(t, g.Error, string(s.Value), "a refusal never names a value")
				}
			}
			assert.Equal(t, before, w.d.Counter(dispatcher.CounterForgedRefused), "an honest runner's refusal is no forgery")
		})
	}
}

// TestSecretsFollowTheCurrentAttempt: once a job is reassigned, its first
// runner gets nothing for it, the second does; and a commit seen on a
// second branch gets what that branch may have.
func TestSecretsFollowTheCurrentAttempt(t *testing.T) {
	w := secretWorld(t)
	asks := func(who, runner string, attempt int32, names ...string) *messages.SecretGrant {
		t.Helper()
		fx := w.stepAs(actors.From{Addr: runnerAddr(runner), Who: runnerID(who)},
			dispatcher.SecretAsk{Msg: ask(1, attempt, runner, 1, names...), Secrets: stored})
		g := coretest.Sends[*messages.SecretGrant](fx)
		require.Len(t, g, 1)
		return g[0]
	}
	// r1 stops heartbeating and is declared dead: attempt 2 goes to r2.
	cfg := dispatcher.DefaultConfig()
	for range 4 {
		w.advance(cfg.Heartbeat)
		w.heartbeat("r2", 1, 1)
		w.tick()
	}
	require.Equal(t, "r2", w.job(1).RunnerId)
	require.EqualValues(t, 2, w.job(1).Attempt)
	assert.Contains(t, asks("r1", "r1", 1, "DEPLOY_KEY").Error, "not running on runner r1")
	assert.Contains(t, asks("r2", "r2", 1, "DEPLOY_KEY").Error, "attempt 1 is not running")
	assert.Equal(t, "deploy-value", string(asks("r2", "r2", 2, "DEPLOY_KEY").Values["DEPLOY_KEY"]))

	assert.Contains(t, asks("r2", "r2", 2, "RELEASE_KEY").Error, "this commit is on main")
	w.observe("release", "", coretest.Commit(1)) // the same commit, now on release too
	require.ElementsMatch(t, []string{"main", "release"}, w.job(1).Job.Branches)
	g := asks("r2", "r2", 2, "RELEASE_KEY")
	require.Empty(t, g.Error)
	assert.Equal(t, "release-value", string(g.Values["RELEASE_KEY"]))

	w.finish("r2", 1, 1, 2, messages.Status_STATUS_PASSED)
	assert.Contains(t, asks("r2", "r2", 2, "DEPLOY_KEY").Error, "not running", "a finished job gets nothing")
}

// TestSecretRequestWithoutTheShellsLookup: a SecretRequest that reaches
// the core as it came (the simulator's peers) finds nothing stored.
func TestSecretRequestWithoutTheShellsLookup(t *testing.T) {
	w := secretWorld(t)
	fx := w.stepAs(actors.From{Addr: runnerAddr("r1"), Who: runnerID("r1")}, ask(1, 1, "r1", 1, "DEPLOY_KEY"))
	g := coretest.Sends[*messages.SecretGrant](fx)
	require.Len(t, g, 1)
	assert.Contains(t, g[0].Error, "none is set")
}

// TestSecretAdministration: only admin (or this process) sets, deletes and
// lists secrets; the core checks what it can and hands the rest to the
// shell as a SecretChange.
func TestSecretAdministration(t *testing.T) {
	set := func(name, repo string, value string, branches ...string) *messages.SecretSet {
		return &messages.SecretSet{Name: name, Repo: repo, Branches: branches, Value: []byte(value)}
	}
	cases := []struct {
		name    string
		who     actors.Identity
		msg     any
		change  bool   // handed to the shell
		wantErr string // answered at once with this error
		forged  bool
	}{
		{name: "admin sets", who: admin, msg: set("DEPLOY_KEY", "app", "v4lue", "main", "release/*"), change: true},
		{name: "this process sets", who: actors.Local, msg: set("DEPLOY_KEY", "app", "v4lue"), change: true},
		{name: "admin deletes", who: admin, msg: &messages.SecretDelete{Name: "DEPLOY_KEY", Repo: "app"}, change: true},
		{name: "admin lists", who: admin, msg: &messages.SecretList{}, change: true},
		{name: "a runner sets", who: runnerID("r1"), msg: set("DEPLOY_KEY", "app", "v4lue"), forged: true},
		{name: "the reporter lists", who: actors.Identity{Role: actors.RoleReporter, Name: "rep"}, msg: &messages.SecretList{}, forged: true},
		{name: "notify deletes", who: actors.Identity{Role: actors.RoleNotify, Name: "git"}, msg: &messages.SecretDelete{Name: "A", Repo: "app"}, forged: true},
		{name: "unauthenticated lists", who: actors.Identity{}, msg: &messages.SecretList{}, forged: true},
		{name: "a bad name", who: admin, msg: set("1X", "app", "v4lue"), wantErr: `"1X" is not a valid secret name`},
		{name: "no repository", who: admin, msg: set("X", "", "v4lue"), wantErr: "the repository is empty"},
		{name: "a bad pattern", who: admin, msg: set("X", "app", "v4lue", "release/["), wantErr: `branch pattern "release/[" is malformed`},
		{name: "an empty pattern", who: admin, msg: set("X", "app", "v4lue", ""), wantErr: `branch pattern "" is empty`},
		{name: "an empty value", who: admin, msg: set("X", "app", ""), wantErr: "the value is empty"},
		{name: "a NUL in the value", who: admin, msg: set("X", "app", "a\x00b"), wantErr: "NUL byte"},
		{name: "a huge value", who: admin, msg: set("X", "app", string(make([]byte, dispatcher.MaxSecretSize+1))), wantErr: "more than the 65536"},
		{name: "delete with a bad name", who: admin, msg: &messages.SecretDelete{Name: "a b", Repo: "app"}, wantErr: "not a valid secret name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, dispatcher.DefaultConfig())
			before := w.d.Counter(dispatcher.CounterForgedRefused)
			fx := w.stepAs(actors.From{Addr: cliAddr, Who: tc.who}, tc.msg)
			changes := coretest.EffectsOf[dispatcher.SecretChange](fx)
			replies := coretest.Sends[*messages.SecretSetReply](fx)
			switch {
			case tc.forged:
				assert.Empty(t, changes)
				assert.Empty(t, replies)
				assert.Empty(t, coretest.Sends[*messages.SecretListReply](fx))
				assert.Equal(t, before+1, w.d.Counter(dispatcher.CounterForgedRefused))
			case tc.change:
				require.Len(t, changes, 1)
				assert.Equal(t, cliAddr, changes[0].To)
				assert.Same(t, tc.msg, changes[0].Msg)
				assert.Empty(t, replies, "the shell answers once the store has it")
			default:
				assert.Empty(t, changes)
				require.Len(t, coretest.SendsTo[*messages.SecretSetReply](fx, cliAddr), 1)
				assert.Contains(t, replies[0].Error, tc.wantErr)
			}
			for _, n := range coretest.EffectsOf[actors.Note](fx) {
				if m, ok := tc.msg.(*messages.SecretSet); ok && len(m.Value) > 0 {
					for _, arg := range n.Args {
						if s, ok := arg.(string); ok {
							assert.NotContains(t, s, string(m.Value), "notes never carry a value")
						}
					}
				}
			}
		})
	}
}

func TestBranchPatterns(t *testing.T) {
	for _, p := range []string{"main", "release/*", "v[0-9]*", "feature/?x", "*"} {
		assert.Empty(t, dispatcher.ValidBranchPattern(p), p)
	}
	for _, p := range []string{"", "a b", "x[", "tab\there"} {
		assert.NotEmpty(t, dispatcher.ValidBranchPattern(p), p)
	}
}
