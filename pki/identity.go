package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// The roles a certificate can name.
const (
	RoleDispatcher = "dispatcher"
	RoleRunner     = "runner"
	RoleObserver   = "observer"
	RoleReporter   = "reporter"
	RoleAdmin      = "admin"
	RoleNotify     = "notify"
)

// Roles lists every role a certificate can name.
var Roles = []string{RoleDispatcher, RoleRunner, RoleObserver, RoleReporter, RoleAdmin, RoleNotify}

// Identity is the role and node name a certificate names.
type Identity struct {
	Role string
	Name string
}

func (id Identity) String() string { return id.Role + "/" + id.Name }

// uriScheme is the scheme of the URI SAN that names a node.
const uriScheme = "volt"

// ValidRole reports whether role is one a certificate may name.
func ValidRole(role string) bool {
	for _, r := range Roles {
		if r == role {
			return true
		}
	}
	return false
}

// ValidName checks a node name: printable, no slash, at most 128 bytes.
func ValidName(name string) error {
	if name == "" || len(name) > 128 {
		return errors.New("a node name has 1 to 128 characters")
	}
	for _, r := range name {
		if r <= ' ' || r == '/' || r == 0x7f || r == '\\' {
			return fmt.Errorf("node name %q: no spaces, slashes or control characters", name)
		}
	}
	return nil
}

// URI is the SAN that names id: volt://ROLE/NAME.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: uriScheme, Host: id.Role, Path: "/" + id.Name}
}

// IdentityOf reads the identity a certificate names: exactly one volt://
// URI SAN with a known role.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		id := Identity{Role: u.Host, Name: strings.TrimPrefix(u.Path, "/")}
		if !ValidRole(id.Role) || ValidName(id.Name) != nil {
			return Identity{}, fmt.Errorf("certificate %q: %s is not a Volt identity", cert.Subject.CommonName, u)
		}
		found = append(found, id)
	}
	if len(found) != 1 {
		return Identity{}, fmt.Errorf("certificate %q names %d Volt identities, want 1", cert.Subject.CommonName, len(found))
	}
	return found[0], nil
}
