package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/gitexec"
	"github.com/voltci/volt/jobspec"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/store/etcdstore"
)

// Secrets, both sides: the dispatcher keeps them in its store, sealed with
// the key in its credentials directory (store.SecretKeyFile); a runner asks
// for those its job's .volt.yml names, after checkout, over its mutually
// authenticated connection, and the dispatcher's core decides
// (actors/dispatcher/secrets.go).

// secretTimeout bounds how long a job waits for the dispatcher's answer.
const secretTimeout = 10 * time.Second

// dispatcherStore is the dispatcher's Store on db: with secrets when the
// node has a credentials directory to keep their key in.
func (n *Node) dispatcherStore(db *store.DB) dispatcher.Store {
	if n.Credentials == nil {
		return queueStore{db}
	}
	return secretStore{Store: queueStore{db}, sealed: db, keyFile: filepath.Join(n.Credentials.Dir(), store.SecretKeyFile)}
}

// sealedSecrets is where a secretStore keeps the sealed secrets: SQLite
// (store.DB) or a failover group's etcd (etcdSecrets).
type sealedSecrets interface {
	Secrets(names []string) ([]store.Secret, error)
	PutSecret(s store.Secret) error
	DeleteSecret(name, repo string) (bool, error)
	ListSecrets() ([]store.Secret, error)
}

// secretStore adds the dispatcher's SecretStore port to a Store: secrets
// sealed with the key in the node's credentials directory. The key file
// is read at each use (jobs ask for secrets rarely), so a key restored
// from a backup takes effect without a restart; it is created by the first
// SetSecret. Every node of a failover group needs the same key file.
type secretStore struct {
	dispatcher.Store
	sealed  sealedSecrets
	keyFile string
}

var _ dispatcher.SecretStore = secretStore{}

func (s secretStore) Secrets(names []string) ([]dispatcher.Secret, error) {
	stored, err := s.sealed.Secrets(names)
	if err != nil || len(stored) == 0 {
		return nil, err
	}
	key, keyErr := store.OpenSecretKey(s.keyFile)
	if errors.Is(keyErr, fs.ErrNotExist) {
		keyErr = fmt.Errorf("the secrets key %s is missing: restore it from a backup, or set the secret again", s.keyFile)
	}
	out := make([]dispatcher.Secret, len(stored))
	for i, st := range stored {
		out[i] = dispatcher.Secret{Name: st.Name, Repo: st.Repo, Branches: st.Branches}
		if keyErr != nil {
			out[i].Err = keyErr.Error()
			continue
		}
		value, err := key.Open(st)
		if err != nil {
			out[i].Err = err.Error()
			continue
		}
		out[i].Value = value
	}
	return out, nil
}

func (s secretStore) SetSecret(name, repo string, branches []string, value []byte) error {
	key, err := store.CreateSecretKey(s.keyFile)
	if err != nil {
		return err
	}
	return s.sealed.PutSecret(key.Seal(name, repo, branches, value, time.Now()))
}

func (s secretStore) DeleteSecret(name, repo string) (bool, error) {
	return s.sealed.DeleteSecret(name, repo)
}

func (s secretStore) ListSecrets() ([]*messages.SecretEntry, error) {
	stored, err := s.sealed.ListSecrets()
	if err != nil {
		return nil, err
	}
	out := make([]*messages.SecretEntry, len(stored))
	for i, st := range stored {
		out[i] = &messages.SecretEntry{Name: st.Name, Repo: st.Repo, Branches: st.Branches, UpdatedUnixMs: st.UpdatedUnixMs}
	}
	return out, nil
}

// secretSource asks a runner's dispatcher for its jobs' secrets.
type secretSource struct {
	client  *DispatcherClient
	timeout time.Duration
}

