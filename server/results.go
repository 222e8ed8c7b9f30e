package server

import (
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/apiusage/apiusage"
)

// errEvicted answers a poll of a complete execution whose result was dropped
// to keep within Config.ResultMemory. It is the contract's 404, as for an
// expired execution, with a message that says why and what to do; only the
// organization (and client path) that may read the execution gets it, so it
// tells nobody else that the id exists.
var errEvicted = apiusage.Errorf(apiusage.CodeNotFound,
	"The results of this execution are no longer kept: the server drops the oldest results when the memory for "+
		"results is full. Start the query again; a shorter interval or fewer groupBy dimensions make a smaller result.")

// resultSweepEvery bounds how often put looks for expired results to free.
const resultSweepEvery = time.Minute

// resultStore keeps the results of complete executions, within a budget of
// bytes in all. The execution registry keeps each execution's state (small)
// until it expires; the rows, which may be tens of megabytes for a 90-day
// organization query, are kept here, where they can be counted and bounded:
// without a bound, any caller running large queries again and again would
// grow the heap until the process dies.
//
// Eviction policy: when a new result takes the total over the budget,
// results are dropped, the oldest first, from the organizations that hold
// more than their fair share (the budget divided by the number of
// organizations holding results), until the total fits. So:
//   - an organization that holds no more than its fair share never loses a
//     result to another's queries;
//   - an organization that runs large queries again and again drops its own
//     older results first;
//   - an organization alone may use the whole budget;
//   - a result larger than the whole budget is not kept at all, and nothing
//     is dropped for it.
//
// Polls of a dropped result get errEvicted. Results also go when their
// execution expires (swept now and then by put).
//
// resultStore is safe for concurrent use.
type resultStore struct {
	budget  int64
	evicted func() // counts an eviction (a metric)
	kept    func(bytes int64)

	mu        sync.Mutex
	byID      map[string]*result
	orgs      map[string]*orgResults
	total     int64
	seq       uint64
	lastSweep time.Time
}

// orgResults are the results of one organization, oldest first.
type orgResults struct {
	bytes int64
	queue []*result
}

// result is a complete execution's result as kept.
type result struct {
	id, org string
	expires time.Time
	// seq orders results by when they were kept.
	seq  uint64
	rows *table
}

func newResultStore(budget int64, evicted func(), kept func(int64)) *resultStore {
	return &resultStore{budget: budget, evicted: evicted, kept: kept,
		byID: map[string]*result{}, orgs: map[string]*orgResults{}}
}

// put keeps r, dropping other results to stay within the budget as the
// policy says, and reports whether r itself is kept.
func (s *resultStore) put(r *result, now time.Time) bool {
	size := r.rows.bytes()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) >= resultSweepEvery {
		s.sweep(now)
	}
	if size > s.budget {
		s.evicted()
		return false
	}
	s.seq++
	r.seq = s.seq
	o := s.orgs[r.org]
	if o == nil {
		o = &orgResults{}
		s.orgs[r.org] = o
	}
	o.queue = append(o.queue, r)
	o.bytes += size
	s.total += size
	s.byID[r.id] = r
	kept := true
	if s.total > s.budget && s.lastSweep != now {
		// Expired results go first, and are not evictions.
		s.sweep(now)
	}
	for s.total > s.budget {
		share := s.budget / int64(len(s.orgs))
		var victim *orgResults
		for _, o := range s.orgs {
			if o.bytes > share && (victim == nil || o.queue[0].seq < victim.queue[0].seq) {
				victim = o
			}
		}
		// There is always one: when the total is over the budget, some
		// organization holds more than the average, which is more than its
		// share.
		x := s.drop(victim)
		s.evicted()
		if x == r {
			kept = false
		}
	}
	s.kept(s.total)
	return kept
}

// drop removes the oldest result of o and returns it.
func (s *resultStore) drop(o *orgResults) *result {
	x := o.queue[0]
	o.queue[0] = nil
	o.queue = o.queue[1:]
	size := x.rows.bytes()
	o.bytes -= size
	s.total -= size
	delete(s.byID, x.id)
	if len(o.queue) == 0 {
		delete(s.orgs, x.org)
	}
	return x
}

