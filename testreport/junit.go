package testreport

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds how deeply a JUnit report's elements nest.
const maxDepth = 256

// ParseJUnit reads a JUnit XML report: a <testsuites> or <testsuite>
// root, suites nested in suites, and <testcase classname name time>
// elements whose <failure>, <error> or <skipped> child (with its message
// attribute and text) says how they ended; a case with none passed.
// Missing attributes are tolerated (a case without a name is
// "(unnamed)"); other elements (<properties>, <system-out>, ...) are
// skipped. Malformed XML is an error.
func ParseJUnit(data []byte) ([]Case, error) {
	if err := checkSize(data); err != nil {
		return nil, err
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.CharsetReader = charsetReader
	var c collector
	var suites []string // the names of the enclosing <testsuite>s, innermost last
	depth, seenRoot := 0, false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("JUnit report: %w: is it well-formed XML?", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if !seenRoot {
				seenRoot = true
				if t.Name.Local != "testsuites" && t.Name.Local != "testsuite" {
					return nil, fmt.Errorf("JUnit report whose root is <%s>: want <testsuites> or <testsuite>", t.Name.Local)
				}
			}
			depth++
			if depth > maxDepth {
				return nil, fmt.Errorf("JUnit report nested more than %d elements deep", maxDepth)
			}
			switch t.Name.Local {
			case "testsuite":
				suites = append(suites, attr(t, "name"))
			case "testcase":
				suite := ""
				if len(suites) > 0 {
					suite = suites[len(suites)-1]
				}
				k, err := readCase(d, t, suite)
				if err != nil {
					return nil, err
				}
				depth-- // readCase read its end
				if err := c.add(k); err != nil {
					return nil, err
				}
			}
		case xml.EndElement:
			depth--
			if t.Name.Local == "testsuite" && len(suites) > 0 {
				suites = suites[:len(suites)-1]
			}
		}
	}
	if !seenRoot {
		return nil, errors.New("JUnit report without any element: is the file empty?")
	}
	return c.cases, nil
}

// readCase reads one <testcase> up to its end element.
func readCase(d *xml.Decoder, start xml.StartElement, suite string) (Case, error) {
	k := Case{Suite: attr(start, "classname"), Name: attr(start, "name"), Duration: seconds(attr(start, "time")), Status: Passed}
	if k.Suite == "" {
		k.Suite = suite
	}
	if k.Name == "" {
		k.Name = "(unnamed)"
	}
	var msg strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return k, fmt.Errorf("JUnit report: test case %q: %w: is it well-formed XML?", k.Name, noEOF(err))
		}
		switch t := tok.(type) {
		case xml.EndElement:
			k.Message = clip(strings.TrimSpace(msg.String()), MaxMessage)
			return k, nil
		case xml.StartElement:
			st := Status("")
			switch t.Name.Local {
			case "failure":
				st = Failed
			case "error":
				st = Errored
			case "skipped":
				st = Skipped
			}
			if st == "" {
				if err := d.Skip(); err != nil {
					return k, fmt.Errorf("JUnit report: test case %q: %w", k.Name, noEOF(err))
				}
				continue
			}
			if st.rank() > k.Status.rank() || k.Status == Passed {
				k.Status = st
			}
			text, err := readText(d)
			if err != nil {
				return k, fmt.Errorf("JUnit report: test case %q: %w", k.Name, err)
			}
			m := attr(t, "message")
			if msg.Len() > 0 {
				msg.WriteString("\n")
			}
			switch {
			case m == "" || strings.Contains(text, m):
				msg.WriteString(text)
			case text == "":
				msg.WriteString(m)
			default:
				msg.WriteString(m + "\n" + text)
			}
		}
	}
}

// readText reads the text of the element just started, up to its end,
// skipping elements inside it and keeping at most MaxMessage+1 bytes.
func readText(d *xml.Decoder) (string, error) {
	var b strings.Builder
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return "", fmt.Errorf("%w: is it well-formed XML?", noEOF(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				return strings.TrimSpace(b.String()), nil
			}
			depth--
		case xml.CharData:
			if room := MaxMessage + 1 - b.Len(); room > 0 {
				b.Write(t[:min(len(t), room)])
			}
		}
	}
}

// noEOF makes an end of input inside an element an error that says so.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func attr(e xml.StartElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// charsetReader lets reports declared in Latin-1 (as some JVM tools write
// them) or ASCII be read; UTF-8 needs none.
func charsetReader(charset string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "windows-1252", "cp1252":
		return &latin1{r: bufio.NewReader(in)}, nil
	case "us-ascii", "ascii":
		return in, nil
	}
	return nil, fmt.Errorf("JUnit report in charset %q: write it in UTF-8", charset)
}

// latin1 turns ISO-8859-1 bytes into UTF-8 (Windows-1252's extra
// characters come out as the C1 controls they replace).
type latin1 struct {
	r       *bufio.Reader
	pending []byte
}

func (l *latin1) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(l.pending) > 0 {
			c := copy(p[n:], l.pending)
			l.pending = l.pending[c:]
			n += c
			continue
		}
		b, err := l.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if b < utf8.RuneSelf {
			p[n] = b
			n++
			continue
		}
		l.pending = utf8.AppendRune(nil, rune(b))
	}
	return n, nil
}
