package server

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/apiusage/apiusage"
)

// This file holds the ingest body's decoder: a scanner written for the event
// schema alone, because encoding/json spent two thirds of the server's ingest
// CPU (reflection, a string per field, a second pass to unquote). It accepts
// and rejects exactly what encoding/json decoding into []apiusage.Event does
// (FuzzDecodeEventsDifferential holds it to that): unknown fields skipped but
// checked for syntax, field names matched exactly and then case-insensitively,
// the last duplicate winning, null leaving a field alone, invalid UTF-8 in
// strings replaced by U+FFFD, and timestamps parsed as time.Time's
// UnmarshalJSON parses them, without unescaping.

// maxNestingDepth is encoding/json's bound on nested arrays and objects,
// kept so that the same bodies are rejected.
const maxNestingDepth = 10000

// maxPooledBody bounds the body buffers kept for reuse, so that one huge
// batch does not pin its buffer for good.
const maxPooledBody = 16 << 20

// eventParser decodes one ingest body at a time. It is reused through an
// eventParsers pool: its body buffer, string table and scratch space
// survive between batches, so that a steady stream of batches allocates
// little more than its events and their distinct strings.
type eventParser struct {
	buf  []byte // the body, reused
	data []byte // the body being parsed
	pos  int
	// vals and refs are the batch's apiusage.BatchStrings, handed to the
	// store with the events so that it resolves each distinct string once:
	// by field, the batch's values ("" first); by event, which one each
	// field holds. cur is the refs of the event being decoded.
	vals [numInterned][]string
	refs [][numInterned]uint32
	cur  *[numInterned]uint32
	// toks are the store's tokens of vals, by field (0: none; see
	// apiusage.BatchStrings.Tokens), as the recent entries remember them
	// and as the store fills them in; tokStore names the store they are
	// of (the cache's when the batch was parsed). slots is, by field, the
	// index in recent of each value's entry,
	// and unknown the values sent without a token, whose tokens the store
	// gives are remembered after the batch (see remember).
	toks     [numInterned][]uint32
	tokStore uint64
	slots    [numInterned][]int32
	unknown  [numInterned][]uint32
	// strs interns the strings of a batch, a table per field (small tables
	// are faster to probe, and most fields have few values): organizations,
	// clients, templates and methods repeat from event to event, and each
	// distinct value is allocated once a batch instead of once an event.
	// It maps a value to its index in vals.
	strs [numInterned]map[string]uint32
	// cache is the cache of recent strings in front of strs that the batch
	// was parsed with, and recent its entries while the parser holds it
	// (see recentCache). An entry's ref is its index in vals when its gen
	// is the batch's. caches are the ones the parser takes cache from.
	cache  *recentCache
	recent []recentEntry
	gen    uint32 // the batch's number in cache
	caches *recentCaches
	// follow is, by field, the field whose key came next the last time
	// (fieldNone: the first key of an object), the key object tries first.
	follow  [fieldStatus + 1]int
	events  []apiusage.Event
	scratch []byte // unescaped strings
	// batch is the events being parsed, as newEvent last left them, and
	// deferred the values whose interning is put off (see deferValue).
	batch    []apiusage.Event
	deferred []deferredValue
	touched  uint32 // what internDeferred loads, summed
}

// deferredValue is a value whose interning is put off: the event's index
// in the batch, the field, where its bytes are in data, and its cache
// entry (-1 for the empty string, which has none).
type deferredValue struct {
	event, field, start, end, at int
}

// recentCache is a direct-mapped cache of recent strings in front of a
// parser's strs, kept from batch to batch, which remembers the store's
// tokens too: a hit costs a few loads and a comparison where the map would
// hash the whole string and probe a table too big for the CPU's caches.
// Each field's entries are entries[recentStart[f]:recentStart[f+1]];
// allocated apart, so that its entries start cache lines.
//
// The parsers of a route share a few of them, at most one per core (see
// recentCaches). With a cache of its own for each parser, the caches took
// as many times the room, in memory and in the CPU's caches, as there were
// connections; shared, one can be large enough to hold the users of the
// last sixteen batches or so (see recentBits).
type recentCache struct {
	mu       sync.Mutex
	entries  []recentEntry
	gen      uint32 // the number of the batch last parsed with it
	tokStore uint64 // the store its entries' tokens are of
}

// recentCaches are the caches of recent strings that a route's parsers share.
// A parser holds one while it parses a batch, and again while it remembers
// the tokens the store gave (see eventParser.remember). There are as many
// as parses have overlapped, up to one per core: a server that parses one
// batch at a time keeps one.
type recentCaches struct {
	mu     sync.Mutex                     // held to add a cache
	caches atomic.Pointer[[]*recentCache] // replaced, never changed, as caches are added
	next   atomic.Uint32
}

