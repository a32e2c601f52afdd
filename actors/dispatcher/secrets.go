package dispatcher

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
	"github.com/voltci/volt/actors/plant"
	"github.com/voltci/volt/messages"
)

// Secrets: an operator stores a secret on the dispatcher's side, bound to
// a repository and branch patterns (`volt secret set`); a job's .volt.yml
// names the secrets it wants; the runner, after checkout, asks for them
// (SecretRequest) and gets them only when the core grants them. Whoever can
// push writes .volt.yml, so the binding decides, never the file.
//
// The core grants a SecretRequest when all of these hold, else it answers
// with an error naming the secrets and the reason, and no value at all:
//   - it comes from the runner it names (its certificate's name), or from
//     this process; anyone else's request is refused as a forgery (by
//     permit, through secretPermit: no answer, counted in forged_refused);
//   - that runner, at the incarnation it gives, is registered and runs
//     the job at the attempt it gives (the current attempt: an earlier
//     one, or another runner's, gets nothing);
//   - every name asked for has a stored secret bound to the job's
//     repository (its URL, or the name Volt shows) whose branch patterns
//     (path.Match globs, none = every branch) match one of the job's
//     branches. A secret bound by URL is tried before one bound by name.
//
// SecretSet, SecretDelete and SecretList come only from admin (or this
// process); the core checks them and hands them to the shell as a
// SecretChange, which the shell carries out against the store and answers.

// Secret is a stored secret as the shell loads it for the core: its
// binding and its value, or why the value could not be read.
type Secret struct {
	Name string
	// Repo is the repository it serves: a URL or the name Volt shows.
	Repo string
	// Branches are branch patterns; empty means every branch.
	Branches []string
	Value    []byte
	// Err says why the value could not be opened (the key file is missing
	// or another one); such a secret is never granted.
	Err string
}

// SecretStore is where the dispatcher keeps secrets, sealed at rest. A
// Store that does not implement it keeps none: every request is refused.
type SecretStore interface {
	// Secrets returns the stored secrets of the given names, of every
	// repository, sorted by name and repository, values opened.
	Secrets(names []string) ([]Secret, error)
	// SetSecret stores (or replaces) the secret name of repo.
	SetSecret(name, repo string, branches []string, value []byte) error
	// DeleteSecret removes it; found is false when there was none.
	DeleteSecret(name, repo string) (found bool, err error)
	// ListSecrets describes every stored secret, never its value.
	ListSecrets() ([]*messages.SecretEntry, error)
}

// SecretAsk is a SecretRequest as the shell hands it to the core, with the
// stored secrets of the names it asks for (of every repository), or why
// the store could not be read.
type SecretAsk struct {
	Msg     *messages.SecretRequest
	Secrets []Secret
	Err     string
}

// SecretChange asks the shell to carry out an admin's SecretSet,
// SecretDelete or SecretList against its SecretStore and to answer To
// (SecretSetReply, or SecretListReply).
type SecretChange struct {
	To  actors.Addr
	Msg proto.Message
}

// Limits on what a secret may be.
const (
	// MaxSecretSize is the largest value stored.
	MaxSecretSize = 64 << 10
	// maxSecretNames is the most secrets one job may ask for.
	maxSecretNames = 100
	// maxBranchPatterns is the most branch patterns of one secret.
	maxBranchPatterns = 100
)

var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidSecretName says why name cannot name a secret ("" when it can): it
// becomes an environment variable's name.
func ValidSecretName(name string) string {
	if !secretName.MatchString(name) || len(name) > 256 {
		return fmt.Sprintf("%q is not a valid secret name: use letters, digits and _, not starting with a digit (it becomes the variable's name)", name)
	}
	return ""
}

// ValidBranchPattern says why p cannot be a branch pattern ("" when it can).
func ValidBranchPattern(p string) string {
	if p == "" || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Sprintf("branch pattern %q is empty or holds a space or control character", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Sprintf("branch pattern %q is malformed: write a branch name or a glob such as release/*", p)
	}
	return ""
}

// validRepo says why repo cannot name a repository ("" when it can).
func validRepo(repo string) string {
	if repo == "" || strings.ContainsFunc(repo, func(r rune) bool { return r < ' ' || r == 0x7f }) || len(repo) > 4096 {
		return "the repository is empty or holds a control character: give the name Volt shows or the URL"
	}
	return ""
}

// secretPermit is permit for the secret inputs: a SecretRequest only from
// the runner it names, the rest only from admin.
func secretPermit(who actors.Identity, in any) string {
	switch m := in.(type) {
	case SecretAsk:
		if m.Msg == nil {
			return "no request"
		}
		return asRunner(who, m.Msg.RunnerId)
	case *messages.SecretRequest:
		return asRunner(who, m.RunnerId)
	}
	if !who.Is(actors.RoleAdmin) {
		return "only admin manages secrets"
	}
	return ""
}

