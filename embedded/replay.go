package embedded

import (
	"runtime"
	"sync"
)

// replayBatch is how many replayed deltas are applied at once: enough to
// keep both cores busy, few enough that the buffer (about 64 bytes a delta)
// stays small and is reused.
// A variable so that tests can make it small.
var replayBatch = 1 << 18

// replayDelta applies a delta read from the WAL during recovery. Deltas
// are buffered and applied in parallel by applyReplayed: replaying a WAL
// is rollup updates, the writer's work, and recovery has every core to
// itself.
func (s *Store) replayDelta(d delta) {
	s.replayBuf = append(s.replayBuf, d)
	if len(s.replayBuf) >= replayBatch {
		s.applyReplayed()
	}
}

// applyReplayed applies the buffered deltas: the slim rollups on one
// goroutine, the hourly ones split by hour over the others, each table
// written by one goroutine only. A delta is appended as a row of its own,
// without looking its key up in an index: building the indexes of the
// tables a WAL touches was most of what replaying it cost, and Open
// freezes every table once recovered, which merges the rows of a key
// (see table.freeze). Queries would sum such rows anyway.
func (s *Store) applyReplayed() {
	ds := s.replayBuf
	if len(ds) == 0 {
		return
	}
	defer func() { s.replayBuf = ds[:0] }()
	parts := s.replayParts[:0]
	for i := range ds {
		p := s.st.part(floorDiv(ds[i].hour, 24))
		parts = append(parts, p)
		h := ds[i].hour - p.day*24
		if p.hours[h] == nil {
			p.hours[h] = new(table)
		}
		// Clients are noted here, once per delta: which slim rows are new
		// is not known without an index.
		s.st.noteClient(ds[i].k.client, ds[i].k.org)
	}
	s.replayParts = parts
	defer clear(parts)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range ds {
			k := ds[i].k
			k.user = 0
			parts[i].slim.appendRow(k, ds[i].c)
		}
	})
	hourly := int64(max(runtime.GOMAXPROCS(0)-1, 1))
	for w := range hourly {
		wg.Go(func() {
			for i := range ds {
				p := parts[i]
				if h := ds[i].hour - p.day*24; h%hourly == w {
					p.hours[h].appendRow(ds[i].k, ds[i].c)
				}
			}
		})
	}
	wg.Wait()
	// Rows of one key pile up in a table until it is frozen: freezing the
	// tables whose unmerged rows doubled bounds the memory replay takes
	// to about twice what the merged rows do, at a cost of sorting each
	// table a few times.
	var grown []*table
	seen := map[*dayPart]bool{}
	for i, p := range parts {
		if i > 0 && p == parts[i-1] || seen[p] {
			continue
		}
		seen[p] = true
		p.tables(func(t *table) {
			if n := t.tail(); n >= replayBatch/16 && n > int(t.sorted) && t.index == nil && !t.shared {
				grown = append(grown, t)
			}
		})
	}
	freezeTables(grown)
}

// appendRow appends a row without merging it into a row of the same key,
// for replay (see applyReplayed); a table with an index is updated as
// usual, so that the index stays right.
func (t *table) appendRow(k key, c cnt) {
	if t.index != nil || t.shared {
		t.add(k, c)
		return
	}
	t.keys = append(t.keys, k)
	t.cnts = append(t.cnts, c)
}
