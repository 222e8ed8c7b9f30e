package embedded

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// BenchmarkBackfill measures late events into packed hours: a backfill of
// 100,000 events spread over every hour of 28 cold days of a store holding
// 30 days, as an import of old logs would send. It reports the CPU the
// backfill took and the live heap it added (after a collection), which is
// what late events cost when each one unpacked its whole hour.
func BenchmarkBackfill(b *testing.B) {
	const (
		days    = 30
		perHour = 4000
		late    = 100_000
	)
	base := b.TempDir()
	{
		s, err := Open(base, Options{})
		if err != nil {
			b.Fatal(err)
		}
		w := newWorkload(5, perHour)
		for n := 0; n < days*24*perHour; n += 10_000 {
			if _, err := s.Append(context.Background(), w.batch(10_000)); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil { // packs the cold days
			b.Fatal(err)
		}
	}
	// The backfill: the workload's events, but at times spread evenly
	// over the hours of days 0 to 27.
	w := newWorkload(6, perHour)
	backfill := w.batch(late).Events
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	step := 28 * 24 * time.Hour / late
	for i := range backfill {
		backfill[i].Time = start.Add(time.Duration(i) * step)
	}
	b.ReportAllocs()
	var cpu, added int64
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		copyFiles(b, base, dir)
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		before := liveHeap()
		b.StartTimer()
		cpu0 := cpuTime()
		for i := 0; i < late; i += 10_000 {
			if _, err := s.Append(context.Background(), apiusage.Batch{Events: backfill[i : i+10_000]}); err != nil {
				b.Fatal(err)
			}
		}
		cpu += cpuTime() - cpu0
		b.StopTimer()
		added += liveHeap() - before
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(added)/float64(b.N)/(1<<20), "live-MiB-added/op")
}

// liveHeap returns the bytes of the heap in use after a collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
