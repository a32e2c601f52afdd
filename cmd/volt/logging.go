package main

import (
	"fmt"
	"log/slog"
	"os"
)

// newLogger returns the process's logger: slog text on stderr (no colour
// codes), at the given level.
func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErr("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// fatal turns a start-up failure into a runtime error with context.
func fatal(what string, err error) error {
	return &exitError{code: exitRuntime, err: fmt.Errorf("%s: %w", what, err)}
}

// actorLogLevel is the level of Proto.Actor's own logs: errors only, unless
// the user asked for debug output.
func actorLogLevel(level string) slog.Level {
	if level == "debug" {
		return slog.LevelDebug
	}
	return slog.LevelError
}
