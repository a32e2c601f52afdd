package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/pki"
)

// credentialFlags say where a process finds the cluster CA and its own
// certificate (issue 10: every remote connection is mutual TLS).
type credentialFlags struct {
	dir string
	ttl time.Duration
}

// userCredentialsDir is the per-user credentials directory,
// $XDG_CONFIG_HOME/volt or ~/.config/volt.
func userCredentialsDir() (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no per-user configuration directory (%v): pass --credentials DIR", err)
	}
	return filepath.Join(base, "volt"), nil
}

// upCredentialsDir is where `volt up` keeps its CA: in its data directory.
func upCredentialsDir(dataDir string) string { return filepath.Join(dataDir, "credentials") }

// roleDir is the credentials directory of a role: --credentials, or
// fallback (a data directory's, for `volt up`), or the per-user one.
func (f *credentialFlags) roleDir(fallback string) (string, error) {
	if f.dir != "" {
		return f.dir, nil
	}
	if fallback != "" {
		return fallback, nil
	}
	return userCredentialsDir()
}

// clientDirs are where a CLI command looks for credentials: --credentials
// alone when given; else the credentials of a `volt up` started in this
// directory (.volt/credentials), the per-user directory, and those of the
// `volt up` processes this user started elsewhere (pki.KnownFile).
func (f *credentialFlags) clientDirs() ([]string, error) {
	if f.dir != "" {
		return []string{f.dir}, nil
	}
	dirs := []string{upCredentialsDir(".volt")}
	user, err := userCredentialsDir()
	if err != nil {
		return nil, err
	}
	dirs = append(dirs, user)
	return append(dirs, pki.Known(user)...), nil
}

// clientDir picks, among clientDirs, the one whose CA issued the
// certificate of the server at address; with one candidate, or when the
// server does not answer, the first that holds a CA.
func (f *credentialFlags) clientDir(address string) (string, error) {
	dirs, err := f.clientDirs()
	if err != nil {
		return "", err
	}
	if len(dirs) == 1 {
		return dirs[0], nil
	}
	var have []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, pki.CACertFile)); err == nil {
			have = append(have, d)
		}
	}
	if len(have) == 0 {
		return "", fmt.Errorf("%w: none of %s holds a cluster CA: start Volt first (`volt up` or `volt dispatcher`), or pass --credentials DIR", pki.ErrNoCredentials, strings.Join(dirs, ", "))
	}
	leaf, err := cluster.ServerCertificate(address, 2*time.Second)
	if err != nil {
		return have[0], nil // the request itself will say the server is down
	}
	for _, d := range have {
		if pki.Issued(d, leaf) {
			return d, nil
		}
	}
	return "", fmt.Errorf("the server at %s has a certificate from a CA that none of %s holds: pass --credentials DIR (`volt up` keeps it in DATA-DIR/credentials)", address, strings.Join(have, ", "))
}

// nodeCredentials opens the credentials of a node with role and name
// listening on address. create lets it make the CA when there is none:
// true for the dispatcher and `volt up`, and for a role whose dispatcher is
// on this machine (the README's four shells); a role that joins a remote
// dispatcher must be given its certificate.
func (f *credentialFlags) nodeCredentials(dir, role, name, address, advertise string, create bool) (*pki.Credentials, error) {
	hosts, err := nodeHosts(address, advertise)
	if err != nil {
		return nil, err
	}
	creds, err := pki.Open(pki.Options{Dir: dir, Identity: pki.Identity{Role: role, Name: name}, Hosts: hosts,
		Require: reachedAs(address, advertise), TTL: f.ttl, Create: create})
	if err != nil {
		return nil, credentialsErr(err)
	}
	return creds, nil
}

// credentialsErr is a credential fault: it stops the role, naming what to
// fix (the message already names the file or flag).
func credentialsErr(err error) error {
	if errors.Is(err, pki.ErrNoCredentials) {
		return usageErr("%v", err)
	}
	return &exitError{code: exitUsage, err: fmt.Errorf("credentials: %w", err)}
}

