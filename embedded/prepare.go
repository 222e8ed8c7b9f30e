package embedded

import (
	"context"
	"errors"
	"math/bits"
	"slices"

	"github.com/apiusage/apiusage"
)

// This file holds the preparation of a batch by its Append goroutine:
// resolving its strings to dictionary ids and aggregating its events into
// deltas, in memory kept from batch to batch.

// batchScratch is the memory a batch is prepared in, kept from batch to batch
// (see Store.batches). Fresh memory is what preparing a batch cost most:
// the maps rebuilt from nothing each batch spent their time growing and
// clearing new buckets, and on a VM every first touch of a page faults.
type batchScratch struct {
	ids        []uint32 // numFields dictionary ids per event
	deltas     []delta
	index      deltaIndex
	slim       []delta
	slimIndex  deltaIndex
	users      []delta
	usersIndex deltaIndex
	evIDs      []idEvent
	names      []nameAt
	// nameOf is, by client id, 1 + the index in names of the name the
	// batch gives that client, or 0: all zero between batches.
	nameOf []int32
	// hint maps the batch's apiusage.BatchStrings to ids: by field, in the
	// order of BatchStrings, the id of each value.
	hint [6][]uint32
}

// Bounds of the scratch kept: how many, and how many events' worth each may
// hold, so that a rare huge batch does not pin its memory for good.
const (
	maxScratch       = 8
	maxScratchEvents = 1 << 16
)

// getBatchScratch returns a scratch from the free list, or a new one.
func (s *Store) getBatchScratch() *batchScratch {
	select {
	case sc := <-s.batches:
		return sc
	default:
		return &batchScratch{}
	}
}

// release gives a prepared batch's scratch back once nothing reads it: its
// Append has its answer (the writer is done with the batch), or the batch
// never reached the writer.
func (s *Store) release(p *prepared) {
	sc := p.sc
	if sc == nil {
		return
	}
	p.sc = nil
	if len(p.deltas) > maxScratchEvents || len(p.ids) > maxScratchEvents || cap(sc.ids) > numFields*maxScratchEvents {
		return
	}
	sc.keep(p)
	sc.names = p.names[:0]
	clear(p.ids) // they hold the caller's event ids
	sc.evIDs = p.ids[:0]
	select {
	case s.batches <- sc:
	default:
	}
}

// aggregate returns a prepared that aggregates the deltas of up to n events
// (see addDelta) in sc's memory.
func (sc *batchScratch) aggregate(n int) *prepared {
	sc.index.reset(n)
	sc.slimIndex.reset(n)
	sc.usersIndex.reset(n)
	return &prepared{
		deltas: sc.deltas[:0], index: &sc.index,
		slim: sc.slim[:0], slimIndex: &sc.slimIndex,
		users: sc.users[:0], usersIndex: &sc.usersIndex,
	}
}

// keep takes back the delta slices p grew, for the next batch.
func (sc *batchScratch) keep(p *prepared) {
	sc.deltas, sc.slim, sc.users = p.deltas[:0], p.slim[:0], p.users[:0]
}

// addDelta adds c to the batch's delta of the hourly row rk and to its deltas
// of the slim and user daily rows. Aggregating the daily deltas here, in the
// Append goroutines, leaves the single writer one update of each (large,
// cache-cold) daily table per distinct daily row instead of one per hourly
// row.
func (p *prepared) addDelta(rk rowKey, c cnt) {
	if i := p.index.slot(p.deltas, rk.hour, rk.k); *i != 0 {
		p.deltas[*i-1].c.add(c)
	} else {
		p.deltas = append(p.deltas, delta{hour: rk.hour, k: rk.k, c: c})
		*i = int32(len(p.deltas))
	}
	day := floorDiv(rk.hour, 24)
	k := usersKey(rk.k)
	if i := p.usersIndex.slot(p.users, day, k); *i != 0 {
		p.users[*i-1].c.add(c)
	} else {
		p.users = append(p.users, delta{hour: day, k: k, c: c})
		*i = int32(len(p.users))
	}
	k = rk.k
	k.user = 0
	if i := p.slimIndex.slot(p.slim, day, k); *i != 0 {
		p.slim[*i-1].c.add(c)
	} else {
		p.slim = append(p.slim, delta{hour: day, k: k, c: c})
		*i = int32(len(p.slim))
	}
}

// deltaIndex finds a batch's delta of a row: an open-addressing hash table
// (linear probing) of indexes into the deltas, which hold the keys. It
// replaced a map[rowKey]int32, whose generic hash of the 32-byte key and
// probing were a fifth of the server's ingest CPU; this one hashes two
// multiplications' worth and is cleared, not rebuilt, between batches.
type deltaIndex struct {
	slots []int32 // 1 + the delta's index, or 0 for an empty slot
	shift uint8   // 64 - log2(len(slots))
}

