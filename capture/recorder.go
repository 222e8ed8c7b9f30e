package capture

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiusage/apiusage"
)

// RecorderConfig configures a Recorder. Zero fields take the defaults in
// their comments.
type RecorderConfig struct {
	// Buffer is how many events wait in memory for the shipper (65536).
	// When it is full, events are dropped and counted, never waited for.
	// A buffered event takes about 150 bytes beside its strings (which
	// are mostly shared with the token cache and the route table);
	// memory is taken as events wait, not up front.
	Buffer int
	// BatchSize is the most events in one batch (500, and at most
	// Buffer); keep it within the server's limit on events per batch.
	BatchSize int
	// FlushInterval is the longest an event waits for its batch to fill
	// (1s).
	FlushInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between two attempts at a
	// batch that failed (100ms and 30s). The wait doubles from the first to
	// the second, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt at appending a batch (30s).
	AttemptTimeout time.Duration
	// Registerer, when set, gets the recorder's metrics.
	Registerer prometheus.Registerer
	// Logger logs batches that fail; nil discards.
	Logger *slog.Logger
}

// Recorder buffers events in memory and ships them in batches to an
// Appender from one background goroutine. Record never blocks: when the
// buffer is full the event is dropped and counted. A batch that fails is
// retried with backoff under the same idempotency key until it is stored or
// rejected as invalid, so that a retry after a lost answer is not counted
// twice; meanwhile new events wait in the buffer.
//
// A Recorder is safe for concurrent use.
type Recorder struct {
	app     apiusage.Appender
	cfg     RecorderConfig
	log     *slog.Logger
	metrics recorderMetrics

	// The buffer is a queue of chunks of up to a batch each, under a
	// mutex rather than a channel: the shipper takes a whole batch under
	// one lock, where a channel would take the lock once per event and
	// contend with Record as often. Chunks are made as events come and
	// reused once shipped, so that memory, and the garbage collector's
	// work, follow the events buffered rather than the buffer's capacity.
	mu     sync.Mutex
	chunks [][]apiusage.Event // oldest first; events are added to the last
	free   [][]apiusage.Event // shipped chunks, emptied, for reuse
	n      int                // events in the chunks
	taken  int64              // events ever taken out by the shipper
	closed bool

	wake    chan struct{} // a batch is full
	closing chan struct{}
	done    chan struct{}
	err     error // the shipper's last word, read after done
	// stop is canceled when Close's context is done, ending retries.
	stop   context.Context
	cancel context.CancelCauseFunc
	// clock stamps the events of the middleware; see coarseClock.
	clock *coarseClock
}

type recorderMetrics struct {
	// recorded is read from the buffer (taken + n) rather than counted by
	// Record, which keeps an atomic add off every request.
	recorded                            prometheus.CounterFunc
	shipped, batches, failures          prometheus.Counter
	dropFull, dropClosed                prometheus.Counter
	dropInvalid, dropRejected, dropShut prometheus.Counter
	latency                             prometheus.Histogram
}

