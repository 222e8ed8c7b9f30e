package embedded

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apiusage/apiusage"
)

// key is one rollup row's dimensions, each a dictionary id. The slim rollup
// keeps user at 0 (the empty string); the user rollup keeps only
// organization and user, the others at 0.
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

// addTo adds c's counters to a result's counts.
func (c *cnt) addTo(sum *apiusage.Counts) {
	sum.Requests += int64(c.total)
	sum.Status200 += int64(c.s2)
	sum.Status300 += int64(c.s3)
	sum.Status400 += int64(c.s4)
	sum.Status500 += int64(c.s5)
	sum.Status429 += int64(c.s429)
}

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
// (nearly all of them: most events are recent) cost no index.
//
// A table no longer written is frozen (see freeze): its rows sorted by
// organization and client into exact-size slices, with a directory of each
// organization's rows, so that a query about one organization or a few
// clients reads only their rows, and without its index. A late write to a
// frozen table still works: it updates a row in place or appends one after
// the sorted rows (the tail), which queries read whole until the table is
// frozen again.
//
// A packed table (see packed.go) takes late writes the same way, without
// unpacking: its keys and cnts then hold rows besides its chunks, a small
// table of their own (frozen in turn, with sorted and orgs describing
// them), which queries read after the chunks, summing rows of one key as
// always. The next checkpoint merges them into new chunks (see
// Store.writeCold). Unpacking the whole hour for a late event cost the
// hour's rows in memory: a backfill of a few million events spread over two
// months took a 100M-event store past 5 GB.
type table struct {
	keys  []key
	cnts  []cnt
	index rowIndex
	// shared is set while a snapshot may be reading cnts: the writer then
	// copies them before its first change (keys are only ever appended to,
	// which leaves the snapshot's prefix alone).
	shared bool
	// sorted is how many leading rows are in key order (organization and
	// client first) and described by orgs; 0 for a table never frozen.
	sorted int32
	orgs   []orgRange
	// packed, when not nil, holds the table's packedRows rows instead of
	// keys and cnts (see packed.go), packedOrg the organization of each
	// chunk (manyOrgs for one of several). Chunks never change in place.
	packed     []packedChunk
	packedOrg  []uint32
	packedRows int
	packedSrc  *mappedFile // the file packed's chunks are slices of
	omit       omitted     // the columns its rows do not have, nor its chunks
	packedAt   coldRange   // where their frames are in it, when a cold file
	// gen counts changes, so that a checkpoint can tell whether the rows it
	// packed are still the table's when it hands them back.
	gen uint64
}

// orgRange is where one organization's rows are in a frozen table's sorted
// rows: keys[lo:hi].
type orgRange struct {
	org    uint32
	lo, hi int32
}

// span is a range of a table's rows, [lo, hi).
type span struct{ lo, hi int32 }

// add adds d to the row of k. A key may own several rows when one filled up;
// the index points at the last, and queries sum them all. A packed table's
// rows in chunks are not looked at: a key may have a row there and another
// in keys.
func (t *table) add(k key, d cnt) {
	t.gen++
	if t.shared {
		t.cnts = slices.Clone(t.cnts)
		t.shared = false
	}
	if len(t.index) < 2*(len(t.keys)+1) {
		// Missing (a table loaded or frozen, or new) or over half full:
		// built anew from the keys, each key's last row.
		t.index = buildIndex(t.keys, len(t.keys)+1)
	}
	s := t.index.slot(t.keys, &k)
	if i := *s - 1; i >= 0 && t.cnts[i].fits(d) {
		t.cnts[i].add(d)
		return
	}
	t.keys = append(t.keys, k)
	t.cnts = append(t.cnts, d)
	*s = int32(len(t.keys))
}

// rows returns how many rows t holds, packed or not.
func (t *table) rows() int { return len(t.keys) + t.packedRows }

// presizeMin is the fewest rows presize makes room for: below it, growing
// by doubling costs next to nothing.
const presizeMin = 256

