package server

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// testResult returns a result of org with n rows of distinct clients.
func testResult(tb testing.TB, id, org string, n int, expires time.Time) *result {
	tb.Helper()
	rows := make([]apiusage.Row, n)
	for i := range rows {
		rows[i] = apiusage.Row{ClientID: fmt.Sprintf("client-%d", i), Counts: apiusage.Counts{Requests: int64(i + 1)}}
	}
	t, err := newTable(rowSetOf(rows), queryView(apiusage.AllMetrics, apiusage.GranularityNone), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &result{id: id, org: org, expires: expires, rows: t}
}

// storeState is what a resultStore holds, checked against its own counts.
func storeState(tb testing.TB, s *resultStore) (ids []string, total int64) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.orgs {
		var sum int64
		for _, r := range o.queue {
			sum += r.rows.bytes()
			ids = append(ids, r.id)
			if s.byID[r.id] != r {
				tb.Fatalf("result %s queued but not found by id", r.id)
			}
		}
		if sum != o.bytes {
			tb.Fatalf("organization counts %d bytes, its results take %d", o.bytes, sum)
		}
		total += sum
	}
	if total != s.total || len(ids) != len(s.byID) {
		tb.Fatalf("store counts %d bytes and %d results; its queues hold %d bytes and %d results", s.total, len(s.byID), total, len(ids))
	}
	slices.Sort(ids)
	return ids, total
}

func TestResultStore(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	unit := testResult(t, "", "", 100, later).rows.bytes() // the size of every result of 100 rows
	type put struct {
		id, org string
		rows    int
		kept    bool
	}
	for _, tt := range []struct {
		name   string
		budget int64
		puts   []put
		// want are the ids kept at the end, sorted.
		want    []string
		evicted int
	}{{
		name:   "within the budget nothing is dropped",
		budget: 3 * unit,
		puts:   []put{{"a1", "A", 100, true}, {"b1", "B", 100, true}, {"a2", "A", 100, true}},
		want:   []string{"a1", "a2", "b1"},
	}, {
		name:   "an organization alone may use the whole budget, and drops its oldest first",
		budget: 3 * unit,
		puts:   []put{{"a1", "A", 100, true}, {"a2", "A", 100, true}, {"a3", "A", 100, true}, {"a4", "A", 100, true}, {"a5", "A", 100, true}},
		want:   []string{"a3", "a4", "a5"}, evicted: 2,
	}, {
		name:   "a flood from one organization does not drop another's results within its share",
		budget: 4 * unit,
		puts: []put{{"b1", "B", 100, true}, {"b2", "B", 100, true},
			{"a1", "A", 100, true}, {"a2", "A", 100, true}, {"a3", "A", 100, true}, {"a4", "A", 100, true}, {"a5", "A", 100, true}},
		want: []string{"a4", "a5", "b1", "b2"}, evicted: 3,
	}, {
		name:   "an organization over its share loses its oldest to one within it",
		budget: 4 * unit,
		puts: []put{{"a1", "A", 100, true}, {"a2", "A", 100, true}, {"a3", "A", 100, true}, {"a4", "A", 100, true},
			{"b1", "B", 100, true}, {"b2", "B", 100, true}},
		want: []string{"a3", "a4", "b1", "b2"}, evicted: 2,
	}, {
		name:   "among organizations over their share the oldest result goes first",
		budget: 6 * unit,
		puts: []put{{"a1", "A", 100, true}, {"b1", "B", 100, true}, {"a2", "A", 100, true}, {"b2", "B", 100, true},
			{"a3", "A", 100, true}, {"b3", "B", 100, true}, {"c1", "C", 100, true}},
		// Share 2 units each: A and B hold 3, over it; a1 is the oldest.
		want: []string{"a2", "a3", "b1", "b2", "b3", "c1"}, evicted: 1,
	}, {
		name:   "a result larger than the budget is not kept, and nothing is dropped for it",
		budget: 3 * unit,
		puts:   []put{{"a1", "A", 100, true}, {"b1", "B", 100, true}, {"b2", "B", 1000, false}},
		want:   []string{"a1", "b1"}, evicted: 1,
	}, {
		name:   "a large new result over its organization's share is dropped itself, not others' within theirs",
		budget: 16 * unit,
		puts:   []put{{"a1", "A", 200, true}, {"a2", "A", 200, true}, {"b1", "B", 1500, false}},
		want:   []string{"a1", "a2"}, evicted: 1,
	}} {
		t.Run(tt.name, func(t *testing.T) {
			evicted := 0
			var gauge int64
			s := newResultStore(tt.budget, func() { evicted++ }, func(n int64) { gauge = n })
			for _, p := range tt.puts {
				r := testResult(t, p.id, p.org, p.rows, later)
				if kept := s.put(r, now); kept != p.kept {
					t.Fatalf("put %s: kept %v, want %v", p.id, kept, p.kept)
				}
				if _, total := storeState(t, s); total > tt.budget {
					t.Fatalf("after %s: %d bytes kept, over the budget of %d", p.id, total, tt.budget)
				} else if gauge != total {
					t.Fatalf("after %s: the gauge says %d bytes, the store holds %d", p.id, gauge, total)
				}
			}
			ids, _ := storeState(t, s)
			if !slices.Equal(ids, tt.want) {
				t.Fatalf("kept %v, want %v", ids, tt.want)
			}
			for _, id := range tt.want {
				if s.get(id) == nil {
					t.Fatalf("get(%s) = nil, want its result", id)
				}
			}
			if evicted != tt.evicted {
				t.Fatalf("%d evictions counted, want %d", evicted, tt.evicted)
			}
		})
	}
}

