package e2e

// The attacker: the test binary re-executed as a helper process (see
// TestMain) that does what issue 10 lists under "What an attacker can do
// today", with plain protoactor-go remote and Volt's own messages package.
// It runs in its own process because one process may hold only one
// Proto.Actor remote (two fail -race).
//
// Protocol with the test (attack_test.go): the scenario is JSON in
// $VOLT_E2E_ATTACKER. The attacker runs each phase's steps, then prints
// "READY <phase>" on stdout; it starts the next phase when it reads a line
// on stdin, and when stdin closes it prints "REPORT <json>": every message
// its actors received, the outcome of each control round trip and raw
// gRPC call. Until then it keeps listening, so that a late answer to a
// forgery is still caught.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/voltci/volt/messages" // the wire types, found by name
)

// attackerSelf, in a step's message, stands for the attacker's own actor
// ("host:port/attacker"), which the test does not know in advance.
const attackerSelf = "ATTACKER-SELF"

// attackerEnv, when set, makes the test binary an attacker process that
// runs the scenario (attackSpec JSON) the variable holds.
const attackerEnv = "VOLT_E2E_ATTACKER"

// attackSpec is one attacker process's scenario.
type attackSpec struct {
	// Host is the loopback address the attacker listens and dials from.
	Host string `json:"host"`
	// Plaintext dials and serves without TLS (insecure gRPC).
	Plaintext bool `json:"plaintext,omitempty"`
	// CertPEM and KeyPEM are the attacker's certificate: presented as TLS
	// client and server. Empty (and not Plaintext): TLS without a client
	// certificate.
	CertPEM string `json:"cert,omitempty"`
	KeyPEM  string `json:"key,omitempty"`
	// Phases run one after another; the test says when to go on.
	Phases [][]attackStep `json:"phases"`
}

// attackStep is one thing the attacker does.
type attackStep struct {
	// Do is what: "send" (no sender), "request" (the attacker's own actor
	// as sender), "forge" (As as sender: RequestWithCustomSender), "stop"
	// (actor.Stop, the way Proto.Actor stops a remote actor), "poison",
	// "control" (a request to an actor that does not exist on To's node:
	// its DeadLetterResponse proves the connection carries messages both
	// ways; waited for), "probe" (the same, not waited for), "unary" (a raw
	// gRPC call of Method on the Remoting service at To).
	Do string `json:"do"`
	// To is the target: "host:port/actor" (unary: "host:port").
	To string `json:"to"`
	// As is the claimed sender of "forge", "host:port/actor".
	As string `json:"as,omitempty"`
	// Type is the protobuf full name of the message ("volt.v1.RunJob",
	// "actor.Terminated"); Msg its protojson.
	Type string `json:"type,omitempty"`
	Msg  string `json:"msg,omitempty"`
	// Method is the unary call: ListProcesses or GetProcessDiagnostics.
	Method string `json:"method,omitempty"`
}

// attackReport is what the attacker saw.
type attackReport struct {
	// Address is the attacker's own Proto.Actor address.
	Address  string          `json:"address"`
	Received []attackGot     `json:"received"`
	Controls []attackControl `json:"controls"`
	Unary    []attackUnary   `json:"unary"`
	Errors   []string        `json:"errors"`
}

// attackGot is a message one of the attacker's actors received.
type attackGot struct {
	Phase  int    `json:"phase"`
	Type   string `json:"type"`
	Msg    string `json:"msg"`
	Sender string `json:"sender,omitempty"`
}

// attackControl is the outcome of a control round trip.
type attackControl struct {
	Phase int    `json:"phase"`
	To    string `json:"to"`
	OK    bool   `json:"ok"`
	Err   string `json:"err,omitempty"`
}

// attackUnary is the outcome of a raw gRPC call.
type attackUnary struct {
	To     string `json:"to"`
	Method string `json:"method"`
	// Code is the gRPC status code's name ("OK" when the call succeeded).
	Code string `json:"code"`
	Err  string `json:"err,omitempty"`
}

// controlTimeout bounds a control round trip.
const controlTimeout = 10 * time.Second

// attackerMain runs the attacker process; its result is the exit code.
func attackerMain(specJSON string) int {
	var spec attackSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "attacker: scenario: %v\n", err)
		return 2
	}
	a, err := newAttacker(spec)
	if err != nil {
		fmt.Fprintf(os.Stderr, "attacker: %v\n", err)
		return 2
	}
	in := bufio.NewScanner(os.Stdin)
	for i, phase := range spec.Phases {
		if i > 0 && !in.Scan() {
			break
		}
		a.setPhase(i)
		for _, st := range phase {
			a.do(st)
		}
		fmt.Printf("READY %d\n", i)
	}
	for in.Scan() { // keep listening until the test is done
	}
	out, err := json.Marshal(a.report())
	if err != nil {
		fmt.Fprintf(os.Stderr, "attacker: report: %v\n", err)
		return 2
	}
	fmt.Printf("REPORT %s\n", out)
	return 0
}

type attackerProc struct {
	spec     attackSpec
	sys      *actor.ActorSystem
	rec      *actor.PID
	dialOpts []grpc.DialOption

	mu     sync.Mutex
	phase  int
	rep    attackReport
	probes int
}

