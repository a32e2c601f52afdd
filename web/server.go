package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
)

// Backend is what the web server needs of the dispatcher. cluster implements
// it over Proto.Actor; tests use a fake.
type Backend interface {
	// Status returns the dispatcher's runners, jobs and counters.
	Status(ctx context.Context) (*messages.StatusReply, error)
	// Cancel asks the dispatcher to cancel a queued or running build.
	Cancel(ctx context.Context, req *messages.CancelRequest) (*messages.CancelReply, error)
	// Rebuild asks the dispatcher for a new build of a commit.
	Rebuild(ctx context.Context, req *messages.RebuildRequest) (*messages.RebuildReply, error)
	// Notify asks the observers to look at a repository now.
	Notify(ctx context.Context, req *messages.Notify) (*messages.NotifyAck, error)
}

// Config configures a Server.
type Config struct {
	// DB holds the results and logs shown.
	DB *store.DB
	// Backend reaches the dispatcher.
	Backend Backend
	// Reporter, when set, is the reporter whose results DB holds (the one
	// in this process): the dashboard and /api/v1/status show when its
	// store fails, as they do for the dispatcher's.
	Reporter StatusSource
	// Token, when set, is required by every POST (Authorization: Bearer, or
	// a "token" form field) and passed on to the dispatcher.
	Token string
	// ProtectReads makes every read (pages, API, live streams, logs,
	// badges, metrics) need the token too, as a bearer token or as the
	// password of HTTP basic authentication (so a browser asks for it);
	// only /healthz stays open. Set when the server listens off loopback
	// without --public-read.
	ProtectReads bool
	// Logger receives request errors; nil discards them.
	Logger *slog.Logger
	// Metrics, when set, is served on /metrics; nil makes a fresh one.
	Metrics *Metrics
	// Poll is how often live pages look for changes (default 500 ms).
	Poll time.Duration
	// StatusTimeout bounds each request to the dispatcher (default 3 s).
	StatusTimeout time.Duration
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Server is Volt's HTTP server. Create it with New and run it with Serve.
type Server struct {
	cfg     Config
	db      *store.DB
	log     *slog.Logger
	pages   *template.Template
	metrics *Metrics
	mux     *http.ServeMux
	hub     *hub
	builds  buildSource
}

// New returns a server for cfg. It does not listen yet.
func New(cfg Config) (*Server, error) {
	if cfg.DB == nil || cfg.Backend == nil {
		return nil, errors.New("web: a store and a dispatcher backend are required: this is a bug in the caller")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.StatusTimeout <= 0 {
		cfg.StatusTimeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	pages, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse templates: %w", err)
	}
	s := &Server{cfg: cfg, db: cfg.DB, log: cfg.Logger, pages: pages, metrics: cfg.Metrics, hub: newHub()}
	s.builds = &storeBuilds{db: cfg.DB, status: s.status}
	s.metrics.watch(cfg.Backend, cfg.DB, cfg.StatusTimeout)
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /{$}", s.dashboard)
	m.HandleFunc("GET /events", s.dashboardEvents)
	m.HandleFunc("GET /jobs/{id}", s.jobPage)
	m.HandleFunc("GET /jobs/{id}/events", s.jobEvents)
	m.HandleFunc("GET /jobs/{id}/log", s.rawLog)
	m.HandleFunc("POST /jobs/{id}/cancel", s.cancelForm)
	m.HandleFunc("POST /jobs/{id}/rebuild", s.rebuildForm)
	m.HandleFunc("GET /commits/{commit}", s.commitPage)
	m.HandleFunc("GET /badge/{repo}/{branch...}", s.badge)
	m.HandleFunc("GET /healthz", s.healthz)
	m.Handle("GET /metrics", s.metrics.Handler())

	m.HandleFunc("GET /api/v1/results", s.apiResults)
	m.HandleFunc("GET /api/v1/results/{commit}", s.apiResult)
	m.HandleFunc("GET /api/v1/jobs/{id}", s.apiJob)
	m.HandleFunc("GET /api/v1/runners", s.apiRunners)
	m.HandleFunc("GET /api/v1/queue", s.apiQueue)
	m.HandleFunc("GET /api/v1/status", s.apiStatus)
	m.HandleFunc("POST /api/v1/jobs/{id}/cancel", s.apiCancel)
	m.HandleFunc("POST /api/v1/commits/{commit}/rebuild", s.apiRebuild)
	m.HandleFunc("POST /api/v1/hooks/git", s.apiHook)
	s.buildRoutes(m)    // apiv2.go: /api/v2/builds and the build pages
	s.artifactRoutes(m) // artifacts.go
	s.testRoutes(m)     // tests.go
	s.mux = m
}

// Handler returns the server's routes with its security headers and
// cross-origin protection; Serve uses it, tests may too.
func (s *Server) Handler() http.Handler {
	cop := http.NewCrossOriginProtection()
	inner := cop.Handler(s.mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		if s.cfg.ProtectReads && r.URL.Path != "/healthz" && !s.authorized(r) {
			h.Set("WWW-Authenticate", `Basic realm="Volt CI", charset="UTF-8"`)
			s.fail(w, http.StatusUnauthorized, "this Volt needs its token to be read: send Authorization: Bearer TOKEN (or the token as the basic-auth password)")
			return
		}
		inner.ServeHTTP(w, r)
	})
}

// Serve runs the live-update poller and serves HTTP on l until ctx ends,
// then closes every connection (live streams included) and returns.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.poll(base) })
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel() // ends the poller and the live streams
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if serr := srv.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("stop the web server: %w", serr)
	}
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// authorized reports whether r carries the token (or none is configured).
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Token == "" {
		return true
	}
	got := ""
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		got = strings.TrimPrefix(h, "Bearer ")
	} else if _, pw, ok := r.BasicAuth(); ok {
		got = pw
	} else if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		got = r.PostFormValue("token")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if _, err := s.db.LastResultID(); err != nil {
		s.log.Warn("health check: store unreadable", "error", err)
		http.Error(w, "store unreadable", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// status asks the dispatcher for its state within the configured timeout.
func (s *Server) status(ctx context.Context) (*messages.StatusReply, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StatusTimeout)
	defer cancel()
	return s.cfg.Backend.Status(ctx)
}

// who names the caller of a cancel or rebuild in the dispatcher's log.
func who(r *http.Request) string { return "web (" + r.RemoteAddr + ")" }
