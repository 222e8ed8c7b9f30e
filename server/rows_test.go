package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// The reference encoder: the reflection-based rendering the hand-written
// encoder replaced, kept verbatim as the oracle its bytes are held to.

type refQueryResult struct {
	Results     []refRowJSON         `json:"results,omitzero"`
	QueryStatus apiusage.QueryStatus `json:"queryStatus"`
	Cursors     *refCursors          `json:"cursors,omitempty"`
}

type refCursors struct {
	After string `json:"after"`
}

type refRowJSON struct {
	ClientID       string     `json:"clientId"`
	ClientName     string     `json:"clientName"`
	OrganizationID string     `json:"organizationId"`
	UserID         string     `json:"userId"`
	TemplateURI    string     `json:"templateUri"`
	HTTPMethod     string     `json:"httpMethod"`
	Status200      *int64     `json:"status200,omitempty"`
	Status300      *int64     `json:"status300,omitempty"`
	Status400      *int64     `json:"status400,omitempty"`
	Status500      *int64     `json:"status500,omitempty"`
	Status429      *int64     `json:"status429,omitempty"`
	Requests       *int64     `json:"requests,omitempty"`
	Date           *time.Time `json:"date,omitempty"`
}

func refRender(m metricSet, r *apiusage.Row) refRowJSON {
	out := refRowJSON{ClientID: r.ClientID, ClientName: r.ClientName, OrganizationID: r.OrganizationID,
		UserID: r.UserID, TemplateURI: r.TemplateURI, HTTPMethod: r.Method}
	c := &r.Counts
	if m.status200 {
		out.Status200 = &c.Status200
	}
	if m.status300 {
		out.Status300 = &c.Status300
	}
	if m.status400 {
		out.Status400 = &c.Status400
	}
	if m.status500 {
		out.Status500 = &c.Status500
	}
	if m.status429 {
		out.Status429 = &c.Status429
	}
	if m.requests {
		out.Requests = &c.Requests
	}
	if m.date && !r.Date.IsZero() {
		out.Date = &r.Date
	}
	return out
}

func refUnfinished(x apiusage.Execution) refQueryResult {
	if x.Status == apiusage.StatusFailed {
		return refQueryResult{QueryStatus: x.Status, Results: []refRowJSON{}}
	}
	return refQueryResult{QueryStatus: apiusage.StatusRunning}
}

func refQueryResults(x apiusage.Execution) refQueryResult {
	if x.Status != apiusage.StatusComplete {
		return refUnfinished(x)
	}
	m := queryEncoder(x.Metrics).m
	out := refQueryResult{QueryStatus: x.Status, Results: make([]refRowJSON, len(x.Rows))}
	for i := range x.Rows {
		out.Results[i] = refRender(m, &x.Rows[i])
	}
	return out
}

func refSearchResults(x apiusage.Execution, offset, size int) refQueryResult {
	if x.Status != apiusage.StatusComplete {
		return refUnfinished(x)
	}
	var m metricSet
	name, method, template := false, false, false
	for _, col := range x.Columns {
		switch col {
		case apiusage.ColumnDate:
			m.date = true
		case apiusage.ColumnClientName:
			name = true
		case apiusage.ColumnHTTPMethod:
			method = true
		case apiusage.ColumnTemplateURI:
			template = true
		case apiusage.ColumnStatus200:
			m.status200 = true
		case apiusage.ColumnStatus300:
			m.status300 = true
		case apiusage.ColumnStatus400:
			m.status400 = true
		case apiusage.ColumnStatus500:
			m.status500 = true
		case apiusage.ColumnStatus429:
			m.status429 = true
		}
	}
	end := min(offset+size, len(x.Rows))
	out := refQueryResult{QueryStatus: x.Status, Results: make([]refRowJSON, 0, end-offset)}
	for i := offset; i < end; i++ {
		row := refRender(m, &x.Rows[i])
		if !name {
			row.ClientID, row.ClientName = "", ""
		}
		if !method {
			row.HTTPMethod = ""
		}
		if !template {
			row.TemplateURI = ""
		}
		out.Results = append(out.Results, row)
	}
	if end < len(x.Rows) {
		out.Cursors = &refCursors{After: makeCursor(x.ID, end)}
	}
	return out
}

