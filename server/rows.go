package server

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/apiusage/apiusage"
)

// resultsBody is a response body already encoded as JSON, trailing newline
// included: writeJSON sends it as it is, then calls release (when not nil)
// to hand its buffer back. Results bodies are encoded by hand
// (appendQueryResults, searchResults) rather than by encoding/json: a
// result can have hundreds of thousands of rows, and reflection over them
// cost as much as the query itself.
type resultsBody struct {
	b       []byte
	release func()
}

// bodyBuffers keeps the buffers of results bodies for reuse. A body of the
// largest results is tens of megabytes: a fresh buffer for each costs more
// in page faults and zeroing than encoding into it, so bodies are encoded
// into a warm buffer when polled rather than once and kept, and the rows,
// which the store allocated anyway, are what an execution keeps.
type bodyBuffers struct{ pool sync.Pool }

// get returns a buffer, empty, of any capacity.
func (p *bodyBuffers) get() *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return b
	}
	return new([]byte)
}

// body returns a results body in buf's bytes b, which hands buf back to
// the pool once sent.
func (p *bodyBuffers) body(buf *[]byte, b []byte) resultsBody {
	return resultsBody{b: b, release: func() {
		*buf = b[:0]
		p.pool.Put(buf)
	}}
}

// The bodies of executions without rows to show.
const (
	runningBody = `{"queryStatus":"Running"}` + "\n"
	failedBody  = `{"results":[],"queryStatus":"Failed"}` + "\n"
)

// metricSet says which metrics (and whether the date) a row shows.
type metricSet struct {
	status200, status300, status400, status500, status429, requests, date bool
}

// rowEncoder appends rows as the contract's ApiUsageRow, in the field order
// of the reference service: the dimension fields always, empty when not
// grouped on; the metrics and the date only when asked for.
type rowEncoder struct {
	m metricSet
	// A simple search writes the columns not asked for empty.
	noClient, noMethod, noTemplate bool
	// date is the JSON of lastDate: rows of a result share a few dates, and
	// formatting a time is the dearest part of a row.
	lastDate time.Time
	date     []byte
}

// queryEncoder returns the encoder of an organization or client query's
// rows, which show the query's metrics. run cleared the dates of queries
// without a granularity, so a row shows its date whenever it has one.
func queryEncoder(metrics []apiusage.Metric) *rowEncoder {
	e := &rowEncoder{}
	e.m.date = true
	for _, metric := range metrics {
		switch metric {
		case apiusage.MetricStatus200:
			e.m.status200 = true
		case apiusage.MetricStatus300:
			e.m.status300 = true
		case apiusage.MetricStatus400:
			e.m.status400 = true
		case apiusage.MetricStatus500:
			e.m.status500 = true
		case apiusage.MetricStatus429:
			e.m.status429 = true
		case apiusage.MetricRequests:
			e.m.requests = true
		}
	}
	return e
}

// searchEncoder returns the encoder of a simple search's rows, which show
// the search's columns.
func searchEncoder(columns []apiusage.Column) *rowEncoder {
	e := &rowEncoder{noClient: true, noMethod: true, noTemplate: true}
	for _, col := range columns {
		switch col {
		case apiusage.ColumnDate:
			e.m.date = true
		case apiusage.ColumnClientName:
			e.noClient = false
		case apiusage.ColumnHTTPMethod:
			e.noMethod = false
		case apiusage.ColumnTemplateURI:
			e.noTemplate = false
		case apiusage.ColumnStatus200:
			e.m.status200 = true
		case apiusage.ColumnStatus300:
			e.m.status300 = true
		case apiusage.ColumnStatus400:
			e.m.status400 = true
		case apiusage.ColumnStatus500:
			e.m.status500 = true
		case apiusage.ColumnStatus429:
			e.m.status429 = true
		}
	}
	return e
}

