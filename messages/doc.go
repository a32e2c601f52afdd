// Package messages is Volt's wire contract: the protobuf messages that cross
// between the observer, dispatcher, runners and reporter, the generated Go
// code for them (committed, so neither the build nor CI needs a generator),
// and the protocol version.
//
// Regenerate with `make proto` after editing proto/volt/v1/volt.proto; it
// also records the .proto files' checksum in proto.sum, which a test compares
// so that stale generated code fails `make test`.
//
// This package must not import any other Volt package.
package messages
