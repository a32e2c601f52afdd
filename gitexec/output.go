package gitexec

import "io"

// capWriter passes the first limit bytes written to it on to w and counts the
// rest as dropped. It never fails, so that a command's output is always
// drained; if w fails, everything after is dropped and the error kept.
type capWriter struct {
	w       io.Writer
	limit   int64 // <= 0: no limit
	kept    int64
	dropped int64
	err     error // first error from w
}

// Write implements io.Writer.
func (c *capWriter) Write(p []byte) (int, error) {
	n := len(p)
	if c.limit > 0 {
		room := max(c.limit-c.kept, 0)
		if int64(len(p)) > room {
			c.dropped += int64(len(p)) - room
			p = p[:room]
		}
	}
	if len(p) == 0 {
		return n, nil
	}
	if c.err != nil {
		c.dropped += int64(len(p))
		return n, nil
	}
	m, err := c.w.Write(p)
	c.kept += int64(m)
	c.dropped += int64(len(p) - m)
	if err != nil {
		c.err = err
	}
	return n, nil
}