// acquire returns a cache, locked: the first free one, so that batches that
// do not overlap share the one cache; else a new one, while there are fewer
// than the cores; else the next in turn, once it is free.
func (cs *recentCaches) acquire() *recentCache {
	var caches []*recentCache
	if p := cs.caches.Load(); p != nil {
		caches = *p
	}
	for _, c := range caches {
		if c.mu.TryLock() {
			return c
		}
	}
	if len(caches) < runtime.GOMAXPROCS(0) {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if p := cs.caches.Load(); p == nil || len(*p) == len(caches) {
			c := &recentCache{entries: make([]recentEntry, recentStart[numInterned])}
			c.mu.Lock()
			caches = append(slices.Clip(caches), c)
			cs.caches.Store(&caches)
			return c
		}
		// Another parser added one meanwhile: take turns with them all.
		caches = *cs.caches.Load()
	}
	c := caches[int(cs.next.Add(1))%len(caches)]
	c.mu.Lock()
	return c
}

// recentEntry is a slot of recentCache.entries: a cache line, which holds
// the bytes of a string up to inlineMax long as well, so that checking a hit
// reads the line and not the string's bytes, elsewhere in the heap (half
// the cache misses of a hit, which dominated the parser's time), and the
// store's token of the string, so that the store need not look up a value
// the parser remembers (its dictionary's lookups were a tenth of the
// server's ingest CPU).
type recentEntry struct {
	inline [inlineMax]byte // s's bytes when it is short enough; the rest left over
	tok    uint32          // the store's token of s (of recentCache.tokStore), or 0
	s      string
	ref    uint32
	gen    uint32
}

// inlineMax is the longest string a recentEntry holds in line: identifiers
// (36 bytes as UUIDs), names and most templates. With the token it keeps
// an entry one cache line.
const inlineMax = 36

// maxPooledEvents bounds the event slice a parser keeps for the next batch.
const maxPooledEvents = 1 << 15

// eventParsers is a pool of parsers, one per handler, and the caches of
// recent strings they share.
type eventParsers struct {
	p      sync.Pool
	caches recentCaches
}

func (ps *eventParsers) get() *eventParser {
	if p, ok := ps.p.Get().(*eventParser); ok {
		return p
	}
	p := &eventParser{caches: &ps.caches}
	for i := range p.strs {
		p.strs[i] = make(map[string]uint32)
	}
	return p
}

func (ps *eventParsers) put(p *eventParser) {
	if cap(p.buf) > maxPooledBody {
		return
	}
	p.reset()
	ps.p.Put(p)
}

// reset readies the parser for its next batch.
func (p *eventParser) reset() {
	// The strings go with their batch; the map keeps its buckets.
	for _, m := range p.strs {
		clear(m)
	}
	p.data = nil
	p.cur = nil
	p.batch = nil
	if cap(p.events) > maxPooledEvents {
		p.events = nil
	}
}

// decodeReused reads a body (sizeHint, when positive, is its announced
// length) and decodes at most max events of it (see eventParser) into
// the parser's own event slice, which the next batch of the parser
// overwrites: the caller is done with the events before it puts the parser
// back. hint describes the events' strings.
func (p *eventParser) decodeReused(r io.Reader, sizeHint int64, ndjson bool, max int) (events []apiusage.Event, hint *apiusage.BatchStrings, err error) {
	if err := p.read(r, sizeHint); err != nil {
		return nil, nil, err
	}
	// The cache is taken only once the body is in: reading it waits on
	// the network, parsing does not.
	events, err = p.parse(p.events, ndjson, max)
	if err != nil {
		return nil, nil, err
	}
	p.events = events
	return events, p.hint(), nil
}

// hint returns the strings of the batch last parsed.
func (p *eventParser) hint() *apiusage.BatchStrings {
	h := &apiusage.BatchStrings{Refs: p.refs, TokenStore: p.tokStore}
	for i := range h.Values {
		h.Values[i] = p.vals[i]
		h.Tokens[i] = p.toks[i]
	}
	return h
}

// remember keeps the tokens the store gave the values of h, the hint of the
// batch last parsed, once the store is done with it, in the entries of the
// cache it was parsed with that still hold those values: only for the
// values sent without one, whose entries are read again only here. Tokens
// of another store than the one the cache's tokens are of replace them all.
func (p *eventParser) remember(h *apiusage.BatchStrings) {
	c := p.cache
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.TokenStore != c.tokStore {
		if c.tokStore != 0 {
			for i := range c.entries {
				c.entries[i].tok = 0
			}
		}
		c.tokStore = h.TokenStore
		// Every value is to be remembered, not only those sent without
		// a token, which were another store's.
		for i := range p.unknown {
			p.unknown[i] = p.unknown[i][:0]
			for j := 1; j < len(p.vals[i]); j++ {
				p.unknown[i] = append(p.unknown[i], uint32(j))
			}
		}
	}
	for i, unknown := range p.unknown {
		toks, vals, slots := h.Tokens[i], h.Values[i], p.slots[i]
		if len(toks) != len(vals) || len(vals) != len(slots) {
			continue
		}
		for _, j := range unknown {
			// The entry may hold another value since, and a value the
			// store saw may not be the one parsed (validation writes
			// methods in their canonical form): only an entry holding the
			// very value the store saw gets its token, whichever batch
			// put it there.
			if e := &c.entries[slots[j]]; e.s == vals[j] {
				e.tok = toks[j]
			}
		}
	}
}

