package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/pki"
)

// newJoinTokenCommand is `volt join-token create`.
func newJoinTokenCommand() *cobra.Command {
	jt := &cobra.Command{
		Use:   "join-token",
		Short: "One-time tokens that let a node on another machine join the cluster",
	}
	var (
		f    credentialFlags
		ttl  time.Duration
		role string
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Print a one-time join token (it pins the cluster CA's fingerprint)",
		Long: `Run it on the dispatcher's machine, where the cluster CA is. The token admits one
node: the node makes its own key, sends a certificate request to the dispatcher's
join endpoint over TLS it checks against the CA fingerprint inside the token, and
keeps the certificate it gets. The key never leaves the node.`,
		Example: `  volt join-token create --ttl 1h
  # on the new machine:
  volt runner --join voltjoin1.… --dispatcher-server ci.example.com:8000 --listen 0.0.0.0:8900 --advertise runner-7.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !pki.ValidRole(role) {
				return usageErr("--role %q: one of %s", role, strings.Join(pki.Roles, ", "))
			}
			if ttl <= 0 {
				return usageErr("--ttl must be positive")
			}
			dir, err := f.roleDir("")
			if err != nil {
				return usageErr("%v", err)
			}
			tok, err := pki.CreateJoinToken(dir, role, ttl, time.Now())
			if err != nil {
				return usageErr("%v (pass the --credentials DIR of the dispatcher; `volt up` keeps it in DATA-DIR/credentials)", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.String())
			return nil
		},
	}
	fs := create.Flags()
	fs.StringVar(&f.dir, "credentials", "", "the dispatcher's credentials directory (default ~/.config/volt)")
	fs.Var(newDuration(&ttl, time.Hour), "ttl", "how long the token may be used")
	fs.StringVar(&role, "role", pki.RoleRunner, "the role the token admits")
	jt.AddCommand(create)
	return jt
}
