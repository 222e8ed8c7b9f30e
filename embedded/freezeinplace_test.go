package embedded

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// TestFreezeInPlace holds a table frozen into its own slices
// (freezeTo, installInPlace) to the rows freeze builds in new ones: sorted,
// rows of one key merged where they fit, the same directory, in the same
// memory.
func TestFreezeInPlace(t *testing.T) {
	for _, c := range []struct {
		name           string
		rows, distinct int
		full           bool // some rows of a key too full to merge
	}{
		{"one row", 1, 1, false},
		{"distinct keys", 5000, 5000, false},
		{"repeated keys", 5000, 300, false},
		{"full rows", 2000, 100, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(c.rows), uint64(c.distinct)))
			keys := make([]key, c.distinct)
			for i := range keys {
				keys[i] = key{org: rng.Uint32N(4), client: rng.Uint32N(50), user: uint32(i), tmpl: rng.Uint32N(30), method: rng.Uint32N(6)}
			}
			build := func() *table {
				tb := &table{keys: make([]key, 0, c.rows), cnts: make([]cnt, 0, c.rows)}
				r := rand.New(rand.NewPCG(1, 2))
				for range c.rows {
					k := keys[r.IntN(len(keys))]
					d := cnt{total: 3, s2: 2, s4: 1}
					if c.full && r.IntN(4) == 0 {
						d = cnt{total: 1 << 31, s2: 1 << 31}
					}
					tb.keys, tb.cnts = append(tb.keys, k), append(tb.cnts, d)
				}
				return tb
			}
			want := build()
			var buf []uint64
			want.install(want.freeze(&buf))
			got := build()
			if !got.inPlace(false) {
				t.Fatal("an exact-size table is not to be frozen in place")
			}
			mem := &got.keys[0]
			var rows freezeRows
			got.installInPlace(got.freezeTo(&buf, &rows))
			if !slices.Equal(got.keys, want.keys) || !slices.Equal(got.cnts, want.cnts) || !slices.Equal(got.orgs, want.orgs) || got.sorted != want.sorted {
				t.Fatalf("frozen in place: %d rows, %d sorted, %v; want %d rows, %d sorted, %v", len(got.keys), got.sorted, got.orgs, len(want.keys), want.sorted, want.orgs)
			}
			if &got.keys[0] != mem {
				t.Error("the rows moved to new memory")
			}
			if !sortedMerged(got.keys, got.cnts) {
				t.Error("rows not sorted and merged")
			}
		})
	}
}

// TestFreezeColdSparesSnapshot holds freezeCold to leaving alone the
// slices a running checkpoint's snapshot reads: while one runs, the tables
// that go cold are frozen into new slices, not into theirs.
func TestFreezeColdSparesSnapshot(t *testing.T) {
	for _, running := range []bool{false, true} {
		s := openTest(t, "", Options{})
		w := newWorkload(7, 400)
		apply := func(hours int) {
			for range hours {
				p, err := s.prepare(context.Background(), w.batch(400))
				if err != nil {
					t.Fatal(err)
				}
				s.st.applyPrepared(p)
				s.release(p)
			}
		}
		apply(24) // the first day
		snap := s.cloneState(s.seg+1, 0)
		var held [][]key
		for _, st := range snap.tables {
			held = append(held, slices.Clone(st.keys))
		}
		s.ckRunning = running
		apply(48) // two more: the first goes cold
		s.freezeCold()
		s.ckRunning = false
		if frozen, _ := tableStats(s); frozen == 0 {
			t.Fatal("no table frozen")
		}
		moved := false
		for i, st := range snap.tables {
			if !slices.Equal(st.keys, held[i]) {
				moved = true
			}
		}
		if running && moved {
			t.Error("freezing changed rows a running checkpoint's snapshot reads")
		}
		if !running && !moved {
			// Not a requirement of correctness, but what makes freezing
			// cheap: with no checkpoint running, the rows are sorted in
			// their own memory.
			t.Error("no table frozen in place with no checkpoint running")
		}
	}
}

// TestRecycleRows holds presize to taking the smallest spare row slices
// that have room (see state.recycle), new ones when none has, and recycle
// to its bounds.
func TestRecycleRows(t *testing.T) {
	st := newState()
	tableOf := func(rows int) *table {
		return &table{keys: make([]key, rows), cnts: make([]cnt, rows)}
	}
	small, big := tableOf(1000), tableOf(5000)
	st.recycle(tableOf(presizeMin - 1)) // too small to keep
	st.recycle(big)
	st.recycle(small)
	if len(st.spare) != 2 || st.spareRows != 6000 {
		t.Fatalf("%d spares of %d rows, want 2 of 6000", len(st.spare), st.spareRows)
	}
	for _, c := range []struct {
		like int
		want *key // the spare taken, nil for new slices
	}{
		{800, &small.keys[0]}, // room for 900: the smallest that has it
		{800, &big.keys[0]},   // the only one left
		{800, nil},
	} {
		tb := &table{}
		tb.presize(c.like, st)
		if len(tb.keys) != 0 || cap(tb.keys) < c.like+c.like/8 || cap(tb.cnts) < c.like+c.like/8 {
			t.Fatalf("presize(%d): %d rows, room for %d and %d", c.like, len(tb.keys), cap(tb.keys), cap(tb.cnts))
		}
		if got := unsafe.SliceData(tb.keys); c.want != nil && got != c.want || c.want == nil && (got == &small.keys[0] || got == &big.keys[0]) {
			t.Errorf("presize(%d) took the wrong rows", c.like)
		}
		tb.add(key{org: 1}, cnt{total: 1})
	}
	if len(st.spare) != 0 || st.spareRows != 0 {
		t.Errorf("%d spares of %d rows left, want none", len(st.spare), st.spareRows)
	}
	for range maxSpare + 1 {
		st.recycle(tableOf(presizeMin))
	}
	if len(st.spare) != maxSpare {
		t.Errorf("%d spares kept, want at most %d", len(st.spare), maxSpare)
	}
}

// TestRecycleIndex holds presize to taking a spare index of the size it
// needs, cleared, and a new one when none is that size.
func TestRecycleIndex(t *testing.T) {
	st := newState()
	x := buildIndex([]key{{org: 1}, {org: 2}}, 1000+1000/8) // presize(1000)'s size
	st.recycleIndex(x)
	tb := &table{}
	tb.presize(1000, st)
	if len(tb.index) != len(x) || &tb.index[0] != &x[0] {
		t.Fatalf("presize took an index of %d slots, not the spare one of %d", len(tb.index), len(x))
	}
	for _, v := range tb.index {
		if v != 0 {
			t.Fatal("the spare index was not cleared")
		}
	}
	tb.add(key{org: 2}, cnt{total: 1})
	if len(tb.keys) != 1 {
		t.Fatalf("%d rows, want 1", len(tb.keys))
	}
	st.recycleIndex(buildIndex(nil, 100))
	other := &table{}
	other.presize(1000, st)
	if len(st.spareIndex) != 1 {
		t.Error("presize took a spare index of another size")
	}
}