// refEncode encodes body as writeJSON did before results were encoded by
// hand.
func refEncode(tb testing.TB, body any) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// oddStrings are strings whose JSON escaping is easy to get wrong.
var oddStrings = []string{
	"", "a", "api/v2/users/{userId}", `quote " and \ backslash`, "<script>&amp;</script>",
	"tab\tnew\nline\rcr\bbs\fff", "\x00\x01\x1f\x7f", "héllo wörld ✓ 日本", "emoji 😀",
	"\u2028line\u2029para", "bad \xff utf8 \xc3", "trunc \xe2\x80", "\xed\xa0\x80 surrogate",
	"/slash/", "\u00a0nbsp", "end\\",
}

// randString returns a string of random bytes and runes, often odd.
func randString(rng *rand.Rand) string {
	if rng.IntN(3) == 0 {
		return oddStrings[rng.IntN(len(oddStrings))]
	}
	var b []byte
	for range rng.IntN(24) {
		switch rng.IntN(4) {
		case 0:
			b = append(b, byte(rng.IntN(256)))
		case 1:
			b = append(b, byte(rng.IntN(0x80)))
		default:
			b = append(b, "abcXYZ09-_/{}"[rng.IntN(13)])
		}
	}
	return string(b)
}

func randRows(rng *rand.Rand, n int) []apiusage.Row {
	dates := []time.Time{{}, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
		time.Date(2020, 2, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 4, 5, 6, 789, time.UTC)}
	ints := []int64{0, 1, 9, 10, 12345, math.MaxInt64, math.MinInt64, -1}
	num := func() int64 {
		if rng.IntN(2) == 0 {
			return ints[rng.IntN(len(ints))]
		}
		return rng.Int64N(1 << 40)
	}
	rows := make([]apiusage.Row, n)
	for i := range rows {
		rows[i] = apiusage.Row{
			Date: dates[rng.IntN(len(dates))], ClientID: randString(rng), ClientName: randString(rng),
			OrganizationID: randString(rng), UserID: randString(rng), TemplateURI: randString(rng), Method: randString(rng),
			Counts: apiusage.Counts{Status200: num(), Status300: num(), Status400: num(), Status500: num(), Status429: num(), Requests: num()},
		}
	}
	return rows
}

// randSubset returns a random subset of set, in a random order.
func randSubset[T any](rng *rand.Rand, set []T) []T {
	out := slices.Clone(set)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:rng.IntN(len(out)+1)]
}

func checkSameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: bodies differ at byte %d\ngot  %q\nwant %q", what, i, got[max(0, i-40):min(len(got), i+80)], want[max(0, i-40):min(len(want), i+80)])
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := slices.Clone(oddStrings)
	for range 2000 {
		inputs = append(inputs, randString(rng))
	}
	for c := range 256 {
		inputs = append(inputs, string([]byte{byte(c)}), "x"+string(rune(c))+"y")
		// Every byte at every position of the 8-byte blocks appendString
		// skips at once.
		for pos := range 16 {
			b := []byte("abcdefgh01234567z")
			b[pos] = byte(c)
			inputs = append(inputs, string(b))
		}
	}
	for _, s := range inputs {
		checkSameBytes(t, fmt.Sprintf("%q", s), append(appendString(nil, s), '\n'), refEncode(t, s))
	}
}

func TestQueryResultsMatchEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		x := apiusage.Execution{Status: apiusage.StatusComplete, Metrics: randSubset(rng, apiusage.AllMetrics), Rows: randRows(rng, rng.IntN(100))}
		switch i {
		case 0:
			x.Rows = nil
		case 1:
			x.Rows = []apiusage.Row{}
		case 2:
			x.Status = apiusage.StatusRunning
		case 3:
			x.Status = apiusage.StatusFailed
		case 4:
			x.Rows = randRows(rng, 1000) // past sizeHint's sample
		}
		got, err := appendQueryResults(nil, x)
		if err != nil {
			t.Fatal(err)
		}
		checkSameBytes(t, fmt.Sprintf("execution %d, metrics %v", i, x.Metrics), got, refEncode(t, refQueryResults(x)))
	}
}

