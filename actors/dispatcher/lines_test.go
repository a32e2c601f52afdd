package dispatcher

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/voltci/volt/messages"
)

// TestCopyRecordCopiesEveryField fails when JobRecord gains a field that
// copyRecord (and so every Persist snapshot) would drop.
func TestCopyRecordCopiesEveryField(t *testing.T) {
	src := &messages.JobRecord{}
	m := src.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		switch f.Kind() {
		case protoreflect.MessageKind:
			m.Set(f, protoreflect.ValueOfMessage(m.NewField(f).Message()))
		case protoreflect.StringKind:
			m.Set(f, protoreflect.ValueOfString("x"))
		case protoreflect.BoolKind:
			m.Set(f, protoreflect.ValueOfBool(true))
		case protoreflect.EnumKind:
			m.Set(f, protoreflect.ValueOfEnum(1))
		case protoreflect.Int32Kind:
			m.Set(f, protoreflect.ValueOfInt32(7))
		case protoreflect.Int64Kind:
			m.Set(f, protoreflect.ValueOfInt64(7))
		default:
			t.Fatalf("field %s of kind %s: teach this test and copyRecord about it", f.Name(), f.Kind())
		}
	}
	src.Job.Id, src.Result.Attempt = 1, 1
	require.True(t, proto.Equal(src, copyRecord(&messages.JobRecord{}, src)), "a snapshot lost a field")
}

// TestLineStaysOrdered places elements at random keys (mostly growing, as
// times do, sometimes from the past) and removes some: the line must stay
// sorted and hold exactly what was placed.
func TestLineStaysOrdered(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	type elem struct {
		key   int64
		links links[elem]
	}
	l := line[elem]{at: func(e *elem) *links[elem] { return &e.links }}
	key := func(e *elem) int64 { return e.key }
	es := make([]elem, 50)
	in := map[*elem]bool{}
	clock := int64(0)
	for step := range 4000 {
		e := &es[rng.IntN(len(es))]
		switch rng.IntN(4) {
		case 0:
			l.remove(e)
			delete(in, e)
		default:
			clock += rng.Int64N(3)
			e.key = clock - rng.Int64N(2)*rng.Int64N(20)
			l.place(e, key)
			in[e] = true
		}
		n := 0
		for x := l.head; x != nil; x = x.links.next {
			require.True(t, in[x], "step %d: an element not placed is in the line", step)
			require.True(t, l.has(x))
			if x.links.next != nil {
				require.LessOrEqual(t, x.key, x.links.next.key, "step %d", step)
				require.Same(t, x, x.links.next.links.prev)
			} else {
				require.Same(t, x, l.tail)
			}
			n++
		}
		require.Equal(t, len(in), n, "step %d", step)
	}
}