// newEvent appends a zero event and its refs, which it makes current.
func (p *eventParser) newEvent(events []apiusage.Event) ([]apiusage.Event, *apiusage.Event) {
	events = append(events, apiusage.Event{})
	p.refs = append(p.refs, [numInterned]uint32{})
	p.cur = &p.refs[len(p.refs)-1]
	p.batch = events
	return events, &events[len(events)-1]
}

// read reads the whole body into the parser's buffer. The body is bounded
// by the route's MaxBytesReader, whose error surfaces here as a 413.
func (p *eventParser) read(r io.Reader, sizeHint int64) error {
	buf := p.buf[:0]
	if sizeHint > 0 && sizeHint < maxPooledBody && int(sizeHint) >= cap(buf) {
		// One more byte, so that reading the EOF does not grow it.
		buf = make([]byte, 0, sizeHint+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			p.buf = buf
			return jsonError(err)
		}
	}
	p.buf = buf
	p.data = buf
	p.pos = 0
	return nil
}

// parse decodes p.data: a JSON array of events, a single event object, or,
// when ndjson, events one after another, at most max of them, into buf when
// it is large enough. The order of its checks is encoding/json's streaming
// decoder's, so that the same bodies give a 413 rather than a 400.
func (p *eventParser) parse(buf []apiusage.Event, ndjson bool, max int) ([]apiusage.Event, error) {
	tooMany := func() error {
		return apiusage.Errorf(apiusage.CodeTooLarge, "a batch holds at most %d events", max)
	}
	c := p.caches.acquire()
	defer func() {
		p.recent = nil
		c.mu.Unlock()
	}()
	if c.gen++; c.gen == 0 {
		// After 2^32 batches, entries of the first would look current.
		clear(c.entries)
		c.gen = 1
	}
	p.cache, p.recent, p.gen, p.tokStore = c, c.entries, c.gen, c.tokStore
	for i := range p.vals {
		p.vals[i] = append(p.vals[i][:0], "")
		p.toks[i] = append(p.toks[i][:0], 0)
		p.slots[i] = append(p.slots[i][:0], 0)
		p.unknown[i] = p.unknown[i][:0]
	}
	p.refs = p.refs[:0]
	p.deferred = p.deferred[:0]
	// A reused slice grows by appending, as far as the events go; a new
	// one is sized once, by an estimate (counting a body's lines was a
	// twentieth of the server's ingest CPU).
	alloc := func(ndjson bool) []apiusage.Event {
		if cap(buf) > 0 {
			return buf[:0]
		}
		return make([]apiusage.Event, 0, p.estimate(max, ndjson))
	}
	p.skipSpace()
	if p.pos == len(p.data) {
		if ndjson {
			return nil, nil
		}
		return nil, badRequest("malformed JSON: the body is empty; send an array of events")
	}
	var events []apiusage.Event
	switch first := p.data[p.pos]; {
	case first == '[' && !ndjson:
		p.pos++
		events = alloc(false)
		for {
			p.skipSpace()
			if p.pos == len(p.data) {
				return nil, badRequest("malformed JSON: unexpected end of the body")
			}
			c := p.data[p.pos]
			if c == ']' {
				p.pos++
				break
			}
			if c == '}' {
				return nil, p.syntaxError("after array element")
			}
			if len(events) == max {
				return nil, tooMany()
			}
			if len(events) > 0 {
				if c != ',' {
					return nil, p.syntaxError("after array element")
				}
				p.pos++
				p.skipSpace()
			}
			var e *apiusage.Event
			events, e = p.newEvent(events)
			if err := p.event(e); err != nil {
				return nil, eventError(len(events)-1, err)
			}
		}
	case first == '{' && !ndjson:
		// A lone event is a batch of one: the friendliest reading of a body
		// that a one-event sender is likely to write.
		var e *apiusage.Event
		events, e = p.newEvent(buf[:0])
		if err := p.event(e); err != nil {
			return nil, eventError(0, err)
		}
	case ndjson:
		// One event a line, mostly: counting the lines sizes the slice once.
		events = alloc(true)
		for {
			p.skipSpace()
			if p.pos == len(p.data) {
				break
			}
			if c := p.data[p.pos]; c == ']' || c == '}' {
				break // rejected below
			}
			if len(events) == max {
				return nil, tooMany()
			}
			var e *apiusage.Event
			events, e = p.newEvent(events)
			if err := p.event(e); err != nil {
				return nil, eventError(len(events)-1, err)
			}
		}
	default:
		return nil, badRequest("malformed JSON: want an array of events")
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, badRequest("malformed JSON at byte %d: unexpected %q after the events", p.pos, p.data[p.pos])
	}
	p.internDeferred()
	return events, nil
}

