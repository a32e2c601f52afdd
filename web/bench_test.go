package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/voltci/volt/messages"
	"github.com/voltci/volt/store"
	"github.com/voltci/volt/web"
)

// benchResults is how many results the benchmarks' store holds.
const benchResults = 100_000

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

// benchStore records benchResults results once per test binary: 5
// repositories, 8 branches each, 80% passed, 15% failed, 5% errored.
func benchStore(b *testing.B) *store.DB {
	b.Helper()
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "volt-web-bench-")
		if benchErr != nil {
			return
		}
		db, err := store.Open(benchDir)
		if err != nil {
			benchErr = err
			return
		}
		defer func() {
			if err := db.Close(); err != nil && benchErr == nil {
				benchErr = err
			}
		}()
		start := time.Now()
		branches := []string{"main", "dev", "release", "feature/a", "feature/b", "feature/c", "fix/1", "fix/2"}
		for i := 1; i <= benchResults; i++ {
			st := messages.Status_STATUS_PASSED
			switch {
			case i%20 == 0:
				st = messages.Status_STATUS_ERRORED
			case i%20 < 4:
				st = messages.Status_STATUS_FAILED
			}
			repo := fmt.Sprintf("proj%d", i%5)
			finished := int64(1_700_000_000_000 + i*1000)
			r := &messages.Result{
				Job: &messages.Job{Id: int64(i), Repo: "/srv/git/" + repo + ".git", RepoName: repo, Commit: fmt.Sprintf("%040x", i),
					Branches: []string{branches[(i/5)%len(branches)]}, Build: 1},
				Attempt: 1, RunnerId: "host/runner-1", Status: st,
				QueuedUnixMs: finished - 3000, StartedUnixMs: finished - 2000, FinishedUnixMs: finished,
			}
			if _, err := db.RecordResult(r); err != nil {
				benchErr = err
				return
			}
		}
		fmt.Fprintf(os.Stderr, "web bench: recorded %d results in %s\n", benchResults, time.Since(start).Round(time.Millisecond))
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	db, err := store.Open(benchDir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := db.Close(); err != nil {
			b.Error(err)
		}
	})
	return db
}

// BenchmarkServer measures the server's time (no network) for the
// dashboard's first page and the results API over 100,000 results.
func BenchmarkServer(b *testing.B) {
	db := benchStore(b)
	srv, err := web.New(web.Config{DB: db, Backend: &fakeDispatcher{status: baseStatus()}})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	cases := []struct{ name, path string }{
		{"dashboard", "/"},
		{"results", "/api/v1/results?limit=50"},
		{"results_by_repo_and_status", "/api/v1/results?limit=50&repo=proj3&status=failed"},
		{"results_by_branch", "/api/v1/results?limit=50&repo=proj1&branch=release"},
		{"badge", "/badge/proj2/main.svg"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s: %d %s", c.path, rec.Code, rec.Body)
				}
			}
		})
	}
}