// sweep drops the expired results. Results of an organization expire in the
// order they were kept (every one lives ResultTTL from its completion), so
// they are found at the front of its queue.
func (s *resultStore) sweep(now time.Time) {
	for _, o := range s.orgs {
		for len(o.queue) > 0 && !now.Before(o.queue[0].expires) {
			s.drop(o)
		}
	}
	s.lastSweep = now
	s.kept(s.total)
}

// get returns the result of the execution with the id, or nil when it is
// not kept (dropped, or never complete).
func (s *resultStore) get(id string) *result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// table is a result's rows, compact and ready to encode: each distinct
// string once, already encoded as a JSON string, and each row as the
// indexes of its strings and its counts, bit-packed into as few 64-bit
// words as the largest value of each field needs (the 90-day organization
// query's rows take 16 bytes each). A row as apiusage.Row takes 168 bytes
// and seven pointers for the garbage collector to follow; and on this kind
// of machine every fresh page a result is kept in costs a page fault, so
// the smaller the table, the sooner it is built. Encoding a row copies
// bytes instead of escaping strings again on every poll.
type table struct {
	// strs holds the JSON string literals (quotes included) end to end;
	// string i is strs[offs[i]:offs[i+1]]. String 0 is `""`.
	strs []byte
	offs []uint32
	// n rows of words words each, in packed.
	n, words int
	packed   []uint64
	// fields says where each field is in a row's words.
	fields [numFields]field
	// enc writes the rows: which metrics they show.
	enc metricSet
	// bodyLen is the length of the whole results body of the rows (as
	// writeResults writes it), so that a poll can send its
	// Content-Length before it encodes.
	bodyLen int
}

// The fields of a row: the indexes of its strings, in the order rows show
// them (0, the empty string, for a dimension not shown; for colDate, no
// date), then its counts.
const (
	colClientID = iota
	colClientName
	colOrganization
	colUser
	colTemplate
	colMethod
	colDate
	numCols
	fStatus200 = iota - 1
	fStatus300
	fStatus400
	fStatus500
	fStatus429
	fRequests
	numFields
)

// field is where a field is: (word >> shift) & mask of a row's words.
type field struct {
	word  int
	shift uint
	mask  uint64
}

// get returns field f of the row whose words are w.
func (f *field) get(w []uint64) uint64 { return w[f.word] >> f.shift & f.mask }

// row returns the words of row i.
func (t *table) row(i int) []uint64 { return t.packed[i*t.words : (i+1)*t.words] }

// str returns the JSON of string i.
func (t *table) str(i uint64) []byte { return t.strs[t.offs[i]:t.offs[i+1]] }

// bytes is the memory t holds, as the budget counts it.
func (t *table) bytes() int64 {
	const fixed = int64(unsafe.Sizeof(table{}) + unsafe.Sizeof(result{}) + 64)
	return fixed + int64(cap(t.strs)) + 4*int64(cap(t.offs)) + 8*int64(cap(t.packed))
}

// layout places fields of the given widths in bits into 64-bit words, the
// widest first, each into the first word with room (first-fit decreasing),
// and returns how many words a row takes (at least one).
func layout(widths [numFields]int) ([numFields]field, int) {
	var fields [numFields]field
	order := make([]int, numFields)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return widths[b] - widths[a] })
	var used []int
	for _, f := range order {
		w := widths[f]
		if w == 0 {
			continue // always 0: mask 0 in word 0
		}
		word := slices.IndexFunc(used, func(u int) bool { return u+w <= 64 })
		if word < 0 {
			word = len(used)
			used = append(used, 0)
		}
		fields[f] = field{word: word, shift: uint(used[word]), mask: ^uint64(0) >> (64 - w)}
		used[word] += w
	}
	return fields, max(len(used), 1)
}

// tableView says which of the rows' fields a table shows.
type tableView struct {
	m metricSet
	// noClient, noMethod and noTemplate blank the columns a simple search
	// was not asked for.
	noClient, noMethod, noTemplate bool
}

// clientNamer tells the name rows show for a client: name when ok, and the
// name the row has otherwise. newTable asks it once per client.
type clientNamer func(id string) (name string, ok bool, err error)

