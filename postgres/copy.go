package postgres

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// columns are the event fields in the order of the events table's columns.
var columns = []string{"timestamp", "organizationId", "clientId", "clientName", "userId", "templateUri", "httpMethod", "status"}

// copyReader turns NDJSON events into the text format of COPY FROM STDIN,
// one line at a time as PostgreSQL reads, so that a load never holds the
// file in memory. It is written by hand, like the generator: through
// encoding/json the conversion would cost more CPU than PostgreSQL's COPY and
// the baseline would be measuring us.
type copyReader struct {
	sc   *bufio.Scanner
	out  []byte // converted, not yet read
	line int
	err  error
	vals [8][]byte
}

func newCopyReader(r io.Reader) *copyReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	return &copyReader{sc: sc}
}

// Read implements io.Reader.
func (c *copyReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		c.fill()
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// fill converts up to about 256 KiB of lines.
func (c *copyReader) fill() {
	buf := c.out[:0]
	for len(buf) < 256<<10 {
		if !c.sc.Scan() {
			c.err = c.sc.Err()
			if c.err == nil {
				c.err = io.EOF
			}
			break
		}
		c.line++
		line := bytes.TrimSpace(c.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var err error
		if buf, err = appendCopyRow(buf, line, &c.vals); err != nil {
			c.err = fmt.Errorf("line %d: %w", c.line, err)
			break
		}
	}
	c.out = buf
}

// appendCopyRow appends the COPY text row of one JSON event: its columns
// separated by tabs, with backslash, tab, newline and carriage return
// escaped. Unknown fields (an event's id) are skipped; missing string fields
// are empty; timestamp and status are required.
func appendCopyRow(dst, line []byte, vals *[8][]byte) ([]byte, error) {
	for i := range vals {
		vals[i] = vals[i][:0]
	}
	var seen [8]bool
	p := parser{b: line}
	p.space()
	if !p.eat('{') {
		return dst, errors.New("not a JSON object")
	}
	p.space()
	if !p.eat('}') {
		for {
			key, err := p.str(nil)
			if err != nil {
				return dst, fmt.Errorf("key: %w", err)
			}
			p.space()
			if !p.eat(':') {
				return dst, errors.New("missing colon")
			}
			p.space()
			col := -1
			for i, name := range columns {
				if string(key) == name {
					col = i
					break
				}
			}
			if col >= 0 {
				vals[col] = vals[col][:0] // a repeated key: the last one wins, as in encoding/json
			}
			switch {
			case col == 7:
				vals[col], err = p.number(vals[col])
			case col >= 0:
				vals[col], err = p.str(vals[col])
			default:
				err = p.skip(0)
			}
			if err != nil {
				return dst, fmt.Errorf("%s: %w", key, err)
			}
			if col >= 0 {
				seen[col] = true
			}
			p.space()
			if p.eat('}') {
				break
			}
			if !p.eat(',') {
				return dst, errors.New("missing comma")
			}
			p.space()
		}
	}
	if p.space(); p.i != len(p.b) {
		return dst, errors.New("data after the object")
	}
	if !seen[0] || !seen[7] {
		return dst, errors.New("timestamp and status are required")
	}
	for i, v := range vals {
		if i > 0 {
			dst = append(dst, '\t')
		}
		dst = appendCopyText(dst, v)
	}
	return append(dst, '\n'), nil
}

func appendCopyText(dst, v []byte) []byte {
	for _, c := range v {
		switch c {
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// parser reads one JSON value at a time from b.
type parser struct {
	b []byte
	i int
}

func (p *parser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\r' || p.b[p.i] == '\n') {
		p.i++
	}
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a JSON string and appends its unescaped bytes to dst.
func (p *parser) str(dst []byte) ([]byte, error) {
	if !p.eat('"') {
		return dst, errors.New("want a string")
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return dst, nil
		case c < 0x20:
			return dst, errors.New("control character in string")
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return dst, errors.New("unterminated escape")
			}
			e := p.b[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return dst, errors.New("bad \\u escape")
				}
				if utf16.IsSurrogate(r) {
					// A pair makes one rune; a lone half is U+FFFD, as
					// encoding/json decodes it.
					save := p.i
					if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
						p.i += 2
						if r2, ok := p.hex4(); ok {
							if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
								dst = utf8.AppendRune(dst, d)
								continue
							}
						}
					}
					p.i = save
					r = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, r)
			default:
				return dst, errors.New("bad escape")
			}
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			p.i++
		default:
			// Invalid UTF-8 becomes U+FFFD, as encoding/json decodes it and
			// as PostgreSQL (which rejects it) needs.
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, p.b[p.i:p.i+size]...)
			}
			p.i += size
		}
	}
	return dst, errors.New("unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

// number reads a whole number from 100 to 599 (an HTTP status), as the
// contract allows, and appends its digits.
func (p *parser) number(dst []byte) ([]byte, error) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	digits := p.b[start:p.i]
	if len(digits) != 3 || digits[0] < '1' || digits[0] > '5' {
		return dst, fmt.Errorf("want an HTTP status code, got %q", digits)
	}
	return append(dst, digits...), nil
}

// skip skips one JSON value of any kind.
func (p *parser) skip(depth int) error {
	if depth > 64 {
		return errors.New("nested too deeply")
	}
	if p.i >= len(p.b) {
		return errors.New("want a value")
	}
	switch c := p.b[p.i]; {
	case c == '"':
		_, err := p.str(nil)
		return err
	case c == '{' || c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		p.i++
		p.space()
		if p.eat(closing) {
			return nil
		}
		for {
			if c == '{' {
				if _, err := p.str(nil); err != nil {
					return err
				}
				p.space()
				if !p.eat(':') {
					return errors.New("missing colon")
				}
				p.space()
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.space()
			if p.eat(closing) {
				return nil
			}
			if !p.eat(',') {
				return errors.New("missing comma")
			}
			p.space()
		}
	default:
		start := p.i
		for p.i < len(p.b) && bytes.IndexByte([]byte("+-.0123456789eEtrufalsn"), p.b[p.i]) >= 0 {
			p.i++
		}
		if p.i == start {
			return fmt.Errorf("unexpected %q", c)
		}
		return nil
	}
}
