package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/cluster"
)

// ask sends one request to a role actor at server (host:port) and waits for
// the answer, from a throwaway actor system on a free loopback port.
func ask(creds *credentialFlags, role, server, name string, req proto.Message, timeout time.Duration) (any, error) {
	return askThen(creds, role, server, name, req, timeout, true)
}

// askThen is ask; shutdown false leaves the actor system running for a
// process that exits at once, where a clean shutdown only costs time.
// It authenticates as role (admin, or notify) with the credentials found
// by creds (--credentials, ./.volt/credentials, ~/.config/volt).
func askThen(creds *credentialFlags, role, server, name string, req proto.Message, timeout time.Duration, shutdown bool) (any, error) {
	addr, err := cluster.Resolve(server)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if !cluster.Probe(addr) {
		return nil, fmt.Errorf("nothing listens at %s: is Volt running there? (start it with `volt up` or `volt dispatcher`)", addr)
	}
	nodeCreds, err := creds.clientCredentials(role, addr)
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	node, err := cluster.Start(cluster.NodeConfig{Listen: "127.0.0.1:0", Logger: quiet, ActorLogLevel: slog.LevelError + 100, Credentials: nodeCreds})
	if err != nil {
		return nil, err
	}
	if shutdown {
		defer node.Shutdown()
	}
	res, err := node.System.Root.RequestFuture(actorPID(addr, name), req, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("no answer from %s at %s within %s: %w", name, addr, timeout, err)
	}
	return res, nil
}
