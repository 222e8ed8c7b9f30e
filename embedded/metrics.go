package embedded

import "github.com/prometheus/client_golang/prometheus"

// metrics are the store's instruments. They exist whether or not a
// Registerer was given, so that the code never branches on them.
type metrics struct {
	appendSeconds     prometheus.Histogram
	flushBatches      prometheus.Histogram
	flushBytes        prometheus.Histogram
	fsyncSeconds      prometheus.Histogram
	querySeconds      prometheus.Histogram
	checkpointSeconds prometheus.Histogram
	events            prometheus.Counter
	duplicates        prometheus.Counter
	replays           prometheus.Counter
	walBytes          prometheus.Counter
	checkpointErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "apiusage", "embedded"
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: name, Help: help, Buckets: buckets,
		})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	latency := prometheus.ExponentialBuckets(0.0001, 2.5, 12) // 100µs to ~6s
	m := &metrics{
		appendSeconds:     hist("append_seconds", "Time an Append took, from call to durable.", latency),
		flushBatches:      hist("flush_batches", "Batches committed by one WAL write and fsync (group commit).", prometheus.ExponentialBuckets(1, 2, 11)),
		flushBytes:        hist("flush_bytes", "Bytes of one WAL write.", prometheus.ExponentialBuckets(64, 4, 12)),
		fsyncSeconds:      hist("fsync_seconds", "Time one WAL fsync took.", latency),
		querySeconds:      hist("query_seconds", "Time a Query took.", latency),
		checkpointSeconds: hist("checkpoint_seconds", "Time writing one snapshot took.", prometheus.ExponentialBuckets(0.001, 3, 12)),
		events:            counter("events_total", "Events counted (not duplicates, not replays)."),
		duplicates:        counter("duplicate_events_total", "Events not counted because their id had been seen."),
		replays:           counter("replayed_batches_total", "Batches answered from an idempotency key seen before."),
		walBytes:          counter("wal_bytes_total", "Bytes written to the WAL."),
		checkpointErrors:  counter("checkpoint_errors_total", "Snapshots that failed to be written."),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.appendSeconds, m.flushBatches, m.flushBytes, m.fsyncSeconds,
			m.querySeconds, m.checkpointSeconds, m.events, m.duplicates, m.replays, m.walBytes, m.checkpointErrors} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