func TestQueryResultsReusesBuffers(t *testing.T) {
	// Bodies of different sizes through the same buffers: each is whole,
	// whatever the buffer held before.
	rng := rand.New(rand.NewPCG(5, 6))
	var buffers bodyBuffers
	for i, n := range []int{500, 3, 0, 200, 1} {
		x := apiusage.Execution{Status: apiusage.StatusComplete, Metrics: apiusage.AllMetrics, Rows: randRows(rng, n)}
		status, body, err := queryResults(&buffers, x)
		if err != nil || status != http.StatusOK {
			t.Fatalf("poll %d: status %d, err %v; want 200", i, status, err)
		}
		raw, ok := body.(resultsBody)
		if !ok || raw.release == nil {
			t.Fatalf("poll %d: body %T, want a resultsBody with a release", i, body)
		}
		checkSameBytes(t, fmt.Sprintf("poll %d of %d rows", i, n), raw.b, refEncode(t, refQueryResults(x)))
		raw.release()
	}
}

func TestSearchResultsMatchEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 300 {
		x := apiusage.Execution{ID: randString(rng), Status: apiusage.StatusComplete,
			Columns: randSubset(rng, apiusage.AllColumns), Rows: randRows(rng, rng.IntN(60))}
		switch i {
		case 0:
			x.Rows = nil
		case 1:
			x.Status = apiusage.StatusRunning
		case 2:
			x.Status = apiusage.StatusFailed
		}
		size := 1 + rng.IntN(30)
		offset := rng.IntN(len(x.Rows) + 1)
		got, err := searchResults(x, offset, size)
		if err != nil {
			t.Fatal(err)
		}
		checkSameBytes(t, fmt.Sprintf("search %d, columns %v, offset %d, size %d", i, x.Columns, offset, size),
			got, refEncode(t, refSearchResults(x, offset, size)))
	}
}

