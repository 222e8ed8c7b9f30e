package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
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

// fixture is an execution and the rows it answered, as the tests describe
// one: the server keeps rows apart from the execution registry.
type fixture struct {
	apiusage.Execution
	Rows []apiusage.Row
}

func refUnfinished(x fixture) refQueryResult {
	if x.Status == apiusage.StatusFailed {
		return refQueryResult{QueryStatus: x.Status, Results: []refRowJSON{}}
	}
	return refQueryResult{QueryStatus: apiusage.StatusRunning}
}

func refQueryResults(x fixture) refQueryResult {
	if x.Status != apiusage.StatusComplete {
		return refUnfinished(x)
	}
	m := queryView(x.Metrics, apiusage.GranularityDay).m
	out := refQueryResult{QueryStatus: x.Status, Results: make([]refRowJSON, len(x.Rows))}
	for i := range x.Rows {
		out.Results[i] = refRender(m, &x.Rows[i])
	}
	return out
}

func refSearchResults(x fixture, offset, size int) refQueryResult {
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

// encodeQuery returns the body of a poll of x, an organization or client
// query, on the results endpoint's path: its table built as run builds it
// (with a granularity), and its body as writeResults streams it, which must
// be bodyLen bytes and the same as appendResultsBody's.
func encodeQuery(tb testing.TB, x fixture) []byte {
	tb.Helper()
	if x.Status != apiusage.StatusComplete {
		return unfinishedBody(x.Execution).b
	}
	t, err := newTable(rowSetOf(x.Rows), queryView(x.Metrics, apiusage.GranularityDay), nil)
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeResults(&buf, t); err != nil {
		tb.Fatal(err)
	}
	if buf.Len() != t.bodyLen || t.measure() != t.bodyLen {
		tb.Fatalf("body of %d bytes, bodyLen %d, measured from the packed rows %d", buf.Len(), t.bodyLen, t.measure())
	}
	if whole := appendResultsBody(nil, t); !bytes.Equal(whole, buf.Bytes()) {
		tb.Fatal("appendResultsBody and writeResults differ")
	}
	return buf.Bytes()
}

// encodeSearch returns the page of x, a simple search, at offset.
func encodeSearch(tb testing.TB, x fixture, offset, size int) []byte {
	tb.Helper()
	if x.Status != apiusage.StatusComplete {
		return unfinishedBody(x.Execution).b
	}
	t, err := newTable(rowSetOf(x.Rows), searchView(x.Columns), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return searchPage(nil, t, x.ID, offset, size)
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
		x := fixture{Execution: apiusage.Execution{Status: apiusage.StatusComplete, Metrics: randSubset(rng, apiusage.AllMetrics)}, Rows: randRows(rng, rng.IntN(100))}
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
		got := encodeQuery(t, x)
		checkSameBytes(t, fmt.Sprintf("execution %d, metrics %v", i, x.Metrics), got, refEncode(t, refQueryResults(x)))
	}
}

func TestWriteResultsInChunks(t *testing.T) {
	// Bodies of different sizes through the same pool of chunk buffers,
	// some of many chunks: each is whole, whatever a buffer held before.
	rng := rand.New(rand.NewPCG(5, 6))
	for i, n := range []int{5000, 3, 0, 2000, 1, 12000} {
		x := fixture{Execution: apiusage.Execution{Status: apiusage.StatusComplete, Metrics: apiusage.AllMetrics}, Rows: randRows(rng, n)}
		checkSameBytes(t, fmt.Sprintf("poll %d of %d rows", i, n), encodeQuery(t, x), refEncode(t, refQueryResults(x)))
	}
}

func TestTableFromPrefaultedRows(t *testing.T) {
	// A large table's rows go into memory prepared ahead at the size the
	// last table had a row, or into fresh memory when the guess is wrong:
	// the bytes are the same either way.
	rng := rand.New(rand.NewPCG(11, 12))
	x := fixture{Execution: apiusage.Execution{Status: apiusage.StatusComplete, Metrics: apiusage.AllMetrics}, Rows: randRows(rng, 12000)}
	want := refEncode(t, refQueryResults(x))
	tab, err := newTable(rowSetOf(x.Rows), queryView(x.Metrics, apiusage.GranularityDay), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tab.words*tab.n < prefaultMin {
		t.Fatalf("%d rows of %d words: too small to be prefaulted", tab.n, tab.words)
	}
	for _, guess := range []int{0, 1, tab.words - 1, tab.words, tab.words + 1, numFields} {
		lastWords.Store(int32(guess))
		checkSameBytes(t, fmt.Sprintf("guess of %d words a row", guess), encodeQuery(t, x), want)
	}
}

func TestWriteResultsStopsAtAWriteError(t *testing.T) {
	x := largeResult()
	tab, err := newTable(rowSetOf(x.Rows), queryView(x.Metrics, apiusage.GranularityDay), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &failingWriter{left: 3}
	if err := writeResults(w, tab); !errors.Is(err, errWriteFailed) {
		t.Fatalf("err %v, want %v", err, errWriteFailed)
	}
	if w.writes != 3 {
		t.Fatalf("%d writes, want 3: the third fails and ends it", w.writes)
	}
}

var errWriteFailed = errors.New("write failed")

// failingWriter fails its write number left.
type failingWriter struct{ left, writes int }

func (w *failingWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.left--; w.left == 0 {
		return 0, errWriteFailed
	}
	return len(p), nil
}

func TestIntLen(t *testing.T) {
	for _, v := range []int64{0, 1, 9, 10, 11, 99, 100, 999, 1000, 1e9 - 1, 1e9, 1e18 - 1, 1e18, math.MaxInt64,
		-1, -9, -10, -100, math.MinInt64, math.MinInt64 + 1} {
		want := strconv.FormatInt(v, 10)
		if got := intLen(v); got != len(want) {
			t.Errorf("intLen(%d) = %d, want %d", v, got, len(want))
		}
		if got := string(appendInt(nil, v)); got != want {
			t.Errorf("appendInt(%d) = %q, want %q", v, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for range 10000 {
		v := rng.Int64() >> rng.IntN(64)
		if rng.IntN(2) == 0 {
			v = -v
		}
		if got, want := string(appendInt(nil, v)), strconv.FormatInt(v, 10); got != want || intLen(v) != len(want) {
			t.Fatalf("appendInt(%d) = %q, intLen %d; want %q", v, got, intLen(v), want)
		}
	}
}

func TestSearchResultsMatchEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 300 {
		x := fixture{Execution: apiusage.Execution{ID: randString(rng), Status: apiusage.StatusComplete,
			Columns: randSubset(rng, apiusage.AllColumns)}, Rows: randRows(rng, rng.IntN(60))}
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
		got := encodeSearch(t, x, offset, size)
		checkSameBytes(t, fmt.Sprintf("search %d, columns %v, offset %d, size %d", i, x.Columns, offset, size),
			got, refEncode(t, refSearchResults(x, offset, size)))
	}
}

func TestQueryResultsFailOnAnUnencodableDate(t *testing.T) {
	// Time.MarshalJSON refuses years past 9999; encoding/json failed the
	// same way, but after the 200 was sent; now the execution fails.
	rows := []apiusage.Row{{Date: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}
	if tab, err := newTable(rowSetOf(rows), queryView(apiusage.AllMetrics, apiusage.GranularityDay), nil); err == nil {
		t.Fatalf("table of %d rows, want an error", tab.n)
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
		x := fixture{Execution: apiusage.Execution{ID: b, Status: apiusage.StatusComplete, Metrics: metrics, Columns: columns},
			Rows: []apiusage.Row{row, row, {ClientID: b, Date: row.Date.Add(time.Hour)}}}
		checkSameBytes(t, "query", encodeQuery(t, x), refEncode(t, refQueryResults(x)))
		for _, off := range []int{0, 1, 3} {
			got := encodeSearch(t, x, off, 2)
			checkSameBytes(t, fmt.Sprintf("search page at %d", off), got, refEncode(t, refSearchResults(x, off, 2)))
		}
	})
}

// largeResult is an execution shaped like the suite's 90-day organization
// query at Day by client, template and method: 150,000 rows of typical ids,
// each distinct string one value shared by its rows, as the store's
// dictionaries make them.
func largeResult() fixture {
	rng := rand.New(rand.NewPCG(9, 10))
	ids, names, templates := make([]string, 200), make([]string, 200), make([]string, 400)
	for i := range ids {
		ids[i], names[i] = fmt.Sprintf("9f32b7cf-7418-4cc1-b4e7-%012d", i), fmt.Sprintf("client %d", i)
	}
	for i := range templates {
		templates[i] = fmt.Sprintf("api/v2/things/{thingId}/parts/%d", i)
	}
	rows := make([]apiusage.Row, 150_000)
	for i := range rows {
		rows[i] = apiusage.Row{
			Date:        time.Date(2026, 8, 3+i/1700, 0, 0, 0, 0, time.UTC),
			ClientID:    ids[i%200],
			ClientName:  names[i%200],
			TemplateURI: templates[rng.IntN(400)],
			Method:      []string{"GET", "POST", "PUT", "DELETE"}[rng.IntN(4)],
			Counts:      apiusage.Counts{Status200: rng.Int64N(5000), Status400: rng.Int64N(50), Status429: rng.Int64N(5), Requests: rng.Int64N(5100)},
		}
	}
	return fixture{Execution: apiusage.Execution{ID: "x", Status: apiusage.StatusComplete, Metrics: apiusage.AllMetrics}, Rows: rows}
}

// largeTable is largeResult's table, as run builds it.
func largeTable(tb testing.TB) *table {
	tb.Helper()
	x := largeResult()
	t, err := newTable(rowSetOf(x.Rows), queryView(x.Metrics, apiusage.GranularityDay), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// BenchmarkBuildTable measures turning a 150,000-row result into the table
// that is kept, as run does once per execution.
func BenchmarkBuildTable(b *testing.B) {
	x := largeResult()
	view := queryView(x.Metrics, apiusage.GranularityDay)
	b.ReportAllocs()
	var t *table
	for b.Loop() {
		var err error
		if t, err = newTable(rowSetOf(x.Rows), view, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(t.bytes())/float64(t.n), "kept-B/row")
}

// BenchmarkEncodeResults measures encoding a 150,000-row result: impl=json
// is encoding/json over the rows; impl=table the hand-written encoder over
// the kept table into a reused buffer.
func BenchmarkEncodeResults(b *testing.B) {
	x := largeResult()
	b.Run("impl=json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			enc := json.NewEncoder(io.Discard)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(refQueryResults(x)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=table", func(b *testing.B) {
		t := largeTable(b)
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendResultsBody(buf[:0], t)
		}
	})
}

// BenchmarkServeResults measures one poll of a complete 150,000-row result
// over loopback HTTP, the body read to its end by a Go client: impl=json
// encodes the rows with encoding/json; impl=buffer encodes the table whole
// into a reused buffer and writes it at once; impl=stream is the results
// handler's path, encoding in chunks as it writes.
func BenchmarkServeResults(b *testing.B) {
	x := largeResult()
	t := largeTable(b)
	s := &Server{log: slog.New(slog.DiscardHandler)}
	var buf []byte
	for _, tt := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"impl=json", func(w http.ResponseWriter, r *http.Request) {
			s.writeJSON(w, r, http.StatusOK, refQueryResults(x))
		}},
		{"impl=buffer", func(w http.ResponseWriter, r *http.Request) {
			buf = appendResultsBody(buf[:0], t)
			s.writeJSON(w, r, http.StatusOK, resultsBody{b: buf})
		}},
		{"impl=stream", func(w http.ResponseWriter, r *http.Request) {
			s.writeJSON(w, r, http.StatusOK, resultsBody{n: t.bodyLen, stream: func(w io.Writer) error { return writeResults(w, t) }})
		}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
			defer client.CloseIdleConnections()
			b.ReportAllocs()
			for b.Loop() {
				readBody(b, client, srv.URL, t.bodyLen)
			}
		})
	}
}

// BenchmarkServeGzip weighs gzip for results on loopback at its most
// favourable: a body compressed once beforehand (at BestSpeed) against the
// plain body, both sent as they are; the client decompresses.
func BenchmarkServeGzip(b *testing.B) {
	body := appendResultsBody(nil, largeTable(b))
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

// appendResultsBody appends the contract's ApiUsageQueryResult of a
// complete organization or client query, every row, a trailing newline
// included: the bytes writeResults streams, whole.
func appendResultsBody(b []byte, t *table) []byte {
	b = append(b, resultsStart...)
	b = t.appendRows(b, 0, t.n)
	return append(b, resultsEnd...)
}

// rowLen is the length of row i as appendRow writes it.
func (t *table) rowLen(i int) int {
	const fixed = len(rowClientID+rowClientName+rowOrganization+rowUser+rowTemplate+rowMethod) + len("}")
	w, f := t.row(i), &t.fields
	n := fixed
	for c := range colDate {
		n += t.strLen(f[c].get(w))
	}
	m := &t.enc
	if m.status200 {
		n += len(rowStatus200) + intLen(int64(f[fStatus200].get(w)))
	}
	if m.status300 {
		n += len(rowStatus300) + intLen(int64(f[fStatus300].get(w)))
	}
	if m.status400 {
		n += len(rowStatus400) + intLen(int64(f[fStatus400].get(w)))
	}
	if m.status500 {
		n += len(rowStatus500) + intLen(int64(f[fStatus500].get(w)))
	}
	if m.status429 {
		n += len(rowStatus429) + intLen(int64(f[fStatus429].get(w)))
	}
	if m.requests {
		n += len(rowRequests) + intLen(int64(f[fRequests].get(w)))
	}
	if d := f[colDate].get(w); d != 0 {
		n += len(rowDate) + t.strLen(d)
	}
	return n
}

// measure returns the length of the results body of every row, from the
// packed rows (newTable counts it from the rows as it packs them; the tests
// hold the two to each other and to the bytes).
func (t *table) measure() int {
	n := len(resultsStart) + len(resultsEnd) + max(t.n-1, 0)
	for i := range t.n {
		n += t.rowLen(i)
	}
	return n
}