// NewRecorder returns a Recorder shipping to app, and starts its shipper.
// Call Close to flush it.
func NewRecorder(app apiusage.Appender, cfg RecorderConfig) (*Recorder, error) {
	if app == nil {
		return nil, errors.New("recorder: appender is required")
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 65536
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	cfg.BatchSize = min(cfg.BatchSize, cfg.Buffer)
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(cfg.MinBackoff, 30*time.Second)
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 30 * time.Second
	}
	r := &Recorder{
		app:     app,
		cfg:     cfg,
		log:     cfg.Logger,
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if err := r.initMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	r.stop, r.cancel = context.WithCancelCause(context.Background())
	r.clock = startClock()
	go r.ship()
	return r, nil
}

func (r *Recorder) initMetrics(reg prometheus.Registerer) error {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "apiusage", Subsystem: "capture", Name: name, Help: help}
	}
	dropped := prometheus.NewCounterVec(opts("events_dropped_total",
		"Events lost, by reason: buffer_full, closed (recorded after Close), invalid (not a valid event), rejected (the server refused the batch), shutdown (not shipped before Close's deadline)."),
		[]string{"reason"})
	m := recorderMetrics{
		recorded: prometheus.NewCounterFunc(opts("events_recorded_total", "Events accepted into the buffer."),
			func() float64 { return float64(r.recordedTotal()) }),
		shipped:  prometheus.NewCounter(opts("events_shipped_total", "Events stored by the appender.")),
		batches:  prometheus.NewCounter(opts("batches_shipped_total", "Batches stored by the appender.")),
		failures: prometheus.NewCounter(opts("batch_failures_total", "Attempts at storing a batch that failed (each is retried unless rejected).")),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "apiusage", Subsystem: "capture", Name: "batch_duration_seconds",
			Help:    "Time of each attempt at storing a batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		dropFull:     dropped.WithLabelValues("buffer_full"),
		dropClosed:   dropped.WithLabelValues("closed"),
		dropInvalid:  dropped.WithLabelValues("invalid"),
		dropRejected: dropped.WithLabelValues("rejected"),
		dropShut:     dropped.WithLabelValues("shutdown"),
	}
	r.metrics = m
	if reg == nil {
		return nil
	}
	buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "apiusage", Subsystem: "capture", Name: "buffer_events",
		Help: "Events waiting in the buffer.",
	}, func() float64 { return float64(r.buffered()) })
	capacity := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "apiusage", Subsystem: "capture", Name: "buffer_capacity_events",
		Help: "Events the buffer holds when full.",
	})
	capacity.Set(float64(r.cfg.Buffer))
	for _, c := range []prometheus.Collector{m.recorded, m.shipped, m.batches, m.failures, m.latency, dropped, buffered, capacity} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register recorder metrics: %w", err)
		}
	}
	return nil
}

// Record queues an event for shipping and reports whether it was queued. It
// never blocks: when the buffer is full, or the Recorder is closed, the
// event is dropped and counted. Events are validated by the shipper, off the
// caller's path.
func (r *Recorder) Record(e apiusage.Event) bool {
	r.mu.Lock()
	if r.closed || r.n == r.cfg.Buffer {
		closed := r.closed
		r.mu.Unlock()
		if closed {
			r.metrics.dropClosed.Inc()
		} else {
			r.metrics.dropFull.Inc()
		}
		return false
	}
	last := len(r.chunks) - 1
	if last < 0 || len(r.chunks[last]) == cap(r.chunks[last]) {
		r.chunks = append(r.chunks, r.newChunk())
		last++
	}
	r.chunks[last] = append(r.chunks[last], e)
	r.n++
	full := len(r.chunks[last]) == cap(r.chunks[last])
	r.mu.Unlock()
	if full {
		select {
		case r.wake <- struct{}{}:
		default: // the shipper has been told already
		}
	}
	return true
}

// recordedTotal returns the number of events ever accepted.
func (r *Recorder) recordedTotal() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.taken + int64(r.n)
}

// buffered returns the number of events in the buffer.
func (r *Recorder) buffered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// newChunk returns an empty chunk, reused when one is free. r.mu is held.
func (r *Recorder) newChunk() []apiusage.Event {
	if k := len(r.free); k > 0 {
		c := r.free[k-1]
		r.free = r.free[:k-1]
		return c
	}
	return make([]apiusage.Event, 0, r.cfg.BatchSize)
}

// maxFreeChunks bounds the shipped chunks kept for reuse: enough to ride out
// a burst without allocating, few enough (about 1 MiB of 500-event chunks)
// to keep little memory once it is over.
const maxFreeChunks = 16

// take removes the oldest chunk from the buffer and returns it, when it
// holds at least least events; else it returns nil.
func (r *Recorder) take(least int) []apiusage.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.chunks) == 0 || len(r.chunks[0]) < max(least, 1) {
		return nil
	}
	c := r.chunks[0]
	copy(r.chunks, r.chunks[1:])
	r.chunks[len(r.chunks)-1] = nil
	r.chunks = r.chunks[:len(r.chunks)-1]
	r.n -= len(c)
	r.taken += int64(len(c))
	return c
}

// recycle returns a shipped chunk for reuse.
func (r *Recorder) recycle(c []apiusage.Event) {
	clear(c[:cap(c)]) // let the strings go
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.free) < maxFreeChunks {
		r.free = append(r.free, c[:0])
	}
}

// Close stops taking events and ships every buffered one, retrying until ctx
// is done. Events still unshipped then are counted as dropped, and Close
// returns an error saying how many. Close must be called once.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	unhook := context.AfterFunc(ctx, func() { r.cancel(context.Cause(ctx)) })
	defer unhook()
	close(r.closing)
	<-r.done
	r.clock.Stop()
	return r.err
}

