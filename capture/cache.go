package capture

import (
	"sync"
	"sync/atomic"
)

// tokenCache remembers verified tokens until they expire, so that a token
// seen before costs a map lookup instead of a signature check: that is what
// keeps the middleware's cost per request in nanoseconds.
//
// It is split in shards, each with its own lock, so that concurrent requests
// rarely contend, and bounded: a full shard evicts with the CLOCK algorithm
// (an approximation of least-recently-used that needs no write on a hit
// beyond one flag).
type tokenCache struct {
	shards [cacheShards]cacheShard
}

const cacheShards = 16

type cacheShard struct {
	mu      sync.RWMutex
	entries map[string]*cacheEntry
	ring    []string // the keys, in CLOCK order
	hand    int
	max     int
}

type cacheEntry struct {
	id  Identity
	exp int64 // unix seconds; the entry is dead from then on
	ref atomic.Bool
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{}
	per := max(1, (size+cacheShards-1)/cacheShards)
	for i := range c.shards {
		c.shards[i].entries = make(map[string]*cacheEntry, per)
		c.shards[i].max = per
	}
	return c
}

// shard picks a token's shard from its last bytes: a JWT ends with its
// signature, which is as good as random, and reading four bytes is cheaper
// than hashing a token of hundreds.
func (c *tokenCache) shard(token string) *cacheShard {
	var h uint32
	for i := max(0, len(token)-4); i < len(token); i++ {
		h = h*31 + uint32(token[i])
	}
	return &c.shards[h%cacheShards]
}

func (c *tokenCache) get(token string, now int64) (Identity, bool) {
	s := c.shard(token)
	s.mu.RLock()
	e := s.entries[token]
	s.mu.RUnlock()
	if e == nil || now >= e.exp {
		return Identity{}, false
	}
	if !e.ref.Load() {
		e.ref.Store(true) // a load first keeps a hot entry's line shared
	}
	return e.id, true
}

func (c *tokenCache) put(token string, id Identity, exp, now int64) {
	s := c.shard(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[token]; ok {
		e.id, e.exp = id, exp
		return
	}
	e := &cacheEntry{id: id, exp: exp}
	if len(s.ring) < s.max {
		s.ring = append(s.ring, token)
		s.entries[token] = e
		return
	}
	for {
		victim := s.ring[s.hand]
		ve := s.entries[victim]
		if ve.ref.Load() && now < ve.exp {
			ve.ref.Store(false) // a second chance
			s.hand = (s.hand + 1) % len(s.ring)
			continue
		}
		delete(s.entries, victim)
		s.ring[s.hand] = token
		s.entries[token] = e
		s.hand = (s.hand + 1) % len(s.ring)
		return
	}
}

func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.entries)
		s.mu.RUnlock()
	}
	return n
}
