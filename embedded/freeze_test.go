package embedded

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// tableStats counts a store's tables that are frozen, and those with rows
// after the sorted ones (a tail).
func tableStats(s *Store) (frozen, tails int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, p := range s.st.days {
		p.tables(func(t *table) {
			if t.sorted > 0 {
				frozen++
			}
			if t.sorted > 0 && t.tail() > 0 {
				tails++
			}
		})
	}
	return frozen, tails
}

// TestFrozenAnswersAsUnfrozen holds queries to the oracle with the tables
// as the writer left them (cold days frozen, recent ones not), with every
// table frozen, and with frozen tables written again (rows updated in
// place and tails of new rows).
func TestFrozenAnswersAsUnfrozen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	g := storetest.NewGen(11)
	m := &storetest.Model{}
	check := func(stage string) {
		t.Helper()
		all := []apiusage.Dimension{apiusage.DimOrganization, apiusage.DimClient, apiusage.DimUser, apiusage.DimTemplateURI, apiusage.DimMethod}
		for _, org := range append(slices.Clone(g.Orgs), "") {
			for _, gb := range [][]apiusage.Dimension{all, all[1:2], {apiusage.DimClient, apiusage.DimTemplateURI, apiusage.DimMethod}} {
				for _, gran := range []apiusage.Granularity{apiusage.GranularityDay, apiusage.GranularityMonth} {
					storetest.CheckQuery(t, s, m.Events(), apiusage.Query{Interval: everything, Granularity: gran, GroupBy: gb, OrganizationID: org})
				}
			}
		}
		for _, clients := range [][]string{{"client-00"}, {"client-00", "client-21"}, {"client-none", "client-11"}} {
			storetest.CheckQuery(t, s, m.Events(), apiusage.Query{Interval: everything, Granularity: apiusage.GranularityDay, ClientIDs: clients,
				GroupBy: []apiusage.Dimension{apiusage.DimTemplateURI, apiusage.DimMethod}})
			storetest.CheckQuery(t, s, m.Events(), apiusage.Query{Interval: everything, Granularity: apiusage.GranularityDay, ClientIDs: clients,
				GroupBy: []apiusage.Dimension{apiusage.DimClient, apiusage.DimTemplateURI, apiusage.DimMethod}})
		}
		for range 150 {
			storetest.CheckQuery(t, s, m.Events(), g.Query())
		}
		if t.Failed() {
			t.Fatalf("%s: wrong answers", stage)
		}
	}

	storetest.RandomBatches(t, s, m, g, 30, 200)
	if frozen, _ := tableStats(s); frozen == 0 {
		t.Fatal("the writer froze no table; the test would not test frozen tables")
	}
	check("as written")

	// Open freezes every table it loads.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{})
	s.mu.RLock()
	for _, p := range s.st.days {
		p.tables(func(t2 *table) {
			if t2.tail() > 0 {
				t.Errorf("day %d: a table with %d rows not frozen after Open", p.day, t2.tail())
			}
		})
	}
	s.mu.RUnlock()
	check("all frozen")

	storetest.RandomBatches(t, s, m, g, 30, 50)
	if _, tails := tableStats(s); tails == 0 {
		t.Fatal("no frozen table was written again; the test would not test tails")
	}
	check("written again")
}

