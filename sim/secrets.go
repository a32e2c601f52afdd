package sim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/messages"
)

// Secrets in the simulated world. The dispatcher's shell keeps a
// secretStore (a fake of dispatcher.SecretStore) holding a few secrets
// bound to the simulated repository and its branches, and hands each
// SecretRequest to the core with the stored secrets it names, as the
// production shell does. A commit's .volt.yml (drawn once per commit)
// names none to two of them; a few milliseconds after one of its jobs
// starts, the runner asks the dispatcher for them as cluster/secrets.go
// does (from its own address, as itself, with the job id, attempt,
// incarnation and names) and hears the answer in place of its core (in
// production the request's future hears it). An operator (admin) rotates a
// value now and then, and the malicious peer forges SecretRequest,
// SecretSet, SecretDelete and SecretList during its bursts.
//
// The job runs the same whether it gets its secrets or not (in production
// a refusal ends it errored before its first step): secrets are a side
// channel here, so that every other draw, event and outcome of a seed is
// what it was before secrets came. Every choice draws on two streams of
// their own (sec for the runners and the operator, malSec for the
// malicious peer's secret forgeries), and the network draws on them too
// while it carries secret traffic; TestSecretsChangeNothingElse holds the
// rest of the trace to that.
//
// The checker (InvSecretGrant, InvSecretAllOrNothing, InvSecretMalicious)
// compares every SecretGrant with its own view of who runs what: see
// check.go.

// otherRepo is a repository the simulator never builds; some secrets are
// bound to it.
const (
	otherRepoName = "other"
	otherRepoURL  = "/sim/other.git"
)

// secretNames are the names a .volt.yml may ask for, repeated to weigh
// the draw towards those that can be granted.
var secretNames = []string{"NPM_TOKEN", "NPM_TOKEN", "DEPLOY_KEY", "DEPLOY_KEY", "DEV_TOKEN", "DEV_TOKEN",
	"RELEASE_KEY", "OTHER_TOKEN", "BROKEN_KEY", "UNSET_TOKEN"}

// initialSecrets are the secrets a world starts with. The simulated
// repository is /sim/project.git, shown as project; its branches are main
// and dev.
func initialSecrets(repo *Repo) []dispatcher.Secret {
	return []dispatcher.Secret{
		// Every branch of the repository.
		{Name: "NPM_TOKEN", Repo: repo.Name},
		// Only main; the same name bound to another repository.
		{Name: "DEPLOY_KEY", Repo: repo.Name, Branches: []string{"main"}},
		{Name: "DEPLOY_KEY", Repo: otherRepoName},
		// dev by the URL, and main (a glob) by the name: the URL binding is
		// tried first, and a job on main gets the other value.
		{Name: "DEV_TOKEN", Repo: repo.URL, Branches: []string{"dev"}},
		{Name: "DEV_TOKEN", Repo: repo.Name, Branches: []string{"ma*"}},
		// A branch the simulator never pushes.
		{Name: "RELEASE_KEY", Repo: repo.Name, Branches: []string{"release/*"}},
		// Another repository only.
		{Name: "OTHER_TOKEN", Repo: otherRepoURL, Branches: []string{"main"}},
		// A value the dispatcher cannot open: never granted.
		{Name: "BROKEN_KEY", Repo: repo.Name, Err: "the secrets key is missing: restore it from a backup, or set the secret again"},
	}
}

// secretStore is the simulated dispatcher's secret store: it survives a
// dispatcher crash, as the database and the key file would. version
// counts its changes.
type secretStore struct {
	secrets []dispatcher.Secret // sorted by name, then repository
	version int
	sets    int // values set so far, so that every value is new
}

var _ dispatcher.SecretStore = (*secretStore)(nil)

func newSecretStore(initial []dispatcher.Secret) *secretStore {
	s := &secretStore{}
	for _, sec := range initial {
		if sec.Err == "" {
			s.sets++
			sec.Value = s.value(sec.Name, sec.Repo)
		}
		s.secrets = append(s.secrets, sec)
	}
	s.sort()
	return s
}

// value is a value no other secret (or earlier value of this one) has.
func (s *secretStore) value(name, repo string) []byte {
	return fmt.Appendf(nil, "sim-secret-%s-%s-%d", name, strings.ReplaceAll(repo, "/", "_"), s.sets)
}

func (s *secretStore) sort() {
	slices.SortFunc(s.secrets, func(a, b dispatcher.Secret) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Repo, b.Repo)
	})
}

func cloneSecret(sec dispatcher.Secret) dispatcher.Secret {
	sec.Branches = slices.Clone(sec.Branches)
	sec.Value = bytes.Clone(sec.Value)
	return sec
}

// Secrets returns copies of the stored secrets of names, every repository.
func (s *secretStore) Secrets(names []string) ([]dispatcher.Secret, error) {
	var out []dispatcher.Secret
	for _, sec := range s.secrets {
		if slices.Contains(names, sec.Name) {
			out = append(out, cloneSecret(sec))
		}
	}
	return out, nil
}