// secret handles every secret input, once permit let it through.
func (c *Core) secret(from actors.From, in any) []actors.Effect {
	switch m := in.(type) {
	case *messages.SecretRequest:
		// Straight from a peer, without the shell's lookup: nothing stored.
		return c.grant(from.Addr, SecretAsk{Msg: m})
	case SecretAsk:
		return c.grant(from.Addr, m)
	case proto.Message:
		return c.secretChange(from, m)
	}
	return nil
}

// grant answers a runner's request for its job's secrets.
func (c *Core) grant(to actors.Addr, a SecretAsk) []actors.Effect {
	m := a.Msg
	reply := &messages.SecretGrant{JobId: m.JobId, Attempt: m.Attempt}
	names := strings.Join(m.Names, ", ")
	deny := func(why string) []actors.Effect {
		reply.Error = why
		return []actors.Effect{
			actors.Warn("secrets refused", "job", m.JobId, "attempt", m.Attempt, "runner", m.RunnerId, "secrets", names, "reason", why),
			actors.Send{To: to, Msg: reply},
		}
	}
	plural := "secret " + names
	if len(m.Names) > 1 {
		plural = "secrets " + names
	}
	j := c.jobs[m.JobId]
	r := c.current(m.RunnerId, m.Incarnation)
	switch {
	case len(m.Names) > maxSecretNames:
		return deny(fmt.Sprintf("a job may ask for at most %d secrets, not %d", maxSecretNames, len(m.Names)))
	case j == nil || j.State != messages.JobState_JOB_STATE_RUNNING || (!plant.On(plant.SecretsToAnyRunner) && (j.RunnerId != m.RunnerId ||
		j.Attempt != m.Attempt || j.RunnerIncarnation != m.Incarnation || r == nil || !r.runs(m.JobId))):
		return deny(fmt.Sprintf("%s: job %d attempt %d is not running on runner %s (incarnation %d): only the current attempt gets secrets",
			plural, m.JobId, m.Attempt, m.RunnerId, m.Incarnation))
	case a.Err != "":
		return deny(fmt.Sprintf("%s: the dispatcher could not read its secrets: %s", plural, a.Err))
	}
	values := make(map[string][]byte, len(m.Names))
	var refusals []string
	for _, name := range m.Names {
		if why := ValidSecretName(name); why != "" {
			refusals = append(refusals, "secret "+why)
			continue
		}
		if _, twice := values[name]; twice {
			continue
		}
		value, why := pick(a.Secrets, name, j.Job)
		if why != "" {
			refusals = append(refusals, "secret "+name+": "+why)
			continue
		}
		values[name] = value
	}
	if len(refusals) > 0 {
		if plant.On(plant.SecretsPartlyGranted) {
			reply.Values = values
		}
		return deny(strings.Join(refusals, "; "))
	}
	reply.Values = values
	return []actors.Effect{
		actors.Info("secrets granted", "job", m.JobId, "attempt", m.Attempt, "runner", m.RunnerId, "secrets", names),
		actors.Send{To: to, Msg: reply},
	}
}

// pick returns the value of the secret name that serves job, or why none
// does. Secrets bound to the job's URL are tried before those bound to
// its name.
func pick(stored []Secret, name string, job *messages.Job) ([]byte, string) {
	var candidates []Secret
	for _, repo := range []string{job.Repo, job.RepoName} {
		for _, s := range stored {
			if s.Name == name && s.Repo == repo && repo != "" {
				candidates = append(candidates, s)
			}
		}
	}
	if len(candidates) == 0 {
		return nil, fmt.Sprintf("none is set for repository %s: the operator sets it with `volt secret set %s --repo %s`",
			repoLabel(job), name, repoLabel(job))
	}
	var unreadable string
	for _, s := range candidates {
		if !servesBranch(s.Branches, job.Branches) && !plant.On(plant.SecretsIgnoreBranches) {
			continue
		}
		if s.Err != "" {
			unreadable = s.Err
			continue
		}
		return s.Value, ""
	}
	if unreadable != "" {
		return nil, "the dispatcher cannot read it: " + unreadable
	}
	var patterns []string
	for _, s := range candidates {
		patterns = append(patterns, s.Branches...)
	}
	return nil, fmt.Sprintf("it serves only branches %s of %s, and this commit is on %s",
		strings.Join(patterns, ", "), repoLabel(job), strings.Join(job.Branches, ", "))
}

// repoLabel is the name users know a job's repository by.
func repoLabel(job *messages.Job) string {
	if job.RepoName != "" {
		return job.RepoName
	}
	return job.Repo
}

