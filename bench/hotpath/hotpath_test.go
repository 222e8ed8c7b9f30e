package hotpath

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/bench/workload"
	"github.com/apiusage/apiusage/internal/testserver"
)

// lines returns n events of the workload, their organization renamed to org
// when the workload's is the largest one, and that organization's id.
func lines(tb testing.TB, n int64) ([][]byte, string) {
	tb.Helper()
	g, err := workload.New(workload.Config{Seed: 1, Events: n})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	largest := g.Universe().Organizations[0]
	for _, o := range g.Universe().Organizations {
		if o.Share > largest.Share {
			largest = o
		}
	}
	return bytes.SplitAfter(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n")), largest.ID
}

func post(tb testing.TB, url, token string, body []byte) {
	req, err := http.NewRequest(http.MethodPost, url+"/api/v2/usage/events", bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		tb.Fatalf("ingest: %s", resp.Status)
	}
}

// BenchmarkIngestHTTP posts batches of 10,000 workload events, one batch an
// iteration, through POST /api/v2/usage/events: decoding, validation, the
// store's aggregation, the WAL and its fsync.
func BenchmarkIngestHTTP(b *testing.B) {
	const batch = 10_000
	evs, _ := lines(b, 200_000)
	srv := testserver.Start(b, testserver.Options{})
	token := srv.PlatformToken(b)
	var bodies [][]byte
	for i := 0; i+batch <= len(evs); i += batch {
		bodies = append(bodies, bytes.Join(evs[i:i+batch], nil))
	}
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	i := 0
	cpu := cpuTime(b)
	for b.Loop() {
		post(b, srv.URL, token, bodies[i%len(bodies)])
		i++
	}
	// The process's CPU time (server and client) per event tells more than
	// the wall time on a machine shared with other work.
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N*batch), "cpu-ns/event")
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// queryEvents is the size of the store BenchmarkOrgQueryHTTP asks; the
// suite's quick run is 10,000,000 (a minute or two of setup).
var queryEvents = flag.Int64("hotpath.events", 1_000_000, "events in the store of BenchmarkOrgQueryHTTP")

// BenchmarkOrgQueryHTTP answers the suite's first query, the 90-day
// organization query at Day grouped by client, template and method, over
// the workload's largest organization: from the POST to the Complete
// results body.
func BenchmarkOrgQueryHTTP(b *testing.B) {
	srv := testserver.Start(b, testserver.Options{})
	org := srv.CreateOrg(b, "largest")
	load(b, srv, *queryEvents, org.ID)
	body := `{"interval":"2026-08-03/2026-11-01","granularity":"Day","groupBy":["OAuthClientId","TemplateUri","HttpMethod"]}`
	b.ReportAllocs()
	var size int
	for b.Loop() {
		size = query(b, srv.URL, org.AdminToken, body)
	}
	b.ReportMetric(float64(size), "body-bytes")
}

// load appends n workload events straight to the store, streaming, with the
// largest organization renamed to org.
func load(tb testing.TB, srv *testserver.Server, n int64, org string) {
	tb.Helper()
	g, err := workload.New(workload.Config{Seed: 1, Events: n})
	if err != nil {
		tb.Fatal(err)
	}
	largest := g.Universe().Organizations[0]
	for _, o := range g.Universe().Organizations {
		if o.Share > largest.Share {
			largest = o
		}
	}
	pr, pw := io.Pipe()
	go func() { _, err := g.WriteTo(pw); pw.CloseWithError(err) }()
	sc := bufio.NewScanner(pr)
	ctx := context.Background()
	var batch []apiusage.Event
	flush := func() {
		if _, err := srv.Store.Append(ctx, apiusage.Batch{Events: batch}); err != nil {
			tb.Fatal(err)
		}
		batch = batch[:0]
	}
	for sc.Scan() {
		var e apiusage.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			tb.Fatal(err)
		}
		if e.OrganizationID == largest.ID {
			e.OrganizationID = org
		}
		batch = append(batch, e.Normalize())
		if len(batch) == 50_000 {
			flush()
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(batch) > 0 {
		flush()
	}
}

// query runs an organization query to completion and returns the size of
// the results body.
func query(tb testing.TB, url, token, body string) int {
	do := func(method, path string, r io.Reader) []byte {
		req, _ := http.NewRequest(method, url+path, r)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(bufio.NewReader(resp.Body))
		if resp.StatusCode >= 300 {
			tb.Fatalf("%s %s: %s %s", method, path, resp.Status, out)
		}
		return out
	}
	var x struct{ ResultsURI string }
	if err := json.Unmarshal(do(http.MethodPost, "/api/v2/usage/query", strings.NewReader(body)), &x); err != nil {
		tb.Fatal(err)
	}
	for {
		out := do(http.MethodGet, x.ResultsURI, nil)
		if bytes.Contains(out[max(0, len(out)-200):], []byte(`"queryStatus":"Complete"`)) {
			return len(out)
		}
		if !bytes.Contains(out, []byte(`"Running"`)) {
			tb.Fatal(fmt.Errorf("execution: %.300s", out))
		}
		time.Sleep(time.Millisecond)
	}
}