// reset empties the index and sizes it for up to n deltas, at most half
// full so that probes stay short.
func (x *deltaIndex) reset(n int) {
	size := max(64, 1<<bits.Len(uint(2*n)))
	if cap(x.slots) >= size {
		x.slots = x.slots[:size]
		clear(x.slots)
	} else {
		x.slots = make([]int32, size)
	}
	x.shift = uint8(64 - bits.TrailingZeros(uint(size)))
}

// slot returns the slot of the row (hour, k): the index of its delta, or
// the empty slot where it goes. The index must have room for one more.
func (x *deltaIndex) slot(deltas []delta, hour int64, k key) *int32 {
	h := uint64(hour)*0x9e3779b97f4a7c15 ^ (uint64(k.org)|uint64(k.client)<<32)*0xc2b2ae3d27d4eb4f ^
		(uint64(k.user)|uint64(k.tmpl)<<32)*0x165667b19e3779f9 ^ uint64(k.method)*0xff51afd7ed558ccd
	h ^= h >> 31
	h *= 0x94d049bb133111eb
	mask := uint64(len(x.slots) - 1)
	for i := h >> x.shift; ; i = (i + 1) & mask {
		j := x.slots[i]
		if j == 0 {
			return &x.slots[i]
		}
		if d := &deltas[j-1]; d.hour == hour && d.k == k {
			return &x.slots[i]
		}
	}
}

// prepare resolves the batch's strings to dictionary ids and aggregates the
// events without an id into deltas. New strings get their ids here; the
// writer logs them before any record that uses them. The caller releases the
// result (see release).
func (s *Store) prepare(ctx context.Context, b apiusage.Batch) (*prepared, error) {
	sc := s.getBatchScratch()
	// Every event makes at most one delta of each kind, here or, for
	// those with an id, in the writer.
	p := sc.aggregate(len(b.Events))
	p.ctx, p.key, p.accepted = ctx, b.IdempotencyKey, len(b.Events)
	p.ids, p.names, p.sc, p.done = sc.evIDs[:0], sc.names[:0], sc, make(chan error, 1)
	const fields = numFields
	ids := slices.Grow(sc.ids[:0], fields*len(b.Events))[:fields*len(b.Events)]
	sc.ids = ids
	newBytes, clients, hinted, err := s.resolveHint(b, sc, ids)
	if err != nil {
		s.release(p)
		return nil, err
	}
	if !hinted {
		newBytes, clients, err = s.resolve(b, ids)
		if err != nil {
			s.release(p)
			return nil, err
		}
	}
	if len(sc.nameOf) < clients {
		sc.nameOf = slices.Grow(sc.nameOf, clients-len(sc.nameOf))[:clients]
	}
	nameOf := sc.nameOf
	idBytes := 0
	for i := range b.Events {
		e := &b.Events[i]
		f := ids[i*fields : (i+1)*fields]
		rk := rowKey{hour: floorDiv(e.Time.Unix(), 3600), k: key{org: f[fOrg], client: f[fClient], user: f[fUser], tmpl: f[fTmpl], method: f[fMethod]}}
		var c cnt
		c.count(e.Status)
		if e.ID != "" {
			p.ids = append(p.ids, idEvent{id: e.ID, rk: rk, c: c, name: f[fName], pos: i})
			idBytes += len(e.ID) + 10
			continue
		}
		p.addDelta(rk, c)
		if f[fName] != 0 {
			// The last name given wins.
			n := nameAt{client: f[fClient], name: f[fName], pos: i}
			if j := nameOf[n.client]; j != 0 {
				p.names[j-1] = n
			} else {
				p.names = append(p.names, n)
				nameOf[n.client] = int32(len(p.names))
			}
		}
	}
	for _, n := range p.names {
		nameOf[n.client] = 0
	}
	p.size = 64 + len(p.key) + newBytes + idBytes + 16*len(p.names) + 48*(len(p.deltas)+len(p.ids))
	if p.size > maxBatchBytes {
		s.release(p)
		return nil, apiusage.Errorf(apiusage.CodeTooLarge, "batch too large to store at once")
	}
	return p, nil
}

// errDictFull is returned when a batch would give a field more ids than a
// uint32 holds.
var errDictFull = errors.New("dictionary full")

