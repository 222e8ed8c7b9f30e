package embedded

import (
	"runtime"
	"sync"
)

// replayBatch is how many replayed deltas are applied at once: enough to
// keep both cores busy, few enough that the buffer (about 64 bytes a delta)
// stays small and is reused.
const replayBatch = 1 << 18

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
// goroutine, the hourly ones split by hour over the others. Each table is
// written by one goroutine only. The order in which a table gets its
// deltas does not change any sum; it only decides which of the rows of a
// key that filled up gets what, and queries sum them all.
func (s *Store) applyReplayed() {
	ds := s.replayBuf
	if len(ds) == 0 {
		return
	}
	defer func() { s.replayBuf = ds[:0] }()
	workers := runtime.GOMAXPROCS(0)
	if workers < 2 || len(ds) < 1024 {
		for _, d := range ds {
			s.st.apply(d)
		}
		return
	}
	parts := s.replayParts[:0]
	for i := range ds {
		p := s.st.part(floorDiv(ds[i].hour, 24))
		parts = append(parts, p)
		h := ds[i].hour - p.day*24
		if p.hours[h] == nil {
			p.hours[h] = new(table)
		}
	}
	s.replayParts = parts
	var wg sync.WaitGroup
	var newSlim []key // slim rows added, for clientOrg
	wg.Go(func() {
		for i := range ds {
			p, k := parts[i], ds[i].k
			k.user = 0
			n := len(p.slim.keys)
			p.slim.add(k, ds[i].c)
			if len(p.slim.keys) > n {
				newSlim = append(newSlim, k)
			}
		}
	})
	hourly := int64(workers - 1)
	for w := range hourly {
		wg.Go(func() {
			for i := range ds {
				p := parts[i]
				h := ds[i].hour - p.day*24
				if h%hourly == w {
					p.hours[h].add(ds[i].k, ds[i].c)
				}
			}
		})
	}
	wg.Wait()
	for _, k := range newSlim {
		s.st.noteClient(k.client, k.org)
	}
	clear(parts)
}
