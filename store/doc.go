// Package store is Volt's durable state on disk: one SQLite database,
// <data-dir>/volt.db, opened with the pure-Go modernc.org/sqlite driver, plus
// the test_results/<commit> files the reporter writes beside it.
//
// It holds the dispatcher's durable job queue (job records and branch
// cursors, saved together in one transaction so that a crash never separates
// a cursor from the jobs created from it), the reporter's results and
// attempt logs (one of each per job of a build, and each complete build's
// aggregate: builds.go), and the dispatcher's secrets, each sealed with AES-256-GCM
// under a key kept in a file outside the database (secrets.go). The schema
// is created and upgraded by numbered migrations; a newer binary opens an
// older data directory, an older binary refuses a newer one with a message
// that says to upgrade.
//
// Records are kept as their protobuf bytes (package messages) plus the few
// columns that queries need, so adding a field to a message needs no
// migration.
//
// This package must not import Proto.Actor (github.com/asynkron/protoactor-go)
// or any package under github.com/voltci/volt/actors: the actors depend on
// the store, never the other way round. Its only Volt dependency is messages.
package store
