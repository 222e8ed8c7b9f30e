package embedded

import (
	"context"
	"testing"
)

// BenchmarkTableAdd measures the single writer's share of ingest alone:
// applying prepared deltas to a state that starts empty, so that hour and
// day tables grow from nothing as they do under live traffic (nearly one
// hourly row per event), with their indexes. The deltas are prepared once,
// outside the timing.
func BenchmarkTableAdd(b *testing.B) {
	s := openTest(b, "", Options{})
	w := newWorkload(4, 100_000)
	var hourly, slim []delta
	for range 300 {
		p, err := s.prepare(context.Background(), w.batch(1000))
		if err != nil {
			b.Fatal(err)
		}
		hourly = append(hourly, p.deltas...)
		slim = append(slim, p.slim...)
		s.release(p)
	}
	b.ReportAllocs()
	for b.Loop() {
		st := newState()
		for _, d := range hourly {
			st.addHour(d)
		}
		for _, d := range slim {
			st.addDay(d)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*(len(hourly)+len(slim))), "ns/delta")
}
