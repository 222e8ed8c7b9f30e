package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/bench/workload"
)

// decodeSeeds are bodies that reach every corner of the ingest body's
// grammar; the differential test and fuzz target decode each both ways.
var decodeSeeds = []struct {
	body   string
	ndjson bool
}{
	{`{"timestamp":"2026-11-25T10:15:02.123Z","organizationId":"o","clientId":"c","clientName":"n","userId":"u","templateUri":"t","httpMethod":"GET","status":200,"id":"e1"}`, false},
	{`[{"timestamp":"2026-11-25T10:15:02Z","status":201},{"timestamp":"2026-02-28T23:59:59.9Z"}]`, false},
	{"{\"status\":200}\n{\"status\":404}\r\n\n", true},
	{`{"status":1}{"status":2} {"status":3}`, true},
	{`null`, true},
	// Escaped strings as long as their bytes in the body (two escapes
	// shorter, an invalid byte two bytes longer).
	{"{\"clientId\":\"a\\/\\/\xff\",\"userId\":\"\\u00e9x\",\"clientId\":\"b\\/\\/\xfe\"}\n{\"clientId\":\"a//\xef\xbf\xbd\"}", true},
	// Valid and nearly valid events, for validHinted (see checkHint).
	{"{\"timestamp\":\"2026-11-25T10:15:02+02:00\",\"organizationId\":\"o\",\"clientId\":\"c\",\"templateUri\":\"t\",\"httpMethod\":\"get\",\"status\":599}\n" +
		"{\"timestamp\":\"1970-01-01T00:00:00Z\",\"organizationId\":\"o\",\"clientId\":\"c2\",\"templateUri\":\"t\",\"httpMethod\":\"Post\",\"status\":100,\"userId\":\"u\"}\n" +
		"{\"timestamp\":\"9999-12-31T23:59:59.999999999Z\",\"organizationId\":\"o\",\"clientId\":\"c\",\"templateUri\":\"t\",\"httpMethod\":\"GET\",\"status\":200,\"clientName\":\"n\"}", true},
	{`[{"timestamp":"1969-12-31T23:59:59.5Z","organizationId":"o","clientId":"c","templateUri":"t","httpMethod":"GET","status":200}]`, false},
	{`[{"timestamp":"1970-01-01T00:59:59+01:00","organizationId":"o","clientId":"c","templateUri":"t","httpMethod":"GET","status":200}]`, false},
	{`[{"timestamp":"2026-11-25T10:15:02Z","organizationId":"o","clientId":"c","templateUri":"t","httpMethod":"FETCH","status":200}]`, false},
	{`[{"timestamp":"2026-11-25T10:15:02Z","organizationId":"o","clientId":"c","templateUri":"t","httpMethod":"GET","status":600}]`, false},
	{`[{"timestamp":"2026-11-25T10:15:02Z","organizationId":"o","clientId":"","templateUri":"t","httpMethod":"GET","status":200}]`, false},
	{`[{"timestamp":"2026-11-25T10:15:02Z","organizationId":"o","clientId":"c","templateUri":"t","httpMethod":"get","httpMethod":"GET","status":200}]`, false},
	{`[{"timestamp":"2026-11-25T10:15:02Z","organizationId":"o","clientId":"c","templateUri":"t","httpMethod":"FETCH","httpMethod":"put","status":200}]`, false},
	{`[{"timestamp":"2026-11-25T10:15:02Z","organizationId":"o","clientId":"c","templateUri":"t","status":200}]`, false},
	{`[{"timestamp":"2026-11-25T10:15:02Z","organizationId":"` + strings.Repeat("o", 513) + `","clientId":"c","templateUri":"t","httpMethod":"GET","status":200}]`, false},
	{`[{"timestamp":"2026-11-25T10:15:02Z","organizationId":"` + strings.Repeat("o", 512) + `","clientId":"c","templateUri":"t","httpMethod":"GET","status":200,"id":"` + strings.Repeat("i", 256) + `"}]`, false},
	{`[{"timestamp":"2026-11-25T10:15:02Z","organizationId":"o","clientId":"c","templateUri":"t","httpMethod":"GET","status":200,"id":"` + strings.Repeat("i", 257) + `"}]`, false},
	{`[null,{}]`, false},
	{`[1]`, false},
	{`["x"]`, false},
	{`[[]]`, false},
	{`1`, true},
	{`true`, true},
	{`]`, true},
	{`}`, true},
	{`{} ]`, true},
	{`[`, false},
	{`[,{}]`, false},
	{`[{},]`, false},
	{`[{} {}]`, false},
	{`[{}}`, false},
	{`[{}] x`, false},
	{`[{}] []`, false},
	{`{} {}`, false},
	{`{},`, false},
	{`x`, false},
	{`  `, false},
	{`  `, true},
	{`{"a":1,}`, false},
	{`{"a" 1}`, false},
	{`{"a":}`, false},
	{`{,}`, false},
	{`{"a":1 "b":2}`, false},
	{`{"unknown":{"x":[1,2.5e-3,-0,true,false,null,"s\n\u00e9"]},"status":200}`, false},
	{`{"unknown":[1,2}`, false},
	{`{"unknown":{"x" 1}}`, false},
	{`{"unknown":{1:2}}`, false},
	{`{"unknown":01}`, false},
	{`{"unknown":-}`, false},
	{`{"unknown":1.}`, false},
	{`{"unknown":1e}`, false},
	{`{"unknown":nul}`, false},
	{`{"unknown":tru}`, false},
	{`{"unknown":"\x"}`, false},
	{`{"unknown":"\u12"}`, false},
	{`{"unknown":"\u12g4"}`, false},
	{"{\"unknown\":\"a\x01b\"}", false},
	{"{\"unknown\":\"\xff\"}", false},
	{`{"status":200.0}`, false},
	{`{"status":2e2}`, false},
	{`{"status":-0}`, false},
	{`{"status":-200}`, false},
	{`{"status":9223372036854775807}`, false},
	{`{"status":9223372036854775808}`, false},
	{`{"status":-9223372036854775808}`, false},
	{`{"status":-9223372036854775809}`, false},
	{`{"status":"200"}`, false},
	{`{"status":true}`, false},
	{`{"status":{}}`, false},
	{`{"status":null}`, false},
	{`{"status":200,"status":null}`, false},
	{`{"status":200,"status":404}`, false},
	{`{"STATUS":200,"Status":201}`, false},
	{`{"Status":201,"status":200}`, false},
	{"{\"\u017ftatus\":200}", false},
	{`{"\u0073tatus":200}`, false},
	{`{"httpmethod":"get","TEMPLATEURI":"t","ORGANIZATIONID":"o","ClientID":"c","clientname":"n","USERID":"u","ID":"i","TimeStamp":"2026-11-25T10:15:02Z"}`, false},
	{"{\"oauthClientId\":\"x\",\"clientId\":\"\u212a\"}", false},
	{`{"clientId":"a\"b\\c\/d\be\ff\ng\rh\ti"}`, false},
	{`{"clientId":"\u00e9\u4e2d\ud83d\ude00"}`, false},
	{`{"clientId":"\ud83d"}`, false},
	{`{"clientId":"\ud83dx"}`, false},
	{`{"clientId":"\ud83d\u0041"}`, false},
	{`{"clientId":"\ude00\ud83d"}`, false},
	{`{"clientId":"\ud83d\ud83d\ude00"}`, false},
	{`{"clientId":"\ud83d\u12"}`, false},
	{"{\"clientId\":\"a\xffb\xc3\"}", false},
	{"{\"clientId\":\"\xed\xa0\x80\"}", false},
	{"{\"clientId\":\"\xef\xbf\xbd\"}", false},
	{"{\"clientId\":\"\t\"}", false},
	{`{"clientId":"\'"}`, false},
	{`{"clientId":1}`, false},
	{`{"clientId":[]}`, false},
	{`{"clientId":null}`, false},
	{`{"clientId":"a","clientId":null}`, false},
	{`{"clientId":"abc`, false},
	{`{"clientId":"abc\`, false},
	{`{"clientId":"é`, false},
	{`{"timestamp":null}`, false},
	{`{"timestamp":"2026-11-25T10:15:02+01:00"}`, false},
	{`{"timestamp":"2026-11-25T10:15:02.5-07:30"}`, false},
	{`{"timestamp":"2026-11-25T10:15:02.123456789Z"}`, false},
	{`{"timestamp":"2026-11-25T10:15:02.1234567891Z"}`, false},
	{`{"timestamp":"2026-11-25T10:15:02.Z"}`, false},
	{`{"timestamp":"2026-11-25T10:15:02,5Z"}`, false},
	{`{"timestamp":"2026-11-25t10:15:02z"}`, false},
	{`{"timestamp":"2026-11-25T10:15:60Z"}`, false},
	{`{"timestamp":"2026-11-25T24:00:00Z"}`, false},
	{`{"timestamp":"2024-02-29T00:00:00Z"}`, false},
	{`{"timestamp":"2026-02-29T00:00:00Z"}`, false},
	{`{"timestamp":"2100-02-29T00:00:00Z"}`, false},
	{`{"timestamp":"2000-02-29T00:00:00Z"}`, false},
	{`{"timestamp":"0000-01-01T00:00:00Z"}`, false},
	{`{"timestamp":"2026-04-31T00:00:00Z"}`, false},
	{`{"timestamp":"2026-13-01T00:00:00Z"}`, false},
	{`{"timestamp":"2026-11-25T1:15:02Z"}`, false},
	{`{"timestamp":"2026-11-25T10:15:02+24:00"}`, false},
	{`{"timestamp":"2026-11-25T10:15:02\u005a"}`, false},
	{`{"timestamp":"2026-11-25"}`, false},
	{`{"timestamp":""}`, false},
	{`{"timestamp":1}`, false},
	{`{"timestamp":{"a":1}}`, false},
	{`{"timestamp":[1}`, false},
	{`{"timestamp":"yesterday"}`, false},
	{`{"timestamp":"2026-11-25T10:15:02Z","timestamp":null}`, false},
}

// checkSameDecoding fails unless the parsers of ps and the encoding/json
// decoder agree: the same events, or errors of the same code. It decodes as
// the handler does, into the parser's reused events, and holds the batch's
// hint to its events (see checkHint).
func checkSameDecoding(t *testing.T, ps *eventParsers, body []byte, ndjson bool, max int) {
	t.Helper()
	p := ps.get()
	defer ps.put(p)
	got, hint, gotErr := p.decodeReused(bytes.NewReader(body), 0, ndjson, max)
	want, wantErr := decodeEventsStd(bytes.NewReader(body), ndjson, max)
	switch {
	case gotErr != nil && wantErr != nil:
		if g, w := apiusage.ErrorCode(gotErr), apiusage.ErrorCode(wantErr); g != w {
			t.Fatalf("body %q (ndjson %v): error code %s (%v), want %s (%v)", body, ndjson, g, gotErr, w, wantErr)
		}
		return
	case gotErr != nil || wantErr != nil:
		t.Fatalf("body %q (ndjson %v): got %+v, %v; want %+v, %v", body, ndjson, got, gotErr, want, wantErr)
	case len(got) == 0 && len(want) == 0:
		// Empty either way: nil and an empty slice are the same batch.
	case !reflect.DeepEqual(got, want):
		t.Fatalf("body %q (ndjson %v): got %+v, want %+v", body, ndjson, got, want)
	}
	checkHint(t, body, got, hint)
}

// checkHint fails unless hint describes events exactly, and unless
// validating through it (validHinted) agrees with validateEvents: the same
// verdict and the same normalized events. It may only say no to valid
// events when the hint holds a value no event refers to.
func checkHint(t *testing.T, body []byte, events []apiusage.Event, hint *apiusage.BatchStrings) {
	t.Helper()
	if len(hint.Refs) != len(events) {
		t.Fatalf("body %q: %d refs for %d events", body, len(hint.Refs), len(events))
	}
	used := map[[2]int]bool{}
	for f, vals := range hint.Values {
		if len(vals) == 0 || vals[0] != "" {
			t.Fatalf("body %q: field %d's values %q do not start with \"\"", body, f, vals)
		}
		used[[2]int{f, 0}] = true
	}
	for i := range events {
		e := events[i]
		for f, v := range []string{e.OrganizationID, e.ClientID, e.ClientName, e.UserID, e.TemplateURI, e.Method} {
			r := hint.Refs[i][f]
			if int(r) >= len(hint.Values[f]) || hint.Values[f][r] != v {
				t.Fatalf("body %q: event %d field %d is %q, its ref %d in %q", body, i, f, v, r, hint.Values[f])
			}
			used[[2]int{f, int(r)}] = true
		}
	}
	unused := false
	for f, vals := range hint.Values {
		for r := range vals {
			unused = unused || !used[[2]int{f, r}]
		}
	}
	slow := slices.Clone(events)
	slowErr := validateEvents(slow)
	fast := slices.Clone(events)
	h := *hint
	for f := range h.Values {
		h.Values[f] = slices.Clone(h.Values[f])
	}
	switch ok := validHinted(fast, &h); {
	case ok && slowErr != nil:
		t.Fatalf("body %q: validHinted accepts what validateEvents rejects: %v", body, slowErr)
	case ok && !reflect.DeepEqual(fast, slow):
		t.Fatalf("body %q: validHinted normalized to %+v, want %+v", body, fast, slow)
	case !ok && slowErr == nil && !unused:
		t.Fatalf("body %q: validHinted rejects valid events", body)
	}
}

func TestDecodeEventsMatchesEncodingJSON(t *testing.T) {
	seeds := decodeSeeds
	// encoding/json's nesting bound, 10,000 arrays and objects deep, counted
	// from the event.
	for _, n := range []int{9998, 9999, 10000} {
		deep := strings.Repeat("[", n) + strings.Repeat("]", n)
		seeds = append(seeds,
			struct {
				body   string
				ndjson bool
			}{`{"unknown":` + deep + `}`, false},
			struct {
				body   string
				ndjson bool
			}{`[` + deep + `]`, false},
			struct {
				body   string
				ndjson bool
			}{deep, true})
	}
	// One pool for all, as the handler has, so that its caches carry over.
	var ps eventParsers
	for _, s := range seeds {
		for _, ndjson := range []bool{s.ndjson, !s.ndjson} {
			name := s.body
			if len(name) > 80 {
				name = name[:80]
			}
			t.Run(fmt.Sprintf("%q ndjson=%v", name, ndjson), func(t *testing.T) {
				checkSameDecoding(t, &ps, []byte(s.body), ndjson, 20)
			})
		}
	}
}

// TestDecodeEventsBatchBound checks the bound's edges against the
// encoding/json decoder, whose streaming order decides 413 against 400.
func TestDecodeEventsBatchBound(t *testing.T) {
	for _, body := range []struct {
		body   string
		ndjson bool
	}{
		{`[{},{}]`, false},
		{`[{},{},{}]`, false},
		{`[{},{},]`, false},
		{`[{},{}}`, false},
		{`[{},{} x`, false},
		{`[{},{}`, false},
		{"{}\n{}\n", true},
		{"{}\n{}\n{}", true},
		{"{}\n{}\n]", true},
		{"{}\n{}\nx", true},
	} {
		t.Run(body.body, func(t *testing.T) {
			var ps eventParsers
			checkSameDecoding(t, &ps, []byte(body.body), body.ndjson, 2)
		})
	}
}

// TestDecodeEventsValues holds the parser to values worked out by hand, not
// only to encoding/json.
func TestDecodeEventsValues(t *testing.T) {
	ts := time.Date(2026, 11, 25, 10, 15, 2, 123e6, time.UTC)
	tests := []struct {
		name, body string
		want       apiusage.Event
	}{
		{"every field", `{"id":"e","timestamp":"2026-11-25T10:15:02.123Z","organizationId":"o","clientId":"c","clientName":"n","userId":"u","templateUri":"t","httpMethod":"GET","status":200,"x":[{}]}`,
			apiusage.Event{ID: "e", Time: ts, OrganizationID: "o", ClientID: "c", ClientName: "n", UserID: "u", TemplateURI: "t", Method: "GET", Status: 200}},
		{"escapes", `{"clientId":"\"\\\/\b\f\n\r\t\u00e9"}`, apiusage.Event{ClientID: "\"\\/\b\f\n\r\té"}},
		{"a surrogate pair", `{"clientId":"\ud83d\ude00"}`, apiusage.Event{ClientID: "😀"}},
		{"a lone surrogate", `{"clientId":"\ud83dx\ude00"}`, apiusage.Event{ClientID: "\ufffdx\ufffd"}},
		{"a high surrogate before another escape", `{"clientId":"\ud83d\u0041"}`, apiusage.Event{ClientID: "\ufffdA"}},
		{"invalid UTF-8", "{\"clientId\":\"a\xffb\"}", apiusage.Event{ClientID: "a\ufffdb"}},
		{"a key in another case", `{"CLIENTID":"c","Status":7}`, apiusage.Event{ClientID: "c", Status: 7}},
		{"the last duplicate", `{"status":1,"status":2,"clientId":"a","clientId":null}`, apiusage.Event{ClientID: "a", Status: 2}},
		{"nanoseconds", `{"timestamp":"2026-11-25T10:15:02.000000007Z"}`, apiusage.Event{Time: time.Date(2026, 11, 25, 10, 15, 2, 7, time.UTC)}},
		{"an offset", `{"timestamp":"2026-11-25T11:15:02.123+01:00"}`, apiusage.Event{Time: ts.In(time.FixedZone("", 3600))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeEvents(strings.NewReader(tt.body), false, 10)
			if err != nil {
				t.Fatalf("decode %s: %v", tt.body, err)
			}
			if len(got) != 1 || !got[0].Time.Equal(tt.want.Time) {
				t.Fatalf("decode %s: got %+v, want %+v", tt.body, got, tt.want)
			}
			got[0].Time, tt.want.Time = time.Time{}, time.Time{}
			if got[0] != tt.want {
				t.Fatalf("decode %s: got %+v, want %+v", tt.body, got[0], tt.want)
			}
		})
	}
}

// TestDecodeEventsErrorsNameEventAndField checks the 400's wording.
func TestDecodeEventsErrorsNameEventAndField(t *testing.T) {
	tests := []struct{ body, want string }{
		{`[{},{"status":"200"}]`, "event 1: malformed JSON: status: cannot be a JSON string"},
		{`[{},{},{"clientId":5}]`, "event 2: malformed JSON: clientId: cannot be a JSON number 5"},
		{`[{"timestamp":"yesterday"}]`, "event 0: malformed JSON: timestamp: parsing time"},
		{`[{},{"status":2.5}]`, "event 1: malformed JSON: status: cannot be a JSON number 2.5"},
		{`[{},{"a" 1}]`, "event 1: malformed JSON at byte 10: invalid character '1' after object key"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			_, err := decodeEvents(strings.NewReader(tt.body), false, 10)
			checkDecodeError(t, err, apiusage.CodeBadRequest)
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to hold %q", err, tt.want)
			}
		})
	}
}

