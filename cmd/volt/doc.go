// Command volt is Volt CI's one binary: `volt up` runs every role in one
// process; `volt dispatcher`, `volt runner`, `volt reporter` and
// `volt observer` run them separately; `volt notify`, `volt status` and
// `volt results` talk to a running Volt. This package owns flags, logging
// setup and wiring; the work happens in actors, cluster, gitexec and store.
//
// cmd/volt must not import testing.
package main
