package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// BenchmarkDecodeEvents measures the ingestion decoder and validator on a
// batch of 1,000 typical events, as JSON and as NDJSON; events/s is the
// figure to compare with the ingestion target.
func BenchmarkDecodeEvents(b *testing.B) {
	events := make([]apiusage.Event, 1000)
	for i := range events {
		events[i] = apiusage.Event{
			ID:             fmt.Sprintf("evt-%06d", i),
			Time:           time.Date(2026, 11, 25, 10, i%60, i%60, 123e6, time.UTC),
			OrganizationID: "3f1c9a52-8f7e-4c1b-9d2e-5a6b7c8d9e0f",
			ClientID:       "9f32b7cf-7418-4cc1-b4e7-a37f7cd870e1",
			UserID:         "user-42",
			TemplateURI:    "api/v2/users/{userId}",
			Method:         "GET",
			Status:         200,
		}
	}
	array, _ := json.Marshal(events)
	var nd bytes.Buffer
	for _, e := range events {
		line, _ := json.Marshal(e)
		nd.Write(line)
		nd.WriteByte('\n')
	}
	for _, tt := range []struct {
		name   string
		body   []byte
		ndjson bool
	}{{"array", array, false}, {"ndjson", nd.Bytes(), true}} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tt.body)))
			for b.Loop() {
				got, err := decodeEvents(bytes.NewReader(tt.body), tt.ndjson, 100_000)
				if err != nil || len(got) != len(events) {
					b.Fatalf("decoded %d events, err %v", len(got), err)
				}
				if err := validateEvents(got); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(events)*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRenderResults measures turning 10,000 rows into the kept table
// and it into a fresh response body.
func BenchmarkRenderResults(b *testing.B) {
	rows := make([]apiusage.Row, 10_000)
	for i := range rows {
		rows[i] = apiusage.Row{
			Date: time.Date(2026, 11, 1+i%28, 0, 0, 0, 0, time.UTC), ClientID: fmt.Sprintf("client-%d", i%50),
			ClientName: "name", TemplateURI: "api/v2/users/{userId}", Method: "GET",
			Counts: apiusage.Counts{Status200: int64(i), Requests: int64(i)},
		}
	}
	view := queryView(apiusage.AllMetrics, apiusage.GranularityDay)
	b.ReportAllocs()
	for b.Loop() {
		t, err := newTable(rowSetOf(rows), view, nil)
		if err != nil {
			b.Fatal(err)
		}
		appendResultsBody(nil, t)
	}
}
