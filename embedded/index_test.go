package embedded

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// mapTable is what table.add did with a Go map for its index: the oracle
// of the property test below.
type mapTable struct {
	keys  []key
	cnts  []cnt
	index map[key]int32
}

func (t *mapTable) add(k key, d cnt) {
	if i, ok := t.index[k]; ok && t.cnts[i].fits(d) {
		t.cnts[i].add(d)
		return
	}
	t.index[k] = int32(len(t.keys))
	t.keys = append(t.keys, k)
	t.cnts = append(t.cnts, d)
}

// TestTableAddMatchesMap checks table.add, with its open-addressing index,
// against a Go map's: the same rows in the same order, through growth, keys
// repeated, rows that fill up (a key owning several rows), and indexes
// dropped and rebuilt midway as freezing and loading do.
func TestTableAddMatchesMap(t *testing.T) {
	cases := []struct {
		name   string
		adds   int
		domain uint32 // ids drawn from [0, domain): small means many repeats
		big    bool   // counters near the limit, so that rows fill up
		drop   int    // drop the index every drop adds (0: never)
		freeze bool   // freeze and install instead of dropping
	}{
		{name: "distinct", adds: 50_000, domain: 1 << 20},
		{name: "repeats", adds: 50_000, domain: 6},
		{name: "tiny", adds: 200, domain: 2},
		{name: "fill up", adds: 20_000, domain: 4, big: true},
		{name: "dropped", adds: 30_000, domain: 9, big: true, drop: 977},
		{name: "frozen", adds: 30_000, domain: 9, drop: 1009, freeze: true},
		{name: "frozen fill up", adds: 30_000, domain: 5, big: true, drop: 1013, freeze: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.adds), uint64(tc.domain)))
			var got table
			want := mapTable{index: map[key]int32{}}
			var scratch []uint64
			for n := range tc.adds {
				id := func() uint32 { return rng.Uint32N(tc.domain) }
				k := key{id(), id(), id(), id(), id() % 8}
				d := cnt{total: 1 + rng.Uint32N(3)}
				if tc.big {
					d.total = math.MaxUint32/3 + rng.Uint32N(1000)
				}
				d.s2 = d.total / 2
				got.add(k, d)
				want.add(k, d)
				if tc.drop > 0 && n%tc.drop == tc.drop-1 {
					if tc.freeze {
						// Freezing sorts and merges rows: the oracle
						// starts again from the frozen rows.
						got.install(got.freeze(&scratch))
						want = mapTable{keys: slices.Clone(got.keys), cnts: slices.Clone(got.cnts), index: map[key]int32{}}
						for i, k := range want.keys {
							want.index[k] = int32(i)
						}
					} else {
						got.index = nil
					}
				}
			}
			if !slices.Equal(got.keys, want.keys) || !slices.Equal(got.cnts, want.cnts) {
				t.Fatalf("rows differ from the map's: %d rows, want %d", len(got.keys), len(want.keys))
			}
			if len(got.keys) == tc.adds && tc.domain < 1<<10 {
				t.Fatalf("no key was repeated in %d adds", tc.adds)
			}
			if tc.big && len(got.keys) <= len(want.index) {
				t.Fatalf("no row filled up: %d rows, %d keys", len(got.keys), len(want.index))
			}
			// Every key's slot holds its last row, and the index is at
			// most half full.
			for k, i := range want.index {
				if s := *got.index.slot(got.keys, &k); s != i+1 {
					t.Fatalf("slot of %v holds %d, want %d", k, s, i+1)
				}
			}
			if 2*len(got.keys) > len(got.index) {
				t.Fatalf("index of %d slots for %d rows", len(got.index), len(got.keys))
			}
		})
	}
}

// TestRowIndexCollisions checks the index with keys that differ in one id
// only, each id in turn, so that slots chosen alike must be probed past.
func TestRowIndexCollisions(t *testing.T) {
	var keys []key
	for f := range 5 {
		for v := range uint32(300) {
			var k key
			ids := []*uint32{&k.org, &k.client, &k.user, &k.tmpl, &k.method}
			*ids[f] = v << (f * 3)
			keys = append(keys, k)
		}
	}
	x := buildIndex(keys, len(keys))
	seen := map[key]int32{}
	for i, k := range keys {
		seen[k] = int32(i + 1) // a key repeated (all zero) keeps its last row
	}
	for k, want := range seen {
		if got := *x.slot(keys, &k); got != want {
			t.Fatalf("slot of %v holds %d, want %d", k, got, want)
		}
	}
	if k := (key{org: 1 << 30}); *x.slot(keys, &k) != 0 {
		t.Fatalf("a key not in the index found a row")
	}
}

// TestPresize checks which new tables are sized ahead: an hour of the
// newest day from the hour before or the same hour the day before, the
// newest day's slim rollup from the day before's, and nothing of an older
// day, which only late events write.
func TestPresize(t *testing.T) {
	st := newState()
	// fill writes rows rows to hour and returns the room its table and its
	// day's slim table had after the first.
	fill := func(hour int64, rows int) (hourCap, slimCap int) {
		for i := range rows {
			st.apply(delta{hour: hour, k: key{org: 1, client: uint32(i), user: 1}, c: cnt{total: 1}})
			if i == 0 {
				p := st.days[st.find(floorDiv(hour, 24))]
				hourCap, slimCap = cap(p.hours[hour%24].keys), cap(p.slim.keys)
			}
		}
		return hourCap, slimCap
	}
	room := func(n int) int { return n + n/8 }
	for _, tc := range []struct {
		name     string
		hour     int64
		rows     int
		wantHour int // 0: no room ahead
		wantDay  int // the new day's slim table; 0: not checked
	}{
		{"first hour", 0, 1000, 0, 0},
		{"small hour before", 1, 300, room(1000), 0},
		{"new day", 24 + 1, 2000, room(300), room(1000)},
		{"hour before", 24 + 2, 10, room(2000), 0},
		{"nothing before", 24 + 23, 10, 0, 0},
		{"too few before", 48 + 0, 10, 0, room(2000)},
		{"same hour the day before", 48 + 1, 10, room(2000), 0},
		{"older day", 3, 500, 0, 0},
	} {
		hourCap, slimCap := fill(tc.hour, tc.rows)
		if tc.wantHour == 0 && hourCap > 1 || tc.wantHour > 0 && hourCap != tc.wantHour {
			t.Errorf("%s: hour's table had room for %d rows, want %d", tc.name, hourCap, tc.wantHour)
		}
		if tc.wantDay > 0 && slimCap != tc.wantDay {
			t.Errorf("%s: day's table had room for %d rows, want %d", tc.name, slimCap, tc.wantDay)
		}
	}
	for _, p := range st.days {
		p.tables(func(tb *table) {
			if 2*len(tb.keys) > len(tb.index) {
				t.Errorf("day %d: index of %d slots for %d rows", p.day, len(tb.index), len(tb.keys))
			}
		})
	}
}