func TestResultStoreSweepsExpired(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	evicted := 0
	s := newResultStore(1<<30, func() { evicted++ }, func(int64) {})
	s.put(testResult(t, "old", "A", 10, now.Add(time.Hour)), now)
	s.put(testResult(t, "new", "A", 10, now.Add(time.Hour+2*resultSweepEvery)), now.Add(2*resultSweepEvery))
	s.put(testResult(t, "b", "B", 10, now.Add(2*time.Hour)), now.Add(time.Hour))
	if ids, _ := storeState(t, s); !slices.Equal(ids, []string{"b", "new"}) {
		t.Fatalf("kept %v after the expiry of old, want [b new]", ids)
	}
	if evicted != 0 {
		t.Fatalf("%d evictions counted, want none: expiry is not eviction", evicted)
	}
}

func TestTableBytes(t *testing.T) {
	// A row kept takes far less than an apiusage.Row and its strings, and
	// the count is what the table holds.
	tab := largeTable(t)
	perRow := float64(tab.bytes()) / float64(tab.n)
	if perRow > 24 {
		t.Fatalf("%.1f bytes a row kept, want at most 24", perRow)
	}
	if got := int64(cap(tab.strs)) + 4*int64(cap(tab.offs)); got != int64(len(tab.strs))+4*int64(len(tab.offs)) {
		t.Fatalf("the strings of a table are kept with spare capacity: %d bytes for %d", got, len(tab.strs)+4*len(tab.offs))
	}
}

func TestTableNamesClients(t *testing.T) {
	rows := []apiusage.Row{
		{ClientID: "mine", ClientName: "old name"}, {ClientID: "theirs", ClientName: "their name"},
		{ClientID: "mine", ClientName: "old name"}, {ClientID: ""}, {ClientID: "theirs", ClientName: "their name"},
		{ClientID: "mine", ClientName: "old name"},
	}
	asked := map[string]int{}
	names := func(id string) (string, bool, error) {
		asked[id]++
		if id == "mine" {
			return "current name", true, nil
		}
		return "", false, nil
	}
	view := queryView(apiusage.AllMetrics, apiusage.GranularityNone)
	tab, err := newTable(rowSetOf(rows), view, names)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`"current name"`, `"their name"`, `"current name"`, `""`, `"their name"`, `"current name"`}
	for i, w := range want {
		if got := string(tab.str(tab.fields[colClientName].get(tab.row(i)))); got != w {
			t.Errorf("row %d: name %s, want %s", i, got, w)
		}
	}
	if asked["mine"] != 1 || asked["theirs"] != 1 || len(asked) != 2 {
		t.Errorf("asked %v, want each client once and never the empty id", asked)
	}
	fail := errors.New("directory down")
	if _, err := newTable(rowSetOf(rows), view, func(string) (string, bool, error) { return "", false, fail }); !errors.Is(err, fail) {
		t.Fatalf("err %v, want %v", err, fail)
	}
}

func TestLayout(t *testing.T) {
	for _, tt := range []struct {
		name   string
		widths [numFields]int
		words  int
	}{
		{"nothing to keep", [numFields]int{}, 1},
		{"a typical row in two words", [numFields]int{8, 8, 0, 0, 9, 3, 7, 13, 2, 10, 8, 8, 13}, 2},
		{"every field 64 bits", [numFields]int{64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64}, numFields},
		{"first fit fills gaps", [numFields]int{40, 30, 24, 20, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fields, words := layout(tt.widths)
			if words != tt.words {
				t.Fatalf("%d words, want %d", words, tt.words)
			}
			// Fields neither overlap nor leave their word, and each
			// holds its width.
			used := make([]uint64, words)
			for f, fl := range fields {
				if bits.OnesCount64(fl.mask) != tt.widths[f] || fl.shift+uint(tt.widths[f]) > 64 {
					t.Fatalf("field %d: mask %x shift %d for %d bits", f, fl.mask, fl.shift, tt.widths[f])
				}
				bitsOf := fl.mask << fl.shift
				if used[fl.word]&bitsOf != 0 {
					t.Fatalf("field %d overlaps another in word %d", f, fl.word)
				}
				used[fl.word] |= bitsOf
			}
		})
	}
}

