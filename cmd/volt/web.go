package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/voltci/volt/cluster"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/web"
)

// defaultHTTP is where `volt up` and `volt reporter` serve the web UI.
const defaultHTTP = "127.0.0.1:8080"

// webFlags are the web server's and the results retention's flags.
type webFlags struct {
	http       string
	keepBuilds int
	keepFor    time.Duration
	publicRead bool
	tlsCert    string
	tlsKey     string
}

func (f *webFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.http, "http", defaultHTTP, "host:port of the web dashboard, JSON API and /metrics; \"\" for none (off loopback it needs --token, and reads need it too unless --public-read)")
	fs.BoolVar(&f.publicRead, "public-read", false, "off loopback, let anyone read the dashboard and the read API without the token")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve the web UI over HTTPS with this certificate (PEM; with --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	fs.IntVar(&f.keepBuilds, "keep-builds", 500, "results kept per branch of each repository (older ones are pruned with their logs and result files); 0 keeps all")
	fs.Var(newDuration(&f.keepFor, 0), "keep-for", "also prune results older than this (for example 720h); 0 keeps results of any age")
}

func (f *webFlags) validate() error {
	if f.keepBuilds < 0 {
		return usageErr("--keep-builds must be 0 or more")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return usageErr("--tls-cert and --tls-key go together")
	}
	if f.tlsCert != "" {
		if _, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey); err != nil {
			return usageErr("--tls-cert %s, --tls-key %s: %v", f.tlsCert, f.tlsKey, err)
		}
	}
	return nil
}

// startWeb serves the web UI on f.http until the returned stop is called. A
// default address that is taken only disables the UI with a warning, so
// that a second Volt on one machine still runs; an address given with
// --http must work.
func startWeb(cmd *cobra.Command, f webFlags, db *store.DB, backend web.Backend, reporter web.StatusSource, token string, metrics *web.Metrics, logger *slog.Logger) (stop func(), err error) {
	if f.http == "" {
		return func() {}, nil
	}
	protect := !cluster.IsLoopback(f.http) && !f.publicRead
	srv, err := web.New(web.Config{DB: db, Backend: backend, Reporter: reporter, Token: token, ProtectReads: protect,
		Logger: logger.With("component", "web"), Metrics: metrics})
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", f.http)
	if err != nil {
		if !cmd.Flags().Changed("http") {
			logger.Warn("web UI disabled: its default address is taken; pass --http HOST:PORT to choose another", "http", f.http, "error", err)
			return func() {}, nil
		}
		return nil, fmt.Errorf("listen on --http %s: %w (is another Volt already serving there? pass another --http)", f.http, err)
	}
	scheme := "http"
	if f.tlsCert != "" {
		pair, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			l.Close()
			return nil, usageErr("--tls-cert %s, --tls-key %s: %v", f.tlsCert, f.tlsKey, err)
		}
		l = tls.NewListener(l, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}})
		scheme = "https"
	}
	logger.Info("web UI ready", "url", scheme+"://"+l.Addr().String()+"/", "reads_need_token", protect)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ctx, l); err != nil {
			logger.Error("web server stopped", "error", err)
		}
	})
	return func() { cancel(); wg.Wait() }, nil
}

// pruneEvery is how often retention runs (and once at start).
const pruneEvery = time.Hour

// startRetention prunes old results now and every pruneEvery until stop.
func startRetention(f webFlags, db *store.DB, logger *slog.Logger) (stop func()) {
	rt := store.Retention{KeepBuilds: f.keepBuilds, KeepFor: f.keepFor}
	if rt.KeepBuilds <= 0 && rt.KeepFor <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(pruneEvery)
		defer t.Stop()
		for {
			st, err := db.Prune(rt, time.Now())
			switch {
			case err != nil && !errors.Is(err, context.Canceled):
				logger.Error("pruning old results failed; will retry", "error", err, "retry_in", pruneEvery)
			case st.Results > 0:
				logger.Info("pruned old results", "results", st.Results, "logs", st.Logs, "result_files", st.ResultFiles)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// startMetrics serves m on addr (`--metrics HOST:PORT` of volt dispatcher,
// runner and observer) until the returned stop is called; "" serves nothing.
func startMetrics(addr string, m *web.Metrics, logger *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --metrics %s: %w (pass another --metrics)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	logger.Info("metrics ready", "url", "http://"+l.Addr().String()+"/metrics")
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "error", err)
		}
	})
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			logger.Warn("metrics server shutdown", "error", err)
		}
		wg.Wait()
	}, nil
}

// metricsFlag registers --metrics on a role's command.
func metricsFlag(cmd *cobra.Command, addr *string) {
	cmd.Flags().StringVar(addr, "metrics", "", "host:port serving this process's Prometheus /metrics (default none; off loopback it needs --token)")
}
