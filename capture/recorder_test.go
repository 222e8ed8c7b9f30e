package capture

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiusage/apiusage"
)

func event(i int) apiusage.Event {
	return apiusage.Event{
		Time:           time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		OrganizationID: "org",
		ClientID:       "client",
		TemplateURI:    "api/v2/users/{userId}",
		Method:         "get",
		Status:         200 + i%300,
	}
}

func newTestRecorder(tb testing.TB, app apiusage.Appender, cfg RecorderConfig) *Recorder {
	tb.Helper()
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 10 * time.Millisecond
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Millisecond
		cfg.MaxBackoff = 20 * time.Millisecond
	}
	r, err := NewRecorder(app, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func closeRecorder(tb testing.TB, r *Recorder) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

func count(c prometheus.Collector) int { return int(testutil.ToFloat64(c)) }

func TestRecorderShipsInBatches(t *testing.T) {
	app := &memAppender{}
	r := newTestRecorder(t, app, RecorderConfig{BatchSize: 10, FlushInterval: time.Hour})
	for i := range 25 {
		if !r.Record(event(i)) {
			t.Fatalf("Record(%d) = false", i)
		}
	}
	// Two full batches go without waiting for the (hour-long) interval;
	// the last five wait for Close.
	waitFor(t, "two full batches", func() bool { return len(app.stored()) == 20 })
	closeRecorder(t, r)
	got := app.stored()
	if len(got) != 25 {
		t.Fatalf("stored %d events, want 25", len(got))
	}
	for i, e := range got {
		want := event(i).Normalize()
		if e != want {
			t.Errorf("event %d = %+v, want %+v", i, e, want)
		}
	}
	if len(app.keys) != 3 {
		t.Errorf("batches = %d, want 3", len(app.keys))
	}
	if got, want := count(r.metrics.shipped), 25; got != want {
		t.Errorf("shipped = %d, want %d", got, want)
	}
	if got, want := count(r.metrics.recorded), 25; got != want {
		t.Errorf("recorded = %d, want %d", got, want)
	}
}

// TestRecorderBackpressure takes the ingest target down: recording goes on
// without blocking, the overflow is counted, and what was buffered arrives
// once the target is back, each batch once although it was tried many times.
func TestRecorderBackpressure(t *testing.T) {
	app := &memAppender{}
	app.setDown(true)
	r := newTestRecorder(t, app, RecorderConfig{Buffer: 16, BatchSize: 4})
	const n = 1000
	queued := 0
	for i := range n {
		// Were Record to wait for the target, this loop would hang.
		if r.Record(event(i)) {
			queued++
		}
	}
	waitFor(t, "retries", func() bool { return count(r.metrics.failures) >= 3 })
	dropped := count(r.metrics.dropFull)
	if dropped == 0 || queued+dropped != n {
		t.Errorf("queued %d + dropped %d, want some dropped and %d in all", queued, dropped, n)
	}
	if got := count(r.metrics.recorded); got != queued {
		t.Errorf("recorded metric = %d, want %d", got, queued)
	}
	if len(app.stored()) != 0 {
		t.Fatalf("stored %d events while down", len(app.stored()))
	}

	app.setDown(false)
	waitFor(t, "buffered events to arrive", func() bool { return len(app.stored()) == queued })
	closeRecorder(t, r)
	if got := len(app.stored()); got != queued {
		t.Errorf("stored %d events, want %d", got, queued)
	}
	// Every attempt at the first batch carried the same key.
	first := app.keys[0]
	same := 0
	for _, k := range app.keys {
		if k == first {
			same++
		}
	}
	if same < 3 {
		t.Errorf("the first batch's key was used %d times, want every retry (at least 3): %q", same, app.keys)
	}
}

// TestRecorderRetryIsIdempotent loses the answer to a stored batch: the
// retry carries the same key, so the batch is stored once.
func TestRecorderRetryIsIdempotent(t *testing.T) {
	app := &memAppender{}
	lost := 0
	app.fail = func(b apiusage.Batch) error {
		if lost < 2 {
			lost++
			// Store (once per key, as the server does), then fail as a
			// connection cut before the answer.
			if !app.seen[b.IdempotencyKey] {
				app.seen = map[string]bool{b.IdempotencyKey: true}
				app.events = append(app.events, b.Events...)
			}
			return errors.New("connection reset")
		}
		return nil
	}
	r := newTestRecorder(t, app, RecorderConfig{BatchSize: 5})
	for i := range 5 {
		r.Record(event(i))
	}
	closeRecorder(t, r)
	if got := len(app.stored()); got != 5 {
		t.Errorf("stored %d events, want 5 (once)", got)
	}
	if len(app.keys) != 3 || app.keys[0] != app.keys[1] || app.keys[1] != app.keys[2] {
		t.Errorf("keys = %q, want one key tried three times", app.keys)
	}
}

func TestRecorderCloseDeadline(t *testing.T) {
	app := &memAppender{}
	app.setDown(true)
	r := newTestRecorder(t, app, RecorderConfig{BatchSize: 4})
	for i := range 10 {
		r.Record(event(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := r.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "10 events unshipped") {
		t.Errorf("Close error = %v, want one saying 10 events unshipped", err)
	}
	if got := count(r.metrics.dropShut); got != 10 {
		t.Errorf("dropped at shutdown = %d, want 10", got)
	}
	if r.Record(event(0)) {
		t.Error("Record after Close = true, want false")
	}
	if got := count(r.metrics.dropClosed); got != 1 {
		t.Errorf("dropped after close = %d, want 1", got)
	}
}

func TestRecorderDropsInvalidEvents(t *testing.T) {
	app := &memAppender{}
	r := newTestRecorder(t, app, RecorderConfig{})
	bad := event(1)
	bad.Method = "PROPFIND" // not a method the Usage API counts
	noOrg := event(2)
	noOrg.OrganizationID = ""
	r.Record(event(0))
	r.Record(bad)
	r.Record(noOrg)
	r.Record(event(3))
	closeRecorder(t, r)
	if got := len(app.stored()); got != 2 {
		t.Errorf("stored %d events, want the 2 valid ones", got)
	}
	if got := count(r.metrics.dropInvalid); got != 2 {
		t.Errorf("dropped invalid = %d, want 2", got)
	}
}

func TestRecorderRejectedBatch(t *testing.T) {
	tests := []struct {
		name       string
		fail       func(b apiusage.Batch) error
		wantStored int
		wantDrop   int
	}{
		{
			name: "bad request is not retried",
			fail: func(apiusage.Batch) error {
				return apiusage.Errorf(apiusage.CodeBadRequest, "no")
			},
			wantStored: 0, wantDrop: 10,
		},
		{
			name: "too large is halved until it fits",
			fail: func(b apiusage.Batch) error {
				if len(b.Events) > 3 {
					return fmt.Errorf("ingest: %w", apiusage.Errorf(apiusage.CodeTooLarge, "too many"))
				}
				return nil
			},
			wantStored: 10, wantDrop: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := &memAppender{fail: tt.fail}
			r := newTestRecorder(t, app, RecorderConfig{BatchSize: 10, FlushInterval: time.Hour})
			for i := range 10 {
				r.Record(event(i))
			}
			closeRecorder(t, r)
			if got := len(app.stored()); got != tt.wantStored {
				t.Errorf("stored %d events, want %d", got, tt.wantStored)
			}
			if got := count(r.metrics.dropRejected); got != tt.wantDrop {
				t.Errorf("dropped rejected = %d, want %d", got, tt.wantDrop)
			}
		})
	}
}

func TestRecorderMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	app := &memAppender{}
	r := newTestRecorder(t, app, RecorderConfig{Registerer: reg})
	defer closeRecorder(t, r)
	r.Record(event(0))
	n, err := testutil.GatherAndCount(reg,
		"apiusage_capture_events_recorded_total", "apiusage_capture_events_dropped_total",
		"apiusage_capture_events_shipped_total", "apiusage_capture_batch_failures_total",
		"apiusage_capture_batch_duration_seconds", "apiusage_capture_buffer_events")
	if err != nil {
		t.Fatal(err)
	}
	if n < 6 {
		t.Errorf("gathered %d series, want at least 6", n)
	}
	if _, err := NewRecorder(app, RecorderConfig{Registerer: reg}); err == nil {
		t.Error("a second recorder on the same registry registered its metrics, want an error")
	}
}
