package embedded

import (
	"encoding/binary"
	"fmt"
	"iter"
	"math"
	"math/bits"
	"slices"
)

// Packed tables.
//
// Most hourly rollup rows are cold: their hour is past and no event will
// change them. Held as keys and counters they take 44 bytes a row (and the
// hourly rollups, one row per user and hour, are nearly one row per event);
// held as a checkpoint writes them, ids column by column as uvarints and
// counters with a mask, they take about 8. So the hourly tables of days
// before the two newest, and those days' user rollups, are kept packed once a checkpoint has written them
// to its cold file (see cold.go): the checkpoint tells where it wrote
// them, and the writer swaps slices of the cold file, mapped (see
// mappedFile), in for the rows if the table has not changed since. Later
// snapshots only refer to the chunks, and a restart keeps them as it reads
// them, without decoding. Packed rows take no memory of the process's
// own: they are the page cache's.
//
// Queries decode a packed table into scratch they reuse. A late event does
// not unpack its table: it adds rows beside the chunks (see table), which
// the next checkpoint merges into new chunks.

// packedChunk is the payload of one 'T' or 'U' frame (of a cold file, or of
// a snapshot) after its hour or day: uvarint
// n, then n org, client, user, template and method ids (uvarints, column by
// column; a 'U' frame has only the org and user columns), then n counters
// (putCnt). Chunks hold at most maxChunk rows.
type packedChunk []byte

// omitted is the id columns a rollup's rows do not have (always 0 in them),
// which its chunks leave out: a bit per field (1<<fUser, ...). Hours have
// every column; the zero value is theirs.
type omitted uint8

const (
	// slimOmits is what the slim rollup's rows ('S' frames) do not have.
	slimOmits omitted = 1 << fUser
	// usersOmits is what the user rollup's rows ('U' frames) do not have.
	usersOmits omitted = 1<<fClient | 1<<fTmpl | 1<<fMethod
)

// omitsOf returns what the rows of frames of kind do not have.
func omitsOf(kind byte) omitted {
	switch kind {
	case frameSlim:
		return slimOmits
	case frameUsers:
		return usersOmits
	}
	return 0
}

// appendRows appends the chunk encoding of keys and cnts to b, without the
// columns of omit.
func appendRows(b []byte, keys []key, cnts []cnt, omit omitted) []byte {
	b = putUvarint(b, uint64(len(keys)))
	for f := range fName {
		if omit&(1<<f) != 0 {
			continue
		}
		for i := range keys {
			b = putUvarint(b, uint64(fieldOf(&keys[i], f)))
		}
	}
	for _, c := range cnts {
		b = putCnt(b, c)
	}
	return b
}

// readColumn reads len(col) uvarints of b into col, each below lim, and
// returns the rest of b; ok is false if b is short or a value too large.
func readColumn(b []byte, col []uint32, lim uint32) (rest []byte, ok bool) {
	for i := range col {
		if len(b) > 0 && b[0] < 0x80 {
			if uint32(b[0]) >= lim {
				return nil, false
			}
			col[i], b = uint32(b[0]), b[1:]
			continue
		}
		v, w := binary.Uvarint(b)
		if w <= 0 || v >= uint64(lim) {
			return nil, false
		}
		col[i], b = uint32(v), b[w:]
	}
	return b, true
}

// columns is scratch for the id columns of one chunk.
type columns [numFields - 1][]uint32

// read reads the id columns of a chunk of n rows (without those of omit,
// left zero) and returns the rest: the counters.
func (cols *columns) read(b []byte, n int, omit omitted, limits *[numFields]uint32) ([]byte, bool) {
	ok := true
	for f := range cols {
		if cap(cols[f]) < n {
			cols[f] = make([]uint32, n, max(n, 1024))
		}
		cols[f] = cols[f][:n]
		if omit&(1<<f) != 0 {
			clear(cols[f])
			continue
		}
		if b, ok = readColumn(b, cols[f], limits[f]); !ok {
			return nil, false
		}
	}
	return b, true
}

// readCnts reads len(cnts) counters, as putCnt writes them, from b into
// cnts and returns the rest of b; ok is false if b is short or a counter
// malformed. It reads what decoder.cnt does, with a value below 128 (most
// of them) read inline, a byte: decoding counters was most of the time a
// restart spent checking packed chunks, and much of a query's decoding.
// It is about 2.5 times as fast as decoder.cnt, and skipCnts 3.4 times
// (BenchmarkReadCnts).
func readCnts(b []byte, cnts []cnt) (rest []byte, ok bool) {
	for i := range cnts {
		var vals [6]uint32
		if b, ok = readCnt(b, &vals); !ok {
			return nil, false
		}
		cnts[i] = cnt{vals[0], vals[1], vals[2], vals[3], vals[4], vals[5]}
	}
	return b, true
}

