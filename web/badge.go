package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"text/template"
	"time"

	"github.com/voltci/volt/store"
)

// badgeColours maps what a badge says to its colour; the text comes only
// from this fixed set, never from the request.
var badgeColours = map[string]string{
	"passed":    "#2da44e",
	"failed":    "#cf222e",
	"errored":   "#cf222e",
	"timed_out": "#bf8700",
	"cancelled": "#bf8700",
	"queued":    "#8c959f",
	"running":   "#0969da",
	"unknown":   "#8c959f",
}

// badgeSVG is a shields-style badge. text/template is enough: both values
// come from badgeColours' fixed keys and values.
var badgeSVG = template.Must(template.New("badge").Parse(`<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="20" role="img" aria-label="volt: {{.Text}}">
<title>volt: {{.Text}}</title>
<rect width="38" height="20" fill="#555"/>
<rect x="38" width="{{.Right}}" height="20" fill="{{.Colour}}"/>
<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">
<text x="19" y="14">volt</text>
<text x="{{.Mid}}" y="14">{{.Text}}</text>
</g>
</svg>
`))

// badge serves /badge/<repo>/<branch>.svg: the status of the newest result
// of that branch, "unknown" when there is none.
func (s *Server) badge(w http.ResponseWriter, r *http.Request) {
	repo := r.PathValue("repo")
	branch, ok := strings.CutSuffix(r.PathValue("branch"), ".svg")
	if !ok || repo == "" || branch == "" {
		http.Error(w, "want /badge/<repo>/<branch>.svg", http.StatusNotFound)
		return
	}
	text := "unknown"
	res, err := s.db.LatestOnBranch(repo, branch)
	switch {
	case err == nil:
		text = res.GetStatus().Name()
	case !errors.Is(err, store.ErrNotFound):
		s.log.Warn("web: badge", "error", err)
	}
	if text == "unknown" {
		if j, ok := s.inflight(r.Context(), repo, branch); ok {
			text = j
		}
	}
	colour, ok := badgeColours[text]
	if !ok {
		colour = badgeColours["unknown"]
	}
	right := 10 + 7*len(text)
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-cache, max-age=0")
	if err := badgeSVG.Execute(w, map[string]any{
		"Text": text, "Colour": colour, "Right": right, "Width": 38 + right, "Mid": 38 + right/2,
	}); err != nil {
		s.log.Debug("web: write a badge", "error", err)
	}
}

// inflight says whether a branch without a result has a build queued or running.
func (s *Server) inflight(ctx context.Context, repo, branch string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := s.cfg.Backend.Status(ctx)
	if err != nil {
		return "", false
	}
	for _, rec := range st.GetJobs() {
		v := fromRecord(rec)
		if v.RepoName == repo && v.State != stateDone {
			for _, b := range v.Branches {
				if b == branch {
					return v.State, true
				}
			}
		}
	}
	return "", false
}

// timeoutCtx bounds a request to the dispatcher.
func timeoutCtx(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), d)
}
