package storetest

import "github.com/apiusage/apiusage"

// Model is the reference semantics of Store.Append without a deduplication
// window: it remembers every idempotency key and every event id forever. It
// tells which events a store must count and which receipt it must return, so
// that Count can be applied to what was really stored.
//
// A Model is not safe for concurrent use.
type Model struct {
	events   []apiusage.Event
	receipts map[string]apiusage.Receipt
	seen     map[idKey]bool
}

type idKey struct{ org, id string }

// Append applies b as a store must: a batch whose key was seen returns the
// first receipt with Replayed set and stores nothing; otherwise every event is
// counted but those whose id was seen before in the same organization (in an
// earlier batch or earlier in this one).
func (m *Model) Append(b apiusage.Batch) apiusage.Receipt {
	if m.receipts == nil {
		m.receipts = map[string]apiusage.Receipt{}
		m.seen = map[idKey]bool{}
	}
	if b.IdempotencyKey != "" {
		if r, ok := m.receipts[b.IdempotencyKey]; ok {
			r.Replayed = true
			return r
		}
	}
	r := apiusage.Receipt{Accepted: len(b.Events)}
	for _, e := range b.Events {
		if e.ID != "" {
			k := idKey{e.OrganizationID, e.ID}
			if m.seen[k] {
				r.Duplicates++
				continue
			}
			m.seen[k] = true
		}
		m.events = append(m.events, e)
	}
	if b.IdempotencyKey != "" {
		m.receipts[b.IdempotencyKey] = r
	}
	return r
}

// Events returns the events counted so far, in the order they were appended.
// The slice is shared: do not modify it.
func (m *Model) Events() []apiusage.Event { return m.events }

// ClientNames returns the last name an event gave each client, the way
// Store.ClientNames must.
func (m *Model) ClientNames() map[string]string {
	out := map[string]string{}
	for _, e := range m.events {
		if e.ClientName != "" {
			out[e.ClientID] = e.ClientName
		}
	}
	return out
}