// ship is the shipper: it sends full batches as soon as they are, and
// whatever is buffered every FlushInterval, until Close; then it sends what
// is left.
func (r *Recorder) ship() {
	defer close(r.done)
	defer r.cancel(nil)
	tick := time.NewTicker(r.cfg.FlushInterval)
	defer tick.Stop()
	closing := false
	for {
		least := r.cfg.BatchSize // only full batches
		select {
		case <-r.wake:
		case <-tick.C:
			least = 1
		case <-r.closing:
			closing, least = true, 1
		}
		for {
			chunk := r.take(least)
			if chunk == nil {
				break
			}
			batch := r.validate(chunk)
			if len(batch) > 0 && !r.send(r.stop, batch) {
				// Close's deadline passed: what is left is lost, and
				// counted.
				lost := len(batch) + r.buffered()
				r.metrics.dropShut.Add(float64(lost))
				r.err = fmt.Errorf("recorder closed with %d events unshipped: %w", lost, context.Cause(r.stop))
				return
			}
			r.recycle(chunk)
		}
		if closing {
			return
		}
	}
}

// validate drops the invalid events of a batch, counting them, and
// normalizes the others: one invalid event would make the whole batch fail.
func (r *Recorder) validate(batch []apiusage.Event) []apiusage.Event {
	out := batch[:0]
	for _, e := range batch {
		if err := e.Validate(); err != nil {
			r.metrics.dropInvalid.Inc()
			r.log.Debug("drop invalid event", "err", err, "template", e.TemplateURI, "method", e.Method)
			continue
		}
		out = append(out, e.Normalize())
	}
	return out
}

// send appends one batch under a new idempotency key. It reports false
// when stop was canceled first.
func (r *Recorder) send(stop context.Context, events []apiusage.Event) bool {
	return r.sendKeyed(stop, apiusage.Batch{IdempotencyKey: newKey(), Events: events})
}

// sendKeyed appends a batch, retrying with backoff under its idempotency key
// until it is stored or rejected. It reports false when stop was canceled
// first.
func (r *Recorder) sendKeyed(stop context.Context, b apiusage.Batch) bool {
	backoff := r.cfg.MinBackoff
	for {
		err := r.attempt(stop, b)
		if err == nil {
			return true
		}
		r.metrics.failures.Inc()
		if stop.Err() != nil {
			return false
		}
		if permanent(err) {
			if len(b.Events) > 1 && apiusage.ErrorCode(err) == apiusage.CodeTooLarge {
				half := len(b.Events) / 2
				return r.sendKeyed(stop, apiusage.Batch{IdempotencyKey: b.IdempotencyKey + ".0", Events: b.Events[:half]}) &&
					r.sendKeyed(stop, apiusage.Batch{IdempotencyKey: b.IdempotencyKey + ".1", Events: b.Events[half:]})
			}
			r.metrics.dropRejected.Add(float64(len(b.Events)))
			r.log.Error("batch rejected; its events are dropped", "events", len(b.Events), "err", err)
			return true
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(err, &ra) {
			wait = max(wait, ra.RetryAfter())
		}
		r.log.Warn("append batch failed; retrying", "events", len(b.Events), "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-stop.Done():
			t.Stop()
			return false
		}
		backoff = min(2*backoff, r.cfg.MaxBackoff)
	}
}

func (r *Recorder) attempt(stop context.Context, b apiusage.Batch) error {
	ctx, cancel := context.WithTimeout(stop, r.cfg.AttemptTimeout)
	defer cancel()
	start := time.Now()
	_, err := r.app.Append(ctx, b)
	r.metrics.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		return err
	}
	r.metrics.batches.Inc()
	r.metrics.shipped.Add(float64(len(b.Events)))
	return nil
}

// permanent reports whether retrying err is pointless: the batch itself is
// refused. Anything else (the server down, overloaded, or a credential
// being fixed) may pass later.
func permanent(err error) bool {
	var e *apiusage.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code == apiusage.CodeBadRequest || e.Code == apiusage.CodeTooLarge
}

// newKey returns a random idempotency key.
func newKey() string {
	var b [16]byte
	_, _ = cryptorand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}