// estimate guesses how many events the body holds, to size the slice once.
// NDJSON has about one a line; an array is assumed to have one per 256
// bytes, and grows past that if it must. The guess never passes max, nor
// one event per 64 bytes of body, so that a body of newlines or brackets
// cannot make the server allocate far more than it sent.
func (p *eventParser) estimate(max int, ndjson bool) int {
	rest := p.data[p.pos:]
	if !ndjson {
		return min(max, len(rest)/256+1)
	}
	return min(max, len(rest)/64+1, bytes.Count(rest, []byte{'\n'})+1)
}

// typeError is a value of the wrong JSON type for its field, worded as
// jsonError words encoding/json's.
func typeError(field, kind string) error {
	return badRequest("malformed JSON: %s: cannot be a JSON %s", field, kind)
}

// syntaxError reports the byte at p.pos as unexpected.
func (p *eventParser) syntaxError(context string) error {
	if p.pos >= len(p.data) {
		return badRequest("malformed JSON: unexpected end of the body")
	}
	// Counted as encoding/json counts: the bytes read, the bad one included.
	return badRequest("malformed JSON at byte %d: invalid character %s %s", p.pos+1, quoteChar(p.data[p.pos]), context)
}

// quoteChar formats c as encoding/json's syntax errors do.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

func (p *eventParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\r', '\n':
			p.pos++
		default:
			return
		}
	}
}

// peek returns the byte at p.pos, or 0 at the end (0 is never valid JSON
// outside a string).
func (p *eventParser) peek() byte {
	if p.pos < len(p.data) {
		return p.data[p.pos]
	}
	return 0
}

// event decodes the value at p.pos (not a space) into e, which is zero.
func (p *eventParser) event(e *apiusage.Event) error {
	switch p.peek() {
	case '{':
		return p.object(e)
	case 'n':
		// null decodes to nothing: a zero event, which validation rejects.
		return p.literal("null")
	}
	kind, err := p.skipKind(0)
	if err != nil {
		return err
	}
	return badRequest("malformed JSON: body: cannot be a JSON %s", kind)
}

// The event's fields, in the order of apiusage.Event.
const (
	fieldNone = iota
	fieldID
	fieldTime
	fieldOrg
	fieldClient
	fieldClientName
	fieldUser
	fieldTemplate
	fieldMethod
	fieldStatus

	// numInterned counts the fields from fieldOrg to fieldMethod, whose
	// values are interned.
	numInterned = fieldMethod - fieldOrg + 1
)

// fieldNames are the JSON names of the fields, by field constant.
var fieldNames = [...]string{
	fieldID: "id", fieldTime: "timestamp", fieldOrg: "organizationId", fieldClient: "clientId",
	fieldClientName: "clientName", fieldUser: "userId", fieldTemplate: "templateUri",
	fieldMethod: "httpMethod", fieldStatus: "status",
}

// keyLiterals are the fields' keys as most senders write them: quoted,
// followed by a colon.
var keyLiterals = func() (lits [fieldStatus + 1][]byte) {
	for f := fieldID; f <= fieldStatus; f++ {
		lits[f] = []byte(`"` + fieldNames[f] + `":`)
	}
	return lits
}()

// fieldOf matches a key as encoding/json does: exactly first, then without
// regard to case (Unicode simple folding).
func fieldOf(key []byte) int {
	// A switch on the name compiles to a search by length and then bytes.
	switch string(key) {
	case "id":
		return fieldID
	case "timestamp":
		return fieldTime
	case "organizationId":
		return fieldOrg
	case "clientId":
		return fieldClient
	case "clientName":
		return fieldClientName
	case "userId":
		return fieldUser
	case "templateUri":
		return fieldTemplate
	case "httpMethod":
		return fieldMethod
	case "status":
		return fieldStatus
	}
	for f := fieldID; f <= fieldStatus; f++ {
		if bytes.EqualFold(key, []byte(fieldNames[f])) {
			return f
		}
	}
	return fieldNone
}

// object decodes the object at p.pos into e.
func (p *eventParser) object(e *apiusage.Event) error {
	p.pos++ // {
	p.skipSpace()
	if p.peek() == '}' {
		p.pos++
		return nil
	}
	prev := fieldNone
	for {
		// Senders write their fields in one order, so the key that
		// followed this one last time is tried first, as raw bytes: a
		// quote, the exact name and a quote then a colon mean what str,
		// fieldOf and the colon's check would find, without them.
		f := p.follow[prev]
		if lit := keyLiterals[f]; f == fieldNone || !bytes.HasPrefix(p.data[p.pos:], lit) {
			if p.peek() != '"' {
				return p.syntaxError("looking for beginning of object key string")
			}
			key, err := p.str()
			if err != nil {
				return err
			}
			f = fieldOf(key)
			p.follow[prev] = f
			p.skipSpace()
			if p.peek() != ':' {
				return p.syntaxError("after object key")
			}
			p.pos++
		} else {
			p.pos += len(lit)
		}
		prev = f
		p.skipSpace()
		if err := p.field(f, e); err != nil {
			return err
		}
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			return nil
		default:
			return p.syntaxError("after object key:value pair")
		}
	}
}

