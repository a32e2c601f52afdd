package web

import (
	"html"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ansiHTML turns log bytes into escaped HTML: SGR colour and bold codes
// become <span> elements with fixed class names (ansi-b, ansi-fgN, ansi-bgN),
// every other escape sequence and carriage return is dropped, and the text is
// HTML-escaped. It keeps the style and any incomplete sequence or UTF-8
// character between calls, so a log can be converted chunk by chunk.
type ansiHTML struct {
	bold    bool
	fg, bg  int // 0 = default, else 1..16 (30-37 -> 1-8, 90-97 -> 9-16)
	pending []byte
}

// Convert returns the HTML for the next part of the log.
func (a *ansiHTML) Convert(p []byte) string {
	buf := append(a.pending, p...)
	a.pending = nil
	var out strings.Builder
	var text []byte
	flush := func() {
		if len(text) == 0 {
			return
		}
		s := html.EscapeString(strings.ToValidUTF8(string(text), "\uFFFD"))
		if cls := a.class(); cls != "" {
			out.WriteString(`<span class="` + cls + `">` + s + `</span>`)
		} else {
			out.WriteString(s)
		}
		text = text[:0]
	}
	i := 0
	for i < len(buf) {
		c := buf[i]
		switch {
		case c == 0x1b:
			n, params, final, complete := escapeSeq(buf[i:])
			if !complete {
				a.pending = append([]byte(nil), buf[i:]...)
				flush()
				return out.String()
			}
			if final == 'm' {
				flush()
				a.sgr(params)
			}
			i += n
		case c == '\r':
			i++
		case c < 0x80:
			text = append(text, c)
			i++
		default:
			if !utf8.FullRune(buf[i:]) {
				a.pending = append([]byte(nil), buf[i:]...)
				flush()
				return out.String()
			}
			_, n := utf8.DecodeRune(buf[i:])
			text = append(text, buf[i:i+n]...)
			i += n
		}
	}
	flush()
	return out.String()
}

// Flush returns what is held back at the end of a log (an unfinished
// sequence is dropped, an unfinished character becomes U+FFFD).
func (a *ansiHTML) Flush() string {
	if len(a.pending) == 0 || a.pending[0] == 0x1b {
		a.pending = nil
		return ""
	}
	p := a.pending
	a.pending = nil
	return html.EscapeString(strings.ToValidUTF8(string(p), "\uFFFD"))
}

// escapeSeq measures the escape sequence at the start of b (b[0] is ESC):
// its length, its parameters and final byte for a CSI sequence, and whether
// it is complete. OSC sequences end at BEL or ESC \; other ones are two bytes.
func escapeSeq(b []byte) (n int, params string, final byte, complete bool) {
	if len(b) < 2 {
		return 0, "", 0, false
	}
	switch b[1] {
	case '[':
		for j := 2; j < len(b); j++ {
			if b[j] >= 0x40 && b[j] <= 0x7e {
				return j + 1, string(b[2:j]), b[j], true
			}
			if j-2 > 64 { // not a sane sequence: drop the ESC [ and go on
				return 2, "", 0, true
			}
		}
		return 0, "", 0, false
	case ']':
		for j := 2; j < len(b); j++ {
			if b[j] == 0x07 {
				return j + 1, "", 0, true
			}
			if b[j] == 0x1b && j+1 < len(b) && b[j+1] == '\\' {
				return j + 2, "", 0, true
			}
			if j > 4096 {
				return 2, "", 0, true
			}
		}
		return 0, "", 0, false
	}
	return 2, "", 0, true
}

func (a *ansiHTML) sgr(params string) {
	if params == "" {
		params = "0"
	}
	codes := strings.Split(params, ";")
	for i := 0; i < len(codes); i++ {
		n, err := strconv.Atoi(codes[i])
		if err != nil {
			continue
		}
		switch {
		case n == 0:
			a.bold, a.fg, a.bg = false, 0, 0
		case n == 1:
			a.bold = true
		case n == 22:
			a.bold = false
		case n >= 30 && n <= 37:
			a.fg = n - 29
		case n >= 90 && n <= 97:
			a.fg = n - 81
		case n == 39:
			a.fg = 0
		case n >= 40 && n <= 47:
			a.bg = n - 39
		case n >= 100 && n <= 107:
			a.bg = n - 91
		case n == 49:
			a.bg = 0
		case n == 38 || n == 48:
			// 256-colour and true-colour forms: skip their arguments.
			if i+1 < len(codes) && codes[i+1] == "5" {
				i += 2
			} else if i+1 < len(codes) && codes[i+1] == "2" {
				i += 4
			}
		}
	}
}

func (a *ansiHTML) class() string {
	var cls []string
	if a.bold {
		cls = append(cls, "ansi-b")
	}
	if a.fg > 0 {
		cls = append(cls, "ansi-fg"+strconv.Itoa(a.fg))
	}
	if a.bg > 0 {
		cls = append(cls, "ansi-bg"+strconv.Itoa(a.bg))
	}
	return strings.Join(cls, " ")
}
