package embedded

import (
	"math"
	"slices"
	"strings"
	"sync"
)

// key is one rollup row's dimensions, each a dictionary id. The slim rollup
// keeps user at 0 (the empty string).
type key struct{ org, client, user, tmpl, method uint32 }

// cnt are one rollup row's counters, in the order of apiusage.Counts but with
// the total first. They are 32 bits wide to halve the memory of a row; a row
// that would overflow is continued in a new row with the same key (see
// table.add), so every answer stays exact.
type cnt struct{ total, s2, s3, s4, s5, s429 uint32 }

// count adds one request with the HTTP status, as apiusage.Counts.CountStatus
// does: 429 counts in 4xx too; 1xx and anything else only in the total.
func (c *cnt) count(status int) {
	c.total++
	switch status / 100 {
	case 2:
		c.s2++
	case 3:
		c.s3++
	case 4:
		c.s4++
		if status == 429 {
			c.s429++
		}
	case 5:
		c.s5++
	}
}

// fits reports whether d can be added to c without overflowing. The total is
// at least every other counter, so it is the only one to check.
func (c *cnt) fits(d cnt) bool { return uint64(c.total)+uint64(d.total) <= math.MaxUint32 }

func (c *cnt) add(d cnt) {
	c.total += d.total
	c.s2 += d.s2
	c.s3 += d.s3
	c.s4 += d.s4
	c.s5 += d.s5
	c.s429 += d.s429
}

// table is a rollup of one hour or one day: parallel slices of keys and
// counters (compact, scanned sequentially by queries) and an index from key
// to row used only to update it. The index is built lazily on the first
// update, so that tables loaded from a snapshot that are never written again
// (nearly all of them: most events are recent) cost no map.
type table struct {
	keys  []key
	cnts  []cnt
	index map[key]int32
	// shared is set while a snapshot may be reading cnts: the writer then
	// copies them before its first change (keys are only ever appended to,
	// which leaves the snapshot's prefix alone).
	shared bool
}

// add adds d to the row of k. A key may own several rows when one filled up;
// the index points at the last, and queries sum them all.
func (t *table) add(k key, d cnt) {
	if t.shared {
		t.cnts = slices.Clone(t.cnts)
		t.shared = false
	}
	if t.index == nil {
		t.index = make(map[key]int32, len(t.keys))
		for i, k := range t.keys {
			t.index[k] = int32(i)
		}
	}
	if i, ok := t.index[k]; ok && t.cnts[i].fits(d) {
		t.cnts[i].add(d)
		return
	}
	t.index[k] = int32(len(t.keys))
	t.keys = append(t.keys, k)
	t.cnts = append(t.cnts, d)
}

// dayPart is one UTC day of usage: the full rollup of each of its hours, and
// the slim rollup (without users) of the whole day, which answers the common
// queries (whole days, not grouped by user) with one row per client,
// template and method instead of one per user and hour.
type dayPart struct {
	day   int64 // days since the Unix epoch
	hours [24]*table
	slim  table
}

// state is everything the store knows, guarded by Store.mu. Only the writer
// goroutine (and Open, before it starts) changes it.
type state struct {
	days  []*dayPart        // sorted by day
	names map[uint32]uint32 // client id → the last name id given
	last  *dayPart          // the day last written: batches are mostly one day
}

func newState() *state { return &state{names: map[uint32]uint32{}} }

// find returns the index of the first day part at or after day.
func (st *state) find(day int64) int {
	i, _ := slices.BinarySearchFunc(st.days, day, func(p *dayPart, d int64) int {
		switch {
		case p.day < d:
			return -1
		case p.day > d:
			return 1
		}
		return 0
	})
	return i
}

// part returns the day part of day, creating it.
func (st *state) part(day int64) *dayPart {
	if st.last != nil && st.last.day == day {
		return st.last
	}
	i := st.find(day)
	if i < len(st.days) && st.days[i].day == day {
		st.last = st.days[i]
		return st.last
	}
	p := &dayPart{day: day}
	st.days = slices.Insert(st.days, i, p)
	st.last = p
	return p
}

// apply adds a delta to the full rollup of its hour and the slim rollup of its
// day.
func (st *state) apply(d delta) {
	st.addHour(d)
	d.hour = floorDiv(d.hour, 24)
	d.k.user = 0
	st.addDay(d)
}

// addHour adds a delta to the full rollup of its hour only.
func (st *state) addHour(d delta) {
	day := floorDiv(d.hour, 24)
	p := st.part(day)
	h := d.hour - day*24
	t := p.hours[h]
	if t == nil {
		t = new(table)
		p.hours[h] = t
	}
	t.add(d.k, d.c)
}

// addDay adds a delta whose hour field is a day, and whose user is 0, to the
// slim rollup of that day only.
func (st *state) addDay(d delta) {
	st.part(d.hour).slim.add(d.k, d.c)
}

// delta is a change to one row of one hour.
type delta struct {
	hour int64 // hours since the Unix epoch
	k    key
	c    cnt
}

// floorDiv divides rounding towards negative infinity, so that instants
// before 1970 land in the right hour and day.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Fields with a dictionary each, in the order prepare reads an event.
const (
	fOrg = iota
	fClient
	fUser
	fTmpl
	fMethod
	fName // client names
	numFields
)

// dicts map strings to small integer ids and back, one dictionary per field,
// so that rollup rows hold five uint32s instead of five strings, and so that
// the ids of few-valued fields (methods, templates, clients) stay small:
// they varint-pack into a byte or two, and queries can rank them with dense
// arrays. Id 0 is the empty string in every field. Ids are assigned in order
// and never change or go away, which makes strs append-only slices that
// readers may keep a prefix of without a lock.
type dicts struct {
	mu   sync.RWMutex
	ids  [numFields]map[string]uint32
	strs [numFields][]string
}

func newDicts() *dicts {
	d := &dicts{}
	for f := range numFields {
		d.ids[f] = map[string]uint32{"": 0}
		d.strs[f] = []string{""}
	}
	return d
}

// lookup returns the id of s in field f, if it has one.
func (d *dicts) lookup(f int, s string) (uint32, bool) {
	d.mu.RLock()
	id, ok := d.ids[f][s]
	d.mu.RUnlock()
	return id, ok
}

// addLocked returns the id of s in field f, giving it one if it has none. The
// caller holds d.mu for writing. The string is cloned so that the dictionary
// never pins a request's buffer.
func (d *dicts) addLocked(f int, s string) uint32 {
	if id, ok := d.ids[f][s]; ok {
		return id
	}
	s = strings.Clone(s)
	id := uint32(len(d.strs[f]))
	d.strs[f] = append(d.strs[f], s)
	d.ids[f][s] = id
	return id
}

// all returns every string by id, per field. The slices are shared and must
// not be modified; later additions do not show in them.
func (d *dicts) all() [numFields][]string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out [numFields][]string
	for f, strs := range d.strs {
		out[f] = strs[:len(strs):len(strs)]
	}
	return out
}
