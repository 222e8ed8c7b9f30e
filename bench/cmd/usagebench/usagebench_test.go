package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

func TestSummarize(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	tests := []struct {
		name string
		in   []time.Duration
		want summary
	}{
		{"empty", nil, summary{}},
		{"one", ms(7), summary{N: 1, Median: 7 * time.Millisecond, P99: 7 * time.Millisecond, Min: 7 * time.Millisecond, Max: 7 * time.Millisecond}},
		{"p99 of few runs is the max", ms(5, 1, 3, 2, 4), summary{N: 5, Median: 3 * time.Millisecond, P99: 5 * time.Millisecond, Min: time.Millisecond, Max: 5 * time.Millisecond}},
		{"even count takes the lower middle", ms(4, 1, 3, 2), summary{N: 4, Median: 2 * time.Millisecond, P99: 4 * time.Millisecond, Min: time.Millisecond, Max: 4 * time.Millisecond}},
		{"hundred", ms(hundred...), summary{N: 100, Median: 50 * time.Millisecond, P99: 99 * time.Millisecond, Min: time.Millisecond, Max: 100 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.in); got != tt.want {
				t.Fatalf("summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	// The command name holds a space and a parenthesis, as it may.
	line := []byte("1234 (api usage) x) S 1 1234 1234 0 -1 4194560 5000 0 0 0 250 130 0 0 20 0 12 0 100 0 0\n")
	got, err := parseStatCPU(line)
	if want := 3800 * time.Millisecond; err != nil || got != want {
		t.Fatalf("parseStatCPU = %v, %v; want %v", got, err, want)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Fatal("parseStatCPU(garbage) succeeded")
	}
}

func TestParseStatusMemory(t *testing.T) {
	status := []byte("Name:\tapiusage\nVmPeak:\t 2000 kB\nVmHWM:\t  300 kB\nVmRSS:\t  200 kB\n")
	rss, peak, err := parseStatusMemory(status)
	if err != nil || rss != 200<<10 || peak != 300<<10 {
		t.Fatalf("parseStatusMemory = %d, %d, %v; want %d, %d", rss, peak, err, 200<<10, 300<<10)
	}
	if _, _, err := parseStatusMemory([]byte("Name:\tx\n")); err == nil {
		t.Fatal("parseStatusMemory without VmRSS succeeded")
	}
}

func TestRewriterRenamesOrganizationsAndClients(t *testing.T) {
	rw := &rewriter{
		orgs:    map[string]string{"o1": "ORG-ONE-LONGER", "o2": "O2"},
		clients: map[string]string{"c1": "C"},
		watch:   "ORG-ONE-LONGER",
	}
	tests := []struct {
		in, want string
		watched  bool
	}{
		{`{"timestamp":"t","organizationId":"o1","clientId":"c1","status":200}` + "\n",
			`{"timestamp":"t","organizationId":"ORG-ONE-LONGER","clientId":"C","status":200}` + "\n", true},
		{`{"organizationId":"o2","clientId":"c9"}`, `{"organizationId":"O2","clientId":"c9"}`, false},
		{`{"organizationId":"o3","clientId":"c1"}`, `{"organizationId":"o3","clientId":"C"}`, false},
		{`{"status":200}`, `{"status":200}`, false},
	}
	var h hints
	for _, tt := range tests {
		got, w := rw.compile().appendLine([]byte("prefix|"), []byte(tt.in), &h)
		if string(got) != "prefix|"+tt.want || w != tt.watched {
			t.Errorf("appendLine(%s) = %s, %v; want %s, %v", tt.in, got, w, tt.want, tt.watched)
		}
	}
}

func TestBatcherCutsBatches(t *testing.T) {
	for _, inPlace := range []bool{true, false} {
		t.Run(map[bool]string{true: "in place", false: "copying"}[inPlace], func(t *testing.T) {
			testBatcherCutsBatches(t, inPlace)
		})
	}
}

func testBatcherCutsBatches(t *testing.T, inPlace bool) {
	var in strings.Builder
	for i := range 25 {
		org := "a"
		if i%5 == 0 {
			org = "w"
		}
		in.WriteString(`{"organizationId":"` + org + `","n":` + strings.Repeat("1", i+1) + "}\n")
		if i == 10 {
			in.WriteString("\n") // a blank line is no event
		}
	}
	text := strings.TrimSuffix(in.String(), "\n") // the last line has no newline
	bt := newBatcher(strings.NewReader(text), &rewriter{watch: "w"}, 10)
	if !inPlace {
		bt = copyingBatcher(strings.NewReader(text), &rewriter{watch: "w"}, 10)
	}
	if bt.inPlace != inPlace {
		t.Fatalf("batcher in place %v, want %v", bt.inPlace, inPlace)
	}
	var sizes, watched []int
	var all bytes.Buffer
	var b batch
	for {
		err := bt.next(&b)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, b.events)
		watched = append(watched, b.watched)
		all.Write(b.body)
	}
	if got, want := sizes, []int{10, 10, 5}; !equal(got, want) {
		t.Fatalf("batch sizes %v, want %v", got, want)
	}
	if got, want := watched, []int{2, 2, 1}; !equal(got, want) {
		t.Fatalf("watched per batch %v, want %v", got, want)
	}
	if got, want := all.String(), strings.ReplaceAll(text, "\n\n", "\n")+"\n"; got != want {
		t.Fatalf("batches hold\n%s\nwant\n%s", got, want)
	}
	rr, _ := io.ReadAll(newRenamingReader(strings.NewReader(text), &rewriter{}))
	if string(rr) != all.String() {
		t.Fatalf("renamingReader gave %d bytes, batches %d", len(rr), all.Len())
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestScanStatus(t *testing.T) {
	tests := []struct{ body, status, after string }{
		{`{"queryStatus":"Running"}`, "Running", ""},
		{`{"results":[{"clientId":"x"}],"queryStatus":"Complete","cursors":{"after":"abc="}}`, "Complete", "abc="},
		{`{"results":[],"queryStatus":"Complete"}`, "Complete", ""},
		// Rows longer than the tail searched first.
		{`{"results":[` + strings.Repeat(`{"clientId":"x"},`, 500) + `{"clientId":"y"}],"queryStatus":"Complete","cursors":{"after":"p2"}}`, "Complete", "p2"},
		{`{"results":[` + strings.Repeat(`{"clientId":"x"},`, 500) + `{"clientId":"y"}],"queryStatus":"Complete"}`, "Complete", ""},
		// The status before the rows: found in the whole body.
		{`{"queryStatus":"Complete","cursors":{"after":"p3"},"results":[` + strings.Repeat(`{"clientId":"x"},`, 500) + `{"clientId":"y"}]}`, "Complete", "p3"},
	}
	for _, tt := range tests {
		s, a := scanStatus([]byte(tt.body))
		if s != tt.status || a != tt.after {
			t.Errorf("scanStatus(%.80s...) = %q, %q; want %q, %q", tt.body, s, a, tt.status, tt.after)
		}
	}
}

func TestBuildQueries(t *testing.T) {
	end := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	setup := querySetup{Start: end.AddDate(0, 0, -90), End: end, Org: "O", Client: "C",
		SearchClients: map[string]string{"B": "b", "A": "a"}, Now: time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)}
	qs, err := buildQueries(setup)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]querySpec{}
	for _, q := range qs {
		byName[q.Name] = q
	}
	sum := byName["summary"]
	// Today 2026-11-25 minus 31 days is 2026-10-25, the workload's last
	// seven days and the days since.
	if want := "/api/v2/oauth/clients/C/usage/summary?days=31"; sum.Path != want {
		t.Errorf("summary path %q, want %q", sum.Path, want)
	}
	if got, want := sum.Query.Interval.Start, end.AddDate(0, 0, -7); !got.Equal(want) {
		t.Errorf("summary starts %s, want %s", got, want)
	}
	ss := byName["simplesearch"]
	if got := ss.Body.(map[string]any)["oauthClientNames"].([]string); strings.Join(got, ",") != "A,B" {
		t.Errorf("simple search names %v, want [A B]", got)
	}
	if got := strings.Join(ss.Query.ClientIDs, ","); got != "a,b" {
		t.Errorf("simple search client ids %v, want [a b]", got)
	}
	if q := byName["org-90d-day-grouped"]; q.Query.OrganizationID != "O" || q.Body.(map[string]any)["interval"] != "2026-08-03/2026-11-01" {
		t.Errorf("org query %+v", q)
	}
	setup.Now = end.AddDate(1, 0, 0)
	if _, err := buildQueries(setup); err == nil {
		t.Error("buildQueries a year after the workload's end succeeded; the summary cannot reach it")
	}
}

func TestNormalizeAndDiff(t *testing.T) {
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := apiusage.Row{Date: day, ClientID: "b", Method: "GET", TemplateURI: "t", Counts: apiusage.Counts{Status200: 1, Requests: 1}}
	b := apiusage.Row{Date: day, ClientID: "a", Method: "GET", TemplateURI: "t", Counts: apiusage.Counts{Status200: 2, Requests: 2}}
	search := querySpec{Search: true}
	got := normalize([]apiusage.Row{a, b}, search)
	if got[0].ClientID != "a" || got[0].Counts.Requests != 0 {
		t.Fatalf("normalize for a search = %+v, want sorted by client, without requests", got)
	}
	if d := diffRows(normalize([]apiusage.Row{a, b}, search), normalize([]apiusage.Row{b, a}, search)); d != "" {
		t.Fatalf("search rows in another order differ: %s", d)
	}
	if d := diffRows([]apiusage.Row{a, b}, []apiusage.Row{b, a}); d == "" {
		t.Fatal("query rows in another order compare equal; their order is part of the contract")
	}
	c := b
	c.Counts.Status429 = 1
	if d := diffRows([]apiusage.Row{a, b}, []apiusage.Row{a, c}); !strings.Contains(d, "row 1") {
		t.Fatalf("diff of a changed count = %q, want it to name row 1", d)
	}
}

func TestReportMarkdown(t *testing.T) {
	r := newReport(config{Mode: "quick", Events: 1000, Seed: 1})
	r.ingest = []ingestRow{
		{System: "apiusage", Events: 1000, Elapsed: time.Millisecond, CPU: time.Millisecond, RunnerCPU: 500 * time.Microsecond},
		{System: "ClickHouse 18", Events: 1000, Elapsed: 10 * time.Millisecond, CPU: time.Millisecond},
	}
	r.latency = []latencyRow{{Query: querySpec{Name: "org-90d-day-grouped", Description: "the org query"}, Rows: 3,
		By: map[string]summary{"apiusage": {N: 3, Median: 40 * time.Millisecond, P99: 45 * time.Millisecond},
			"ClickHouse": {N: 3, Median: time.Second, P99: time.Second}}}}
	r.footprint = []footprintRow{{System: "apiusage", RSS: 100 << 20, Disk: 5000, Events: 1000}}
	r.restart = restartRow{Took: time.Second, OK: true}
	md := r.markdown(machineInfo{CPUs: 2, Model: "Test CPU"})
	for _, want := range []string{
		"| ingest ≥ 1,000,000 events/s, durable | 1000000 events/s | yes |",
		// Server and load generator CPU per million events, side by side.
		"| 1000000 | 1.00 ms | 1.00 | 0.50 |",
		"| ingest ≥ ClickHouse's JSONEachRow rate | 10.00× | yes |",
		"| org-90d-day-grouped: median < 50 ms | 40 ms | yes |",
		"| org-90d-day-grouped: ≥ 20× faster than ClickHouse | 25.0× | yes |",
		"| < 10 bytes on disk per event | 5.0 | yes |",
		"Test CPU",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	const skipped = "PostgreSQL did not run (--postgres=false)"
	if strings.Contains(md, skipped) {
		t.Errorf("report says %q of a run with every baseline", skipped)
	}
	r.cfg.Baselines, r.cfg.Postgres = true, false
	if md := r.markdown(machineInfo{CPUs: 2}); !strings.Contains(md, skipped) {
		t.Errorf("report of a run without PostgreSQL lacks %q", skipped)
	}
}

// chunkReader returns its bytes a few at a time.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestReadBody(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 20_000)
	for _, tt := range []struct {
		name   string
		prefix string
		n      int64
		chunk  int
	}{
		{"known length", "", int64(len(body)), 1 << 20},
		{"unknown length", "", -1, 1 << 20},
		{"small reads after earlier pages", "page one;", -1, 7},
		{"known length after earlier pages", "page one;", int64(len(body)), 4096},
	} {
		t.Run(tt.name, func(t *testing.T) {
			buf := append(make([]byte, 0, 3), tt.prefix...)
			got, err := readBody(buf, &chunkReader{b: body, n: tt.chunk}, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.prefix + string(body); string(got) != want {
				t.Fatalf("read %d bytes, want the %d of the prefix and the body", len(got), len(want))
			}
			if tt.n > 0 && cap(got) > len(got)+1+64<<10 {
				t.Fatalf("capacity %d for %d bytes of a known length: grown more than once", cap(got), len(got))
			}
		})
	}
}

func TestExecuteReusesItsBuffer(t *testing.T) {
	// A Running poll, then two pages: the pages come back whole, and once
	// the buffer has grown to hold them, later executions read into the
	// same memory.
	polls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"executionId":"x","resultsUri":"/results"}`)
		case r.URL.Query().Get("after") == "":
			if polls++; polls%2 == 1 {
				io.WriteString(w, `{"queryStatus":"Running"}`)
				return
			}
			io.WriteString(w, `{"results":[{"clientId":"a"}],"queryStatus":"Complete","cursors":{"after":"p2"}}`)
		default:
			io.WriteString(w, `{"results":[{"clientId":"b"}],"queryStatus":"Complete"}`)
		}
	}))
	defer srv.Close()
	a := newAPI(srv.URL, 1)
	var first *byte
	for run := range 3 {
		pages, _, err := a.execute(context.Background(), "/query", map[string]string{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(pages) != 2 || !strings.Contains(string(pages[0]), `"a"`) || !strings.Contains(string(pages[1]), `"b"`) ||
			strings.Contains(string(pages[0]), "Running") {
			t.Fatalf("run %d: pages %q, want the two Complete pages", run, pages)
		}
		if run == 1 {
			first = &pages[0][0]
		} else if run == 2 && &pages[0][0] != first {
			t.Fatal("the third execution read into fresh memory, not the buffer of the second")
		}
	}
}

// TestReportKeepsEarlierTables writes three reports of one day into one
// directory: each gets its own file, and the first is left as it was.
func TestReportKeepsEarlierTables(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 3 {
		r := newReport(config{Mode: "quick", Events: int64(1000 * (i + 1)), Seed: 1})
		p, err := r.write(dir)
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		paths = append(paths, p)
	}
	if paths[0] == paths[1] || paths[1] == paths[2] || paths[0] == paths[2] {
		t.Fatalf("paths %v: want three files", paths)
	}
	first, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(first), "--events 1000 ") {
		t.Errorf("the first table was overwritten:\n%.400s", first)
	}
}

// TestWarmFile checks that a workload file small enough to stay cached is
// read before the loads, and that the results table says how the loads read
// it.
func TestWarmFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(path, bytes.Repeat([]byte("{}\n"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &suite{file: path, log: io.Discard, rep: newReport(config{Mode: "quick", Events: 1000, Seed: 1})}
	if err := s.warmFile(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[bool]string{
		true:  "was read once before the loads, so that every system's load read it from the cache",
		false: "", // no memory to compare with: nothing said
	}[fitsCache(3000)]
	md := s.rep.markdown(machineInfo{CPUs: 2})
	if want != "" && !strings.Contains(md, want) {
		t.Errorf("the table does not say the file was read from the cache:\n%s", md)
	}
	if strings.Contains(md, "too big to stay in the page cache") {
		t.Error("the table says a 3 KB file is too big for the page cache")
	}
	s.file = filepath.Join(t.TempDir(), "missing.ndjson")
	if err := s.warmFile(context.Background()); err == nil {
		t.Error("warming a missing file did not fail")
	}
}

// TestSelfProfile takes a CPU profile of the test's own process, as the
// ingest step does of usagebench's: a second one cannot start while the
// first runs, and the first is saved, gzipped as pprof writes it.
func TestSelfProfile(t *testing.T) {
	p := &profiler{dir: t.TempDir()}
	stop, err := p.self("self.cpu")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.self("again.cpu"); err == nil {
		t.Error("a second profile started while the first ran")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(p.dir, "self.cpu.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("the profile is not gzipped pprof: % x", b[:min(len(b), 8)])
	}
}
