package embedded

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// TestOrderGroups checks both ways orderGroups sorts (packed ranks, and
// rank tuples when they do not fit in 64 bits) against sorting by the
// strings themselves.
func TestOrderGroups(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var strs [numFields][]string
	for f := range numFields {
		strs[f] = []string{""}
		for i := range 40 {
			// Ids in an order unrelated to the strings' order.
			strs[f] = append(strs[f], fmt.Sprintf("v%02d-%d", rng.IntN(100), i))
		}
	}
	for _, fields := range [][]int{{fClient}, {fTmpl, fMethod}, {fUser, fOrg, fClient}, {fMethod, fTmpl, fClient, fUser, fOrg}, {}} {
		var gs groups
		seen := map[group]bool{}
		for b := range int32(5) {
			for range 300 {
				g := group{bucket: b}
				for _, f := range fields {
					id := uint32(rng.IntN(len(strs[f])))
					switch f {
					case fOrg:
						g.k.org = id
					case fClient:
						g.k.client = id
					case fUser:
						g.k.user = id
					case fTmpl:
						g.k.tmpl = id
					case fMethod:
						g.k.method = id
					}
				}
				if !seen[g] { // groups of a bucket are distinct
					seen[g] = true
					gs.add(g)
				}
			}
		}
		str := func(g *group, f int) string {
			k := g.k
			return strs[f][[]uint32{fOrg: k.org, fClient: k.client, fUser: k.user, fTmpl: k.tmpl, fMethod: k.method}[f]]
		}
		want := make([]int32, gs.n)
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortFunc(want, func(x, y int32) int {
			a, b := gs.at(x), gs.at(y)
			if a.bucket != b.bucket {
				return int(a.bucket - b.bucket)
			}
			for _, f := range fields {
				if c := strings.Compare(str(a, f), str(b, f)); c != 0 {
					return c
				}
			}
			return 0
		})
		for _, maxBits := range []int{64, 0} {
			var got []int32
			for _, o := range orderGroups(&gs, fields, &strs, maxBits, nil, nil) {
				got = append(got, o)
			}
			if !slices.Equal(got, want) {
				t.Errorf("fields %v, maxBits %d: order %v..., want %v...", fields, maxBits, got[:min(10, len(got))], want[:min(10, len(want))])
			}
		}
	}
}