// presize gives an empty table room for an eighth more rows than like, the
// row count of a table like it (see state.hourRows, state.addDay), and an index
// that holds them at most half full. A table growing by doubling copies its
// rows into fresh memory again and again, and rebuilds its index each time:
// on a VM, where the first touch of a page costs more than the copy, that
// was most of the single writer's time. Room not used costs little: freezing
// copies the rows into exact-size slices, and pages never touched are never
// faulted in.
func (t *table) presize(like int) {
	if like < presizeMin || t.keys != nil || t.packed != nil {
		return
	}
	n := like + like/8
	t.keys, t.cnts = make([]key, 0, n), make([]cnt, 0, n)
	t.index = make(rowIndex, indexSlots(n))
}

// tail is how many rows were added after the sorted ones.
func (t *table) tail() int { return len(t.keys) - int(t.sorted) }

// scope narrows the rows a query reads in frozen tables: those of orgs
// (sorted, nil for every organization), and within them of clients only
// (sorted, nil for every client). It never decides what matches: the
// query's filters still check every row read.
type scope struct {
	orgs    []uint32
	clients []uint32
}

// spans appends to buf the spans of t's rows that can hold rows in sc, and
// returns it. Within an organization of a frozen table a client's rows are
// contiguous, found by binary search.
func (t *table) spans(sc *scope, buf []span) []span {
	n := int32(len(t.keys))
	if sc.orgs == nil || t.sorted == 0 {
		if n > 0 {
			buf = append(buf, span{0, n})
		}
		return buf
	}
	dir := t.orgs
	for _, org := range sc.orgs {
		i, ok := slices.BinarySearchFunc(dir, org, func(r orgRange, o uint32) int { return cmp.Compare(r.org, o) })
		if !ok {
			continue
		}
		r := dir[i]
		dir = dir[i+1:] // sc.orgs is sorted
		if sc.clients == nil {
			buf = append(buf, span{r.lo, r.hi})
			continue
		}
		rows := t.keys[r.lo:r.hi]
		from := 0
		for _, c := range sc.clients {
			lo := from + sort.Search(len(rows)-from, func(j int) bool { return rows[from+j].client >= c })
			hi := lo + sort.Search(len(rows)-lo, func(j int) bool { return rows[lo+j].client > c })
			if lo < hi {
				buf = append(buf, span{r.lo + int32(lo), r.lo + int32(hi)})
			}
			from = hi
		}
	}
	if t.sorted < n {
		buf = append(buf, span{t.sorted, n})
	}
	return buf
}

// frozen is a table's rows sorted by organization and client, in new
// exact-size slices, with its directory: what freeze builds, to be swapped
// in by install.
type frozen struct {
	keys   []key
	cnts   []cnt
	orgs   []orgRange
	shared bool
}

// freeze returns t's rows sorted by key (organization, client, user,
// template, method) in new exact-size slices, rows of one key merged where
// their counters fit in one, and the directory of its organizations. It
// copies rather than sorts in place because a snapshot being written may
// be reading the old slices. Rows of one key are rare (a row that filled
// up), but merging them keeps frozen tables as small as they can be. The
// sort is a radix sort of one integer per row when the ids and the row's
// index pack in 64 bits, which they do short of dictionaries of hundreds
// of millions of strings: sorting them by comparisons was 4% of the
// server's CPU on ingest (the writer freezes each day as it goes cold).
// scratch is reused between calls.
func (t *table) freeze(scratch *[]uint64) frozen {
	n := len(t.keys)
	shared := false
	keys, cnts := t.keys, t.cnts
	if !sortedMerged(keys, cnts) {
		var hi key
		for i := range keys {
			k := &keys[i]
			hi = key{max(hi.org, k.org), max(hi.client, k.client), max(hi.user, k.user), max(hi.tmpl, k.tmpl), max(hi.method, k.method)}
		}
		ob, cb, ub := bits.Len32(hi.org), bits.Len32(hi.client), bits.Len32(hi.user)
		tb, mb, ib := bits.Len32(hi.tmpl), bits.Len32(hi.method), bits.Len(uint(n))
		order := func(yield func(int) bool) {}
		if width := ob + cb + ub + tb + mb + ib; width <= 64 {
			// Half the scratch for the ordering keys, half for the
			// radix sort's second buffer.
			buf := slices.Grow((*scratch)[:0], 2*n)[:2*n]
			*scratch = buf[:0]
			ords := buf[:0:n]
			for i := range keys {
				k := &keys[i]
				o := uint64(k.org)
				o = o<<cb | uint64(k.client)
				o = o<<ub | uint64(k.user)
				o = o<<tb | uint64(k.tmpl)
				o = o<<mb | uint64(k.method)
				ords = append(ords, o<<ib|uint64(i))
			}
			ords, _ = sortOrds(ords, buf[n:], width)
			mask := uint64(1)<<ib - 1
			order = func(yield func(int) bool) {
				for _, o := range ords {
					if !yield(int(o & mask)) {
						return
					}
				}
			}
		} else {
			idx := make([]int32, n)
			for i := range idx {
				idx[i] = int32(i)
			}
			slices.SortStableFunc(idx, func(a, b int32) int { return compareKeys(&keys[a], &keys[b]) })
			order = func(yield func(int) bool) {
				for _, i := range idx {
					if !yield(int(i)) {
						return
					}
				}
			}
		}
		nk, nc := make([]key, 0, n), make([]cnt, 0, n)
		for i := range order {
			if m := len(nk) - 1; m >= 0 && nk[m] == keys[i] && nc[m].fits(cnts[i]) {
				nc[m].add(cnts[i])
				continue
			}
			nk, nc = append(nk, keys[i]), append(nc, cnts[i])
		}
		keys, cnts = nk, nc
		n = len(keys)
	} else {
		shared = t.shared // the same slices: still the snapshot's
	}
	if cap(keys) != n || cap(cnts) != n {
		keys, cnts = slices.Clone(keys), slices.Clone(cnts)
		shared = false
	}
	var orgs []orgRange
	for i := 0; i < n; {
		j := i + 1
		for j < n && keys[j].org == keys[i].org {
			j++
		}
		orgs = append(orgs, orgRange{org: keys[i].org, lo: int32(i), hi: int32(j)})
		i = j
	}
	return frozen{keys: keys, cnts: cnts, orgs: slices.Clip(orgs), shared: shared}
}

