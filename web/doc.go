// Package web serves Volt's HTTP face: the live dashboard, a page per build
// drawing its pipeline (graph.go lays it out as SVG on the server) and a
// page per job with its log streaming while it runs, status badges, the
// JSON API under /api/v1/ (where a build is called a job, as it always
// was) and /api/v2/ (builds and their jobs), the inbound git webhook,
// Prometheus metrics and /healthz.
//
// It reads results and logs from the reporter's store (store.DB) and asks the
// dispatcher for the runners, the queue, cancels, rebuilds and notifies
// through the small Backend interface, which cluster implements over
// Proto.Actor. Live pages use server-sent events; the HTML is rendered on the
// server with html/template, so everything that comes from a repository or a
// log (branch names, output, reasons) reaches the browser escaped, and ANSI
// colour codes become spans of fixed classes.
//
// Reads are open; every POST needs the token when one is configured, compared
// in constant time, and cross-origin browser POSTs are refused. No endpoint
// reads a file path from the request: templates and static files are
// embedded, and logs come from the store.
//
// web must not import actors or its role packages (it sees the dispatcher
// only through messages and Backend), cluster, gitexec or sim.
package web
