package messages

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fill sets every scalar, string, repeated string and enum field of m (and
// of its message fields, recursively) to a non-zero value.
func fill(m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		switch {
		case f.IsList() && f.Kind() == protoreflect.StringKind:
			l := m.Mutable(f).List()
			l.Append(protoreflect.ValueOfString("a"))
			l.Append(protoreflect.ValueOfString("b"))
		case f.IsList() && f.Kind() == protoreflect.Int32Kind:
			m.Mutable(f).List().Append(protoreflect.ValueOfInt32(3))
		case f.IsList() && f.Kind() == protoreflect.MessageKind:
			fill(m.Mutable(f).List().AppendMutable().Message())
		case f.Kind() == protoreflect.MessageKind && !f.IsList() && !f.IsMap():
			fill(m.Mutable(f).Message())
		case f.Kind() == protoreflect.StringKind:
			m.Set(f, protoreflect.ValueOfString(string(f.Name())))
		case f.Kind() == protoreflect.BoolKind:
			m.Set(f, protoreflect.ValueOfBool(true))
		case f.Kind() == protoreflect.Int32Kind:
			m.Set(f, protoreflect.ValueOfInt32(int32(f.Number())+7))
		case f.Kind() == protoreflect.Int64Kind:
			m.Set(f, protoreflect.ValueOfInt64(int64(f.Number())+1000))
		case f.Kind() == protoreflect.EnumKind:
			m.Set(f, protoreflect.ValueOfEnum(2))
		}
	}
}

// TestClonesCopyEveryField fails when a field is added to the .proto but
// not to the hand-written clones.
func TestClonesCopyEveryField(t *testing.T) {
	rec := &JobRecord{}
	fill(rec.ProtoReflect())
	if got := CloneJobRecord(rec); !proto.Equal(got, rec) {
		t.Fatalf("CloneJobRecord lost a field:\n got %v\nwant %v", got, rec)
	}
	if got := CloneResult(rec.Result); !proto.Equal(got, rec.Result) {
		t.Fatalf("CloneResult lost a field")
	}
	c := CloneJob(rec.Job)
	c.Branches[0] = "changed"
	if rec.Job.Branches[0] == "changed" {
		t.Fatal("CloneJob shares the branches slice")
	}
}