// servesBranch reports whether one of branches matches one of patterns;
// no patterns match every branch.
func servesBranch(patterns, branches []string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, b := range branches {
		for _, p := range patterns {
			if ok, err := path.Match(p, b); ok && err == nil {
				return true
			}
		}
	}
	return false
}

// secretChange checks an admin's SecretSet, SecretDelete or SecretList
// and hands it to the shell, or answers why not.
func (c *Core) secretChange(from actors.From, msg proto.Message) []actors.Effect {
	setReply := func(why string) []actors.Effect {
		return []actors.Effect{actors.Send{To: from.Addr, Msg: &messages.SecretSetReply{Error: why}}}
	}
	switch m := msg.(type) {
	case *messages.SecretSet:
		if why := ValidSecretName(m.Name); why != "" {
			return setReply(why)
		}
		if why := validRepo(m.Repo); why != "" {
			return setReply(why)
		}
		if len(m.Branches) > maxBranchPatterns {
			return setReply(fmt.Sprintf("at most %d branch patterns, not %d", maxBranchPatterns, len(m.Branches)))
		}
		for _, p := range m.Branches {
			if why := ValidBranchPattern(p); why != "" {
				return setReply(why)
			}
		}
		switch {
		case len(m.Value) == 0:
			return setReply("the value is empty: give it on standard input")
		case len(m.Value) > MaxSecretSize:
			return setReply(fmt.Sprintf("the value is %d bytes, more than the %d a secret may hold", len(m.Value), MaxSecretSize))
		case bytes.IndexByte(m.Value, 0) >= 0:
			return setReply("the value holds a NUL byte, which no environment variable can")
		}
		branches := "every branch"
		if len(m.Branches) > 0 {
			branches = strings.Join(m.Branches, ", ")
		}
		return []actors.Effect{
			actors.Info("secret set", "secret", m.Name, "repo", m.Repo, "branches", branches, "by", from.Who.String()),
			SecretChange{To: from.Addr, Msg: m},
		}
	case *messages.SecretDelete:
		if why := ValidSecretName(m.Name); why != "" {
			return setReply(why)
		}
		if why := validRepo(m.Repo); why != "" {
			return setReply(why)
		}
		return []actors.Effect{
			actors.Info("secret deleted", "secret", m.Name, "repo", m.Repo, "by", from.Who.String()),
			SecretChange{To: from.Addr, Msg: m},
		}
	default:
		return []actors.Effect{SecretChange{To: from.Addr, Msg: msg}}
	}
}

// Shell side.

// noSecretStore is the answer of a dispatcher whose store keeps no secrets.
const noSecretStore = "this dispatcher keeps no secrets (it has no secrets key: its store or credentials directory is missing)"

// askSecrets loads what a SecretRequest names and hands both to the core.
func (s *Shell) askSecrets(m *messages.SecretRequest) SecretAsk {
	ask := SecretAsk{Msg: m}
	ss, ok := s.store.(SecretStore)
	switch {
	case !ok:
		ask.Err = noSecretStore
	case len(m.Names) > 0 && len(m.Names) <= maxSecretNames:
		secrets, err := ss.Secrets(slices.Compact(slices.Sorted(slices.Values(m.Names))))
		if err != nil {
			ask.Err = err.Error()
		}
		ask.Secrets = secrets
	}
	return ask
}

// SecretChange implements Effects: it carries out an admin's change or
// listing against the SecretStore and answers.
func (s *Shell) SecretChange(ch SecretChange) {
	ss, have := s.store.(SecretStore)
	var reply proto.Message
	switch m := ch.Msg.(type) {
	case *messages.SecretSet:
		r := &messages.SecretSetReply{}
		if !have {
			r.Error = noSecretStore
		} else if err := ss.SetSecret(m.Name, m.Repo, m.Branches, m.Value); err != nil {
			r.Error = err.Error()
		}
		reply = r
	case *messages.SecretDelete:
		r := &messages.SecretSetReply{}
		if !have {
			r.Error = noSecretStore
		} else if found, err := ss.DeleteSecret(m.Name, m.Repo); err != nil {
			r.Error = err.Error()
		} else if !found {
			r.Error, r.NotFound = fmt.Sprintf("no secret %s is set for repository %s", m.Name, m.Repo), true
		}
		reply = r
	case *messages.SecretList:
		r := &messages.SecretListReply{}
		if !have {
			r.Error = noSecretStore
		} else {
			entries, err := ss.ListSecrets()
			if err != nil {
				r.Error = err.Error()
			}
			r.Entries = entries
		}
		reply = r
	default:
		return
	}
	s.h.Send(ch.To, reply)
}