func newAttacker(spec attackSpec) (*attackerProc, error) {
	a := &attackerProc{spec: spec}
	var server []grpc.ServerOption
	// Every connection leaves from Host, so that the nodes see this
	// attacker as a peer host of its own.
	from := grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(spec.Host)}}
		return d.DialContext(ctx, "tcp", addr)
	})
	switch {
	case spec.Plaintext:
		a.dialOpts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), from}
	default:
		// The attacker does not care whom it talks to: it trusts any server.
		client := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, NextProtos: []string{"h2"}}
		if spec.CertPEM != "" {
			cert, err := tls.X509KeyPair([]byte(spec.CertPEM), []byte(spec.KeyPEM))
			if err != nil {
				return nil, fmt.Errorf("certificate: %w", err)
			}
			client.Certificates = []tls.Certificate{cert}
			// Its server presents the certificate too, so that an answer
			// (if any node were to send one) can reach it.
			server = []grpc.ServerOption{grpc.Creds(credentials.NewTLS(&tls.Config{
				MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert,
			}))}
		}
		a.dialOpts = []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(client)), from}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a.sys = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	r := remote.NewRemote(a.sys, remote.Configure(spec.Host, 0,
		remote.WithDialOptions(a.dialOpts...), remote.WithServerOptions(server...)))
	r.Start()
	a.rep.Address = a.sys.Address()
	pid, err := a.sys.Root.SpawnNamed(actor.PropsFromFunc(a.receive), "attacker")
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	a.rec = pid
	return a, nil
}

func (a *attackerProc) setPhase(i int) {
	a.mu.Lock()
	a.phase = i
	a.mu.Unlock()
}

// receive records whatever reaches the attacker's actor.
func (a *attackerProc) receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
		return
	}
	got := attackGot{Type: fmt.Sprintf("%T", ctx.Message())}
	if m, ok := ctx.Message().(proto.Message); ok {
		got.Type = string(m.ProtoReflect().Descriptor().FullName())
		b, _ := protojson.Marshal(m)
		got.Msg = string(b)
	}
	if s := ctx.Sender(); s != nil {
		got.Sender = s.Address + "/" + s.Id
	}
	a.mu.Lock()
	got.Phase = a.phase
	a.rep.Received = append(a.rep.Received, got)
	a.mu.Unlock()
}

func (a *attackerProc) fail(format string, args ...any) {
	a.mu.Lock()
	a.rep.Errors = append(a.rep.Errors, fmt.Sprintf(format, args...))
	a.mu.Unlock()
}

func (a *attackerProc) report() attackReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rep
}

// pidOf parses "host:port/actor".
func pidOf(s string) (*actor.PID, error) {
	addr, id, ok := strings.Cut(s, "/")
	if !ok || addr == "" || id == "" {
		return nil, fmt.Errorf("%q is not host:port/actor", s)
	}
	return actor.NewPID(addr, id), nil
}

// message builds the step's message from its type name and protojson.
func (st attackStep) message(self *actor.PID) (proto.Message, error) {
	st.Msg = strings.ReplaceAll(st.Msg, attackerSelf, self.Address+"/"+self.Id)
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(st.Type))
	if err != nil {
		return nil, fmt.Errorf("message type %s: %w", st.Type, err)
	}
	m := mt.New().Interface()
	if st.Msg != "" {
		if err := protojson.Unmarshal([]byte(st.Msg), m); err != nil {
			return nil, fmt.Errorf("%s %s: %w", st.Type, st.Msg, err)
		}
	}
	return m, nil
}

func (a *attackerProc) do(st attackStep) {
	if st.Do == "unary" {
		a.unary(st)
		return
	}
	to, err := pidOf(st.To)
	if err != nil {
		a.fail("%s: %v", st.Do, err)
		return
	}
	root := a.sys.Root
	switch st.Do {
	case "send", "request", "forge":
		m, err := st.message(a.rec)
		if err != nil {
			a.fail("%v", err)
			return
		}
		switch st.Do {
		case "send":
			root.Send(to, m)
		case "request":
			root.RequestWithCustomSender(to, m, a.rec)
		case "forge":
			as, err := pidOf(st.As)
			if err != nil {
				a.fail("forge: %v", err)
				return
			}
			root.RequestWithCustomSender(to, m, as)
		}
	case "stop":
		root.Stop(to)
	case "poison":
		root.Poison(to)
	case "control", "probe":
		a.mu.Lock()
		a.probes++
		probe := actor.NewPID(to.Address, fmt.Sprintf("volt-attack-probe-%d", a.probes))
		phase := a.phase
		a.mu.Unlock()
		f := root.RequestFuture(probe, &actor.DeadLetterResponse{}, controlTimeout)
		if st.Do == "probe" {
			return
		}
		_, err := f.Result()
		c := attackControl{Phase: phase, To: to.Address, OK: err == actor.ErrDeadLetter}
		if !c.OK {
			c.Err = fmt.Sprint(err)
		}
		a.mu.Lock()
		a.rep.Controls = append(a.rep.Controls, c)
		a.mu.Unlock()
	default:
		a.fail("unknown step %q", st.Do)
	}
}

// unary makes one raw gRPC call on Proto.Actor's Remoting service, on a
// connection of its own (so each call is a peer of its own to the node).
func (a *attackerProc) unary(st attackStep) {
	res := attackUnary{To: st.To, Method: st.Method}
	defer func() {
		a.mu.Lock()
		a.rep.Unary = append(a.rep.Unary, res)
		a.mu.Unlock()
	}()
	conn, err := grpc.Dial(st.To, a.dialOpts...)
	if err != nil {
		res.Code, res.Err = "dial", err.Error()
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := remote.NewRemotingClient(conn)
	switch st.Method {
	case "ListProcesses":
		_, err = c.ListProcesses(ctx, &remote.ListProcessesRequest{Pattern: ""})
	case "GetProcessDiagnostics":
		_, err = c.GetProcessDiagnostics(ctx, &remote.GetProcessDiagnosticsRequest{Pid: actor.NewPID(st.To, "dispatcher")})
	default:
		res.Code, res.Err = "unknown method", st.Method
		return
	}
	res.Code = status.Code(err).String()
	if err != nil {
		res.Err = err.Error()
	}
}