// skipCnts checks n counters of b as readCnts would, and returns the rest.
func skipCnts(b []byte, n int) (rest []byte, ok bool) {
	var vals [6]uint32
	for range n {
		if b, ok = readCnt(b, &vals); !ok {
			return nil, false
		}
	}
	return b, true
}

// readCnt reads one counter of b into vals, leaving alone those its mask
// says are zero: the caller zeroes them, or ignores them.
func readCnt(b []byte, vals *[6]uint32) (rest []byte, ok bool) {
	if len(b) == 0 || b[0]&^0x3f != 0 {
		return nil, false
	}
	mask := b[0]
	b = b[1:]
	for m := mask; m != 0; m &= m - 1 {
		j := bits.TrailingZeros8(m)
		if len(b) > 0 && b[0] < 0x80 {
			vals[j], b = uint32(b[0]), b[1:]
			continue
		}
		v, w := binary.Uvarint(b)
		if w <= 0 || v > math.MaxUint32 {
			return nil, false
		}
		vals[j], b = uint32(v), b[w:]
	}
	return b, true
}

// chunkHeader reads the row count of a chunk without the columns of omit.
func chunkHeader(c packedChunk, omit omitted) (n int, rest []byte, err error) {
	v, w := binary.Uvarint(c)
	// Every row takes at least a byte a column it has and two of counters.
	if minRow := 5 - bits.OnesCount8(uint8(omit)) + 2; w <= 0 || v > uint64(len(c)/minRow) {
		return 0, nil, errCorrupt
	}
	return int(v), c[w:], nil
}

// decodeRows appends the rows of a chunk to keys and cnts, using cols as
// scratch. Every id is checked against limits (the dictionaries' sizes), so
// that a damaged chunk is an error, never an index out of range later.
func decodeRows(c packedChunk, omit omitted, limits *[numFields]uint32, cols *columns, keys []key, cnts []cnt) ([]key, []cnt, error) {
	n, b, err := chunkHeader(c, omit)
	if err != nil {
		return keys, cnts, err
	}
	b, ok := cols.read(b, n, omit, limits)
	if !ok {
		return keys, cnts, errCorrupt
	}
	base, cbase := len(keys), len(cnts)
	keys, cnts = slices.Grow(keys, n)[:base+n], slices.Grow(cnts, n)[:cbase+n]
	if b, ok = readCnts(b, cnts[cbase:]); !ok || len(b) != 0 {
		return keys[:base], cnts[:cbase], errCorrupt
	}
	org, client, user, tmpl, method := cols[fOrg], cols[fClient], cols[fUser], cols[fTmpl], cols[fMethod]
	rows := keys[base:]
	for i := range rows {
		rows[i] = key{org: org[i], client: client[i], user: user[i], tmpl: tmpl[i], method: method[i]}
	}
	return keys, cnts, nil
}

// checkRows checks a chunk as decodeRows would, without keeping its rows,
// and returns how many it holds and their organization (manyOrgs when they
// are of several).
func checkRows(c packedChunk, omit omitted, limits *[numFields]uint32, cols *columns) (n int, org uint32, err error) {
	n, b, err := chunkHeader(c, omit)
	if err != nil {
		return 0, 0, err
	}
	b, ok := cols.read(b, n, omit, limits)
	if !ok {
		return 0, 0, errCorrupt
	}
	if b, ok = skipCnts(b, n); !ok || len(b) != 0 {
		return 0, 0, errCorrupt
	}
	return n, chunkOrg(cols[fOrg]), nil
}

// chunkOrg returns the organization of a chunk's org column, or manyOrgs.
func chunkOrg(orgs []uint32) uint32 {
	if len(orgs) == 0 {
		return manyOrgs
	}
	for _, o := range orgs[1:] {
		if o != orgs[0] {
			return manyOrgs
		}
	}
	return orgs[0]
}

// rowScratch is a query's reusable space for decoding packed tables.
type rowScratch struct {
	keys   []key
	cnts   []cnt
	cols   columns
	limits [numFields]uint32
}

// setLimits makes sc check ids against the dictionaries a query took.
func (sc *rowScratch) setLimits(strs *[numFields][]string) {
	for f := range numFields {
		sc.limits[f] = uint32(len(strs[f]))
	}
}