// newTable builds the table of rs's rows as view shows them, their clients
// named by names (nil: as the rows name them). It fails on a date that JSON
// cannot hold (a year past 9999), and on an error of names.
//
// It makes two passes: the first gives every string its index, by its
// reference in rs (no string is hashed: a store's result refers to each by
// its id, and rowSetOf gives each distinct string one), into the interner's
// scratch (memory reused from result to result), and finds the largest
// value of each field; the second packs the rows, as narrow as those values
// allow, into the one allocation that is kept. That allocation is fresh
// memory (the tables kept before still hold theirs), whose page faults cost
// more than packing into it: so for a large table another goroutine
// allocates and touches it, at the size the last table had a row, while the
// first pass runs, and the second follows it through the pages it has
// touched (see prefault).
func newTable(rs *apiusage.RowSet, view tableView, names clientNamer) (*table, error) {
	rows := rs.Rows
	t := &table{enc: view.m, n: len(rows)}
	guess := int(lastWords.Load())
	spare := prefault(guess * len(rows))
	in := getInterner(rs)
	defer in.release()
	idx := slices.Grow(in.scratch[:0], numCols*len(rows))[:numCols*len(rows)]
	in.scratch = idx
	strs := &rs.Strings
	// ors are the fields' values or-ed together: their bit length is the
	// largest value's.
	var ors [numFields]uint64
	for i := range rows {
		r, out := &rows[i], idx[i*numCols:(i+1)*numCols:(i+1)*numCols]
		clear(out)
		if !view.noClient {
			client := r.Refs[apiusage.RefClient]
			out[colClientID] = in.index(apiusage.RefClient, client)
			name, err := in.name(client, strs, names)
			if err != nil {
				return nil, err
			}
			if name == ownName {
				name = in.index(apiusage.RefClientName, r.Refs[apiusage.RefClientName])
			}
			out[colClientName] = name
		}
		out[colOrganization] = in.index(apiusage.RefOrganization, r.Refs[apiusage.RefOrganization])
		out[colUser] = in.index(apiusage.RefUser, r.Refs[apiusage.RefUser])
		if !view.noTemplate {
			out[colTemplate] = in.index(apiusage.RefTemplate, r.Refs[apiusage.RefTemplate])
		}
		if !view.noMethod {
			out[colMethod] = in.index(apiusage.RefMethod, r.Refs[apiusage.RefMethod])
		}
		if view.m.date {
			d, err := in.date(r.Date, rs.Dates)
			if err != nil {
				return nil, err
			}
			out[colDate] = d
		}
		for c, v := range out {
			ors[c] |= uint64(v)
		}
		c := &r.Counts
		ors[fStatus200] |= uint64(c.Status200)
		ors[fStatus300] |= uint64(c.Status300)
		ors[fStatus400] |= uint64(c.Status400)
		ors[fStatus500] |= uint64(c.Status500)
		ors[fStatus429] |= uint64(c.Status429)
		ors[fRequests] |= uint64(c.Requests)
	}
	// Metrics not shown are not kept.
	m := &view.m
	for f, shown := range map[int]bool{fStatus200: m.status200, fStatus300: m.status300, fStatus400: m.status400,
		fStatus500: m.status500, fStatus429: m.status429, fRequests: m.requests} {
		if !shown {
			ors[f] = 0
		}
	}
	var widths [numFields]int
	for f, v := range ors {
		widths[f] = bits.Len64(v)
	}
	t.fields, t.words = layout(widths)
	lastWords.Store(int32(t.words))
	in.done(t)
	var pre *prefaulted
	if spare != nil && t.words == guess {
		pre = <-spare
		t.packed = pre.b
	} else {
		if spare != nil {
			// The guess was wrong: its memory is left to the collector,
			// untouched from here on.
			go func() { (<-spare).stop.Store(true) }()
		}
		t.packed = make([]uint64, t.words*len(rows))
	}
	// The body's length is counted on the way, as rowLen would count it.
	const fixed = len(rowClientID+rowClientName+rowOrganization+rowUser+rowTemplate+rowMethod) + len("}")
	n := len(resultsStart) + len(resultsEnd) + max(len(rows)-1, 0) + fixed*len(rows)
	// ready is the end of the rows whose words are touched (all of them
	// when fresh).
	ready := len(rows)
	if pre != nil {
		ready = 0
	}
	for i := range rows {
		for i == ready {
			if ready = min(int(pre.touched.Load())/t.words, len(rows)); ready > i {
				break
			}
			// Faults are slower than packing: let the toucher go ahead.
			runtime.Gosched()
		}
		w, out, c := t.row(i), idx[i*numCols:(i+1)*numCols], &rows[i].Counts
		for col, v := range out {
			t.put(w, col, uint64(v))
			n += t.strLen(uint64(v))
		}
		// The loop counted the date's string, or the empty string's for a
		// row without a date, which writes nothing.
		if out[colDate] != 0 {
			n += len(rowDate)
		} else {
			n -= t.strLen(0)
		}
		t.put(w, fStatus200, uint64(c.Status200))
		t.put(w, fStatus300, uint64(c.Status300))
		t.put(w, fStatus400, uint64(c.Status400))
		t.put(w, fStatus500, uint64(c.Status500))
		t.put(w, fStatus429, uint64(c.Status429))
		t.put(w, fRequests, uint64(c.Requests))
		n += countsLen(m, c)
	}
	t.bodyLen = n
	return t, nil
}

