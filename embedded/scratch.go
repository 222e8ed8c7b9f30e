package embedded

import "slices"

// scratch is the working memory of one query: the dense group array, the
// groups, the arrays that rank ids, the sort keys and the spans of rows to
// read. Queries take one from the store and give it back, instead of
// allocating these afresh each time: on this kind of machine the first
// touch of fresh memory (a page fault per 4 KiB) costs more than most of
// the work done in it, and memory the store keeps stays touched. Only the
// result rows, which the caller keeps, are allocated per query.
//
// Everything in a scratch is cleared of a query's marks before it is given
// back, so that the next query may assume zeros where it needs them (the
// dense array, the seen arrays).
type scratch struct {
	spans    []span
	orgs     []uint32
	clients  []uint32
	dense    []int32
	groups   groups
	seen     [numFields][]bool
	ranks    [numFields][]uint32
	ids      []uint32
	rankOrds []uint64
	day      []dayEntry
	ords     []uint64
	ordsTmp  []uint64 // sortOrds's second buffer
	idx      []int32
	rows     rowScratch // packed tables decoded
	plan     []dayPlan
}

// maxKeptChunks bounds the group chunks a scratch keeps between queries
// (about 1.2 MB each): a rare query of millions of groups should not pin
// its memory for ever.
const maxKeptChunks = 16

// maxKeptBytes bounds the other slices a scratch keeps, each.
const maxKeptBytes = 32 << 20

// scratches is how many scratches a store keeps: about the number of
// queries that run at once on a small machine.
const scratches = 4

// getScratch returns a scratch of the store's, or a new one when all are in
// use.
func (s *Store) getScratch() *scratch {
	select {
	case sc := <-s.scratch:
		return sc
	default:
		return &scratch{}
	}
}

// putScratch gives a scratch back, dropping what grew too large to keep.
// Its marks must have been cleared.
func (s *Store) putScratch(sc *scratch) {
	g := &sc.groups
	for i := range g.chunks {
		g.chunks[i] = g.chunks[i][:0]
	}
	if len(g.chunks) > maxKeptChunks {
		clear(g.chunks[maxKeptChunks:])
		g.chunks = g.chunks[:maxKeptChunks]
	}
	g.n = 0
	clear(sc.plan) // which points at days
	sc.plan = sc.plan[:0]
	if cap(sc.day)*int(sizeofDayEntry) > maxKeptBytes {
		sc.day = nil
	}
	if cap(sc.ords)*8 > maxKeptBytes {
		sc.ords = nil
	}
	if cap(sc.ordsTmp)*8 > maxKeptBytes {
		sc.ordsTmp = nil
	}
	if cap(sc.rankOrds)*8 > maxKeptBytes {
		sc.rankOrds = nil
	}
	if cap(sc.idx)*4 > maxKeptBytes {
		sc.idx = nil
	}
	if cap(sc.rows.keys)*20 > maxKeptBytes {
		sc.rows.keys, sc.rows.cnts = nil, nil
	}
	select {
	case s.scratch <- sc:
	default:
	}
}

const sizeofDayEntry = 44

// denseArray returns n zeroed slots.
func (sc *scratch) denseArray(n int) []int32 {
	if cap(sc.dense) < n {
		sc.dense = make([]int32, n)
	}
	return sc.dense[:n]
}

// seenArray returns n false marks for field f; the caller clears what it
// marks before giving the scratch back (see clearSeen).
func (sc *scratch) seenArray(f, n int) []bool {
	if cap(sc.seen[f]) < n {
		sc.seen[f] = make([]bool, n)
	}
	return sc.seen[f][:n]
}

// rankArray returns n slots for the ranks of field f, holding anything.
func (sc *scratch) rankArray(f, n int) []uint32 {
	if cap(sc.ranks[f]) < n {
		sc.ranks[f] = make([]uint32, n)
	}
	return sc.ranks[f][:n]
}

// reuse returns buf emptied, with room for n items.
func reuse[T any](buf []T, n int) []T {
	return slices.Grow(buf[:0], n)
}
