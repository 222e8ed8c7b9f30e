package embedded

import (
	"runtime"
	"sync"
)

// freezeCold freezes the tables of the day parts that have gone cold: older
// than the day before the newest day written. Events arrive in time order,
// give or take a little, so a cold day is rarely written again; when it is,
// its table takes the write in a tail (see table), and is frozen again here
// once the tail has grown to a quarter of the sorted rows, so that a stream
// of late events does not sort the same table over and over.
//
// Only the writer changes tables, so it builds the frozen rows without the
// state's lock, and takes the lock only to install them: queries wait for
// pointer swaps, not for sorting.
func (s *Store) freezeCold() {
	st := s.st
	if len(st.warm) == 0 {
		return
	}
	warm := st.warmFrom()
	var todo []*table
	keep := st.warm[:0]
	for _, p := range st.warm {
		if p.day >= warm {
			keep = append(keep, p)
			continue
		}
		p.warm = false
		p.tables(func(t *table) {
			if n := t.tail(); n > 0 && (t.sorted == 0 || n >= int(t.sorted)/4) {
				todo = append(todo, t)
			}
		})
	}
	clear(st.warm[len(keep):])
	st.warm = keep
	if len(todo) == 0 {
		return
	}
	built := make([]frozen, len(todo))
	for i, t := range todo {
		built[i] = t.freeze(&s.freezeBuf)
	}
	s.mu.Lock()
	for i, t := range todo {
		t.install(built[i])
	}
	s.mu.Unlock()
}

// freezeAll freezes every table with rows not frozen, on every core: what
// Open does once the state is recovered, before any query can run, so that
// a restarted store starts with every table frozen (the writer freezes the
// warm ones again as they go cold).
//
// It also unpacks the hours of the two newest days that the snapshot held
// packed: events are still to change them, and they would otherwise keep
// the snapshot's file, removed at the next checkpoint, mapped. Older hours
// stay packed, with the rows the WAL's late events added beside them
// frozen; those not in a cold file yet move to one at the next checkpoint
// (see cold.go).
func (s *Store) freezeAll() {
	var todo []freezeJob
	warmFrom := s.st.warmFrom()
	for _, p := range s.st.days {
		p.warm = false
		warm := p.day >= warmFrom
		p.tables(func(t *table) {
			unpack := warm && t.packed != nil && t.packedSrc.coldSeg == 0
			if unpack || t.tail() > 0 {
				todo = append(todo, freezeJob{t, unpack})
			}
		})
	}
	clear(s.st.warm)
	s.st.warm = s.st.warm[:0]
	freezeTables(todo)
}

// freezeJob is a table to freeze, and whether to unpack it first.
type freezeJob struct {
	t      *table
	unpack bool
}

// freezeTables freezes tables on every core. No query or writer may be
// using them.
func freezeTables(todo []freezeJob) {
	onEveryCore(todo, func() func(freezeJob) {
		var buf []uint64
		return func(j freezeJob) {
			if j.unpack {
				j.t.unpack() // which freezes
				return
			}
			j.t.install(j.t.freeze(&buf))
		}
	})
}

// onEveryCore calls a function with every item, on every core: newWorker
// makes each goroutine's function, which may keep scratch of its own.
func onEveryCore[T any](items []T, newWorker func() func(T)) {
	work := make(chan T, len(items))
	for _, it := range items {
		work <- it
	}
	close(work)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(items), 1)) {
		wg.Go(func() {
			do := newWorker()
			for it := range work {
				do(it)
			}
		})
	}
	wg.Wait()
}