// lastWords is the words a row of the last table took: the guess of the
// next table's, which is most often the same query again or one like it.
var lastWords atomic.Int32

// prefaultMin is the least size, in words, of a table's rows that prefault
// prepares: below it, a goroutine costs more than the page faults.
const prefaultMin = 256 << 10 / 8

// prefaulted is a slice being touched page by page by another goroutine,
// from its start.
type prefaulted struct {
	b []uint64
	// touched is how many words of b, from its start, the toucher is done
	// with: it writes no word below it again, and the owner may write them.
	touched atomic.Int64
	// stop tells the toucher that b is not wanted.
	stop atomic.Bool
}

// prefault returns a channel that will yield a slice of n words, zeroed,
// that another goroutine allocates and then touches page by page (so that
// its page faults are taken) on the core newTable's goroutine does not
// use; or nil when n is too small to be worth it. The channel is buffered:
// nobody need receive from it.
func prefault(n int) chan *prefaulted {
	if n < prefaultMin {
		return nil
	}
	c := make(chan *prefaulted, 1)
	go func() {
		p := &prefaulted{b: make([]uint64, n)}
		c <- p
		const page = 4096 / 8
		for i := 0; i < n && !p.stop.Load(); i += page {
			// A read would map the shared zero page, not a page of b's own.
			p.b[i] = 0
			p.touched.Store(int64(i + 1))
		}
		p.touched.Store(int64(n))
	}()
	return c
}

// countsLen is the length of the metrics m shows of c, as appendRow writes
// them.
func countsLen(m *metricSet, c *apiusage.Counts) int {
	n := 0
	if m.status200 {
		n += len(rowStatus200) + intLen(c.Status200)
	}
	if m.status300 {
		n += len(rowStatus300) + intLen(c.Status300)
	}
	if m.status400 {
		n += len(rowStatus400) + intLen(c.Status400)
	}
	if m.status500 {
		n += len(rowStatus500) + intLen(c.Status500)
	}
	if m.status429 {
		n += len(rowStatus429) + intLen(c.Status429)
	}
	if m.requests {
		n += len(rowRequests) + intLen(c.Requests)
	}
	return n
}

// put sets field f of the row whose words are w to v (which fits).
func (t *table) put(w []uint64, f int, v uint64) {
	fl := &t.fields[f]
	w[fl.word] |= (v & fl.mask) << fl.shift
}

// ownName is what interner.name says of a client whose rows keep their own
// name.
const ownName = ^uint32(0)