func TestQueryResultsFailOnAnUnencodableDate(t *testing.T) {
	// Time.MarshalJSON refuses years past 9999; encoding/json failed the
	// same way, but after the 200 was sent.
	rows := []apiusage.Row{{Date: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}
	x := apiusage.Execution{Status: apiusage.StatusComplete, Metrics: apiusage.AllMetrics, Rows: rows}
	if _, body, err := queryResults(&bodyBuffers{}, x); err == nil {
		t.Fatalf("body %v, want an error", body)
	}
}

// FuzzResultsEncoding holds the hand-written encoder to encoding/json on
// rows made of the fuzzer's strings and numbers.
func FuzzResultsEncoding(f *testing.F) {
	for i, s := range oddStrings {
		f.Add(s, oddStrings[(i+1)%len(oddStrings)], int64(i)*1e9, uint8(i))
	}
	f.Add("\xff\xfe", "\u2029", int64(math.MaxInt64), uint8(255))
	f.Fuzz(func(t *testing.T, a, b string, n int64, mask uint8) {
		row := apiusage.Row{
			Date: time.Unix(n%(250_000*86400), 0).UTC(), ClientID: a, ClientName: b, OrganizationID: a + b,
			UserID: b, TemplateURI: a, Method: b + a,
			Counts: apiusage.Counts{Status200: n, Status300: -n, Status400: n / 3, Status500: int64(mask), Status429: n >> 7, Requests: n ^ 0x55},
		}
		var metrics []apiusage.Metric
		var columns []apiusage.Column
		for i, m := range apiusage.AllMetrics {
			if mask&(1<<i) != 0 {
				metrics = append(metrics, m)
			}
		}
		for i, c := range apiusage.AllColumns {
			if (uint16(mask)<<1|uint16(mask)>>7)&(1<<i) != 0 {
				columns = append(columns, c)
			}
		}
		x := apiusage.Execution{ID: b, Status: apiusage.StatusComplete, Metrics: metrics, Columns: columns,
			Rows: []apiusage.Row{row, row, {ClientID: b, Date: row.Date.Add(time.Hour)}}}
		got, err := appendQueryResults(nil, x)
		if err != nil {
			t.Fatal(err)
		}
		checkSameBytes(t, "query", got, refEncode(t, refQueryResults(x)))
		for _, off := range []int{0, 1, 3} {
			got, err := searchResults(x, off, 2)
			if err != nil {
				t.Fatal(err)
			}
			checkSameBytes(t, fmt.Sprintf("search page at %d", off), got, refEncode(t, refSearchResults(x, off, 2)))
		}
	})
}

// largeResult is an execution shaped like the suite's 90-day organization
// query at Day by client, template and method: 150,000 rows of typical ids.
func largeResult() apiusage.Execution {
	rng := rand.New(rand.NewPCG(9, 10))
	rows := make([]apiusage.Row, 150_000)
	for i := range rows {
		rows[i] = apiusage.Row{
			Date:        time.Date(2026, 8, 3+i/1700, 0, 0, 0, 0, time.UTC),
			ClientID:    fmt.Sprintf("9f32b7cf-7418-4cc1-b4e7-%012d", i%200),
			ClientName:  fmt.Sprintf("client %d", i%200),
			TemplateURI: fmt.Sprintf("api/v2/things/{thingId}/parts/%d", rng.IntN(400)),
			Method:      []string{"GET", "POST", "PUT", "DELETE"}[rng.IntN(4)],
			Counts:      apiusage.Counts{Status200: rng.Int64N(5000), Status400: rng.Int64N(50), Status429: rng.Int64N(5), Requests: rng.Int64N(5100)},
		}
	}
	return apiusage.Execution{ID: "x", Status: apiusage.StatusComplete, Metrics: apiusage.AllMetrics, Rows: rows}
}

// BenchmarkEncodeResults measures encoding a 150,000-row result: impl=old
// is encoding/json over the rows, impl=new the hand-written encoder into a
// reused buffer, as a poll runs it.
func BenchmarkEncodeResults(b *testing.B) {
	x := largeResult()
	b.Run("impl=old", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			enc := json.NewEncoder(io.Discard)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(refQueryResults(x)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=new", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = appendQueryResults(buf[:0], x); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkServeResults measures one poll of a complete 150,000-row result
// over loopback HTTP, the body read to its end by a Go client: impl=old
// encodes the rows with encoding/json, as before; impl=new is the results
// handler's path, the hand-written encoder into a reused buffer.
func BenchmarkServeResults(b *testing.B) {
	x := largeResult()
	s := &Server{log: slog.New(slog.DiscardHandler)}
	var buffers bodyBuffers
	want, err := appendQueryResults(nil, x)
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"impl=old", func(w http.ResponseWriter, r *http.Request) {
			s.writeJSON(w, r, http.StatusOK, refQueryResults(x))
		}},
		{"impl=new", func(w http.ResponseWriter, r *http.Request) {
			status, body, err := queryResults(&buffers, x)
			if err != nil {
				panic(err)
			}
			s.writeJSON(w, r, status, body)
		}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			defer client.CloseIdleConnections()
			b.ReportAllocs()
			for b.Loop() {
				readBody(b, client, srv.URL, len(want))
			}
		})
	}
}

// BenchmarkServeGzip weighs gzip for results on loopback at its most
// favourable: a body compressed once beforehand (at BestSpeed) against the
// plain body, both sent as they are; the client decompresses.
func BenchmarkServeGzip(b *testing.B) {
	body, err := appendQueryResults(nil, largeResult())
	if err != nil {
		b.Fatal(err)
	}
	var zipped bytes.Buffer
	zw, _ := gzipWriter(&zipped)
	zw.Write(body)
	zw.Close()
	b.Logf("body %d bytes, gzip (BestSpeed) %d bytes", len(body), zipped.Len())
	for _, tt := range []struct {
		name string
		send []byte
		gzip bool
	}{{"gzip=false", body, false}, {"gzip=true", zipped.Bytes(), true}} {
		b.Run(tt.name, func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.gzip {
					w.Header().Set("Content-Encoding", "gzip")
				}
				w.Header().Set("Content-Length", fmt.Sprint(len(tt.send)))
				w.Write(tt.send)
			}))
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			b.ReportAllocs()
			for b.Loop() {
				readBody(b, client, srv.URL, len(body))
			}
		})
	}
}

// readBody GETs url and reads the body to its end, which must be n bytes.
func readBody(b *testing.B, client *http.Client, url string, n int) {
	b.Helper()
	resp, err := client.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || got != int64(n) {
		b.Fatalf("read %d bytes, err %v; want %d", got, err, n)
	}
}

func gzipWriter(w io.Writer) (*gzip.Writer, error) { return gzip.NewWriterLevel(w, gzip.BestSpeed) }
