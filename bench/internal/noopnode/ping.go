package main

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/messages"
)

// echoName is the echo actor's name on an echo node.
const echoName = "echo"

// startEcho starts the bare echo actor: it answers every JobRef with itself.
func startEcho(node *cluster.Node) error {
	_, err := node.System.Root.SpawnNamed(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*messages.JobRef); ok {
			ctx.Respond(m)
		}
	}), echoName)
	return err
}

// pingBatch is one "run" of the ping node: left pings to send in all,
// shared by the pingers, each with one outstanding.
type pingBatch struct {
	mu          sync.Mutex
	left        int
	rtts        []time.Duration
	first, last time.Time
	wg          sync.WaitGroup
}

// claim takes one ping to send; false when the batch has sent them all.
func (b *pingBatch) claim(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.left == 0 {
		return false
	}
	b.left--
	if b.first.IsZero() {
		b.first = now
	}
	return true
}

// pinger sends to one echo peer, one message outstanding.
type pinger struct {
	peer *actor.PID
	b    *pingBatch
	seq  int64
	sent time.Time
}

func (p *pinger) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *pingBatch:
		p.b = m
		p.next(ctx)
	case *messages.JobRef:
		now := time.Now()
		p.b.mu.Lock()
		p.b.rtts = append(p.b.rtts, now.Sub(p.sent))
		p.b.last = now
		p.b.mu.Unlock()
		p.next(ctx)
	}
}

func (p *pinger) next(ctx actor.Context) {
	now := time.Now()
	if !p.b.claim(now) {
		p.b.wg.Done()
		return
	}
	p.seq++
	p.sent = now
	ctx.Request(p.peer, &messages.JobRef{JobId: p.seq, Attempt: 1})
}

type pingNode struct {
	node    *cluster.Node
	pingers []*actor.PID
}

func startPing(node *cluster.Node, peers []string) (*pingNode, error) {
	p := &pingNode{node: node}
	for i, addr := range peers {
		addr, err := cluster.Resolve(addr)
		if err != nil {
			return nil, err
		}
		peer := actor.NewPID(addr, echoName)
		pid, err := node.System.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &pinger{peer: peer} }),
			fmt.Sprintf("pinger-%d", i))
		if err != nil {
			return nil, err
		}
		p.pingers = append(p.pingers, pid)
	}
	return p, nil
}

// handle serves "run N": N round trips spread over the echo peers.
func (p *pingNode) handle(cmd []string, w io.Writer) error {
	if cmd[0] != "run" || len(cmd) != 2 {
		return fmt.Errorf("unknown command %q", cmd)
	}
	n, err := strconv.Atoi(cmd[1])
	if err != nil || n < 1 {
		return fmt.Errorf("run N: %q is not a positive number", cmd[1])
	}
	b := &pingBatch{left: n}
	b.wg.Add(len(p.pingers))
	for _, pid := range p.pingers {
		p.node.System.Root.Send(pid, b)
	}
	b.wg.Wait()
	writeDone(w, n, b.last.Sub(b.first), b.rtts)
	return nil
}
