package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/pki"
)

// durationValue is a pflag.Value taking Go durations ("5s", "1m") and bare
// numbers as seconds ("5"), as the original design wrote --poll 5.
type durationValue time.Duration

func newDuration(p *time.Duration, def time.Duration) *durationValue {
	*p = def
	return (*durationValue)(p)
}

func (d *durationValue) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }
func (d *durationValue) Type() string   { return "duration" }

func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 {
			return 0, fmt.Errorf("negative duration %q", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: use Go syntax (5s, 1m) or a number of seconds", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return d, nil
}

// sizeValue is a byte size with an optional KiB/MiB/GiB suffix.
type sizeValue int64

func (v *sizeValue) Set(s string) error {
	mult := int64(1)
	u := strings.ToUpper(strings.TrimSpace(s))
	for suffix, m := range map[string]int64{"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30} {
		if strings.HasSuffix(u, suffix) && len(suffix) > 0 {
			mult, u = m, strings.TrimSuffix(u, suffix)
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(u), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size: use bytes or a KiB/MiB/GiB suffix", s)
	}
	*v = sizeValue(n * mult)
	return nil
}

func (v *sizeValue) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *sizeValue) Type() string   { return "size" }

// common holds the flags every role shares.
type common struct {
	token    string
	logLevel string
	creds    credentialFlags
}

func (c *common) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.token, "token", "", "HTTP bearer token for the web API's mutating requests (default $VOLT_TOKEN)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.creds.dir, "credentials", "", "directory of the cluster CA and this node's certificate (default ~/.config/volt; `volt up`: DATA-DIR/credentials)")
	fs.Var(newDuration(&c.creds.ttl, pki.DefaultTTL), "cert-ttl", "lifetime of the certificates a node with the CA key issues itself (renewed at two thirds)")
}

// requireToken takes the token from VOLT_TOKEN when --token is not given
// (never as a flag default, which --help would print) and requires it for
// an HTTP address off loopback (the web UI, /metrics). Between roles,
// certificates replaced it (issue 10).
func (c *common) requireToken(addrs ...string) error {
	if c.token == "" {
		c.token = os.Getenv("VOLT_TOKEN")
	}
	if c.token != "" {
		return nil
	}
	for _, a := range addrs {
		if a != "" && !cluster.IsLoopback(a) {
			return usageErr("%s is not a loopback address: pass --token (or set VOLT_TOKEN) to protect its HTTP endpoints", a)
		}
	}
	return nil
}