// name returns the index of the name rows of the client with reference
// client show, or ownName when they keep their own; it asks names once per
// client.
func (in *interner) name(client uint32, strs *[apiusage.NumRefs][]string, names clientNamer) (uint32, error) {
	if names == nil || client == 0 {
		return ownName, nil
	}
	// names holds 0 until asked, then 1 for the row's own name, or the
	// index of the name plus 2.
	switch n := in.names.get(client); n {
	case 0:
	case 1:
		return ownName, nil
	default:
		return n - 2, nil
	}
	id := strs[apiusage.RefClient][client]
	if id == "" {
		return ownName, nil
	}
	name, ok, err := names(id)
	if err != nil {
		return 0, err
	}
	if !ok {
		in.names.set(client, 1)
		return ownName, nil
	}
	n := in.add(name)
	in.names.set(client, n+2)
	return n, nil
}

// interner gives each distinct string of a table its index, by its
// reference in the RowSet the table is built from: an array by reference
// per field (a map when the field's strings far outnumber the rows) holds
// the index each has been given. Interners are kept for the next table
// (see getInterner): their arrays are as large as a store's dictionaries.
type interner struct {
	// strs and offs are built here, in memory reused from result to
	// result, and copied to the table at their size when done.
	strs []byte
	offs []uint32
	// scratch holds the rows' string indexes between newTable's passes.
	scratch []uint32
	// set is the RowSet whose strings are indexed.
	set *apiusage.RowSet
	// refs holds each field's indexes by reference; dates those of the
	// set's dates (0: not yet).
	refs  [apiusage.NumRefs]refIndex
	dates []uint32
	// names are the names of clients, by the reference of their id (see
	// name).
	names refIndex
}

// refIndex maps references to indexes, 0 for a reference not given one:
// dense, an array by reference, or sparse, a map, for a field with far more
// strings than the result has rows.
type refIndex struct {
	dense  []uint32
	sparse map[uint32]uint32
	// given lists the references set in dense, to clear them after.
	given []uint32
}

// use makes x ready for references below n, for a result of rows rows.
func (x *refIndex) use(n, rows int) {
	if n > 4*rows+1<<16 {
		if x.sparse == nil {
			x.sparse = map[uint32]uint32{}
		}
		return
	}
	if len(x.dense) < n {
		x.dense = make([]uint32, max(n, 2*len(x.dense)))
	}
}

// get returns the index of reference r, or 0.
func (x *refIndex) get(r uint32) uint32 {
	if x.sparse != nil {
		return x.sparse[r]
	}
	return x.dense[r]
}

// set gives reference r the index v.
func (x *refIndex) set(r, v uint32) {
	if x.sparse != nil {
		x.sparse[r] = v
		return
	}
	x.dense[r] = v
	x.given = append(x.given, r)
}

// reset forgets every index given, keeping the memory.
func (x *refIndex) reset() {
	if x.sparse != nil {
		clear(x.sparse)
		x.sparse = nil
	}
	if len(x.given) > len(x.dense)/8 {
		clear(x.dense)
	} else {
		for _, r := range x.given {
			x.dense[r] = 0
		}
	}
	x.given = x.given[:0]
	if len(x.dense) > maxKept {
		x.dense = nil
	}
}

// maxKept bounds each array an interner keeps for the next table (by
// reference, per field, and its scratch): 4M entries, 16 MiB. Larger ones
// are rare, and are left to the collector.
const maxKept = 4 << 20

// interners keeps a few interners for the next tables. It is not a
// sync.Pool, which the collector empties: an interner's arrays, built
// again, would be fresh memory, whose first touch costs more than the
// lookups they serve.
var interners = make(chan *interner, 4)

// getInterner returns an interner ready for rs.
func getInterner(rs *apiusage.RowSet) *interner {
	var in *interner
	select {
	case in = <-interners:
	default:
		in = &interner{}
	}
	in.set = rs
	rows := len(rs.Rows)
	for f := range in.refs {
		in.refs[f].use(len(rs.Strings[f]), rows)
	}
	in.names.use(len(rs.Strings[apiusage.RefClient]), rows)
	in.dates = slices.Grow(in.dates[:0], len(rs.Dates))[:len(rs.Dates)]
	clear(in.dates)
	// String 0 is the empty string's JSON.
	in.strs = append(in.strs[:0], `""`...)
	in.offs = append(in.offs[:0], 0, uint32(len(in.strs)))
	return in
}