// field decodes the value at p.pos into field f of e.
func (p *eventParser) field(f int, e *apiusage.Event) error {
	c := p.peek()
	switch f {
	case fieldNone:
		_, err := p.skipKind(1)
		return err
	case fieldTime:
		return p.timestamp(&e.Time)
	case fieldStatus:
		switch c {
		case 'n':
			return p.literal("null")
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return p.status(&e.Status)
		}
		kind, err := p.skipKind(1)
		if err != nil {
			return err
		}
		return typeError("status", kind)
	}
	switch c {
	case 'n':
		return p.literal("null")
	case '"':
	default:
		kind, err := p.skipKind(1)
		if err != nil {
			return err
		}
		return typeError(fieldNames[f], kind)
	}
	start := p.pos + 1
	b, err := p.str()
	if err != nil {
		return err
	}
	switch f {
	case fieldID:
		// Ids are unique: interning them would only grow the table.
		e.ID = string(b)
	case fieldOrg:
		e.OrganizationID = p.intern(fieldOrg, b)
	case fieldMethod:
		e.Method = p.intern(fieldMethod, b)
	case fieldClient, fieldClientName, fieldUser, fieldTemplate:
		if len(b) == 0 || &b[0] == &p.data[start] {
			// Its bytes stay where they are, in the body: it can wait.
			p.deferValue(f, start, start+len(b))
			return nil
		}
		// Unescaped, in scratch. The values put off go first, so that
		// the batch's values are in the order of their events, and the
		// last of a field's duplicates in an event wins.
		p.internDeferred()
		*eventField(e, f) = p.intern(f, b)
	}
	return nil
}

// eventField returns the field f of e, one of the interned ones.
func eventField(e *apiusage.Event, f int) *string {
	switch f {
	case fieldOrg:
		return &e.OrganizationID
	case fieldClient:
		return &e.ClientID
	case fieldClientName:
		return &e.ClientName
	case fieldUser:
		return &e.UserID
	case fieldTemplate:
		return &e.TemplateURI
	}
	return &e.Method
}

// recentBits sizes each field's cache of recent strings, a few times the
// distinct values of a 10,000-event batch of the suite's workload where a
// field has more than that: organizations and methods are few; clients and
// their names about 1,300 a batch, of 2,000; templates 360, of 400. Users
// are about 4,300 a batch, of 50,000, and a batch's users are mostly those
// of the batches a little before it: a third were in the one before, 58% in
// the four before, 82% in the sixteen before. A user found in the cache goes
// to the store with its token, and one not found is looked up in the
// parser's map and the store's dictionary and allocated again: a cache of
// 2^14 users sent 51% of a batch's users with a token, 2^16 82%
// (BenchmarkIngestAppendStream), for 4 MiB a cache.
var recentBits = [numInterned]uint8{
	fieldOrg - fieldOrg: 8, fieldClient - fieldOrg: 12, fieldClientName - fieldOrg: 12,
	fieldUser - fieldOrg: 16, fieldTemplate - fieldOrg: 10, fieldMethod - fieldOrg: 6,
}

// recentStart is, by field, where its entries start in eventParser.recent.
var recentStart = func() (start [numInterned + 1]int) {
	for i, b := range recentBits {
		start[i+1] = start[i] + 1<<b
	}
	return start
}()

// intern returns b, a value of field f, as a string allocated at most once
// a batch, and records its index in the batch's values as the current
// event's ref.
func (p *eventParser) intern(f int, b []byte) string {
	i := f - fieldOrg
	if len(b) == 0 {
		p.cur[i] = 0
		return ""
	}
	s, ref := p.internAt(i, b, recentSlot(i, b))
	p.cur[i] = ref
	return s
}

// internAt is intern for a value whose entry in recent is at, which returns
// its ref rather than record it.
func (p *eventParser) internAt(i int, b []byte, at int) (string, uint32) {
	slot := &p.recent[at]
	if slot.holds(b) {
		if slot.gen != p.gen {
			// Its first use this batch. It is not added to strs: should
			// it lose its slot and come back, it is given a second ref,
			// which BatchStrings allows.
			slot.gen, slot.ref = p.gen, uint32(len(p.vals[i]))
			p.add(i, slot.s, slot.tok, at)
		}
		return slot.s, slot.ref
	}
	m := p.strs[i]
	ref, ok := m[string(b)]
	var s string
	if ok {
		s = p.vals[i][ref]
	} else {
		s = string(b)
		ref = uint32(len(p.vals[i]))
		p.add(i, s, 0, at)
		m[s] = ref
	}
	slot.set(s, ref, p.gen)
	if ok {
		// A value of this batch back in its entry: its token is the one
		// sent, if any.
		slot.tok = p.toks[i][ref]
	}
	return s, ref
}

