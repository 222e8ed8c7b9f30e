package server_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// cannedStore answers every query with the same rows, as a RowSet as the
// embedded store does: the server's share of a query, without the store's.
type cannedStore struct {
	apiusage.Store
	rows *apiusage.RowSet
}

func (s cannedStore) Query(ctx context.Context, q apiusage.Query) ([]apiusage.Row, error) {
	return s.rows.RowSlice(), nil
}

func (s cannedStore) QueryRowSet(ctx context.Context, q apiusage.Query) (*apiusage.RowSet, error) {
	rs := *s.rows
	return &rs, nil
}

func (s cannedStore) ReleaseRowSet(*apiusage.RowSet) {}

// fullRunRows are rows shaped like the full run's (100 million events)
// 90-day organization query at Day by client, template and method: 387,782
// rows over 90 days, 201 clients each calling about 21 template and method
// pairs a day, and counts as wide as that run's (16, 11, 13, 10, 12 and 16
// bits), in the store's order; as a RowSet, whose strings are
// dictionaries, as the embedded store gives them.
func fullRunRows() *apiusage.RowSet {
	const n = 387_782
	rng := rand.New(rand.NewPCG(9, 10))
	rs := &apiusage.RowSet{Rows: make([]apiusage.RowRef, 0, n)}
	for f := range rs.Strings {
		rs.Strings[f] = []string{""}
	}
	for i := range 201 {
		rs.Strings[apiusage.RefClient] = append(rs.Strings[apiusage.RefClient], fmt.Sprintf("9f32b7cf-7418-4cc1-b4e7-%012d", i))
		rs.Strings[apiusage.RefClientName] = append(rs.Strings[apiusage.RefClientName], fmt.Sprintf("client %d", i))
	}
	for i := range 400 {
		rs.Strings[apiusage.RefTemplate] = append(rs.Strings[apiusage.RefTemplate], fmt.Sprintf("api/v2/things/{thingId}/parts/%d", i))
	}
	rs.Strings[apiusage.RefMethod] = append(rs.Strings[apiusage.RefMethod], "DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
	for d := 0; len(rs.Rows) < n; d++ {
		rs.Dates = append(rs.Dates, time.Date(2026, 8, 3+d, 0, 0, 0, 0, time.UTC))
		for c := uint32(1); c <= 201 && len(rs.Rows) < n; c++ {
			first := uint32(1 + rng.IntN(400-20))
			for k := uint32(0); k < 21 && len(rs.Rows) < n; k++ {
				var r apiusage.RowRef
				r.Refs[apiusage.RefClient], r.Refs[apiusage.RefClientName] = c, c
				r.Refs[apiusage.RefTemplate], r.Refs[apiusage.RefMethod] = first+k%20, 1+k%6
				r.Date = uint32(d)
				r.Counts = apiusage.Counts{Status200: rng.Int64N(1 << 16), Status300: rng.Int64N(1 << 11),
					Status400: rng.Int64N(1 << 13), Status500: rng.Int64N(1 << 10), Status429: rng.Int64N(1 << 12),
					Requests: rng.Int64N(1 << 16)}
				rs.Rows = append(rs.Rows, r)
			}
		}
	}
	return rs
}

// BenchmarkLargeQueryHTTP measures the server's share of the suite's
// largest query at the full run's size (about 115 MB of results): from the
// POST to the end of the first Complete body, polling every millisecond and
// reading bodies into one buffer kept from poll to poll, as the suite's
// runner does. The store answers at once with the same rows each time. The
// results are kept, as a server keeps them, so that each table is built in
// fresh memory.
func BenchmarkLargeQueryHTTP(b *testing.B) {
	e := newEnv(b)
	tn := e.newTenant("large")
	e.store.Store = cannedStore{Store: e.store.Store, rows: fullRunRows()}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	var buf []byte
	do := func(method, path, body string) int {
		req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tn.admin)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer res.Body.Close()
		if res.ContentLength > 0 && int(res.ContentLength) >= cap(buf) {
			buf = make([]byte, 0, res.ContentLength+1)
		}
		buf = buf[:0]
		for {
			m, err := res.Body.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+m]
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
		}
		return res.StatusCode
	}
	query := `{"interval":"2026-08-03T00:00:00Z/2026-11-01T00:00:00Z","granularity":"Day","groupBy":["OAuthClientId","TemplateUri","HttpMethod"]}`
	run := func() {
		if status := do(http.MethodPost, "/api/v2/usage/query", query); status != http.StatusAccepted {
			b.Fatalf("POST: status %d: %.300s", status, buf)
		}
		_, uri, _ := strings.Cut(string(buf), `"resultsUri":"`)
		uri, _, _ = strings.Cut(uri, `"`)
		for {
			if status := do(http.MethodGet, uri, ""); status != http.StatusOK {
				b.Fatalf("GET %s: status %d: %.300s", uri, status, buf)
			}
			if strings.HasSuffix(string(buf[max(0, len(buf)-64):]), `"queryStatus":"Complete"}`+"\n") {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	run() // the buffer and the connection, as the runner has them
	b.ReportAllocs()
	for b.Loop() {
		run()
	}
	b.ReportMetric(float64(len(buf)), "body-bytes")
}