// TestQueryDuringFreezing queries old days while newer days are written, so
// that the writer freezes the old days' tables under the queries.
func TestQueryDuringFreezing(t *testing.T) {
	s := openTest(t, "", Options{})
	g := storetest.NewGen(12)
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	g.Anchors = []time.Time{day.Add(12 * time.Hour), day.Add(36 * time.Hour)}
	m := &storetest.Model{}
	storetest.RandomBatches(t, s, m, g, 20, 300)
	old := m.Events()
	iv := apiusage.Interval{Start: day.AddDate(0, 0, -1), End: day.AddDate(0, 0, 3)}
	queries := []apiusage.Query{
		{Interval: iv, Granularity: apiusage.GranularityDay, OrganizationID: "org-b",
			GroupBy: []apiusage.Dimension{apiusage.DimClient, apiusage.DimTemplateURI, apiusage.DimMethod}},
		{Interval: iv, Granularity: apiusage.GranularityMonth, OrganizationID: "org-a"},
		{Interval: iv, Granularity: apiusage.GranularityDay, ClientIDs: []string{"client-00"},
			GroupBy: []apiusage.Dimension{apiusage.DimOrganization, apiusage.DimUser}},
	}
	want := make([][]apiusage.Row, len(queries))
	for i, q := range queries {
		want[i] = storetest.Count(old, q)
		for j := range want[i] {
			want[i][j].ClientName = ""
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := (n + w) % len(queries)
				got, err := s.Query(context.Background(), queries[i])
				if err != nil {
					t.Error(err)
					return
				}
				for j := range got {
					got[j].ClientName = "" // the last given, by events of any day
				}
				if d := storetest.DiffRows(got, want[i]); d != "" {
					t.Errorf("query %d during freezing: %s", i, d)
					return
				}
			}
		})
	}
	// Newer days, one at a time: each makes the one two days before it
	// cold.
	later := storetest.NewGen(13)
	for d := range 6 {
		later.Anchors = []time.Time{day.AddDate(0, 0, 4+d).Add(12 * time.Hour)}
		storetest.RandomBatches(t, s, m, later, 3, 300)
	}
	close(stop)
	wg.Wait()
	if frozen, _ := tableStats(s); frozen == 0 {
		t.Fatal("no table was frozen")
	}
}

// TestSpans checks the spans of frozen tables against a brute-force
// reading: every row of the scope's organizations and clients is in one,
// spans do not overlap, and organizations or clients a table has no rows of
// give none.
func TestSpans(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 300 {
		var tb table
		n := rng.IntN(200)
		for range n {
			tb.add(key{org: 2 * uint32(rng.IntN(5)), client: uint32(rng.IntN(12)), user: uint32(rng.IntN(3))}, cnt{total: 1})
		}
		var buf []uint64
		tb.install(tb.freeze(&buf))
		for range rng.IntN(20) * (round % 2) { // a tail, every other round
			tb.add(key{org: uint32(rng.IntN(10)), client: uint32(rng.IntN(12)), user: 7}, cnt{total: 1})
		}
		var sc scope
		if rng.IntN(5) > 0 {
			sc.orgs = pickIDs(rng, 10)
		}
		if rng.IntN(2) > 0 {
			sc.clients = pickIDs(rng, 14)
		}
		in := make([]int, len(tb.keys))
		for _, sp := range tb.spans(&sc, nil) {
			for i := sp.lo; i < sp.hi; i++ {
				in[i]++
			}
		}
		for i, k := range tb.keys {
			if in[i] > 1 {
				t.Fatalf("round %d: row %d in %d spans", round, i, in[i])
			}
			inScope := sc.orgs == nil || (slices.Contains(sc.orgs, k.org) && (sc.clients == nil || slices.Contains(sc.clients, k.client)))
			if inScope && in[i] == 0 {
				t.Fatalf("round %d: row %d %+v of scope %+v in no span (sorted %d of %d)", round, i, k, sc, tb.sorted, len(tb.keys))
			}
		}
	}
}

// pickIDs returns a sorted set of distinct ids below n, maybe empty.
func pickIDs(rng *rand.Rand, n int) []uint32 {
	ids := []uint32{}
	for range rng.IntN(4) {
		ids = append(ids, uint32(rng.IntN(n)))
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// TestRecoverFromWALOnly recovers a store whose every event is in the WAL
// (a kill -9 before any checkpoint), which Open replays and then freezes,
// and holds it to the oracle.
func TestRecoverFromWALOnly(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	g := storetest.NewGen(14)
	m := &storetest.Model{}
	storetest.RandomBatches(t, s, m, g, 60, 1000)
	crash := copyDir(t, dir) // a kill -9: no snapshot, everything in the WAL
	if snaps := files(t, crash, snapPrefix); len(snaps) != 0 {
		t.Fatalf("snapshots %v: the test needs the state in the WAL only", snaps)
	}
	r := openTest(t, crash, Options{})
	if frozen, _ := tableStats(r); frozen == 0 {
		t.Error("no table is frozen after recovery")
	}
	checkAll(t, r, m.Events(), g)
}
