// Package testreport reads the test reports jobs upload (JUnit XML and
// `go test -json`) into test cases, and records them in the store
// (RecordReport), where flaky tests are found.
//
// Reports come from the network: the parsers bound what they take (the
// report's size, the number of cases, the length of names and messages),
// refuse malformed input with an error and never panic (each is fuzzed).
//
// The parsers use only the standard library; RecordReport also needs the
// store. This package must not import Proto.Actor or any package under
// github.com/voltci/volt/actors.
package testreport
