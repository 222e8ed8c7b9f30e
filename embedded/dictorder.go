package embedded

import (
	"slices"
	"strings"
	"sync"
)

// dictOrder caches the order of each field's dictionary strings, so that
// a query ranks the ids its result holds by comparing integers instead of
// strings: tens of thousands of user ids take milliseconds to sort by
// their strings, a fair share of a query grouped by user. The dictionary
// only grows; a cache that misses ids a query meets is rebuilt in the
// background, and the query sorts by strings meanwhile.
type dictOrder struct {
	mu      sync.Mutex
	rank    [numFields][]uint32 // by id, for the first len ids; never modified once set
	pending [numFields]bool     // a rebuild is running
}

// ranks returns the cached ranks of field f, which cover the ids below
// their length.
func (o *dictOrder) ranks(f int) []uint32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rank[f]
}

// refresh rebuilds the cache of field f from names (a prefix of the
// dictionary's strings) in a new goroutine, unless one is running.
func (o *dictOrder) refresh(f int, names []string) {
	o.mu.Lock()
	if o.pending[f] || len(o.rank[f]) >= len(names) {
		o.mu.Unlock()
		return
	}
	o.pending[f] = true
	o.mu.Unlock()
	go func() {
		ids := make([]uint32, len(names))
		for i := range ids {
			ids[i] = uint32(i)
		}
		slices.SortFunc(ids, func(a, b uint32) int { return strings.Compare(names[a], names[b]) })
		rank := make([]uint32, len(names))
		for r, id := range ids {
			rank[id] = uint32(r)
		}
		o.mu.Lock()
		if len(rank) > len(o.rank[f]) {
			o.rank[f] = rank
		}
		o.pending[f] = false
		o.mu.Unlock()
	}()
}