// release forgets the table's strings and keeps in for the next.
func (in *interner) release() {
	in.set = nil
	for f := range in.refs {
		in.refs[f].reset()
	}
	in.names.reset()
	if cap(in.scratch) > maxKept {
		in.scratch = nil
	}
	select {
	case interners <- in:
	default:
	}
}

// index returns the index of the string of field f with reference r,
// giving it one when new. The empty string, and reference 0, is index 0.
func (in *interner) index(f int, r uint32) uint32 {
	// A sparse field's array, kept from an earlier table, holds only
	// zeros (reset clears it): a hit there is reference 0's.
	if d := in.refs[f].dense; int(r) < len(d) {
		if i := d[r]; i != 0 || r == 0 {
			return i
		}
	}
	return in.indexSlow(f, r)
}

// indexSlow is index for a reference without an index in an array, or in
// a map.
func (in *interner) indexSlow(f int, r uint32) uint32 {
	x := &in.refs[f]
	if i := x.get(r); i != 0 || r == 0 {
		return i
	}
	s := in.set.Strings[f][r]
	if s == "" {
		return 0
	}
	i := in.add(s)
	x.set(r, i)
	return i
}

// add appends the JSON of s and returns its index.
func (in *interner) add(s string) uint32 {
	in.strs = appendString(in.strs, s)
	return in.end()
}

// end ends the string just appended to strs and returns its index.
func (in *interner) end() uint32 {
	in.offs = append(in.offs, uint32(len(in.strs)))
	return uint32(len(in.offs) - 2)
}

// date returns the index of date d (a reference in dates), 0 for the zero
// time.
func (in *interner) date(d uint32, dates []time.Time) (uint32, error) {
	if i := in.dates[d]; i != 0 {
		return i, nil
	}
	t := dates[d]
	if t.IsZero() {
		return 0, nil
	}
	// Time's own MarshalJSON, so the bytes are encoding/json's; in UTC, as
	// the contract writes dates.
	j, err := t.UTC().MarshalJSON()
	if err != nil {
		return 0, fmt.Errorf("encode date: %w", err)
	}
	in.strs = append(in.strs, j...)
	i := in.end()
	in.dates[d] = i
	return i, nil
}

// done gives the table its strings, at their size: a table is kept for as
// long as its execution, and the budget counts capacity.
func (in *interner) done(t *table) {
	t.strs, t.offs = make([]byte, len(in.strs)), make([]uint32, len(in.offs))
	copy(t.strs, in.strs)
	copy(t.offs, in.offs)
}

// rowSetOf returns rows as a RowSet, each distinct string of a field given
// one reference: how newTable reads the rows of a store that returns Rows.
func rowSetOf(rows []apiusage.Row) *apiusage.RowSet {
	rs := &apiusage.RowSet{Rows: make([]apiusage.RowRef, len(rows))}
	var refs [apiusage.NumRefs]map[string]uint32
	for f := range refs {
		refs[f] = map[string]uint32{"": 0}
		rs.Strings[f] = []string{""}
	}
	dates := map[time.Time]uint32{}
	ref := func(f int, s string) uint32 {
		r, ok := refs[f][s]
		if !ok {
			r = uint32(len(rs.Strings[f]))
			rs.Strings[f] = append(rs.Strings[f], s)
			refs[f][s] = r
		}
		return r
	}
	for i := range rows {
		r, out := &rows[i], &rs.Rows[i]
		out.Refs = [apiusage.NumRefs]uint32{
			apiusage.RefOrganization: ref(apiusage.RefOrganization, r.OrganizationID),
			apiusage.RefClient:       ref(apiusage.RefClient, r.ClientID),
			apiusage.RefClientName:   ref(apiusage.RefClientName, r.ClientName),
			apiusage.RefUser:         ref(apiusage.RefUser, r.UserID),
			apiusage.RefTemplate:     ref(apiusage.RefTemplate, r.TemplateURI),
			apiusage.RefMethod:       ref(apiusage.RefMethod, r.Method),
		}
		// Equal times (location included) format the same.
		d, ok := dates[r.Date]
		if !ok {
			d = uint32(len(rs.Dates))
			rs.Dates = append(rs.Dates, r.Date)
			dates[r.Date] = d
		}
		out.Date = d
		out.Counts = r.Counts
	}
	return rs
}

