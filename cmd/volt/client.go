package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/messages"
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
	return followLeader(up, func(addr string) (any, error) {
		res, err := node.System.Root.RequestFuture(actorPID(addr, name), req, timeout).Result()
		if err != nil {
			return nil, fmt.Errorf("no answer from %s at %s within %s: %w", name, addr, timeout, err)
		}
		return res, nil
	})
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

// followLeader asks the nodes of a failover group in order until one that
// leads answers: a standby's NotLeader sends the request to the leader it
// names (once), or to the next node when it names none. A single address
// is asked once, as before failover existed.
func followLeader(addrs []string, ask func(addr string) (any, error)) (any, error) {
	var lastErr error
	asked := map[string]bool{}
	for i := 0; i < len(addrs); i++ {
		addr := addrs[i]
		if asked[addr] {
			continue
		}
		asked[addr] = true
		res, err := ask(addr)
		if err != nil {
			lastErr = err
			continue
		}
		nl, ok := res.(*messages.NotLeader)
		if !ok {
			return res, nil
		}
		lastErr = fmt.Errorf("the dispatcher node at %s does not lead, and no node it knows of does (an election under way, or etcd without a quorum): try again in a few seconds", addr)
		if nl.Leader != "" && !asked[nl.Leader] {
			addrs = append(addrs[:i+1], append([]string{nl.Leader}, addrs[i+1:]...)...)
		}
	}
	return nil, lastErr
}
