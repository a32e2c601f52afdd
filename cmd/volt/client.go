package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
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
	addrs, err := cluster.ResolveAll(server)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	var up []string
	for _, a := range addrs {
		if cluster.Probe(a) {
			up = append(up, a)
		}
	}
	if len(up) == 0 {
		return nil, fmt.Errorf("nothing listens at %s: is Volt running there? (start it with `volt up` or `volt dispatcher`)", strings.Join(addrs, ", "))
	}
	node, err := clientNode(creds, role, up[0])
	if err != nil {
		return nil, err
	}
	if shutdown {
		defer node.Shutdown()
	}
	if name == cluster.DispatcherName {
		// A dispatcher, or the nodes of a failover group: a standby's
		// answer sends the request on to the leader.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return node.DispatcherGroupClient(up).Ask(ctx, req)
	}
	res, err := node.System.Root.RequestFuture(actorPID(up[0], name), req, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("no answer from %s at %s within %s: %w", name, up[0], timeout, err)
	}
	return res, nil
}

// clientNode is a throwaway actor system on a free loopback port, with the
// credentials of role found by creds for talking to addr.
func clientNode(creds *credentialFlags, role, addr string) (*cluster.Node, error) {
	nodeCreds, err := creds.clientCredentials(role, addr)
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	return cluster.Start(cluster.NodeConfig{Listen: "127.0.0.1:0", Logger: quiet, ActorLogLevel: slog.LevelError + 100, Credentials: nodeCreds})
}
