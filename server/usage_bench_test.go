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

// cannedStore answers every query with the same rows: the server's share of
// a query, without the store's.
type cannedStore struct {
	apiusage.Store
	rows []apiusage.Row
}

func (s cannedStore) Query(ctx context.Context, q apiusage.Query) ([]apiusage.Row, error) {
	return s.rows, nil
}

// fullRunRows are rows shaped like the full run's (100 million events)
// 90-day organization query at Day by client, template and method: 387,782
// rows over 90 days, 201 clients each calling about 21 template and method
// pairs a day, and counts as wide as that run's (16, 11, 13, 10, 12 and 16
// bits), in the store's order.
func fullRunRows() []apiusage.Row {
	const n = 387_782
	rng := rand.New(rand.NewPCG(9, 10))
	ids, names, templates := make([]string, 201), make([]string, 201), make([]string, 400)
	for i := range ids {
		ids[i], names[i] = fmt.Sprintf("9f32b7cf-7418-4cc1-b4e7-%012d", i), fmt.Sprintf("client %d", i)
	}
	for i := range templates {
		templates[i] = fmt.Sprintf("api/v2/things/{thingId}/parts/%d", i)
	}
	methods := []string{"DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"}
	rows := make([]apiusage.Row, 0, n)
	for d := 0; len(rows) < n; d++ {
		for c := 0; c < len(ids) && len(rows) < n; c++ {
			first := rng.IntN(len(templates) - 20)
			for k := 0; k < 21 && len(rows) < n; k++ {
				rows = append(rows, apiusage.Row{
					Date:     time.Date(2026, 8, 3+d, 0, 0, 0, 0, time.UTC),
					ClientID: ids[c], ClientName: names[c], TemplateURI: templates[first+k%20], Method: methods[k%6],
					Counts: apiusage.Counts{Status200: rng.Int64N(1 << 16), Status300: rng.Int64N(1 << 11),
						Status400: rng.Int64N(1 << 13), Status500: rng.Int64N(1 << 10), Status429: rng.Int64N(1 << 12),
						Requests: rng.Int64N(1 << 16)},
				})
			}
		}
	}
	return rows
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
