package embedded

import "github.com/apiusage/apiusage"

// idKey is an event id within its organization: ids are unique per
// organization only.
type idKey struct {
	org uint32
	id  string
}

// seenKey is a remembered idempotency key and the receipt to replay.
type seenKey struct {
	at      int64 // unix nanoseconds when it was stored
	receipt apiusage.Receipt
}

// dedup remembers idempotency keys and event ids for the deduplication
// window. It belongs to the writer goroutine (and to Open before it starts),
// so it needs no lock: every decision it makes is serialized with the WAL
// order, which is what makes replay reproduce it.
//
// Entries are forgotten in the order they were added, using a queue beside
// each map, so expiry costs O(expired) and never scans what is live.
type dedup struct {
	window int64 // nanoseconds
	keys   map[string]seenKey
	keyQ   fifo[string]
	ids    map[idKey]int64
	idQ    fifo[idKey]
}

func newDedup(window int64) *dedup {
	return &dedup{window: window, keys: map[string]seenKey{}, ids: map[idKey]int64{}}
}

// live reports whether something stored at at is still remembered at now.
func (d *dedup) live(at, now int64) bool { return now-at < d.window }

// key returns the receipt stored with k, if k is remembered at now.
func (d *dedup) key(k string, now int64) (apiusage.Receipt, bool) {
	e, ok := d.keys[k]
	if !ok || !d.live(e.at, now) {
		return apiusage.Receipt{}, false
	}
	return e.receipt, true
}

// addKey remembers k with its receipt from at on.
func (d *dedup) addKey(k string, r apiusage.Receipt, at int64) {
	r.Replayed = false
	d.keys[k] = seenKey{at: at, receipt: r}
	d.keyQ.push(k, at)
}

// seen reports whether the id is remembered at now.
func (d *dedup) seen(k idKey, now int64) bool {
	at, ok := d.ids[k]
	return ok && d.live(at, now)
}

// addID remembers the id from at on.
func (d *dedup) addID(k idKey, at int64) {
	d.ids[k] = at
	d.idQ.push(k, at)
}

// expire forgets what is no longer remembered at now. A queue entry whose
// map entry was replaced after it expired (a key stored again) leaves the new
// entry alone.
func (d *dedup) expire(now int64) {
	for {
		k, at, ok := d.keyQ.front()
		if !ok || d.live(at, now) {
			break
		}
		if e, ok := d.keys[k]; ok && e.at == at {
			delete(d.keys, k)
		}
		d.keyQ.pop()
	}
	for {
		k, at, ok := d.idQ.front()
		if !ok || d.live(at, now) {
			break
		}
		if a, ok := d.ids[k]; ok && a == at {
			delete(d.ids, k)
		}
		d.idQ.pop()
	}
}

// fifo is a queue of values with the time they were added, in a slice that
// is compacted when its dead head grows past half of it.
type fifo[T any] struct {
	items []fifoItem[T]
	head  int
}

type fifoItem[T any] struct {
	v  T
	at int64
}

func (q *fifo[T]) push(v T, at int64) { q.items = append(q.items, fifoItem[T]{v, at}) }

func (q *fifo[T]) front() (T, int64, bool) {
	if q.head == len(q.items) {
		var zero T
		return zero, 0, false
	}
	it := q.items[q.head]
	return it.v, it.at, true
}

func (q *fifo[T]) pop() {
	var zero fifoItem[T]
	q.items[q.head] = zero // let the string go
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
}

// live returns the queued entries still present, oldest first.
func (q *fifo[T]) live() []fifoItem[T] { return q.items[q.head:] }