// Parts of an encoded row.
const (
	rowClientID     = `{"clientId":`
	rowClientName   = `,"clientName":`
	rowOrganization = `,"organizationId":`
	rowUser         = `,"userId":`
	rowTemplate     = `,"templateUri":`
	rowMethod       = `,"httpMethod":`
	rowStatus200    = `,"status200":`
	rowStatus300    = `,"status300":`
	rowStatus400    = `,"status400":`
	rowStatus500    = `,"status500":`
	rowStatus429    = `,"status429":`
	rowRequests     = `,"requests":`
	rowDate         = `,"date":`

	resultsStart = `{"results":[`
	resultsEnd   = `],"queryStatus":"Complete"}` + "\n"
)

// appendRow appends the JSON object of row i, in the field order of the
// reference service: the dimension fields always, empty when not shown; the
// metrics and the date only when asked for.
func (t *table) appendRow(b []byte, i int) []byte {
	w, f := t.row(i), &t.fields
	b = append(b, rowClientID...)
	b = append(b, t.str(f[colClientID].get(w))...)
	b = append(b, rowClientName...)
	b = append(b, t.str(f[colClientName].get(w))...)
	b = append(b, rowOrganization...)
	b = append(b, t.str(f[colOrganization].get(w))...)
	b = append(b, rowUser...)
	b = append(b, t.str(f[colUser].get(w))...)
	b = append(b, rowTemplate...)
	b = append(b, t.str(f[colTemplate].get(w))...)
	b = append(b, rowMethod...)
	b = append(b, t.str(f[colMethod].get(w))...)
	m := &t.enc
	if m.status200 {
		b = appendInt(append(b, rowStatus200...), int64(f[fStatus200].get(w)))
	}
	if m.status300 {
		b = appendInt(append(b, rowStatus300...), int64(f[fStatus300].get(w)))
	}
	if m.status400 {
		b = appendInt(append(b, rowStatus400...), int64(f[fStatus400].get(w)))
	}
	if m.status500 {
		b = appendInt(append(b, rowStatus500...), int64(f[fStatus500].get(w)))
	}
	if m.status429 {
		b = appendInt(append(b, rowStatus429...), int64(f[fStatus429].get(w)))
	}
	if m.requests {
		b = appendInt(append(b, rowRequests...), int64(f[fRequests].get(w)))
	}
	if d := f[colDate].get(w); d != 0 {
		b = append(append(b, rowDate...), t.str(d)...)
	}
	return append(b, '}')
}

// appendRows appends rows [from, to) as the elements of a JSON array
// (without its brackets).
func (t *table) appendRows(b []byte, from, to int) []byte {
	for i := from; i < to; i++ {
		if i > from {
			b = append(b, ',')
		}
		b = t.appendRow(b, i)
	}
	return b
}

// strLen is the length of the JSON of string i.
func (t *table) strLen(i uint64) int { return int(t.offs[i+1] - t.offs[i]) }

// appendInt is strconv.AppendInt in base 10, with a shortcut for the small
// counts most rows have.
func appendInt(b []byte, v int64) []byte {
	if uint64(v) < 10 {
		return append(b, byte('0'+v))
	}
	if uint64(v) < 100 {
		return append(b, byte('0'+v/10), byte('0'+v%10))
	}
	var buf [20]byte
	i := len(buf)
	u := uint64(v)
	if v < 0 {
		u = -u
	}
	for u >= 10 {
		q := u / 10
		i--
		buf[i] = byte('0' + u - q*10)
		u = q
	}
	i--
	buf[i] = byte('0' + u)
	if v < 0 {
		b = append(b, '-')
	}
	return append(b, buf[i:]...)
}

// intLen is the length of v in decimal.
func intLen(v int64) int {
	u, n := uint64(v), 0
	if v < 0 {
		u, n = -u, 1
	}
	// Digits from the bit length, then one less when below the power of
	// ten that length reaches (as in "Hacker's Delight", 11-4).
	d := (bits.Len64(u) * 1233) >> 12
	if u >= pow10[d] {
		d++
	}
	return n + max(d, 1)
}

var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
	1e15, 1e16, 1e17, 1e18, 1e19}