// deferredMax is how many values deferValue puts off, at most.
const deferredMax = 32

// deferValue puts off interning the value of field f of the current event,
// data[start:end], until deferredMax are waiting, and then interns them
// all, their cache entries loaded together first, so that the CPU waits for
// their misses at once. One at a time, each value's entry was a miss of its
// own that the parser waited for: a batch's users are many more than the
// CPU's caches hold (their lookups were the largest single cost of the
// server's ingest, recentEntry.holds at 14% of its CPU), and its clients and
// templates about as many as they hold. Organizations and methods are few
// and interned at once. The values are interned in the order of their
// events, as they would have been at once.
func (p *eventParser) deferValue(f, start, end int) {
	at := -1
	if start < end {
		at = recentSlot(f-fieldOrg, p.data[start:end])
	}
	p.deferred = append(p.deferred, deferredValue{event: len(p.refs) - 1, field: f, start: start, end: end, at: at})
	if len(p.deferred) == deferredMax {
		p.internDeferred()
	}
}

// internDeferred interns the values deferValue put off.
func (p *eventParser) internDeferred() {
	// The loads depend on nothing but the entries' places, so the CPU
	// issues them together; sum keeps them from being compiled away.
	var sum uint32
	for _, v := range p.deferred {
		if v.at >= 0 {
			sum += p.recent[v.at].gen
		}
	}
	p.touched += sum
	for _, v := range p.deferred {
		i := v.field - fieldOrg
		s, ref := "", uint32(0)
		if v.at >= 0 {
			s, ref = p.internAt(i, p.data[v.start:v.end], v.at)
		}
		*eventField(&p.batch[v.event], v.field) = s
		p.refs[v.event][i] = ref
	}
	p.deferred = p.deferred[:0]
}

// recentSlot returns the index in recentCache.entries of the entry for b, a
// value of field i (counted from fieldOrg).
func recentSlot(i int, b []byte) int {
	// Identifiers differ in their first and last bytes, and names and
	// templates in their length or ends: enough for a slot.
	var h uint64
	if len(b) >= 8 {
		h = binary.LittleEndian.Uint64(b) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(b[len(b)-8:]), 31)
	} else {
		for _, c := range b {
			h = h<<8 | uint64(c)
		}
	}
	h = (h ^ uint64(len(b))) * 0x9e3779b97f4a7c15
	return recentStart[i] + int(h>>(64-recentBits[i]))
}

// add appends s, a value of field i, its token and its entry's index in
// recent to the batch's values.
func (p *eventParser) add(i int, s string, tok uint32, at int) {
	if tok == 0 {
		p.unknown[i] = append(p.unknown[i], uint32(len(p.vals[i])))
	}
	p.vals[i] = append(p.vals[i], s)
	p.toks[i] = append(p.toks[i], tok)
	p.slots[i] = append(p.slots[i], int32(at))
}

// holds reports whether the entry's string is b, as e.s == string(b) would,
// reading the bytes held in line when b is 8 to inlineMax bytes long: a word
// at a time, the last word overlapping the one before, the differences ORed
// into one test, without a call into the runtime.
func (e *recentEntry) holds(b []byte) bool {
	n := len(b)
	// One unsigned comparison for n < 8 or n > inlineMax.
	if len(e.s) != n || uint(n-8) > inlineMax-8 {
		return e.s == string(b)
	}
	t := e.inline[:n]
	diff := binary.LittleEndian.Uint64(t[n-8:]) ^ binary.LittleEndian.Uint64(b[n-8:])
	for i := 0; i < n-8; i += 8 {
		diff |= binary.LittleEndian.Uint64(t[i:]) ^ binary.LittleEndian.Uint64(b[i:])
	}
	return diff == 0
}

// set makes the entry hold s, without a token.
func (e *recentEntry) set(s string, ref, gen uint32) {
	e.s, e.ref, e.gen, e.tok = s, ref, gen, 0
	if len(s) <= inlineMax {
		// The bytes past s's matter to no comparison; they are left.
		copy(e.inline[:], s)
	}
}

// literal consumes want (true, false or null) at p.pos.
func (p *eventParser) literal(want string) error {
	for i := 0; i < len(want); i++ {
		if p.pos >= len(p.data) || p.data[p.pos] != want[i] {
			return p.syntaxError("in literal " + want + " (expecting " + quoteChar(want[i]) + ")")
		}
		p.pos++
	}
	return nil
}