// install makes f, built by freeze from t's rows as they still are, t's
// rows. The caller holds the state's write lock.
func (t *table) install(f frozen) {
	t.keys, t.cnts, t.orgs = f.keys, f.cnts, f.orgs
	t.sorted = int32(len(f.keys))
	t.index = nil
	t.shared = f.shared
}

func compareKeys(a, b *key) int {
	if c := cmp.Compare(a.org, b.org); c != 0 {
		return c
	}
	if c := cmp.Compare(a.client, b.client); c != 0 {
		return c
	}
	if c := cmp.Compare(a.user, b.user); c != 0 {
		return c
	}
	if c := cmp.Compare(a.tmpl, b.tmpl); c != 0 {
		return c
	}
	return cmp.Compare(a.method, b.method)
}

// sortedMerged reports whether rows are in key order with every two rows
// of one key too full to merge: what freeze makes.
func sortedMerged(keys []key, cnts []cnt) bool {
	for i := 1; i < len(keys); i++ {
		switch c := compareKeys(&keys[i-1], &keys[i]); {
		case c > 0, c == 0 && cnts[i-1].fits(cnts[i]):
			return false
		}
	}
	return true
}

// dayPart is one UTC day of usage: the full rollup of each of its hours, and
// two rollups of the whole day. The slim rollup (without users) answers the
// common queries (whole days, not grouped by user) with one row per client,
// template and method instead of one per user and hour. The user rollup
// (organization and user only) answers whole days grouped by user, or by
// nothing, without a filter on clients, templates or methods: one row per
// user of the day, where the hours hold one per user, client, template,
// method and hour, twenty times more in the benchmark's workload.
type dayPart struct {
	day   int64 // days since the Unix epoch
	hours [24]*table
	slim  table
	users table
	// warm is set while the part is in state.warm: some table of it has
	// rows that are not frozen.
	warm bool
}

// state is everything the store knows, guarded by Store.mu. Only the writer
// goroutine (and Open, before it starts) changes it.
type state struct {
	days  []*dayPart        // sorted by day
	names map[uint32]uint32 // client id → the last name id given
	last  *dayPart          // the day last written: batches are mostly one day
	// warm are the day parts with rows not frozen yet, which the writer
	// freezes once they are cold (see Store.freezeCold).
	warm []*dayPart
	// clientOrg is, by client id, the organization id plus one of the
	// organization the client has rows in; 0 for none yet, and
	// manyOrgs when several, which clientOrgs then lists. It lets a client
	// query read only its organizations' rows of frozen tables.
	clientOrg  []uint32
	clientOrgs map[uint32][]uint32
	// newDay is set when a day after every other begins: days before may
	// have gone cold (see coldUnpacked).
	newDay bool
	// lateRows counts the rows late events added beside packed tables'
	// chunks since the last checkpoint began, which merges them.
	lateRows int
}

