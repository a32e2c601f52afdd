package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/voltci/volt/cluster"
)

// serve runs a node until a role asks to exit or SIGINT/SIGTERM arrives,
// then shuts it down. onSignal, if set, runs first on a signal (a runner
// uses it to give its job back) and the node is expected to exit by itself.
func serve(node *cluster.Node, logger *slog.Logger, onSignal func(os.Signal)) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	select {
	case s := <-sigs:
		logger.Info("shutting down", "signal", s.String())
		if onSignal != nil {
			onSignal(s)
			select {
			case <-node.Done():
			case s = <-sigs:
				logger.Warn("second signal: stopping at once", "signal", s.String())
			}
		}
		node.Shutdown()
		code, reason := node.ExitStatus()
		if code != 0 {
			return &exitError{code: code, err: fmt.Errorf("%s", reason)}
		}
		return nil
	case <-node.Done():
		code, reason := node.ExitStatus()
		node.Shutdown()
		if code != 0 {
			return &exitError{code: code, err: fmt.Errorf("%s", reason)}
		}
		logger.Info("stopped", "reason", reason)
		return nil
	}
}

// wrapperCommand is the hidden first argument that turns the volt binary
// into the job wrapper (see gitexec.WrapperMain).
const wrapperCommand = "exec-wrapper"

// wrapperArgv is the prefix that starts a job step through this binary.
func wrapperArgv() ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the volt binary for the job wrapper: %w", err)
	}
	return []string{self, wrapperCommand, "--"}, nil
}
