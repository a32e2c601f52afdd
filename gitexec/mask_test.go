package gitexec

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// reference is what a Masker must write for the whole input at once,
// computed the plain way: every occurrence of every value of at least
// MinMaskLen bytes, overlapping ones merged into one stretch, each stretch
// replaced by Mask.
func reference(input []byte, values [][]byte) []byte {
	type occ struct{ start, end int }
	var occs []occ
	for _, v := range values {
		if len(v) < MinMaskLen {
			continue
		}
		for i := 0; i+len(v) <= len(input); i++ {
			if bytes.Equal(input[i:i+len(v)], v) {
				occs = append(occs, occ{i, i + len(v)})
			}
		}
	}
	slices.SortFunc(occs, func(a, b occ) int { return a.start - b.start })
	var out []byte
	cur, end := 0, -1 // end of the stretch being merged, -1 when none
	for _, o := range occs {
		if o.start < end {
			end = max(end, o.end)
			continue
		}
		if end >= 0 {
			out = append(out, Mask...)
			cur = end
		}
		out = append(out, input[cur:o.start]...)
		end = o.end
	}
	if end >= 0 {
		out = append(out, Mask...)
		cur = end
	}
	return append(out, input[cur:]...)
}

// maskChunks writes chunks to a fresh Masker one write each and returns
// what it wrote, checking its counts.
func maskChunks(t interface {
	Helper()
	Fatalf(string, ...any)
}, values [][]byte, chunks ...[]byte) []byte {
	t.Helper()
	var out bytes.Buffer
	m := NewMasker(&out, values)
	total := 0
	for _, c := range chunks {
		n, err := m.Write(c)
		if err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v", c, n, err)
		}
		total += len(c)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	in, written := m.Counts()
	if in != int64(total) || written != int64(out.Len()) {
		t.Fatalf("Counts() = %d, %d; want %d, %d", in, written, total, out.Len())
	}
	return out.Bytes()
}

func bs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func TestMaskerReplacesValues(t *testing.T) {
	cases := []struct {
		name   string
		values []string
		input  string
		want   string
	}{
		{"one occurrence", []string{"hunter22"}, "pw=hunter22\n", "pw=***\n"},
		{"every occurrence", []string{"hunter22"}, "hunter22 hunter22\nhunter22", "*** ***\n***"},
		{"touching occurrences are masked one by one", []string{"abcd"}, "abcdabcd", "******"},
		{"a value overlapping itself is one stretch", []string{"abab"}, "xababab", "x***"},
		{"two values overlapping", []string{"abcd", "cdef"}, "xabcdefx", "x***x"},
		{"a value inside another", []string{"abcdef", "bcde"}, "abcdefg bcde", "***g ***"},
		{"the longer value wins at one start", []string{"abcd", "abcdef"}, "abcdefg", "***g"},
		{"values shorter than MinMaskLen are left alone", []string{"abc", "1", ""}, "abc 1 abcd", "abc 1 abcd"},
		{"duplicates count once", []string{"s3cret", "s3cret"}, "s3cret", "***"},
		{"no values", nil, "anything", "anything"},
		{"a prefix of a value at the end is not masked", []string{"secret"}, "it is secr", "it is secr"},
		{"bytes, not text", []string{"\x00\xff\x00\xff"}, "a\x00\xff\x00\xffb", "a***b"},
		{"multi-line values", []string{"-----BEGIN\nKEY\n-----END"}, "k=-----BEGIN\nKEY\n-----END\n", "k=***\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			values := bs(tc.values...)
			require.Equal(t, tc.want, string(reference([]byte(tc.input), values)), "the reference")
			require.Equal(t, tc.want, string(maskChunks(t, values, []byte(tc.input))))
		})
	}
}

// TestMaskerSplitAtEveryPosition: an input with overlapping and separate
// occurrences, cut into two and into three writes at every position (and
// byte by byte), is masked as if written at once.
func TestMaskerSplitAtEveryPosition(t *testing.T) {
	inputs := []struct {
		values []string
		input  string
	}{
		{[]string{"DEPLOY-KEY-1234"}, "key: DEPLOY-KEY-1234\nagain DEPLOY-KEY-1234DEPLOY-KEY-1234 end\n"},
		{[]string{"abab", "babc", "xyzw"}, "ababcab ababab xyzxyzw babcxyzw abab"},
		{[]string{"aaaa"}, "aaa aaaa aaaaaaa a aaaa"},
	}
	for _, in := range inputs {
		values, input := bs(in.values...), []byte(in.input)
		want := reference(input, values)
		for i := 0; i <= len(input); i++ {
			got := maskChunks(t, values, input[:i], input[i:])
			require.Equal(t, string(want), string(got), "split at %d", i)
			for j := i; j <= len(input); j++ {
				got := maskChunks(t, values, input[:i], input[i:j], input[j:])
				require.Equal(t, string(want), string(got), "split at %d and %d", i, j)
			}
		}
		var bytewise [][]byte
		for i := range input {
			bytewise = append(bytewise, input[i:i+1])
		}
		require.Equal(t, string(want), string(maskChunks(t, values, bytewise...)), "byte by byte")
	}
}

