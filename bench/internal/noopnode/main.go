package main

import (
	cmap "github.com/orcaman/concurrent-map"

	"bufio"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/pki"
)

func main() {
	cmap.SHARD_COUNT = 1 // as cmd/volt's main sets it, before any actor system
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "noopnode:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		mode       = flag.String("mode", "", "dispatcher, runner, echo or ping")
		listen     = flag.String("listen", "127.0.0.1:0", "host:port for Proto.Actor remote")
		dispServer = flag.String("dispatcher", "", "runner: the dispatcher's host:port")
		id         = flag.String("id", "runner", "runner: its id")
		logDir     = flag.String("log-dir", "", "runner: where each attempt's output is kept while it is streamed (as `volt runner`'s <work-dir>/logs)")
		peers      = flag.String("peers", "", "ping: the echo nodes' host:port, comma-separated")
		level      = flag.String("log-level", "info", "debug, info, warn or error (info is volt's default)")
		cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of the process's life to this file")
		tracePath  = flag.String("trace", "", "dispatcher, runner: write the time of each job's points to this file at exit (see trace.go)")
		credDir    = flag.String("credentials", "", "dispatcher, runner: mutual TLS with the CA in this directory, as volt roles run (default: plain remote)")
	)
	flag.Parse()
	var l slog.Level
	if err := l.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level %q: %w", *level, err)
	}
	// The same logger as cmd/volt's: slog text on stderr.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	nc := cluster.NodeConfig{Listen: *listen, Logger: logger, ActorLogLevel: slog.LevelError}
	if *credDir != "" {
		role, name := pki.RoleDispatcher, "bench"
		if *mode == "runner" {
			role, name = pki.RoleRunner, *id
		}
		creds, err := pki.Open(pki.Options{Dir: *credDir, Identity: pki.Identity{Role: role, Name: name}, Hosts: []string{"127.0.0.1"}, Create: true})
		if err != nil {
			return err
		}
		nc.Credentials = creds
	} else {
		nc.ServerOptions = append(nc.ServerOptions, plainStamp(*mode))
	}
	node, err := cluster.Start(nc)
	if err != nil {
		return err
	}
	var t *tracer
	if *tracePath != "" {
		t = &tracer{}
		defer func() {
			if err := t.write(*tracePath); err != nil {
				logger.Error("write the trace", "error", err)
			}
		}()
	}
	var (
		handle func(cmd []string, out io.Writer) error // a control command
		stop   func()                                  // before node.Shutdown
	)
	switch *mode {
	case "dispatcher":
		d, err := startDispatcher(node, logger, t)
		if err != nil {
			node.Shutdown()
			return err
		}
		handle = d.handle
	case "runner":
		if *dispServer == "" {
			node.Shutdown()
			return fmt.Errorf("-mode runner needs -dispatcher")
		}
		stop, err = startRunner(node, logger, *id, *dispServer, *logDir, t)
		if err != nil {
			node.Shutdown()
			return err
		}
	case "echo":
		if err := startEcho(node); err != nil {
			node.Shutdown()
			return err
		}
	case "ping":
		p, err := startPing(node, strings.Split(*peers, ","))
		if err != nil {
			node.Shutdown()
			return err
		}
		handle = p.handle
	default:
		node.Shutdown()
		return fmt.Errorf("-mode %q: want dispatcher, runner, echo or ping", *mode)
	}
	fmt.Printf("ready %s\n", node.Address)

	// Serve control commands until stdin ends, a signal arrives or a role exits.
	ended := make(chan error, 1)
	go func() { ended <- control(os.Stdin, os.Stdout, handle) }()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	var cerr error
	select {
	case cerr = <-ended:
	case s := <-sigs:
		logger.Info("shutting down", "signal", s.String())
	case <-node.Done():
		_, reason := node.ExitStatus()
		cerr = fmt.Errorf("a role exited: %s", reason)
	}
	if stop != nil {
		stop()
		select {
		case <-node.Done():
		case <-time.After(2 * time.Second):
		}
	}
	node.Shutdown()
	return cerr
}

// control reads one command a line from in and answers on out; it returns
// at the end of in. Every answer ends with a newline.
func control(in io.Reader, out io.Writer, handle func([]string, io.Writer) error) error {
	sc := bufio.NewScanner(in)
	w := bufio.NewWriter(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if handle == nil {
			fmt.Fprintf(w, "error: this mode takes no commands\n")
		} else if err := handle(f, w); err != nil {
			fmt.Fprintf(w, "error: %v\n", err)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

// writeDone answers a finished batch: its size, the time from its first
// send to its last answer, and every round trip in nanoseconds.
func writeDone(w io.Writer, n int, elapsed time.Duration, rtts []time.Duration) {
	fmt.Fprintf(w, "done n=%d elapsed_ns=%d rtt_ns=", n, elapsed.Nanoseconds())
	for i, d := range rtts {
		if i > 0 {
			fmt.Fprint(w, ",")
		}
		fmt.Fprint(w, d.Nanoseconds())
	}
	fmt.Fprintln(w)
}