// nodeHosts are the names and IPs a node's certificate names: loopback,
// this host's name, the listen address (every interface's IPs when it
// listens on all of them) and the advertised host.
func nodeHosts(address, advertise string) ([]string, error) {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	if address != "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, usageErr("%q: want host:port: %v", address, err)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			addrs, err := net.InterfaceAddrs()
			if err == nil {
				for _, a := range addrs {
					if n, ok := a.(*net.IPNet); ok {
						hosts = append(hosts, n.IP.String())
					}
				}
			}
		} else if host != "" {
			hosts = append(hosts, host)
		}
	}
	if advertise != "" {
		hosts = append(hosts, advertise)
	}
	seen := map[string]bool{}
	out := hosts[:0]
	for _, h := range hosts {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out, nil
}

// hostName is this machine's name, for node names ("localhost" if unknown).
func hostName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// userName is the OS user's name, for the CLI's node names.
func userName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "user"
}

// clientCredentials are the CLI's for talking to the server at address:
// role admin (or notify), issued in memory from the CA key found in the
// credentials directory, or loaded from a certificate issued for it.
func (f *credentialFlags) clientCredentials(role, address string) (*pki.Credentials, error) {
	dir, err := f.clientDir(address)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return f.nodeCredentials(dir, role, role+"-"+userName()+"@"+hostName(), "127.0.0.1:0", "", false)
}

// credentialsFor returns a cluster.NodeConfig hook that opens a role's
// credentials once its address is known.
func (f *credentialFlags) credentialsFor(dir, role string, name func(address string) string, advertise string, create bool) func(string) (*pki.Credentials, error) {
	return func(address string) (*pki.Credentials, error) {
		return f.nodeCredentials(dir, role, name(address), address, advertise, create)
	}
}

// startErr is fatal(what, err), keeping the exit code of a credential
// fault (2: a file or flag to fix).
func startErr(what string, err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return &exitError{code: ee.code, err: fmt.Errorf("%s: %w", what, err)}
	}
	return fatal(what, err)
}

// constName is a node-name function that ignores the address.
func constName(name string) func(string) string { return func(string) string { return name } }

// runnerName names a runner's certificate: --id when given; else the name
// of the runner certificate in dir, when one was issued for it (a joined
// runner); else HOST:PORT, the runner's default id.
func runnerName(dir, id, host string) func(string) string {
	return func(address string) string {
		if id != "" {
			return id
		}
		if _, err := os.Stat(filepath.Join(dir, pki.NodeCertFile(pki.RoleRunner))); err == nil {
			return "" // pki.Open takes the name from the certificate
		}
		_, port, _ := net.SplitHostPort(address)
		return host + ":" + port
	}
}

// joinCluster gets this node a certificate with a join token, unless dir
// already holds one for role (the token is then not needed, nor used).
func joinCluster(logger *slog.Logger, token, dispatcher, dir, role, name, listen, advertise string) error {
	if _, err := os.Stat(filepath.Join(dir, pki.NodeCertFile(role))); err == nil {
		logger.Info("joined already: using the certificate in the credentials directory; --join is not needed any more", "credentials", dir)
		return nil
	}
	tok, err := pki.ParseJoinToken(token)
	if err != nil {
		return usageErr("--join: %v", err)
	}
	if name == "" {
		name = hostName()
	}
	hosts, err := nodeHosts(listen, advertise)
	if err != nil {
		return err
	}
	leaf, err := cluster.Join(dispatcher, tok, name, hosts, dir, 10*time.Second)
	if err != nil {
		return fatal("join the cluster at "+dispatcher, err)
	}
	logger.Info("joined the cluster", "identity", role+"/"+name, "credentials", dir, "until", leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// reachedAs is the host peers reach a node by: --advertise, else the listen
// host unless it is every interface.
func reachedAs(address, advertise string) []string {
	if advertise != "" {
		return []string{advertise}
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil || host == "" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return nil
	}
	return []string{host}
}