// TestEventParsersReuse checks that a parser's second batch leaves the
// first batch's events alone: no string may alias the reused body buffer.
func TestEventParsersReuse(t *testing.T) {
	var ps eventParsers
	first, err := ps.decode(strings.NewReader(`{"id":"a1","clientId":"c1","clientName":"\u00e9"}`), 0, true, 10)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := ps.decode(strings.NewReader(`{"id":"zz","clientId":"zz","clientName":"\u00ff"}`), 0, true, 10); err != nil {
			t.Fatal(err)
		}
	}
	want := apiusage.Event{ID: "a1", ClientID: "c1", ClientName: "é"}
	if first[0] != want {
		t.Fatalf("first batch now %+v, want %+v", first[0], want)
	}
}

// FuzzDecodeEventsDifferential holds the ingest parser to encoding/json:
// every body decodes to the same events both ways, or fails both ways with
// the same code. The parsers come from one pool, as the handler's do, so
// that what one body leaves in a parser meets the next.
func FuzzDecodeEventsDifferential(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s.body), s.ndjson)
	}
	var ps eventParsers
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool) {
		checkSameDecoding(t, &ps, body, ndjson, 20)
	})
}

// workloadBatch returns n events of the benchmark workload as NDJSON.
func workloadBatch(tb testing.TB, n int64) []byte {
	tb.Helper()
	g, err := workload.New(workload.Config{Seed: 1, Events: n})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkIngestDecode decodes and validates a batch of 10,000 workload
// events (the suite's batch), as NDJSON and as a JSON array, with the
// encoding/json decoder the server had and with the parser it has, pooled
// as the handler pools it. Compare with benchstat -col /decoder.
func BenchmarkIngestDecode(b *testing.B) {
	const n = 10_000
	nd := workloadBatch(b, n)
	array := append([]byte{'['}, bytes.ReplaceAll(bytes.TrimSuffix(nd, []byte{'\n'}), []byte{'\n'}, []byte{','})...)
	array = append(array, ']')
	var check []apiusage.Event
	if err := json.Unmarshal(array, &check); err != nil || len(check) != n {
		b.Fatalf("the array holds %d events (%v), want %d", len(check), err, n)
	}
	var ps eventParsers
	decoders := []struct {
		name   string
		decode func(body []byte, ndjson bool) ([]apiusage.Event, error)
	}{
		{"std", func(body []byte, ndjson bool) ([]apiusage.Event, error) {
			return decodeEventsStd(bytes.NewReader(body), ndjson, 100_000)
		}},
		{"parser", func(body []byte, ndjson bool) ([]apiusage.Event, error) {
			// As the handler does: into the parser's own events, put back
			// once done with them (here, as the next batch starts).
			p := ps.get()
			defer ps.put(p)
			events, hint, err := p.decodeReused(bytes.NewReader(body), int64(len(body)), ndjson, 100_000)
			if err == nil && !validHinted(events, hint) {
				err = errors.New("validHinted rejects the workload")
			}
			return events, err
		}},
	}
	for _, format := range []struct {
		name   string
		body   []byte
		ndjson bool
	}{{"ndjson", nd, true}, {"array", array, false}} {
		for _, d := range decoders {
			b.Run("format="+format.name+"/decoder="+d.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(format.body)))
				cpu := cpuTime(b)
				for b.Loop() {
					got, err := d.decode(format.body, format.ndjson)
					if err != nil || len(got) != n {
						b.Fatalf("decoded %d events, err %v", len(got), err)
					}
					if err := validateEvents(got); err != nil {
						b.Fatal(err)
					}
				}
				// CPU time tells more than wall time on a shared machine.
				b.ReportMetric(float64(cpuTime(b)-cpu)/float64(n*b.N), "cpu-ns/event")
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkIngestDecodeStream decodes and validates successive batches of
// 10,000 workload events, each batch new to the parser, as the server sees
// them: its recent strings churn from batch to batch (users above all),
// which one batch decoded again and again does not show. Between two batches
// of one cache of recent strings, the store's work evicts much of what it
// left in the CPU's caches: parsers=4 decodes with four pools in turn, each
// with caches of its own, as the server's connections had before they shared
// them.
func BenchmarkIngestDecodeStream(b *testing.B) {
	const n, batches = 10_000, 20
	lines := bytes.SplitAfter(workloadBatch(b, n*batches), []byte{'\n'})
	var bodies [][]byte
	for i := 0; i+n <= len(lines); i += n {
		bodies = append(bodies, bytes.Join(lines[i:i+n], nil))
	}
	for _, parsers := range []int{1, 4} {
		b.Run(fmt.Sprintf("parsers=%d", parsers), func(b *testing.B) {
			ps := make([]eventParsers, parsers)
			decode := func(i int) {
				pool := &ps[i%parsers]
				p := pool.get()
				body := bodies[i%len(bodies)]
				events, hint, err := p.decodeReused(bytes.NewReader(body), int64(len(body)), true, 100_000)
				if err != nil || len(events) != n {
					b.Fatalf("decoded %d events, err %v", len(events), err)
				}
				if !validHinted(events, hint) {
					b.Fatal("validHinted rejects the workload")
				}
				pool.put(p)
			}
			// Warm, as a server is after its first batches.
			for i := range 2 * batches {
				decode(i)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(bodies[0])))
			cpu := cpuTime(b)
			for i := 0; b.Loop(); i++ {
				decode(i)
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(n*b.N), "cpu-ns/event")
		})
	}
}

// TestPlain8 holds the word-at-a-time check to the byte-at-a-time one, on
// words made of the bytes around every boundary it must see.
func TestPlain8(t *testing.T) {
	edges := []byte{0x00, 0x01, 0x1f, 0x20, 0x21, '"', '\\', 'a', 0x7e, 0x7f, 0x80, 0x81, 0xc3, 0xfe, 0xff}
	plainByte := func(c byte) bool { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\' }
	word := make([]byte, 8)
	check := func() {
		t.Helper()
		want := true
		for _, c := range word {
			want = want && plainByte(c)
		}
		if got := plain8(binary.LittleEndian.Uint64(word)); got != want {
			t.Fatalf("plain8(%q) = %v, want %v", word, got, want)
		}
	}
	// Every edge byte at every position of an otherwise plain word, and
	// every pair of edge bytes in neighbouring positions (a borrow from one
	// byte into the next is where such tricks go wrong).
	for pos := range 8 {
		for _, c := range edges {
			for _, d := range edges {
				for i := range word {
					word[i] = 'x'
				}
				word[pos] = c
				if pos+1 < 8 {
					word[pos+1] = d
				}
				check()
			}
		}
	}
	for c := range 256 {
		for i := range word {
			word[i] = byte(c)
		}
		check()
	}
}

// TestEventParsersInternCollisions decodes batch after batch through one
// pool with values that share their length and both ends, so that they
// share cache slots: each must still decode to itself.
func TestEventParsersInternCollisions(t *testing.T) {
	var ps eventParsers
	for batch := range 5 {
		var body bytes.Buffer
		var want []string
		for i := range 300 {
			v := fmt.Sprintf("aaaaaaaa-%04d-%d-zzzzzzzz", (i*7+batch)%250, i%3)
			want = append(want, v)
			fmt.Fprintf(&body, "{\"clientId\":%q,\"userId\":%q}\n", v, v[:i%12])
		}
		got, err := ps.decode(&body, 0, true, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range got {
			if e.ClientID != want[i] || e.UserID != want[i][:i%12] {
				t.Fatalf("batch %d event %d: clientId %q userId %q, want %q and %q", batch, i, e.ClientID, e.UserID, want[i], want[i][:i%12])
			}
		}
	}
}

// TestDecodeEventsDeferredValues holds batches of many events to
// encoding/json, so that the values whose interning the parser puts off
// (see deferValue) are interned in groups as full ones do, and out of turn
// where a value must be interned at once: escaped values, which are not in
// the body as they decode, and duplicate keys, the last of which wins,
// among values put off, empty ones and nulls.
func TestDecodeEventsDeferredValues(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 8))
	value := func() string {
		switch rnd.IntN(8) {
		case 0:
			return `""`
		case 1:
			return "null"
		case 2:
			return fmt.Sprintf(`"esc\u0061ped-%d"`, rnd.IntN(5))
		}
		// Often enough the same values again, in and across batches.
		return fmt.Sprintf(`"value-%08d-of-a-batch"`, rnd.IntN(60))
	}
	keys := []string{"organizationId", "clientId", "clientName", "userId", "templateUri", "httpMethod"}
	var ps eventParsers
	for batch := range 6 {
		var body bytes.Buffer
		for range 3*deferredMax + batch {
			body.WriteString("{")
			for k := range 4 + rnd.IntN(8) {
				if k > 0 {
					body.WriteString(",")
				}
				fmt.Fprintf(&body, "%q:%s", keys[rnd.IntN(len(keys))], value())
			}
			body.WriteString("}\n")
		}
		for _, ndjson := range []bool{true, false} {
			b := body.Bytes()
			if !ndjson {
				b = append([]byte{'['}, bytes.ReplaceAll(bytes.TrimSuffix(b, []byte{'\n'}), []byte{'\n'}, []byte{','})...)
				b = append(b, ']')
			}
			checkSameDecoding(t, &ps, b, ndjson, 1000)
		}
	}
}

// TestValidHintedTakesWorkload checks that the fast validation accepts the
// benchmark's workload, and the seeds' valid events, rather than leaving
// every batch to validateEvents.
func TestValidHintedTakesWorkload(t *testing.T) {
	bodies := [][]byte{workloadBatch(t, 2000)}
	for _, s := range decodeSeeds {
		if strings.Contains(s.body, "+02:00") {
			bodies = append(bodies, []byte(s.body))
		}
	}
	if len(bodies) != 2 {
		t.Fatal("the seed of valid events is missing")
	}
	var ps eventParsers
	for _, body := range bodies {
		p := ps.get()
		events, hint, err := p.decodeReused(bytes.NewReader(body), 0, true, 100_000)
		if err != nil {
			t.Fatal(err)
		}
		if !validHinted(events, hint) {
			t.Errorf("validHinted rejects %d valid events (%.100q...)", len(events), body)
		}
		ps.put(p)
	}
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// decodeEvents reads a batch of at most max events: a JSON array of events,
// a single event object, or, when ndjson, events one after another
// (newline-delimited; any JSON whitespace between them is accepted). It
// accepts exactly what encoding/json would decode into []apiusage.Event, with
// a parser of its own (see eventParser); the handler keeps a pool of them.
func decodeEvents(r io.Reader, ndjson bool, max int) ([]apiusage.Event, error) {
	var ps eventParsers
	return ps.decode(r, 0, ndjson, max)
}

// decode reads a body of at most limit bytes (sizeHint, when positive, is
// its announced length) and decodes it as decodeEvents does.
func (ps *eventParsers) decode(r io.Reader, sizeHint int64, ndjson bool, max int) ([]apiusage.Event, error) {
	p := ps.get()
	defer ps.put(p)
	if err := p.read(r, sizeHint); err != nil {
		return nil, err
	}
	return p.parse(nil, ndjson, max)
}

// TestRecentEntryHolds holds an entry's comparison to ==, on strings of
// every length around the word size and the in-line bound, differing from
// the entry's in each byte, and on random strings, with entries that held
// a longer string before (whose bytes linger in line).
func TestRecentEntryHolds(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(4)) // few values: equal bytes are common
		}
		return b
	}
	check := func(e *recentEntry, b []byte) {
		t.Helper()
		if got, want := e.holds(b), e.s == string(b); got != want {
			t.Fatalf("entry %q (in line %q): holds(%q) = %v, want %v", e.s, e.inline, b, got, want)
		}
	}
	var e recentEntry
	for n := 0; n <= inlineMax+9; n++ {
		s := random(n)
		e.set(strings.Repeat("\xff", inlineMax), 0, 0) // leftovers
		e.set(string(s), 1, 1)
		check(&e, s)
		for i := range n {
			b := slices.Clone(s)
			b[i] ^= 0x80
			check(&e, b)
		}
		check(&e, append(slices.Clone(s), 0))
		if n > 0 {
			check(&e, s[:n-1])
			check(&e, s[1:])
		}
	}
	for range 20000 {
		n := rng.IntN(inlineMax + 10)
		e.set(string(random(n)), 0, 0)
		check(&e, random(n))
		check(&e, random(rng.IntN(inlineMax+10)))
	}
}