// manyOrgs marks, in state.clientOrg, a client with rows in several
// organizations.
const manyOrgs = math.MaxUint32

func newState() *state { return &state{names: map[uint32]uint32{}, clientOrgs: map[uint32][]uint32{}} }

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
	p.users.omit = usersOmits
	st.days = slices.Insert(st.days, i, p)
	st.last = p
	if i == len(st.days)-1 {
		st.newDay = true
	}
	return p
}

// warmFrom is the first day still warm: the day before the newest day
// written. Days before it are cold: the writer freezes them (freeze.go) and
// checkpoints pack their hours (packed.go).
func (st *state) warmFrom() int64 {
	if len(st.days) == 0 {
		return math.MinInt64
	}
	return st.days[len(st.days)-1].day - 1
}

// coldUnpacked returns the rows of hourly tables of cold days that are not
// packed yet: what the next checkpoints would pack.
func (st *state) coldUnpacked() int {
	n := 0
	warm := st.warmFrom()
	for _, p := range st.days {
		if p.day >= warm {
			break
		}
		for t := range p.packable {
			if t.t.packed == nil {
				n += len(t.t.keys)
			}
		}
	}
	return n
}

// usersKey is the key of k's row in the user rollup.
func usersKey(k key) key { return key{org: k.org, user: k.user} }

// addHour adds a delta to the full rollup of its hour only.
func (st *state) addHour(d delta) {
	day := floorDiv(d.hour, 24)
	p := st.part(day)
	h := d.hour - day*24
	t := p.hours[h]
	if t == nil {
		t = new(table)
		t.presize(st.hourRows(p, h))
		p.hours[h] = t
	}
	st.addRow(t, d.k, d.c)
	if !p.warm && t.tail() > 0 {
		st.warmUp(p)
	}
}

// addRow adds d to t's row of k, counting the rows added beside a packed
// table's chunks (see table). Every hourly and user delta goes through it,
// late or not: its share of a profile is table.add's.
func (st *state) addRow(t *table, k key, d cnt) {
	n := len(t.keys)
	t.add(k, d)
	if t.packed != nil && len(t.keys) > n {
		st.lateRows++
	}
}

// addDay adds a delta whose hour field is a day, and whose user is 0, to the
// slim rollup of that day only. Every hourly row has a slim row of its
// organization and client, so the slim rollups are where clientOrg learns
// them.
func (st *state) addDay(d delta) {
	p := st.part(d.hour)
	if y := st.yesterday(p); y != nil {
		p.slim.presize(y.slim.rows())
	}
	n := len(p.slim.keys)
	p.slim.add(d.k, d.c)
	if len(p.slim.keys) > n {
		st.noteClient(d.k.client, d.k.org)
	}
	if !p.warm && p.slim.tail() > 0 {
		st.warmUp(p)
	}
}

// addUsers adds a delta whose hour field is a day, and whose key is a
// usersKey, to the user rollup of that day only.
func (st *state) addUsers(d delta) {
	p := st.part(d.hour)
	if y := st.yesterday(p); y != nil {
		p.users.presize(y.users.rows())
	}
	st.addRow(&p.users, d.k, d.c)
	if !p.warm && p.users.tail() > 0 {
		st.warmUp(p)
	}
}

// deriveUsers builds the user rollup of every day from its hours: for a
// snapshot written before there were user rollups, before the WAL after it
// is replayed. It runs on every core, a day at a time, once: the next
// checkpoint writes the rollups.
func (st *state) deriveUsers() {
	onEveryCore(st.days, func() func(*dayPart) {
		// The snapshot loader checked every packed chunk.
		rs := rowScratch{limits: noLimits}
		var spans []span
		return func(p *dayPart) {
			for _, t := range p.hours {
				if t == nil {
					continue
				}
				err := t.read(&scope{}, &spans, &rs, func(keys []key, cnts []cnt) {
					for i := range keys {
						p.users.add(usersKey(keys[i]), cnts[i])
					}
				})
				if err != nil {
					panic(fmt.Sprintf("embedded: a checked packed table does not decode: %v", err))
				}
			}
		}
	})
}