func (s *secretStore) SetSecret(name, repo string, branches []string, value []byte) error {
	s.version++
	sec := dispatcher.Secret{Name: name, Repo: repo, Branches: slices.Clone(branches), Value: bytes.Clone(value)}
	if i := s.index(name, repo); i >= 0 {
		s.secrets[i] = sec
		return nil
	}
	s.secrets = append(s.secrets, sec)
	s.sort()
	return nil
}

func (s *secretStore) DeleteSecret(name, repo string) (bool, error) {
	i := s.index(name, repo)
	if i < 0 {
		return false, nil
	}
	s.version++
	s.secrets = slices.Delete(s.secrets, i, i+1)
	return true, nil
}

func (s *secretStore) ListSecrets() ([]*messages.SecretEntry, error) {
	out := make([]*messages.SecretEntry, len(s.secrets))
	for i, sec := range s.secrets {
		out[i] = &messages.SecretEntry{Name: sec.Name, Repo: sec.Repo, Branches: slices.Clone(sec.Branches)}
	}
	return out, nil
}

func (s *secretStore) index(name, repo string) int {
	return slices.IndexFunc(s.secrets, func(sec dispatcher.Secret) bool { return sec.Name == name && sec.Repo == repo })
}

// isSecretInput reports whether msg is secret traffic: the network draws
// on the secret streams while it carries it.
func isSecretInput(msg any) bool {
	switch msg.(type) {
	case *messages.SecretRequest, *messages.SecretGrant, *messages.SecretSet, *messages.SecretDelete, *messages.SecretList,
		dispatcher.SecretAsk:
		return true
	}
	return false
}

// isSecretReply reports whether msg is the dispatcher's answer to secret
// traffic.
func isSecretReply(msg any) bool {
	switch msg.(type) {
	case *messages.SecretGrant, *messages.SecretSetReply, *messages.SecretListReply:
		return true
	}
	return false
}

// newSecRand is the secret streams' seed: the runners' and operator's
// (which 0), the malicious peer's (which 1).
func newSecRand(seed uint64, which uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^0x5ec7e75ec7e75ec7^which, seed+0x0123456789abcdef+which*0x9e3779b97f4a7c15))
}