// number consumes the JSON number at p.pos and reports whether it is an
// integer (no fraction, no exponent).
func (p *eventParser) number() (integer bool, err error) {
	integer = true
	digits := func() bool {
		start := p.pos
		for p.pos < len(p.data) && '0' <= p.data[p.pos] && p.data[p.pos] <= '9' {
			p.pos++
		}
		return p.pos > start
	}
	if p.peek() == '-' {
		p.pos++
	}
	switch c := p.peek(); {
	case c == '0':
		p.pos++
	case '1' <= c && c <= '9':
		digits()
	default:
		return false, p.syntaxError("in numeric literal")
	}
	if p.peek() == '.' {
		integer = false
		p.pos++
		if !digits() {
			return false, p.syntaxError("after decimal point in numeric literal")
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		integer = false
		p.pos++
		if c := p.peek(); c == '+' || c == '-' {
			p.pos++
		}
		if !digits() {
			return false, p.syntaxError("in exponent of numeric literal")
		}
	}
	return integer, nil
}

// status decodes the number at p.pos into an int, as encoding/json does:
// an integer that fits, or a type error.
func (p *eventParser) status(dst *int) error {
	start := p.pos
	integer, err := p.number()
	if err != nil {
		return err
	}
	lit := p.data[start:p.pos]
	if !integer {
		return typeError("status", "number "+string(lit))
	}
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	// Accumulate negatively so that the least int64 fits.
	var n int64
	for _, c := range lit {
		d := int64(c - '0')
		if n < (-1<<63+d)/10 {
			return typeError("status", "number "+string(p.data[start:p.pos]))
		}
		n = n*10 - d
	}
	if !neg {
		if n == -1<<63 {
			return typeError("status", "number "+string(p.data[start:p.pos]))
		}
		n = -n
	}
	*dst = int(n)
	return nil
}

// timestamp decodes the value at p.pos as time.Time's UnmarshalJSON does:
// null leaves it alone, a string is parsed as RFC 3339 as it stands
// (escapes are not unescaped), anything else is an error. The common form
// YYYY-MM-DDTHH:MM:SS(.fraction)Z is parsed here; the others by time.
func (p *eventParser) timestamp(dst *time.Time) error {
	start := p.pos
	switch p.peek() {
	case 'n':
		return p.literal("null")
	case '"':
		if err := p.skipString(); err != nil {
			return err
		}
	default:
		if _, err := p.skipKind(1); err != nil {
			return err
		}
	}
	raw := p.data[start:p.pos]
	if len(raw) >= 2 && raw[0] == '"' {
		if t, ok := parseUTC(raw[1 : len(raw)-1]); ok {
			*dst = t
			return nil
		}
	}
	if err := dst.UnmarshalJSON(raw); err != nil {
		return badRequest("malformed JSON: timestamp: %s", err.Error())
	}
	return nil
}

// parseUTC parses YYYY-MM-DDTHH:MM:SS(.f{1,9})Z with every field in range,
// the form nearly every sender writes; ok is false for anything else, which
// time's own parser then judges.
func parseUTC(b []byte) (t time.Time, ok bool) {
	n := len(b)
	if n < 20 || b[n-1] != 'Z' || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	num := func(s []byte) int {
		x := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return -1
			}
			x = x*10 + int(c-'0')
		}
		return x
	}
	year, month, day := num(b[0:4]), num(b[5:7]), num(b[8:10])
	hour, minute, sec := num(b[11:13]), num(b[14:16]), num(b[17:19])
	if year < 0 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour < 0 || hour > 23 || minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if n > 20 {
		frac := b[19 : n-1]
		if len(frac) < 2 || len(frac) > 10 || frac[0] != '.' {
			return time.Time{}, false
		}
		nsec = num(frac[1:])
		if nsec < 0 {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

// daysIn is the number of days of month in year.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// str consumes the string at p.pos (a quote) and returns its value,
// unescaped, with invalid UTF-8 replaced by U+FFFD as encoding/json does.
// The bytes are the body's or the scratch buffer's: valid until the next
// call.
func (p *eventParser) str() ([]byte, error) {
	start := p.pos + 1
	i := start
	for i+8 <= len(p.data) && plain8(binary.LittleEndian.Uint64(p.data[i:])) {
		i += 8
	}
	for ; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			p.pos = i + 1
			return p.data[start:i], nil
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return p.strSlow(start, i)
		}
	}
	p.pos = len(p.data)
	return nil, p.syntaxError("in string literal")
}

// Masks of every byte of a word, for plain8.
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// plain8 reports whether the eight bytes of x (the next bytes of a string)
// are all printable ASCII other than a quote or a backslash, so that a
// string's common bytes are skipped a word at a time. It may say no when
// they are; never yes when they are not.
func plain8(x uint64) bool {
	// (v - 0x01…) &^ v & 0x80… is non-zero exactly when a byte of v is
	// zero; with n in place of 0x01, when a byte is less than n.
	quote := x ^ ('"' * lowBits)
	backslash := x ^ ('\\' * lowBits)
	special := (quote-lowBits)&^quote | (backslash-lowBits)&^backslash | (x-0x20*lowBits)&^x | x
	return special&highBits == 0
}