// resolve writes the dictionary ids of each event's strings to ids,
// numFields per event, giving new strings their ids. It returns how many
// bytes the new strings take in the WAL, at most, and how many clients the
// dictionary then has.
func (s *Store) resolve(b apiusage.Batch, ids []uint32) (newBytes, clients int, err error) {
	const fields = numFields
	fieldsOf := func(e *apiusage.Event) [fields]string {
		return [fields]string{fOrg: e.OrganizationID, fClient: e.ClientID, fUser: e.UserID,
			fTmpl: e.TemplateURI, fMethod: e.Method, fName: e.ClientName}
	}
	// Neighbouring events mostly share their organization, client, template
	// and method, and many have no user or name: remembering each field's
	// last value skips most dictionary lookups, which dominate this loop.
	type memo struct {
		s  string
		id uint32
	}
	var lastSeen [fields]memo
	missing := 0
	s.dict.mu.RLock()
	for i := range b.Events {
		for j, f := range fieldsOf(&b.Events[i]) {
			var id uint32
			switch {
			case f == "":
				id = 0
			case f == lastSeen[j].s:
				id = lastSeen[j].id
			default:
				var ok bool
				if id, ok = s.dict.ids[j][f]; !ok {
					id = unknownID
					missing++
				} else {
					lastSeen[j] = memo{f, id}
				}
			}
			ids[i*fields+j] = id
		}
	}
	clients = len(s.dict.strs[fClient])
	s.dict.mu.RUnlock()
	if missing == 0 {
		return 0, clients, nil
	}
	s.dict.mu.Lock()
	defer s.dict.mu.Unlock()
	for f := range numFields {
		if len(s.dict.strs[f])+missing >= unknownID {
			return 0, 0, errDictFull
		}
	}
	for i := range b.Events {
		for j, f := range fieldsOf(&b.Events[i]) {
			if ids[i*fields+j] == unknownID {
				n := len(s.dict.strs[j])
				ids[i*fields+j] = s.dict.addLocked(j, f)
				if len(s.dict.strs[j]) > n {
					newBytes += len(f) + 10
				}
			}
		}
	}
	return newBytes, len(s.dict.strs[fClient]), nil
}

// hintFields are the store's fields in the order of
// apiusage.BatchStrings.
var hintFields = [6]int{fOrg, fClient, fName, fUser, fTmpl, fMethod}

// resolveHint is resolve with the batch's apiusage.BatchStrings: each
// distinct value is looked up once, not once per event, which was most of
// the cost of preparing a batch (hashing and comparing identifiers). The
// hint is checked first, every event against it, and not used (hinted is
// false) unless it describes the batch exactly; the check is cheap because
// a decoder's events hold the very strings of its Values.
//
// A value whose token (see apiusage.BatchStrings.Tokens) the dictionary gave
// is not looked up at all: the token is its id. The dictionary never
// renumbers, so an id it gave for a value stays that value's for as long as
// the dictionary lives, and tokens of any other dictionary are ignored. The
// ids of the batch's values are written back as their tokens, for the
// decoder to remember.
func (s *Store) resolveHint(b apiusage.Batch, sc *batchScratch, ids []uint32) (newBytes, clients int, hinted bool, err error) {
	h := b.Strings
	if !h.Describes(b.Events) {
		return 0, 0, false, nil
	}
	// Tokens are taken and given only when every field has them.
	tokens := true
	for rf := range h.Values {
		tokens = tokens && len(h.Tokens[rf]) == len(h.Values[rf])
	}
	trusted := tokens && h.TokenStore == s.dict.instance
	missing := 0
	s.dict.mu.RLock()
	for rf, f := range hintFields {
		g := slices.Grow(sc.hint[rf][:0], len(h.Values[rf]))[:len(h.Values[rf])]
		sc.hint[rf] = g
		var toks []uint32
		if trusted {
			toks = h.Tokens[rf][:len(g)]
		}
		// A token past the dictionary's end cannot be its own: looked up.
		n := uint32(len(s.dict.strs[f]))
		for j, v := range h.Values[rf] {
			if v == "" {
				g[j] = 0
				continue
			}
			if toks != nil {
				if t := toks[j]; t != 0 && t < n {
					g[j] = t
					continue
				}
			}
			id, ok := s.dict.ids[f][v]
			if !ok {
				id = unknownID
				missing++
			}
			g[j] = id
		}
	}
	clients = len(s.dict.strs[fClient])
	s.dict.mu.RUnlock()
	if missing > 0 {
		s.dict.mu.Lock()
		for f := range numFields {
			if len(s.dict.strs[f])+missing >= unknownID {
				s.dict.mu.Unlock()
				return 0, 0, false, errDictFull
			}
		}
		for rf, f := range hintFields {
			g := sc.hint[rf]
			for j, v := range h.Values[rf] {
				if g[j] == unknownID {
					k := len(s.dict.strs[f])
					g[j] = s.dict.addLocked(f, v)
					if len(s.dict.strs[f]) > k {
						newBytes += len(v) + 10
					}
				}
			}
		}
		clients = len(s.dict.strs[fClient])
		s.dict.mu.Unlock()
	}
	if tokens {
		// Every value's id is its token now, the empty string's 0 (none).
		for rf := range hintFields {
			copy(h.Tokens[rf], sc.hint[rf])
		}
		h.TokenStore = s.dict.instance
	}
	org, client, name, user, tmpl, method := sc.hint[0], sc.hint[1], sc.hint[2], sc.hint[3], sc.hint[4], sc.hint[5]
	for i := range h.Refs {
		r := &h.Refs[i]
		o := ids[i*numFields : (i+1)*numFields : (i+1)*numFields]
		o[fOrg], o[fClient], o[fUser] = org[r[0]], client[r[1]], user[r[3]]
		o[fTmpl], o[fMethod], o[fName] = tmpl[r[4]], method[r[5]], name[r[2]]
	}
	return newBytes, clients, true, nil
}