func TestResultStoreFreesExpiredBeforeEvicting(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	unit := testResult(t, "", "", 100, now).rows.bytes()
	evicted := 0
	s := newResultStore(2*unit, func() { evicted++ }, func(int64) {})
	s.put(testResult(t, "a1", "A", 100, now.Add(time.Second)), now)
	s.put(testResult(t, "a2", "A", 100, now.Add(time.Hour)), now)
	// Within a minute of the last sweep, but a1 has expired: it makes
	// room, and nothing is evicted.
	s.put(testResult(t, "a3", "A", 100, now.Add(time.Hour)), now.Add(2*time.Second))
	if ids, _ := storeState(t, s); !slices.Equal(ids, []string{"a2", "a3"}) || evicted != 0 {
		t.Fatalf("kept %v with %d evictions, want [a2 a3] and none", ids, evicted)
	}
}

// randRowSet returns a RowSet of n rows shaped like a store's: each field's
// strings a dictionary that holds more than the rows use (sometimes far
// more, so that newTable indexes the field with a map), the same string at
// two references, and the empty string at a reference other than 0.
func randRowSet(rng *rand.Rand, n int) *apiusage.RowSet {
	rs := &apiusage.RowSet{Dates: []time.Time{{}, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), time.Date(2020, 2, 2, 0, 0, 0, 0, time.UTC)}}
	for f := range rs.Strings {
		size := 1 + rng.IntN(40)
		if rng.IntN(10) == 0 {
			size = 4*n + 1<<16 + 1 + rng.IntN(100) // sparse
		}
		dict := []string{""}
		for len(dict) < size {
			switch rng.IntN(10) {
			case 0:
				dict = append(dict, "")
			case 1:
				dict = append(dict, dict[rng.IntN(len(dict))])
			case 2, 3, 4, 5:
				dict = append(dict, randString(rng))
			default:
				dict = append(dict, "s"+strconv.Itoa(len(dict)))
			}
		}
		rs.Strings[f] = dict
	}
	for range n {
		var r apiusage.RowRef
		for f := range r.Refs {
			if rng.IntN(5) > 0 {
				r.Refs[f] = uint32(rng.IntN(len(rs.Strings[f])))
			}
		}
		r.Date = uint32(rng.IntN(len(rs.Dates)))
		r.Counts = apiusage.Counts{Status200: rng.Int64N(1 << 20), Status429: rng.Int64N(3), Requests: rng.Int64N(1 << 30)}
		rs.Rows = append(rs.Rows, r)
	}
	return rs
}

// TestTableFromStoreRowSets checks that a table built from a store's
// RowSet, by references, is the table of its rows as strings, table after
// table (the interners, and their arrays, are reused): as encoding/json
// writes them, and with clients named, as the rows as strings are.
func TestTableFromStoreRowSets(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	view := queryView(apiusage.AllMetrics, apiusage.GranularityDay)
	names := func(id string) (string, bool, error) {
		if len(id)%2 == 0 {
			return "named " + id, true, nil
		}
		return "", false, nil
	}
	for i := range 60 {
		rs := randRowSet(rng, rng.IntN(300))
		x := fixture{Execution: apiusage.Execution{Status: apiusage.StatusComplete, Metrics: apiusage.AllMetrics}, Rows: rs.RowSlice()}
		got, err := newTable(rs, view, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkSameBytes(t, fmt.Sprintf("set %d of %d rows", i, len(x.Rows)), appendResultsBody(nil, got), refEncode(t, refQueryResults(x)))
		if got.bodyLen != got.measure() {
			t.Fatalf("set %d: bodyLen %d, measured %d", i, got.bodyLen, got.measure())
		}
		named, err := newTable(rs, view, names)
		if err != nil {
			t.Fatal(err)
		}
		want, err := newTable(rowSetOf(x.Rows), view, names)
		if err != nil {
			t.Fatal(err)
		}
		checkSameBytes(t, fmt.Sprintf("set %d named", i), appendResultsBody(nil, named), appendResultsBody(nil, want))
	}
}