// jobSecrets is what commit's .volt.yml asks for: drawn the first time one
// of its jobs starts, the same for every attempt.
func (w *World) jobSecrets(commit string) []string {
	if names, ok := w.asks[commit]; ok {
		return names
	}
	var names []string
	if w.sec.IntN(2) == 0 {
		for range 1 + w.sec.IntN(2) {
			// jobspec refuses a name given twice.
			if name := secretNames[w.sec.IntN(len(secretNames))]; !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	w.asks[commit] = names
	return names
}

// secretsAfterStart schedules p's request for its secrets, after the
// checkout and the read of .volt.yml.
func (w *World) secretsAfterStart(n *node, p *proc) {
	if w.noSecrets || len(w.jobSecrets(p.job.Commit)) == 0 {
		return
	}
	w.after(time.Duration(1+w.sec.IntN(40))*time.Millisecond, event{kind: evAsk, node: n.idx, gen: n.gen, msg: p})
}

// askSecrets sends p's SecretRequest, as cluster/secrets.go does.
func (w *World) askSecrets(n *node, p *proc) {
	names := w.jobSecrets(p.job.Commit)
	req := &messages.SecretRequest{JobId: p.run.Job.Id, Attempt: p.run.Attempt, RunnerId: p.run.RunnerId,
		Incarnation: p.run.Incarnation, Names: slices.Clone(names)}
	p.asked = true
	detail := ""
	if w.cfg.Trace {
		detail = fmt.Sprintf("job %d attempt %d: %s", req.JobId, req.Attempt, strings.Join(names, ", "))
	}
	w.trace(n, "ask", req, detail)
	w.net = w.sec
	w.send(n, w.dispatcherNode().addr, req)
	w.net = nil
}

// secretAnswer is a SecretGrant reaching a runner: the job that asked
// takes it (as the request's future does), anything else is dropped.
func (w *World) secretAnswer(n *node, g *messages.SecretGrant) {
	p := n.procOf(&messages.JobRef{JobId: g.JobId, Attempt: g.Attempt})
	detail := ""
	switch {
	case p == nil || !p.asked || p.answered || p.ref.JobId != g.JobId || p.ref.Attempt != g.Attempt:
		detail = "nobody asked: dropped"
	case g.Error != "":
		p.answered = true
		w.report.SecretsRefused++
		detail = "refused: " + g.Error
	default:
		p.answered = true
		w.report.SecretsGranted++
		detail = fmt.Sprintf("granted %d", len(g.Values))
	}
	if !w.cfg.Trace {
		detail = ""
	}
	w.trace(n, "recv", g, detail)
}

// admin is the operator's CLI: it holds an admin certificate and is no node.
var (
	adminWho  = actors.Identity{Role: actors.RoleAdmin, Name: "ops"}
	adminAddr = actors.Addr("ops:7000/cli")
)

// drawAdmin schedules the operator's changes: up to two rotations of a
// value (the same binding, a new value) and a listing.
func (w *World) drawAdmin() {
	for range w.sec.IntN(3) {
		at := 2*time.Second + time.Duration(w.sec.Int64N(int64(w.cfg.Duration-4*time.Second)))
		sec := w.secrets.secrets[w.sec.IntN(len(w.secrets.secrets))]
		w.push(event{at: int64(at), kind: evAdmin, msg: &messages.SecretSet{Name: sec.Name, Repo: sec.Repo,
			Branches: slices.Clone(sec.Branches)}})
	}
	if w.sec.IntN(2) == 0 {
		at := 2*time.Second + time.Duration(w.sec.Int64N(int64(w.cfg.Duration-4*time.Second)))
		w.push(event{at: int64(at), kind: evAdmin, msg: &messages.SecretList{}})
	}
}

// adminSends hands the operator's message to the dispatcher.
func (w *World) adminSends(msg any) {
	if m, ok := msg.(*messages.SecretSet); ok {
		w.secrets.sets++
		m.Value = w.secrets.value(m.Name, m.Repo)
	}
	d := w.dispatcherNode()
	delay := 200*time.Microsecond + time.Duration(w.sec.Int64N(int64(2*time.Millisecond)))
	w.push(event{at: w.vt(w.now) + int64(delay), kind: evDeliver, node: d.idx, gen: d.gen,
		from: actors.From{Addr: adminAddr, Who: adminWho}, msg: msg})
}

// startSecretMalice starts the malicious peer's secret forgeries for a burst.
func (w *World) startSecretMalice() {
	if !w.noSecrets {
		w.push(event{at: w.vt(w.now), kind: evSnoop})
	}
}

// secretMalice sends one secret forgery to the dispatcher and schedules
// the next while the burst lasts. It draws only on malSec, so the peer's
// other forgeries are those it sent before secrets came.
func (w *World) secretMalice() {
	if !w.now.Before(w.malUntil) {
		return
	}
	rng := w.malSec
	d := w.dispatcherNode()
	msg, want := w.secretForgery(rng)
	from := actors.From{Addr: want, Who: w.malWho}
	switch x := rng.IntN(10); {
	case x < 2:
		from.Addr = w.nodes[rng.IntN(len(w.nodes))].addr
	case x < 4:
		from.Addr = malAddr
	}
	delay := 200*time.Microsecond + time.Duration(rng.Int64N(int64(2*time.Millisecond)))
	w.push(event{at: w.vt(w.now) + int64(delay), kind: evDeliver, node: d.idx, gen: d.gen, from: from, msg: msg, forged: true})
	w.after(300*time.Millisecond+time.Duration(rng.Int64N(int64(1400*time.Millisecond))), event{kind: evSnoop})
}

// secretForgery makes a secret message the peer's certificate does not
// entitle it to (or, with a runner certificate, a request in its own name
// for a job it does not run), with the sender the dispatcher would
// believe.
func (w *World) secretForgery(rng *rand.Rand) (any, actors.Addr) {
	rs := w.runners()
	v := rs[rng.IntN(len(rs))]
	names := []string{secretNames[rng.IntN(len(secretNames))]}
	if rng.IntN(2) == 0 {
		names = append(names, secretNames[rng.IntN(len(secretNames))])
	}
	repo := []string{w.repo.Name, w.repo.URL, otherRepoName}[rng.IntN(3)]
	switch x := rng.IntN(20); {
	case x < 12:
		// A copy of what v would send for its job (or for a job it saw go by).
		req := &messages.SecretRequest{RunnerId: v.runnerID, Incarnation: v.inc, Names: names}
		switch {
		case v.oneProc() != nil && rng.IntN(3) > 0:
			req.JobId, req.Attempt = v.oneProc().ref.JobId, v.oneProc().ref.Attempt
			if v.oneProc().run != nil {
				req.Incarnation = v.oneProc().run.Incarnation
			}
		default:
			ids := sortedIDs(w.store.jobs)
			if len(ids) > 0 {
				j := w.store.jobs[ids[rng.IntN(len(ids))]]
				req.JobId, req.Attempt = j.Job.Id, max(j.Attempt, 1)
			} else {
				req.JobId, req.Attempt = 1, 1
			}
		}
		if rng.IntN(2) == 0 {
			// In its own name, from its own address: a runner certificate
			// may ask, but it runs nothing.
			req.RunnerId = "mallory"
			return req, malAddr
		}
		return req, v.addr
	case x < 15:
		branches := []string{"*"}
		if rng.IntN(2) == 0 {
			branches = nil
		}
		return &messages.SecretSet{Name: names[0], Repo: repo, Branches: branches, Value: []byte("forged-value")}, adminAddr
	case x < 17:
		return &messages.SecretDelete{Name: names[0], Repo: repo}, adminAddr
	}
	return &messages.SecretList{}, adminAddr
}
