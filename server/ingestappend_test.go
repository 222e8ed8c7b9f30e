package server

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/embedded"
)

// BenchmarkIngestAppendStream is the handler's work on successive batches of
// 10,000 workload events, from the body to the embedded store, as
// BenchmarkIngestDecodeStream's stream: decoding, validating, appending
// (durably) and the parser remembering what the store told it. Its
// cpu-ns/event counts every goroutine, the store's writer included.
func BenchmarkIngestAppendStream(b *testing.B) {
	const n, batches = 10_000, 20
	lines := bytes.SplitAfter(workloadBatch(b, n*batches), []byte{'\n'})
	var bodies [][]byte
	for i := 0; i+n <= len(lines); i += n {
		bodies = append(bodies, bytes.Join(lines[i:i+n], nil))
	}
	for _, parsers := range []int{4} {
		b.Run(fmt.Sprintf("parsers=%d", parsers), func(b *testing.B) {
			s, err := embedded.Open(b.TempDir(), embedded.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ps := make([]eventParsers, parsers)
			ingest := func(i int) {
				pool := &ps[i%parsers]
				p := pool.get()
				defer pool.put(p)
				body := bodies[i%len(bodies)]
				events, hint, err := p.decodeReused(bytes.NewReader(body), int64(len(body)), true, 100_000)
				if err != nil || len(events) != n {
					b.Fatalf("decoded %d events, err %v", len(events), err)
				}
				if !validHinted(events, hint) {
					b.Fatal("validHinted rejects the workload")
				}
				if _, err := s.Append(context.Background(), apiusage.Batch{Events: events, Strings: hint}); err != nil {
					b.Fatal(err)
				}
				p.remember(hint)
			}
			for i := range 2 * batches {
				ingest(i)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(bodies[0])))
			cpu := cpuTime(b)
			for i := 0; b.Loop(); i++ {
				ingest(i)
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(n*b.N), "cpu-ns/event")
		})
	}
}
