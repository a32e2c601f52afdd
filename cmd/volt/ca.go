package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/pki"
)

// newCACommand is `volt ca`: the cluster CA for several machines.
func newCACommand() *cobra.Command {
	ca := &cobra.Command{
		Use:   "ca",
		Short: "The cluster certificate authority: init, issue, revoke",
		Long: `Every connection between Volt processes is mutual TLS with certificates from one
cluster CA. On one machine Volt creates it by itself (volt up: DATA-DIR/credentials;
separate roles: ~/.config/volt). For several machines, create it on the dispatcher's
host and give each other node a certificate: join with a token, or issue one here
and copy it over.`,
	}
	ca.AddCommand(newCAInitCommand(), newCAIssueCommand(), newCARevokeCommand())
	return ca
}

func newCAInitCommand() *cobra.Command {
	var f credentialFlags
	cmd := &cobra.Command{
		Use:     "init",
		Short:   "Create the cluster CA (ca.crt, ca.key) in the credentials directory",
		Example: "  volt ca init\n  volt ca init --credentials /etc/volt",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := f.roleDir("")
			if err != nil {
				return usageErr("%v", err)
			}
			ca, err := pki.InitCA(dir, time.Now())
			if err != nil {
				return usageErr("%v", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created the cluster CA in %s\nfingerprint: sha256:%s\n", dir, pki.Fingerprint(ca.Cert))
			return nil
		},
	}
	cmd.Flags().StringVar(&f.dir, "credentials", "", "credentials directory (default ~/.config/volt)")
	return cmd
}

func newCAIssueCommand() *cobra.Command {
	var (
		f     credentialFlags
		role  string
		name  string
		hosts []string
		out   string
		ttl   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "issue",
		Short: "Issue a node certificate offline, into a directory to copy to the node",
		Example: `  volt ca issue --role runner --name runner-7 --host runner-7.example.com --out ./runner-7
  scp -r ./runner-7 runner-7.example.com:.config/volt     # then: volt runner --dispatcher-server ci:8000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !pki.ValidRole(role) {
				return usageErr("--role %q: one of %s", role, strings.Join(pki.Roles, ", "))
			}
			if err := pki.ValidName(name); err != nil {
				return usageErr("--name: %v", err)
			}
			if out == "" {
				return usageErr("--out DIR is required: the directory to write ca.crt, %s and %s to", pki.NodeCertFile(role), pki.NodeKeyFile(role))
			}
			dir, err := f.roleDir("")
			if err != nil {
				return usageErr("%v", err)
			}
			ca, err := pki.LoadCA(dir)
			if err != nil {
				return usageErr("%v: run `volt ca init` first, or pass the --credentials DIR that holds the CA", err)
			}
			key, err := pki.NewKey()
			if err != nil {
				return fatal("issue", err)
			}
			hs := append([]string{"localhost", "127.0.0.1", "::1"}, hosts...)
			leaf, err := ca.Issue(key.Public(), pki.Request{Identity: pki.Identity{Role: role, Name: name}, Hosts: hs, TTL: ttl}, time.Now())
			if err != nil {
				return usageErr("%v", err)
			}
			keyPEM, err := pki.EncodeKey(key)
			if err != nil {
				return fatal("issue", err)
			}
			if err := pki.WriteNode(out, ca.Cert, leaf, keyPEM); err != nil {
				return fatal("issue", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "issued %s/%s (hosts %s) until %s into %s\n", role, name, strings.Join(hs, ", "), leaf.NotAfter.UTC().Format(time.RFC3339), out)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.dir, "credentials", "", "credentials directory holding the CA (default ~/.config/volt)")
	fs.StringVar(&role, "role", "", "the node's role: "+strings.Join(pki.Roles, ", "))
	fs.StringVar(&name, "name", "", "the node's name (a runner's name is its runner id)")
	fs.StringSliceVar(&hosts, "host", nil, "host name or IP peers use to reach the node (repeatable)")
	fs.StringVar(&out, "out", "", "directory to write the certificate, key (0600) and CA certificate into")
	fs.Var(newDuration(&ttl, pki.DefaultTTL), "ttl", "how long the certificate is valid")
	return cmd
}

func newCARevokeCommand() *cobra.Command {
	var f credentialFlags
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a node's certificate: ROLE/NAME, or NAME for every role",
		Long: `Adds the node to the revocation list beside the CA. Every node that reads that
directory (the dispatcher and the roles started on this machine) checks the list
at each message: the revoked node's connections end at its next message and it is
refused from then on.`,
		Example: "  volt ca revoke runner/runner-7",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			entry := args[0]
			role, name, hasRole := strings.Cut(entry, "/")
			if !hasRole {
				name = role
			} else if !pki.ValidRole(role) {
				return usageErr("%q: ROLE/NAME with ROLE one of %s, or a bare NAME", entry, strings.Join(pki.Roles, ", "))
			}
			if err := pki.ValidName(name); err != nil {
				return usageErr("%v", err)
			}
			dir, err := f.roleDir("")
			if err != nil {
				return usageErr("%v", err)
			}
			if _, err := os.Stat(dir); err != nil {
				return usageErr("credentials directory: %v", err)
			}
			if err := pki.Revoke(dir, entry); err != nil {
				return fatal("revoke", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s in %s\n", entry, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.dir, "credentials", "", "credentials directory holding the CA (default ~/.config/volt)")
	return cmd
}
