package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unsafe"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors/dispatcher"
	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/gitexec"
	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/pki"
)

// secretTimeout bounds a secret command's wait for the dispatcher.
const secretTimeout = 10 * time.Second

func newSecretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Secrets jobs ask for in .volt.yml (secrets: [NAME]), kept by the dispatcher: set, list, rm",
		Long: `Secrets are kept by the dispatcher, sealed at rest with a key in its credentials
directory (secrets.key), and bound to a repository and branches: a job gets a secret
its .volt.yml asks for only when the job's repository and one of its branches match
the binding. Whoever can push writes .volt.yml, so the binding decides, not the file.
A job that asks for a secret it may not have ends errored before any step runs.
Values are replaced by *** in logs (values shorter than 4 bytes are not masked).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSecretSetCommand(), newSecretListCommand(), newSecretRmCommand())
	return cmd
}

// secretFlags are the flags every secret command takes.
type secretFlags struct {
	c      common
	server string
}

func (f *secretFlags) register(cmd *cobra.Command) {
	f.c.register(cmd.Flags())
	cmd.Flags().StringVar(&f.server, "dispatcher-server", "localhost:8000", "host:port of the dispatcher (or volt up)")
}

// ask sends m to the dispatcher as admin.
func (f *secretFlags) ask(m proto.Message) (any, error) {
	return askThen(&f.c.creds, pki.RoleAdmin, f.server, cluster.DispatcherName, m, secretTimeout, true)
}

func newSecretSetCommand() *cobra.Command {
	var (
		f        secretFlags
		repo     string
		branches string
	)
	cmd := &cobra.Command{
		Use:   "set NAME --repo REPO [--branches 'main,release/*']",
		Short: "Store a secret (the value from standard input) for a repository's branches",
		Example: `  printf %s "$TOKEN" | volt secret set DEPLOY_KEY --repo project --branches main
  volt secret set SSH_KEY --repo project --branches 'main,release/*' < deploy_key
  read -rs V && printf %s "$V" | volt secret set NPM_TOKEN --repo project --branches main`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if why := dispatcher.ValidSecretName(name); why != "" {
				return usageErr("NAME: %s", why)
			}
			if repo == "" {
				return usageErr("--repo is required: the repository the secret serves, by the name Volt shows (see `volt results`) or its URL")
			}
			pats, err := branchPatterns(branches)
			if err != nil {
				return err
			}
			value, err := readSecretValue(os.Stdin)
			if err != nil {
				return err
			}
			if len(value) < gitexec.MinMaskLen {
				fmt.Fprintf(os.Stderr, "volt: warning: the value is shorter than %d bytes: it will NOT be masked in logs\n", gitexec.MinMaskLen)
			}
			res, err := f.ask(&messages.SecretSet{Name: name, Repo: repo, Branches: pats, Value: value})
			if err != nil {
				return err
			}
			r, ok := res.(*messages.SecretSetReply)
			if !ok {
				return fmt.Errorf("unexpected answer %T from the dispatcher", res)
			}
			if r.Error != "" {
				return fmt.Errorf("the dispatcher refused: %s", r.Error)
			}
			if len(pats) == 0 {
				fmt.Printf("secret %s set for %s, every branch\n", name, repo)
				fmt.Fprintf(os.Stderr, "volt: note: anyone who can push a branch to %s can read %s: pass --branches to narrow it\n", repo, name)
				return nil
			}
			fmt.Printf("secret %s set for %s, branches %s\n", name, repo, strings.Join(pats, ", "))
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&repo, "repo", "", "the repository it serves: the name Volt shows or its URL (required)")
	cmd.Flags().StringVar(&branches, "branches", "", "comma-separated branch names or globs (release/*) it serves; empty: every branch")
	return cmd
}

// branchPatterns splits --branches and checks each pattern.
func branchPatterns(s string) ([]string, error) {
	var pats []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if why := dispatcher.ValidBranchPattern(p); why != "" {
			return nil, usageErr("--branches: %s", why)
		}
		pats = append(pats, p)
	}
	return pats, nil
}

// readSecretValue reads a secret from standard input, never from a
// terminal (it would echo), without one trailing newline.
func readSecretValue(in *os.File) ([]byte, error) {
	if isTerminal(in) {
		return nil, usageErr("the value is read from standard input, not typed at a terminal (it would show): " +
			"pipe it in (printf %%s \"$VALUE\" | volt secret set ...) or redirect a file (< FILE)")
	}
	value, err := io.ReadAll(io.LimitReader(in, dispatcher.MaxSecretSize+3))
	if err != nil {
		return nil, fmt.Errorf("read the value from standard input: %w", err)
	}
	value = bytes.TrimSuffix(value, []byte("\n"))
	value = bytes.TrimSuffix(value, []byte("\r"))
	switch {
	case len(value) == 0:
		return nil, usageErr("the value is empty: give it on standard input (printf %%s \"$VALUE\" | volt secret set ...)")
	case len(value) > dispatcher.MaxSecretSize:
		return nil, usageErr("the value is longer than %d bytes", dispatcher.MaxSecretSize)
	case bytes.IndexByte(value, 0) >= 0:
		return nil, usageErr("the value holds a NUL byte, which no environment variable can")
	}
	return value, nil
}

// isTerminal reports whether f is a terminal (/dev/null, a character
// device too, is not).
func isTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}

func newSecretListCommand() *cobra.Command {
	var f secretFlags
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the secrets the dispatcher keeps: names and bindings, never values",
		Example: `  volt secret list --dispatcher-server ci.example.com:8000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := f.ask(&messages.SecretList{})
			if err != nil {
				return err
			}
			r, ok := res.(*messages.SecretListReply)
			if !ok {
				return fmt.Errorf("unexpected answer %T from the dispatcher", res)
			}
			if r.Error != "" {
				return fmt.Errorf("the dispatcher could not list its secrets: %s", r.Error)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tREPO\tBRANCHES\tUPDATED")
			for _, e := range r.Entries {
				b := strings.Join(e.Branches, ",")
				if b == "" {
					b = "*(every branch)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, e.Repo, b, time.UnixMilli(e.UpdatedUnixMs).UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	return cmd
}

func newSecretRmCommand() *cobra.Command {
	var (
		f    secretFlags
		repo string
	)
	cmd := &cobra.Command{
		Use:     "rm NAME --repo REPO",
		Short:   "Delete a repository's secret",
		Example: `  volt secret rm DEPLOY_KEY --repo project`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if repo == "" {
				return usageErr("--repo is required: the repository the secret was set for (see `volt secret list`)")
			}
			res, err := f.ask(&messages.SecretDelete{Name: args[0], Repo: repo})
			if err != nil {
				return err
			}
			r, ok := res.(*messages.SecretSetReply)
			switch {
			case !ok:
				return fmt.Errorf("unexpected answer %T from the dispatcher", res)
			case r.NotFound:
				return notFound("%s: see `volt secret list`", r.Error)
			case r.Error != "":
				return fmt.Errorf("the dispatcher refused: %s", r.Error)
			}
			fmt.Printf("secret %s of %s deleted\n", args[0], repo)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&repo, "repo", "", "the repository it was set for (required)")
	return cmd
}
