package apiusage

import (
	"context"
	"time"
	"unsafe"
)

// Batch is a group of events stored all or nothing.
type Batch struct {
	// IdempotencyKey, when set, makes the batch idempotent: a batch with a
	// key already stored (within the deduplication window) is not stored
	// again, and Append returns the first receipt. Callers scope the key to
	// the caller (for example by prefixing the client id), so that keys of
	// different tenants never collide.
	IdempotencyKey string
	// Events are valid and normalized (see Event.Validate, Event.Normalize).
	Events []Event
	// Strings, when set, describes the events' strings. It is only a hint,
	// which a store may ignore: a decoder that interns the strings of a
	// batch anyway can pass its tables on, so that a store resolving each
	// distinct string once per batch does not look it up again per event.
	Strings *BatchStrings
}

// BatchStrings lists the distinct values of a batch's string fields and
// which one each event holds. Fields are numbered in the order Event
// declares them: 0 OrganizationID, 1 ClientID, 2 ClientName, 3 UserID,
// 4 TemplateURI, 5 Method.
//
// A store that uses it still checks every event's strings against it, and
// that check is cheap when the event's string is the very string of Values
// (Go compares the pointers of strings before their bytes).
type BatchStrings struct {
	// Values holds each field's values, the empty string first; a value
	// may appear more than once.
	Values [6][]string
	// Refs holds, for each event in order, the index in Values of each of
	// its fields: Events[i]'s field f is Values[f][Refs[i][f]].
	Refs [][6]uint32
	// Tokens, when set, holds a store's tokens of the values, by field as
	// Values: Tokens[f][j] is Values[f][j]'s, 0 for none. A store that
	// gives tokens fills them in during Append (when every field's slice
	// is as long as its Values), each the store's own name for the value,
	// which lets it skip looking the value up again; a decoder that
	// remembers values from batch to batch may remember their tokens too
	// and send them back with later batches of the same store. Tokens never
	// leave the process and never come from a request: a wrong one would
	// count a value as another.
	Tokens [6][]uint32
	// TokenStore names the store that gave Tokens, a name no other store
	// of the process has. A store trusts Tokens only when it is its own,
	// and sets it when it fills them in; other stores ignore both.
	TokenStore uint64
}

// Describes reports whether h is exactly the strings of events: a ref for
// every event, each within its field's values, and each event's strings
// the very values its refs name. A store checks this before it trusts h.
func (h *BatchStrings) Describes(events []Event) bool {
	if h == nil || len(h.Refs) != len(events) {
		return false
	}
	var n [6]uint32
	for f, vals := range h.Values {
		if len(vals) == 0 {
			return false
		}
		n[f] = uint32(len(vals))
	}
	v := &h.Values
	for i := range events {
		e, r := &events[i], &h.Refs[i]
		if r[0] >= n[0] || r[1] >= n[1] || r[2] >= n[2] || r[3] >= n[3] || r[4] >= n[4] || r[5] >= n[5] {
			return false
		}
		if !same(e.OrganizationID, v[0][r[0]]) || !same(e.ClientID, v[1][r[1]]) || !same(e.ClientName, v[2][r[2]]) ||
			!same(e.UserID, v[3][r[3]]) || !same(e.TemplateURI, v[4][r[4]]) || !same(e.Method, v[5][r[5]]) {
			return false
		}
	}
	return true
}

// same reports whether a == b, without a call into the runtime when they
// are the very same string, as a decoder's events and hint hold: == would
// call memequal six times an event, twice a batch (a server validates with
// the hint too), for what is mostly a comparison of pointers.
func same(a, b string) bool {
	return len(a) == len(b) && (unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

// Receipt tells what Append did with a batch.
type Receipt struct {
	// Accepted is the number of events in the batch.
	Accepted int `json:"accepted"`
	// Duplicates is how many of them were not counted because their id had
	// been seen before.
	Duplicates int `json:"duplicates"`
	// Replayed is true when the batch's idempotency key had been seen before
	// and nothing was stored this time.
	Replayed bool `json:"-"`
}

// Appender records batches of events: a Store in the same process, or the Go
// client sending them to a server's ingest endpoint. The capture middleware
// and proxy write to an Appender.
type Appender interface {
	// Append stores a batch durably: when it returns without error, every
	// event of the batch survives a crash of the process that stores it, and
	// is visible to queries. On error nothing of the batch is stored.
	Append(ctx context.Context, b Batch) (Receipt, error)
}

// Store records usage and answers queries over it.
//
// Implementations are safe for concurrent use.
type Store interface {
	Appender

	// Query returns the rows of q, ordered by CompareRows(q.GroupBy), with
	// only the rows that counted at least one request. Rows carry the
	// ClientName last given by the events when grouped by client. Hours count
	// as Interval.Hours says.
	Query(ctx context.Context, q Query) ([]Row, error)

	// ClientNames returns the client name last given by the events of each
	// client seen, by client id.
	ClientNames(ctx context.Context) (map[string]string, error)

	// Close flushes and releases the store.
	Close() error
}

// QueryStatus is the state of an execution.
type QueryStatus string

// Execution states.
const (
	StatusRunning  QueryStatus = "Running"
	StatusComplete QueryStatus = "Complete"
	StatusFailed   QueryStatus = "Failed"
)

// ExecutionKind tells which endpoint started an execution, and so which
// results endpoint may read it.
type ExecutionKind string

// Execution kinds.
const (
	KindOrgQuery     ExecutionKind = "query"
	KindSimpleSearch ExecutionKind = "simplesearch"
	KindClientQuery  ExecutionKind = "client"
)

// Execution is an asynchronous query and its state. Its rows, once
// finished, are kept by the server apart (within its memory for results).
type Execution struct {
	ID             string
	Kind           ExecutionKind
	OrganizationID string
	// ClientID is the client of the path of a client query or summary: only
	// that path may read its results.
	ClientID string
	Status   QueryStatus
	// Metrics are the metrics of a query's rows; Columns the columns of a
	// simple search's.
	Metrics []Metric
	Columns []Column
	// Err is the caller-facing reason of a Failed execution.
	Err     string
	Created time.Time
	// Expires is when the execution is forgotten.
	Expires time.Time
}

// ExecutionRegistry keeps executions until they expire.
//
// Implementations are safe for concurrent use.
type ExecutionRegistry interface {
	// Put creates or replaces the execution with x's id.
	Put(ctx context.Context, x Execution) error
	// Get returns the execution with the id, or ErrNotFound when there is
	// none or it has expired.
	Get(ctx context.Context, id string) (Execution, error)
}