// read calls yield with the rows of t a query in scope needs to read: when
// t is packed, its chunks of the scope's organizations decoded into rs; then
// the spans of its rows in keys (see table.spans), all of them or, for a
// packed table, those late events added. The slices are valid only during
// the call.
func (t *table) read(sc *scope, spans *[]span, rs *rowScratch, yield func(keys []key, cnts []cnt)) error {
	for i, c := range t.packed {
		if org := t.packedOrg[i]; sc.orgs != nil && org != manyOrgs {
			if _, ok := slices.BinarySearch(sc.orgs, org); !ok {
				continue
			}
		}
		var err error
		if rs.keys, rs.cnts, err = decodeRows(c, t.omit, &rs.limits, &rs.cols, rs.keys[:0], rs.cnts[:0]); err != nil {
			return fmt.Errorf("packed rollup table: %w", err)
		}
		yield(rs.keys, rs.cnts)
	}
	*spans = t.spans(sc, (*spans)[:0])
	for _, sp := range *spans {
		yield(t.keys[sp.lo:sp.hi], t.cnts[sp.lo:sp.hi])
	}
	return nil
}

// noLimits checks no id: for chunks already checked.
var noLimits = [numFields]uint32{^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0), ^uint32(0)}

// unpack replaces the packed rows with keys and counters, with the rows late
// events added, frozen again (see freeze).
// Every chunk was checked when it was made (by a checkpoint, from rows in
// memory, then read back from the file it wrote) or read (the snapshot
// loader checks each against the dictionaries, whose entries never go
// away), so failing here is a bug, or a snapshot file changed under the
// store.
func (t *table) unpack() {
	if t.packed == nil {
		return
	}
	var buf []uint64
	f := mergedFrozen(t.packed, t.omit, t.packedRows, t.keys, t.cnts, &buf)
	t.packed, t.packedOrg, t.packedRows, t.packedSrc, t.packedAt = nil, nil, 0, nil, coldRange{}
	t.install(f)
}

// pack makes chunks, of the organizations orgs and rows in all, slices of
// src at where, t's rows in place of those it holds.
func (t *table) pack(chunks []packedChunk, orgs []uint32, rows int, src *mappedFile, where coldRange) {
	t.packed, t.packedOrg, t.packedRows, t.packedSrc, t.packedAt = chunks, orgs, rows, src, where
	t.keys, t.cnts, t.index, t.shared = nil, nil, nil, false
	t.sorted, t.orgs = 0, nil
}

// mergedFrozen returns every row of a packed table frozen (see
// table.freeze): its chunks' rows decoded (rows of them, omitting omit),
// merged with the rows beside them, keys and cnts. Every chunk was checked
// when it was made or read (see unpack), so failing here is a bug. buf is
// freeze's scratch.
func mergedFrozen(chunks []packedChunk, omit omitted, rows int, keys []key, cnts []cnt, buf *[]uint64) frozen {
	mk := make([]key, 0, rows+len(keys))
	mc := make([]cnt, 0, rows+len(keys))
	var cols columns
	for _, c := range chunks {
		var err error
		if mk, mc, err = decodeRows(c, omit, &noLimits, &cols, mk, mc); err != nil {
			panic(fmt.Sprintf("embedded: a checked packed table does not decode: %v", err))
		}
	}
	merged := table{keys: append(mk, keys...), cnts: append(mc, cnts...)}
	return merged.freeze(buf)
}

// orgChunks yields the rows of a frozen table to pack as chunks: each
// organization's (see orgs), at most maxChunk rows a chunk, so that a query
// about one organization decodes only its chunks.
func orgChunks(orgs []orgRange) iter.Seq2[uint32, span] {
	return func(yield func(uint32, span) bool) {
		for _, r := range orgs {
			for lo := r.lo; lo < r.hi; lo += maxChunk {
				if !yield(r.org, span{lo, min(lo+maxChunk, r.hi)}) {
					return
				}
			}
		}
	}
}

// chunkAt is where a checkpoint wrote a chunk in its cold file.
type chunkAt struct{ off, n int64 }

// packResult is where a checkpoint wrote the chunks of a table: of a table
// already packed (was, its chunks then), or of one to pack (its rows as of
// change gen). Once the snapshot is in place, the table's chunks become
// slices of it (see Store.checkpointDone).
type packResult struct {
	t   *table
	was []packedChunk
	// merged is set when the chunks are was's rows merged with those
	// beside them as of change gen, rows in all, and orgs theirs.
	merged bool
	gen    uint64
	rows   int
	chunks []chunkAt
	orgs   []uint32  // each chunk's organization, for a table to pack
	at     coldRange // where the chunks' frames are
}