// appendRow appends the JSON object of r.
func (e *rowEncoder) appendRow(b []byte, r *apiusage.Row) ([]byte, error) {
	b = append(b, `{"clientId":`...)
	if e.noClient {
		b = append(b, `"","clientName":""`...)
	} else {
		b = appendString(b, r.ClientID)
		b = append(b, `,"clientName":`...)
		b = appendString(b, r.ClientName)
	}
	b = append(b, `,"organizationId":`...)
	b = appendString(b, r.OrganizationID)
	b = append(b, `,"userId":`...)
	b = appendString(b, r.UserID)
	b = append(b, `,"templateUri":`...)
	if e.noTemplate {
		b = append(b, `""`...)
	} else {
		b = appendString(b, r.TemplateURI)
	}
	b = append(b, `,"httpMethod":`...)
	if e.noMethod {
		b = append(b, `""`...)
	} else {
		b = appendString(b, r.Method)
	}
	c := &r.Counts
	if e.m.status200 {
		b = strconv.AppendInt(append(b, `,"status200":`...), c.Status200, 10)
	}
	if e.m.status300 {
		b = strconv.AppendInt(append(b, `,"status300":`...), c.Status300, 10)
	}
	if e.m.status400 {
		b = strconv.AppendInt(append(b, `,"status400":`...), c.Status400, 10)
	}
	if e.m.status500 {
		b = strconv.AppendInt(append(b, `,"status500":`...), c.Status500, 10)
	}
	if e.m.status429 {
		b = strconv.AppendInt(append(b, `,"status429":`...), c.Status429, 10)
	}
	if e.m.requests {
		b = strconv.AppendInt(append(b, `,"requests":`...), c.Requests, 10)
	}
	if e.m.date && !r.Date.IsZero() {
		// Equal values (location included) format the same.
		if e.date == nil || r.Date != e.lastDate {
			// Time's own MarshalJSON, so the bytes are encoding/json's.
			d, err := r.Date.MarshalJSON()
			if err != nil {
				return b, fmt.Errorf("encode date: %w", err)
			}
			e.lastDate, e.date = r.Date, d
		}
		b = append(append(b, `,"date":`...), e.date...)
	}
	return append(b, '}'), nil
}

// appendRows appends rows as the elements of a JSON array (without its
// brackets).
func (e *rowEncoder) appendRows(b []byte, rows []apiusage.Row) ([]byte, error) {
	var err error
	for i := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = e.appendRow(b, &rows[i]); err != nil {
			return b, err
		}
	}
	return b, nil
}

// sizeHint is the capacity to give a buffer for rows: the size of a sample
// of them, scaled, and a little more, so that a large result is encoded
// without the buffer growing (and being copied) again and again.
func (e *rowEncoder) sizeHint(rows []apiusage.Row) int {
	const sample = 64
	if len(rows) <= sample {
		return 64 + 256*len(rows)
	}
	probe := *e
	var buf [sample * 256]byte
	b := buf[:0]
	step := len(rows) / sample
	for i := 0; i < sample; i++ {
		var err error
		if b, err = probe.appendRow(append(b, ','), &rows[i*step]); err != nil {
			return 64 + 256*len(rows)
		}
	}
	return 64 + len(b)*len(rows)/sample*17/16
}

// appendQueryResults appends the contract's ApiUsageQueryResult of an
// organization or client query, a trailing newline included: only the
// status while it runs; once finished, every row.
func appendQueryResults(b []byte, x apiusage.Execution) ([]byte, error) {
	switch x.Status {
	case apiusage.StatusComplete:
	case apiusage.StatusFailed:
		return append(b, failedBody...), nil
	default:
		return append(b, runningBody...), nil
	}
	e := queryEncoder(x.Metrics)
	b = slices.Grow(b, e.sizeHint(x.Rows))
	b = append(b, `{"results":[`...)
	b, err := e.appendRows(b, x.Rows)
	if err != nil {
		return nil, err
	}
	return append(b, `],"queryStatus":"Complete"}`+"\n"...), nil
}

// queryResults answers a poll of an organization or client query: its
// results body, encoded into a buffer of buffers.
func queryResults(buffers *bodyBuffers, x apiusage.Execution) (int, any, error) {
	buf := buffers.get()
	b, err := appendQueryResults((*buf)[:0], x)
	if err != nil {
		buffers.pool.Put(buf)
		return 0, nil, wrap("encode results", err)
	}
	return http.StatusOK, buffers.body(buf, b), nil
}

// searchResults returns the body of the page of a simple search's result
// that starts at offset. Pages are small (maxPageSize rows), so each is
// encoded when asked for.
func searchResults(x apiusage.Execution, offset, size int) ([]byte, error) {
	switch x.Status {
	case apiusage.StatusComplete:
	case apiusage.StatusFailed:
		return []byte(failedBody), nil
	default:
		return []byte(runningBody), nil
	}
	end := min(offset+size, len(x.Rows))
	page := x.Rows[offset:end]
	e := searchEncoder(x.Columns)
	b := make([]byte, 0, 128+256*len(page))
	b = append(b, `{"results":[`...)
	b, err := e.appendRows(b, page)
	if err != nil {
		return nil, wrap("encode results", err)
	}
	b = append(b, `],"queryStatus":"Complete"`...)
	if end < len(x.Rows) {
		b = append(b, `,"cursors":{"after":`...)
		b = appendString(b, makeCursor(x.ID, end))
		b = append(b, '}')
	}
	return append(b, "}\n"...), nil
}

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
