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
// cpu-ns/event counts every goroutine, the store's writer included. The
// batches take turns among four connections, whose parsers share their
// caches of recent strings as the handler's do (shared), or each have
// caches of their own (apart), as they had before.
func BenchmarkIngestAppendStream(b *testing.B) {
	const n, batches = 10_000, 60
	lines := bytes.SplitAfter(workloadBatch(b, n*batches), []byte{'\n'})
	var bodies [][]byte
	for i := 0; i+n <= len(lines); i += n {
		bodies = append(bodies, bytes.Join(lines[i:i+n], nil))
	}
	const conns = 4
	for _, pools := range []int{1, conns} {
		name := map[int]string{1: "shared", conns: "apart"}[pools]
		b.Run(fmt.Sprintf("conns=%d/caches=%s", conns, name), func(b *testing.B) {
			s, err := embedded.Open(b.TempDir(), embedded.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ps := make([]eventParsers, pools)
			// values and known count the batches' distinct users and
			// those sent with the store's token.
			var values, known int
			ingest := func(i int) {
				pool := &ps[i%pools]
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
				for _, tok := range hint.Tokens[fieldUser-fieldOrg][1:] {
					values++
					if tok != 0 {
						known++
					}
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
			values, known = 0, 0
			for i := 0; b.Loop(); i++ {
				ingest(i)
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(n*b.N), "cpu-ns/event")
			b.ReportMetric(100*float64(known)/float64(values), "%users-with-token")
		})
	}
}