// TestQueryDays holds the day-by-day path (Day granularity, grouped by at
// least client, template and method) to the oracle: whole and cut days,
// filters, a client id in two organizations with and without the
// organization grouped, and sort keys packed or not.
func TestQueryDays(t *testing.T) {
	s := openTest(t, "", Options{})
	g := storetest.NewGen(7)
	m := &storetest.Model{}
	storetest.RandomBatches(t, s, m, g, 40, 200)
	everything := apiusage.Interval{Start: time.Unix(0, 0), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	groupBys := [][]apiusage.Dimension{
		{apiusage.DimClient, apiusage.DimTemplateURI, apiusage.DimMethod},
		{apiusage.DimMethod, apiusage.DimTemplateURI, apiusage.DimClient},
		{apiusage.DimTemplateURI, apiusage.DimOrganization, apiusage.DimMethod, apiusage.DimClient},
		{apiusage.DimClient, apiusage.DimMethod, apiusage.DimOrganization, apiusage.DimTemplateURI, apiusage.DimMethod},
	}
	for _, packBits := range []int{64, 0} {
		s.packBits = packBits
		for _, gb := range groupBys {
			storetest.CheckQuery(t, s, m.Events(), apiusage.Query{Interval: everything, Granularity: apiusage.GranularityDay, GroupBy: gb})
			storetest.CheckQuery(t, s, m.Events(), apiusage.Query{Interval: everything, Granularity: apiusage.GranularityDay, GroupBy: gb, OrganizationID: "org-b"})
			for range 40 {
				q := g.Query()
				q.Granularity = apiusage.GranularityDay
				q.GroupBy = gb
				storetest.CheckQuery(t, s, m.Events(), q)
			}
		}
	}
}

// TestQueryDaysOverflow checks that the day-by-day path sums the rows of a
// key continued after its counters filled up, in the slim rollup of a whole
// day and the hourly rollups of a cut one.
func TestQueryDaysOverflow(t *testing.T) {
	s := openTest(t, "", Options{})
	s.dict.mu.Lock()
	k := key{org: s.dict.addLocked(fOrg, "org"), client: s.dict.addLocked(fClient, "client"),
		tmpl: s.dict.addLocked(fTmpl, "api/v2/x"), method: s.dict.addLocked(fMethod, "GET")}
	other := k
	other.method = s.dict.addLocked(fMethod, "POST")
	s.dict.mu.Unlock()
	big := cnt{total: math.MaxUint32 - 1, s2: math.MaxUint32 - 1}
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	hour := day.Unix() / 3600
	s.mu.Lock()
	s.st.apply(delta{hour: hour + 5, k: k, c: big})
	s.st.apply(delta{hour: hour + 5, k: other, c: cnt{total: 1, s5: 1}})
	s.st.apply(delta{hour: hour + 5, k: k, c: big})
	s.st.apply(delta{hour: hour + 6, k: k, c: cnt{total: 3, s4: 3, s429: 1}})
	s.mu.Unlock()
	if n := len(s.st.days[0].slim.keys); n != 4 {
		t.Fatalf("slim rollup has %d rows, want 4 (one key in three)", n)
	}
	gb := []apiusage.Dimension{apiusage.DimClient, apiusage.DimTemplateURI, apiusage.DimMethod}
	want := apiusage.Counts{Requests: 2*(math.MaxUint32-1) + 3, Status200: 2 * (math.MaxUint32 - 1), Status400: 3, Status429: 1}
	for _, iv := range []apiusage.Interval{
		{Start: day, End: day.AddDate(0, 0, 1)},
		{Start: day.Add(time.Hour), End: day.Add(20 * time.Hour)},
	} {
		for _, packBits := range []int{64, 0} {
			s.packBits = packBits
			rows, err := s.Query(context.Background(), apiusage.Query{Interval: iv, Granularity: apiusage.GranularityDay, GroupBy: gb})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || rows[0].Method != "GET" || rows[0].Counts != want || rows[1].Method != "POST" || rows[1].Counts.Requests != 1 {
				t.Errorf("interval %v, packBits %d: rows %+v, want GET with %+v, then POST with 1 request", iv, packBits, rows, want)
			}
		}
	}
}

// TestQueryGroups holds the hashing path to the oracle on random queries,
// with groups found in a dense array and in a map, the days read on one
// core and (parRows 0) split in two.
func TestQueryGroups(t *testing.T) {
	s := openTest(t, "", Options{})
	g := storetest.NewGen(8)
	m := &storetest.Model{}
	storetest.RandomBatches(t, s, m, g, 40, 200)
	for _, par := range []int{parRows, 0} {
		s.parRows = par
		for _, maxDense := range []int{maxDenseSlots, 0} {
			s.maxDense = maxDense
			for range 300 {
				storetest.CheckQuery(t, s, m.Events(), g.Query())
			}
		}
	}
}

// TestRankSeenCached checks that ranking ids by the cached order of the
// dictionary gives the ranks that sorting by strings does, and that ids the
// cache does not cover yet are ranked by their strings.
func TestRankSeenCached(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	names := []string{""}
	for i := range 6000 { // about 2,000 ids a check: past radixMin
		names = append(names, fmt.Sprintf("user-%d-%d", rng.IntN(1000), i))
	}
	var do dictOrder
	var sc scratch
	check := func(stage string, names []string, cached bool) {
		t.Helper()
		seen := make([]bool, len(names))
		var ids []uint32
		for id := range names {
			if rng.IntN(3) == 0 || id == len(names)-1 { // the newest always
				seen[id] = true
				ids = append(ids, uint32(id))
			}
		}
		slices.SortFunc(ids, func(a, b uint32) int { return strings.Compare(names[a], names[b]) })
		if got := len(do.ranks(fUser)) >= len(names); got != cached {
			t.Fatalf("%s: cache covers the dictionary: %v, want %v", stage, got, cached)
		}
		rank, width := sc.rankSeen(&do, fUser, seen, names)
		for r, id := range ids {
			if rank[id] != uint32(r) {
				t.Fatalf("%s: rank of id %d (%q) is %d, want %d", stage, id, names[id], rank[id], r)
			}
		}
		if width != bits.Len(uint(len(ids))) || slices.Contains(seen, true) {
			t.Fatalf("%s: width %d for %d ids, or marks left", stage, width, len(ids))
		}
	}
	waitCache := func(n int) {
		for range 1000 {
			if len(do.ranks(fUser)) >= n {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatal("the cache was not rebuilt")
	}
	check("no cache yet", names, false)
	waitCache(len(names))
	check("cached", names, true)
	more := append(slices.Clone(names), "a-new-user", "zz-new-user", "user-500-x")
	check("dictionary grew", more, false)
	waitCache(len(more))
	check("cached again", more, true)
}

// apply adds a delta to the full rollup of its hour and the slim and user
// rollups of its day, as a batch of one would.
func (st *state) apply(d delta) {
	st.addHour(d)
	d.hour = floorDiv(d.hour, 24)
	st.addUsers(delta{hour: d.hour, k: usersKey(d.k), c: d.c})
	d.k.user = 0
	st.addDay(d)
}
