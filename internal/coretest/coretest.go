package coretest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/voltci/volt/actors"
)

// T0 is the virtual clock's start; tests add durations to it.
var T0 = time.Unix(1_700_000_000, 0)

// Commit returns a valid 40-character commit id numbered n.
func Commit(n int) string { return fmt.Sprintf("%040x", n) }

// EffectsOf returns the effects of type T in fx, in order.
func EffectsOf[T any](fx []actors.Effect) []T {
	var out []T
	for _, e := range fx {
		if x, ok := e.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

// Sends returns the messages of type T that the Send effects in fx carry,
// in order, whatever their destination.
func Sends[T proto.Message](fx []actors.Effect) []T {
	var out []T
	for _, s := range EffectsOf[actors.Send](fx) {
		if m, ok := s.Msg.(T); ok {
			out = append(out, m)
		}
	}
	return out
}

// SendsTo is Sends restricted to the Send effects to one address.
func SendsTo[T proto.Message](fx []actors.Effect, to actors.Addr) []T {
	var out []T
	for _, s := range EffectsOf[actors.Send](fx) {
		if m, ok := s.Msg.(T); ok && s.To == to {
			out = append(out, m)
		}
	}
	return out
}

// KnownBug skips a test that shows a known bug in a core. Set
// VOLT_RUN_BUGS=1 to run it anyway and watch it fail.
func KnownBug(t testing.TB, desc string) {
	t.Helper()
	if os.Getenv("VOLT_RUN_BUGS") == "" {
		t.Skip("BUG: " + desc)
	}
}
