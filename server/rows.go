package server

import (
	"encoding/base64"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/apiusage/apiusage"
)

// resultsBody is a response body already encoded as JSON, trailing newline
// included, which writeJSON sends as it is; or, when stream is set, a body
// of n bytes that stream writes: the body of a large result is written in
// chunks as it is encoded rather than encoded whole first. Results bodies
// are encoded by hand (table.appendRow) rather than by encoding/json: a
// result can have hundreds of thousands of rows, and reflection over them
// cost as much as the query itself.
type resultsBody struct {
	b []byte
	// done, when set, is called once b is written (or not), and b is not
	// used after.
	done func()

	n      int
	stream func(w io.Writer) error
}

// streamChunk is the size of the chunks a results body is written in: large
// enough that writes cost little against encoding, small enough to stay in
// the cache and to let the client read the first chunk while the next is
// encoded.
const streamChunk = 128 << 10

// chunkBuffers keeps the buffers results bodies are encoded into, each
// streamChunk bytes: a body of the largest results is tens of megabytes,
// and memory touched for the first time costs more here (page faults) than
// encoding into it, so no body is ever held whole.
var chunkBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, streamChunk+4<<10)
	return &b
}}

// The bodies of executions without rows to show.
const (
	runningBody = `{"queryStatus":"Running"}` + "\n"
	failedBody  = `{"results":[],"queryStatus":"Failed"}` + "\n"
)

// metricSet says which metrics (and whether the date) a row shows.
type metricSet struct {
	status200, status300, status400, status500, status429, requests, date bool
}

// queryView returns the view of an organization or client query's rows,
// which show the query's metrics, and their date when the query has a
// granularity.
func queryView(metrics []apiusage.Metric, g apiusage.Granularity) tableView {
	var v tableView
	v.m.date = g != apiusage.GranularityNone
	for _, metric := range metrics {
		switch metric {
		case apiusage.MetricStatus200:
			v.m.status200 = true
		case apiusage.MetricStatus300:
			v.m.status300 = true
		case apiusage.MetricStatus400:
			v.m.status400 = true
		case apiusage.MetricStatus500:
			v.m.status500 = true
		case apiusage.MetricStatus429:
			v.m.status429 = true
		case apiusage.MetricRequests:
			v.m.requests = true
		}
	}
	return v
}

// searchView returns the view of a simple search's rows, which show the
// search's columns and write the others empty.
func searchView(columns []apiusage.Column) tableView {
	v := tableView{noClient: true, noMethod: true, noTemplate: true}
	for _, col := range columns {
		switch col {
		case apiusage.ColumnDate:
			v.m.date = true
		case apiusage.ColumnClientName:
			v.noClient = false
		case apiusage.ColumnHTTPMethod:
			v.noMethod = false
		case apiusage.ColumnTemplateURI:
			v.noTemplate = false
		case apiusage.ColumnStatus200:
			v.m.status200 = true
		case apiusage.ColumnStatus300:
			v.m.status300 = true
		case apiusage.ColumnStatus400:
			v.m.status400 = true
		case apiusage.ColumnStatus500:
			v.m.status500 = true
		case apiusage.ColumnStatus429:
			v.m.status429 = true
		}
	}
	return v
}

// unfinishedBody returns the body of an execution that is not complete:
// only its status while it runs.
func unfinishedBody(x apiusage.Execution) resultsBody {
	if x.Status == apiusage.StatusFailed {
		return resultsBody{b: []byte(failedBody)}
	}
	return resultsBody{b: []byte(runningBody)}
}

// writeResults writes t's results body (t.bodyLen bytes) to w in chunks.
func writeResults(w io.Writer, t *table) error {
	buf := chunkBuffers.Get().(*[]byte)
	defer chunkBuffers.Put(buf)
	b := append((*buf)[:0], resultsStart...)
	for i := range t.n {
		if i > 0 {
			b = append(b, ',')
		}
		b = t.appendRow(b, i)
		if len(b) >= streamChunk {
			if _, err := w.Write(b); err != nil {
				*buf = b[:0]
				return err
			}
			b = b[:0]
		}
	}
	b = append(b, resultsEnd...)
	_, err := w.Write(b)
	*buf = b[:0]
	return err
}

// queryResults answers a poll of an organization or client query: its
// status, or once complete its results body, streamed.
func (s *Server) queryResults(x apiusage.Execution) (int, any, error) {
	if x.Status != apiusage.StatusComplete {
		return http.StatusOK, unfinishedBody(x), nil
	}
	r := s.results.get(x.ID)
	if r == nil {
		return 0, nil, errEvicted
	}
	t := r.rows
	return http.StatusOK, resultsBody{n: t.bodyLen, stream: func(w io.Writer) error { return writeResults(w, t) }}, nil
}

// searchPage appends the body of the page of a simple search's result that
// starts at offset to b. Pages are small (maxPageSize rows), so each is
// encoded when asked for.
func searchPage(b []byte, t *table, executionID string, offset, size int) []byte {
	end := min(offset+size, t.n)
	b = slices.Grow(b, 128+256*(end-offset))
	b = append(b, resultsStart...)
	b = t.appendRows(b, offset, end)
	b = append(b, `],"queryStatus":"Complete"`...)
	if end < t.n {
		b = append(b, `,"cursors":{"after":`...)
		b = appendString(b, makeCursor(executionID, end))
		b = append(b, '}')
	}
	return append(b, "}\n"...)
}

// pageBuffers keeps the buffers simple search pages are encoded into (a
// page of maxPageSize rows is a few hundred kilobytes): the server's heap
// is mostly its store's, so the collector runs seldom, and a buffer left to
// it would be fresh memory again for many pages, whose page faults cost
// more than encoding into it.
var pageBuffers = sync.Pool{New: func() any { return new([]byte) }}

// needsEscape8 reports whether any of the 8 bytes of s is a control
// character, a quote, a backslash or not ASCII. It tests all 8 at once (the
// bit tricks of "Bit Twiddling Hacks": a byte is zero, or below n, exactly
// when the subtraction borrows into its high bit that was clear).
func needsEscape8(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	quote, backslash := x^(ones*'"'), x^(ones*'\\')
	below := (x - ones*0x20) | (quote - ones) | (backslash - ones)
	return (below&^x|x)&highs != 0
}

// appendString appends s as a JSON string, escaped exactly as encoding/json
// does with HTML escaping off: quote, backslash and control characters
// escaped, invalid UTF-8 replaced by U+FFFD, and U+2028 and U+2029 escaped
// (they end a line in JavaScript).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Ids and templates are mostly plain ASCII: skip 8 bytes at a time
		// while none of them needs a look.
		for i+8 <= len(s) && !needsEscape8(s[i:i+8]) {
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// A cursor is opaque to callers: base64url of "<execution id>:<offset>". It
// is bound to its execution so that a cursor of one search is not taken for
// another's; it needs no secret, since a caller who can read a search can
// read any page of it anyway.
func makeCursor(executionID string, offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(executionID + ":" + strconv.Itoa(offset)))
}

// parseCursor returns the offset of a cursor of the execution, whose result
// has n rows.
func parseCursor(cursor, executionID string, n int) (int, error) {
	bad := badRequest("after: invalid cursor %q", cursor)
	if len(cursor) > 128 {
		return 0, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, bad
	}
	id, off, ok := strings.Cut(string(raw), ":")
	if !ok || id != executionID {
		return 0, bad
	}
	offset, ok := parseSmallUint(off)
	if !ok || offset > n {
		return 0, bad
	}
	return offset, nil
}