// secretSource is the source of the secrets of a runner whose dispatcher
// is at addr, or whose failover group's nodes are nodes: the request
// follows a standby's answer to the leader.
func (n *Node) secretSource(addr actors.Addr, nodes []actors.Addr) *secretSource {
	c := &DispatcherClient{root: n.System.Root, pid: actors.PID(addr)}
	if len(nodes) > 1 {
		for _, a := range nodes {
			c.group = append(c.group, actors.PID(a))
		}
		c.pid = c.group[0]
	}
	return &secretSource{client: c, timeout: secretTimeout}
}

// fetch returns the values of names for run's attempt, or the dispatcher's
// refusal ("secret NAME: why").
func (s *secretSource) fetch(run *messages.RunJob, names []string) (map[string][]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("secrets %v: this runner has no dispatcher to ask", names)
	}
	req := &messages.SecretRequest{JobId: run.Job.Id, Attempt: run.Attempt, RunnerId: run.RunnerId, Incarnation: run.Incarnation, Names: names}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	g, err := ask[*messages.SecretGrant](ctx, s.client, req)
	switch {
	case err != nil:
		return nil, fmt.Errorf("secrets %v: %w", names, err)
	case g.Error != "":
		return nil, errors.New(g.Error)
	case g.JobId != run.Job.Id || g.Attempt != run.Attempt:
		return nil, fmt.Errorf("secrets %v: the dispatcher answered for job %d attempt %d", names, g.JobId, g.Attempt)
	}
	for _, name := range names {
		if _, ok := g.Values[name]; !ok {
			return nil, fmt.Errorf("secret %s: the dispatcher granted the job's secrets without it", name)
		}
	}
	return g.Values, nil
}

// withSecrets fetches the secrets spec asks for, adds them to spec.Env
// under their names (jobspec refuses a name in both, so none is
// overwritten) and returns out wrapped so that their values are masked,
// with the finish to defer: it writes what the masker holds back and
// counts the log as it was written. With no secrets asked for, out comes
// back as it is. An error means the job must not run: it names the secret
// and why.
func (e *jobExecutor) withSecrets(run *messages.RunJob, spec *jobspec.Spec, out io.Writer) (io.Writer, func(*messages.Result), error) {
	if len(spec.Secrets) == 0 {
		return out, func(*messages.Result) {}, nil
	}
	values, err := e.secrets.fetch(run, spec.Secrets)
	if err != nil {
		return out, nil, err
	}
	if spec.Env == nil {
		spec.Env = make(map[string]string, len(values))
	}
	masked := make([][]byte, 0, len(values))
	for _, name := range spec.Secrets {
		spec.Env[name] = string(values[name])
		masked = append(masked, values[name])
	}
	m := gitexec.NewMasker(out, masked)
	finish := func(res *messages.Result) {
		if err := m.Close(); err != nil && e.logger != nil {
			e.logger.Warn("job output lost", "job", run.Job.Id, "error", err)
		}
		// LogBytes counted what reached the masker; the log holds what
		// left it.
		in, written := m.Counts()
		res.LogBytes += written - in
	}
	return m, finish, nil
}

// etcdSecrets keeps a failover group's sealed secrets in etcd, each write
// fenced on the leader's election key.
type etcdSecrets struct {
	db    *etcdstore.DB
	fence etcdstore.Fence
}

func (e etcdSecrets) Secrets(names []string) ([]store.Secret, error) {
	if len(names) == 0 {
		return nil, nil
	}
	return e.list(names)
}

func (e etcdSecrets) ListSecrets() ([]store.Secret, error) { return e.list(nil) }

func (e etcdSecrets) list(names []string) ([]store.Secret, error) {
	sealed, err := e.db.Secrets(names)
	if err != nil {
		return nil, err
	}
	out := make([]store.Secret, len(sealed))
	for i, s := range sealed {
		out[i] = s.Secret()
	}
	return out, nil
}

func (e etcdSecrets) PutSecret(s store.Secret) error { return e.db.PutSecret(s.Sealed(), e.fence) }

func (e etcdSecrets) DeleteSecret(name, repo string) (bool, error) {
	return e.db.DeleteSecret(name, repo, e.fence)
}