// TestMaskerHoldsBackOnlyWhatCouldBeAValue: output that cannot begin a
// value is written at once (a live log does not lag), a tail that could
// is held until the next write or Close.
func TestMaskerHoldsBackOnlyWhatCouldBeAValue(t *testing.T) {
	var out bytes.Buffer
	m := NewMasker(&out, bs("secret-value"))
	_, err := m.Write([]byte("running tests...\n"))
	require.NoError(t, err)
	require.Equal(t, "running tests...\n", out.String())
	_, err = m.Write([]byte("token: secr"))
	require.NoError(t, err)
	require.Equal(t, "running tests...\ntoken: ", out.String(), "secr may begin the value")
	_, err = m.Write([]byte("et-val"))
	require.NoError(t, err)
	require.Equal(t, "running tests...\ntoken: ", out.String())
	_, err = m.Write([]byte("ue and more"))
	require.NoError(t, err)
	require.Equal(t, "running tests...\ntoken: *** and more", out.String())
	_, err = m.Write([]byte(" secret-"))
	require.NoError(t, err)
	require.NoError(t, m.Close())
	require.Equal(t, "running tests...\ntoken: *** and more secret-", out.String(), "Close writes what could have been a value")
	_, err = m.Write([]byte("x"))
	require.ErrorIs(t, err, ErrMaskerClosed)
	require.NoError(t, m.Close(), "a second Close does nothing")
}

// TestMaskerBoundsWhatItHolds: a value that overlaps itself in an endless
// run grows one masked stretch; the Masker settles its Mask instead of
// holding the run, and the output is still one Mask.
func TestMaskerBoundsWhatItHolds(t *testing.T) {
	var out bytes.Buffer
	m := NewMasker(&out, bs("aaaa"))
	chunk := bytes.Repeat([]byte("a"), 4096)
	for range 100 {
		_, err := m.Write(chunk)
		require.NoError(t, err)
		m.mu.Lock()
		held := len(m.held)
		m.mu.Unlock()
		require.LessOrEqual(t, held, 128<<10, "held bytes: bounded, not the whole run")
	}
	_, err := m.Write([]byte("b"))
	require.NoError(t, err)
	require.NoError(t, m.Close())
	require.Equal(t, "***b", out.String())
}

type brokenWriter struct{ after int }

func (w *brokenWriter) Write(p []byte) (int, error) {
	if w.after <= 0 {
		return 0, errors.New("disk full")
	}
	w.after--
	return len(p), nil
}

func TestMaskerReportsTheWriterError(t *testing.T) {
	m := NewMasker(&brokenWriter{after: 1}, bs("secret"))
	_, err := m.Write([]byte("one\n"))
	require.NoError(t, err)
	_, err = m.Write([]byte("two\n"))
	require.ErrorContains(t, err, "disk full")
	require.ErrorContains(t, m.Close(), "disk full")
}

// TestMaskerConcurrentWrites: stdout and stderr of a step may be copied by
// two goroutines; whole writes stay whole and every value is masked.
func TestMaskerConcurrentWrites(t *testing.T) {
	var out bytes.Buffer
	m := NewMasker(&out, bs("p4ssw0rd"))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				_, err := fmt.Fprintf(m, "goroutine %d line %d p4ssw0rd\n", g, i)
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, m.Close())
	require.NotContains(t, out.String(), "p4ssw0rd")
	require.Equal(t, 800, strings.Count(out.String(), "***\n"))
}

// TestMaskerProperty: for random values over a small alphabet (so that
// they overlap one another and themselves) and random inputs cut into
// random writes, the Masker writes exactly what the reference does; no
// value survives in the output; and with one value that cannot overlap
// itself, that is strings.ReplaceAll.
func TestMaskerProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		alphabet := rapid.SampledFrom([]byte("abc\n"))
		values := rapid.SliceOfN(rapid.SliceOfN(alphabet, 1, 9), 1, 4).Draw(t, "values")
		input := rapid.SliceOfN(alphabet, 0, 300).Draw(t, "input")
		cuts := rapid.SliceOfN(rapid.IntRange(0, len(input)), 0, 8).Draw(t, "cuts")
		slices.Sort(cuts)
		var chunks [][]byte
		prev := 0
		for _, c := range cuts {
			chunks = append(chunks, input[prev:c])
			prev = c
		}
		chunks = append(chunks, input[prev:])

		got := maskChunks(t, values, chunks...)
		want := reference(input, values)
		if !bytes.Equal(got, want) {
			t.Fatalf("masked %q in %d writes:\n got %q\nwant %q", input, len(chunks), got, want)
		}
		for _, v := range values {
			if len(v) >= MinMaskLen && bytes.Contains(got, v) {
				t.Fatalf("value %q survives in %q", v, got)
			}
		}
		if len(values) == 1 && len(values[0]) >= MinMaskLen && failure(values[0])[len(values[0])-1] == 0 {
			if s := strings.ReplaceAll(string(input), string(values[0]), Mask); s != string(got) {
				t.Fatalf("one value %q: got %q, strings.ReplaceAll gives %q", values[0], got, s)
			}
		}
	})
}

// FuzzMasker compares the Masker, fed in two writes cut at any point, with
// the reference, and checks that no value survives.
func FuzzMasker(f *testing.F) {
	f.Add([]byte("pw=hunter22 hunter22"), []byte("hunter22"), []byte("er22 h"), uint16(7))
	f.Add([]byte("ababababab"), []byte("abab"), []byte("babx"), uint16(3))
	f.Add([]byte("aaaaaaaaaa"), []byte("aaaa"), []byte("aaaaa"), uint16(0))
	f.Fuzz(func(t *testing.T, input, v1, v2 []byte, cut uint16) {
		if len(v1) > 64 || len(v2) > 64 || len(input) > 4096 {
			return
		}
		values := [][]byte{v1, v2}
		at := int(cut) % (len(input) + 1)
		got := maskChunks(t, values, input[:at], input[at:])
		want := reference(input, values)
		if !bytes.Equal(got, want) {
			t.Fatalf("masked %q cut at %d:\n got %q\nwant %q", input, at, got, want)
		}
		for _, v := range values {
			if len(v) >= MinMaskLen && !bytes.Contains(v, []byte("*")) && bytes.Contains(got, v) {
				t.Fatalf("value %q survives in %q", v, got)
			}
		}
	})
}