// yesterday returns the day before p when p is the newest day and the day
// before has usage, else nil: the day whose tables new tables of p are
// sized like (see table.presize), when live traffic writes them.
func (st *state) yesterday(p *dayPart) *dayPart {
	n := len(st.days)
	if n > 1 && p == st.days[n-1] && st.days[n-2].day == p.day-1 {
		return st.days[n-2]
	}
	return nil
}

// hourRows returns how many rows a new table of hour h of p is sized for:
// as many as the hour before had, or the same hour the day before if more
// (traffic follows the time of day), when p is the newest day. Live traffic
// writes the newest hours; an hour of an older day written late gets no
// room it may never use.
func (st *state) hourRows(p *dayPart, h int64) int {
	if p != st.days[len(st.days)-1] {
		return 0
	}
	yesterday := st.yesterday(p)
	rows := 0
	if h > 0 && p.hours[h-1] != nil {
		rows = p.hours[h-1].rows()
	} else if h == 0 && yesterday != nil && yesterday.hours[23] != nil {
		rows = yesterday.hours[23].rows()
	}
	if yesterday != nil && yesterday.hours[h] != nil {
		rows = max(rows, yesterday.hours[h].rows())
	}
	return rows
}

func (st *state) warmUp(p *dayPart) {
	p.warm = true
	st.warm = append(st.warm, p)
}

// noteClient records that client has rows in org.
func (st *state) noteClient(client, org uint32) {
	if int(client) >= len(st.clientOrg) {
		st.clientOrg = slices.Grow(st.clientOrg, int(client)+1-len(st.clientOrg))
		st.clientOrg = st.clientOrg[:cap(st.clientOrg)]
	}
	switch v := st.clientOrg[client]; v {
	case org + 1:
	case 0:
		st.clientOrg[client] = org + 1
	case manyOrgs:
		if orgs := st.clientOrgs[client]; !slices.Contains(orgs, org) {
			st.clientOrgs[client] = append(orgs, org)
		}
	default:
		st.clientOrg[client] = manyOrgs
		st.clientOrgs[client] = []uint32{v - 1, org}
	}
}

// orgsOf appends to buf the organizations client has rows in.
func (st *state) orgsOf(client uint32, buf []uint32) []uint32 {
	if int(client) >= len(st.clientOrg) {
		return buf
	}
	switch v := st.clientOrg[client]; v {
	case 0:
		return buf
	case manyOrgs:
		return append(buf, st.clientOrgs[client]...)
	default:
		return append(buf, v-1)
	}
}

// tables calls yield with every table of p.
func (p *dayPart) tables(yield func(*table)) {
	for _, t := range p.hours {
		if t != nil {
			yield(t)
		}
	}
	yield(&p.slim)
	yield(&p.users)
}

// packableTable is a table that is packed once cold (see packed.go), with
// what names it in snapshots and cold files: the frame kind of its rows
// (frameTable for an hour, frameUsers for a user rollup), and its hour, or
// day for a user rollup.
type packableTable struct {
	t    *table
	kind byte
	hour int64
}

// packable yields the tables of p that are packed once cold: its hours and
// its user rollup. The slim rollup is not: it is small, and read by most
// queries.
func (p *dayPart) packable(yield func(packableTable) bool) {
	for h, t := range p.hours {
		if t != nil && !yield(packableTable{t, frameTable, p.day*24 + int64(h)}) {
			return
		}
	}
	if p.users.rows() > 0 {
		yield(packableTable{&p.users, frameUsers, p.day})
	}
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
// readers may keep a prefix of without a lock, and which lets a decoder
// remember an id as a token for the value (see apiusage.BatchStrings.Tokens)
// for as long as the dictionary lives.
type dicts struct {
	mu   sync.RWMutex
	ids  [numFields]map[string]uint32
	strs [numFields][]string
	// instance names the dictionary among all the process opens, so that
	// tokens of another Store's dictionary are never taken for its own.
	instance uint64
}

// dictInstances numbers the dictionaries the process makes.
var dictInstances atomic.Uint64

func newDicts() *dicts {
	d := &dicts{instance: dictInstances.Add(1)}
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