// strSlow is str past the first byte that needs care, at i.
func (p *eventParser) strSlow(start, i int) ([]byte, error) {
	out := append(p.scratch[:0], p.data[start:i]...)
	defer func() { p.scratch = out[:0] }()
	for i < len(p.data) {
		c := p.data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return out, nil
		case c < 0x20:
			p.pos = i
			return nil, p.syntaxError("in string literal")
		case c == '\\':
			i++
			if i >= len(p.data) {
				p.pos = i
				return nil, p.syntaxError("in string escape code")
			}
			switch e := p.data[i]; e {
			case '"', '\\', '/':
				out = append(out, e)
				i++
			case 'b':
				out = append(out, '\b')
				i++
			case 'f':
				out = append(out, '\f')
				i++
			case 'n':
				out = append(out, '\n')
				i++
			case 'r':
				out = append(out, '\r')
				i++
			case 't':
				out = append(out, '\t')
				i++
			case 'u':
				r, ok := hex4(p.data[i+1:])
				if !ok {
					p.pos = i + 1 + hexPrefix(p.data[i+1:])
					return nil, p.syntaxError("in \\u hexadecimal character escape")
				}
				i += 5
				if utf16.IsSurrogate(r) {
					// A pair decodes to one rune; anything else leaves
					// this half to be replaced and the next escape to be
					// read on its own.
					if i+1 < len(p.data) && p.data[i] == '\\' && p.data[i+1] == 'u' {
						if r2, ok := hex4(p.data[i+2:]); ok {
							if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
								out = utf8.AppendRune(out, d)
								i += 6
								continue
							}
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default:
				p.pos = i
				return nil, p.syntaxError("in string escape code")
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(p.data[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, p.data[i:i+size]...)
			}
			i += size
		}
	}
	p.pos = len(p.data)
	return nil, p.syntaxError("in string literal")
}

// hex4 reads four hexadecimal digits.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// hexPrefix counts the hexadecimal digits b starts with, at most four.
func hexPrefix(b []byte) int {
	n := 0
	for n < len(b) && n < 4 {
		if _, ok := hex4([]byte{'0', '0', '0', b[n]}); !ok {
			break
		}
		n++
	}
	return n
}

// skipString consumes the string at p.pos, checking its syntax only.
func (p *eventParser) skipString() error {
	i := p.pos + 1
	for i+8 <= len(p.data) && plain8(binary.LittleEndian.Uint64(p.data[i:])) {
		i += 8
	}
	for ; i < len(p.data); i++ {
		switch c := p.data[i]; {
		case c == '"':
			p.pos = i + 1
			return nil
		case c < 0x20:
			p.pos = i
			return p.syntaxError("in string literal")
		case c == '\\':
			i++
			if i >= len(p.data) {
				break
			}
			switch p.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if _, ok := hex4(p.data[i+1:]); !ok {
					p.pos = i + 1 + hexPrefix(p.data[i+1:])
					return p.syntaxError("in \\u hexadecimal character escape")
				}
				i += 4
			default:
				p.pos = i
				return p.syntaxError("in string escape code")
			}
		}
	}
	p.pos = len(p.data)
	return p.syntaxError("in string literal")
}

// skipKind consumes the value at p.pos, nested depth containers deep,
// checking its syntax, and names its JSON type as encoding/json's type
// errors do.
func (p *eventParser) skipKind(depth int) (string, error) {
	switch c := p.peek(); c {
	case '"':
		return "string", p.skipString()
	case 't':
		return "bool", p.literal("true")
	case 'f':
		return "bool", p.literal("false")
	case 'n':
		return "null", p.literal("null")
	case '{', '[':
		if depth+1 > maxNestingDepth {
			return "", p.syntaxError("exceeded max depth")
		}
		p.pos++
		p.skipSpace()
		closing, kind := byte('}'), "object"
		if c == '[' {
			closing, kind = ']', "array"
		}
		if p.peek() == closing {
			p.pos++
			return kind, nil
		}
		for {
			if c == '{' {
				if p.peek() != '"' {
					return "", p.syntaxError("looking for beginning of object key string")
				}
				if err := p.skipString(); err != nil {
					return "", err
				}
				p.skipSpace()
				if p.peek() != ':' {
					return "", p.syntaxError("after object key")
				}
				p.pos++
				p.skipSpace()
			}
			if _, err := p.skipKind(depth + 1); err != nil {
				return "", err
			}
			p.skipSpace()
			switch p.peek() {
			case ',':
				p.pos++
				p.skipSpace()
			case closing:
				p.pos++
				return kind, nil
			default:
				return "", p.syntaxError(fmt.Sprintf("after %s element", kind))
			}
		}
	}
	start := p.pos
	if _, err := p.number(); err != nil {
		return "", err
	}
	return "number " + string(p.data[start:p.pos]), nil
}
