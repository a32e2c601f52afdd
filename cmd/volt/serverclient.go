package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// defaultServer is where the CLI finds a Volt web server.
const defaultServer = "http://127.0.0.1:8080"

// serverClient talks to a Volt web server's JSON API (`volt up` or
// `volt reporter --http`).
type serverClient struct {
	server string
	token  string
	http   *http.Client
}

func (c *serverClient) register(fs *pflag.FlagSet, withToken bool) {
	fs.StringVar(&c.server, "server", defaultServer, "URL of the Volt web server (volt up or volt reporter --http)")
	if withToken {
		fs.StringVar(&c.token, "token", "", "the server's token, for changes (default $VOLT_TOKEN)")
	}
}

// base checks --server and returns it without a trailing slash.
func (c *serverClient) base() (string, error) {
	u, err := url.Parse(c.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageErr("--server %q: want a URL like %s", c.server, defaultServer)
	}
	return strings.TrimSuffix(c.server, "/"), nil
}

// do sends one request to the API and decodes a 200 answer into out. Other
// answers become errors with Volt's exit codes: 404 is "not found" (3),
// 400/401/403 are usage errors (2), the rest runtime errors (1).
func (c *serverClient) do(method, path string, out any) error {
	base, err := c.base()
	if err != nil {
		return err
	}
	if c.token == "" {
		c.token = os.Getenv("VOLT_TOKEN")
	}
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		return usageErr("--server %q: %v", c.server, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", "application/json")
	hc := c.http
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("no answer from %s: is Volt running there (volt up, or volt reporter --http)? pass --server: %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", base+path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			return notFound("%s", msg)
		case http.StatusBadRequest:
			return usageErr("%s", msg)
		case http.StatusUnauthorized, http.StatusForbidden:
			return usageErr("%s (pass --token or set VOLT_TOKEN)", msg)
		}
		return fmt.Errorf("%s answered %s: %s", base, resp.Status, msg)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s answered something that is not Volt's API (%v): is --server a Volt web server?", base, err)
	}
	return nil
}
