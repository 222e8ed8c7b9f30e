package embedded

import (
	"cmp"
	"context"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/apiusage/apiusage"
)

// idSet is a query filter on one field, as dictionary ids. Most filters
// name a few values, which a linear scan checks faster than a map.
type idSet struct {
	on    bool
	small []uint32
	big   map[uint32]struct{}
}

func (f *idSet) has(id uint32) bool {
	if !f.on {
		return true
	}
	if f.big != nil {
		_, ok := f.big[id]
		return ok
	}
	for _, v := range f.small {
		if v == id {
			return true
		}
	}
	return false
}

// newIDSet resolves a filter's values in field f. It reports false when the
// filter is on and no value has an id: nothing can match.
func (s *Store) newIDSet(f int, values []string) (idSet, bool) {
	if len(values) == 0 {
		return idSet{}, true
	}
	set := idSet{on: true}
	for _, v := range values {
		if id, ok := s.dict.lookup(f, v); ok {
			set.small = append(set.small, id)
		}
	}
	if len(set.small) > 8 {
		set.big = make(map[uint32]struct{}, len(set.small))
		for _, id := range set.small {
			set.big[id] = struct{}{}
		}
	}
	return set, len(set.small) > 0
}

// group is one result row before it becomes an apiusage.Row: its bucket (an
// index into the query's buckets), its key (zero in fields not grouped on)
// and its counts.
type group struct {
	bucket int32
	k      key
	c      apiusage.Counts
}

// groupChunk is how many groups a chunk holds. Groups live in chunks so
// that a result of a million rows grows without copying what it has.
const groupChunk = 1 << 14

type groups struct {
	chunks [][]group
	n      int
}

func (g *groups) at(i int32) *group { return &g.chunks[i/groupChunk][i%groupChunk] }

func (g *groups) add(x group) int32 {
	if g.n%groupChunk == 0 {
		g.chunks = append(g.chunks, make([]group, 0, groupChunk))
	}
	c := &g.chunks[len(g.chunks)-1]
	*c = append(*c, x)
	g.n++
	return int32(g.n - 1)
}

// ordered is a group's place in the order of results, and its index.
type ordered struct {
	ord uint64
	i   int32
}

// Query answers q from the rollups. Days wholly inside the interval come from
// the slim daily rollup unless the query groups by user; the hours of days
// cut by the interval (and every hour, when grouping by user) come from the
// hourly rollup. Buckets of every granularity are whole UTC days, so a day's
// rows all land in one bucket.
func (s *Store) Query(ctx context.Context, q apiusage.Query) ([]apiusage.Row, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.isClosed() {
		return nil, errClosed
	}
	first, end := q.Interval.Hours()
	if first >= end {
		return nil, nil
	}
	var orgs idSet
	var ok bool
	if q.OrganizationID != "" {
		if orgs, ok = s.newIDSet(fOrg, []string{q.OrganizationID}); !ok {
			return nil, nil
		}
	}
	clients, ok1 := s.newIDSet(fClient, q.ClientIDs)
	methods, ok2 := s.newIDSet(fMethod, q.Methods)
	tmpls, ok3 := s.newIDSet(fTmpl, q.TemplateURIs)
	if !ok1 || !ok2 || !ok3 {
		return nil, nil
	}
	// A mask per field: all ones when grouped on, zero when not, so that the
	// group key of a row is its key ANDed with the masks.
	var mask key
	var fields []int // grouped fields in GroupBy order, each once
	for _, d := range q.GroupBy {
		var m *uint32
		var f int
		switch d {
		case apiusage.DimOrganization:
			m, f = &mask.org, fOrg
		case apiusage.DimClient:
			m, f = &mask.client, fClient
		case apiusage.DimUser:
			m, f = &mask.user, fUser
		case apiusage.DimTemplateURI:
			m, f = &mask.tmpl, fTmpl
		case apiusage.DimMethod:
			m, f = &mask.method, fMethod
		default:
			continue
		}
		if *m == 0 {
			*m = ^uint32(0)
			fields = append(fields, f)
		}
	}
	needUser := mask.user != 0

	s.mu.RLock()
	defer s.mu.RUnlock()
	// Taken under s.mu: every id in the state was given before the state
	// changed to use it.
	strs := s.dict.all()

	var gs groups
	var buckets []time.Time
	index := map[key]int32{}
	scan := func(t *table) {
		b := int32(len(buckets) - 1)
		for i, k := range t.keys {
			if orgs.on && k.org != orgs.small[0] || !clients.has(k.client) || !methods.has(k.method) || !tmpls.has(k.tmpl) {
				continue
			}
			g := key{org: k.org & mask.org, client: k.client & mask.client, user: k.user & mask.user,
				tmpl: k.tmpl & mask.tmpl, method: k.method & mask.method}
			j, ok := index[g]
			if !ok {
				j = gs.add(group{bucket: b, k: g})
				index[g] = j
			}
			c, sum := &t.cnts[i], &gs.at(j).c
			sum.Requests += int64(c.total)
			sum.Status200 += int64(c.s2)
			sum.Status300 += int64(c.s3)
			sum.Status400 += int64(c.s4)
			sum.Status500 += int64(c.s5)
			sum.Status429 += int64(c.s429)
		}
	}

	lastDay := floorDiv(end-1, 24)
	days := s.st.days
	for i := s.st.find(floorDiv(first, 24)); i < len(days) && days[i].day <= lastDay; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := days[i]
		if b := q.Granularity.Truncate(time.Unix(p.day*86400, 0)); len(buckets) == 0 || !b.Equal(buckets[len(buckets)-1]) {
			buckets = append(buckets, b)
			clear(index) // groups of earlier buckets are complete
		}
		h0 := p.day * 24
		if !needUser && first <= h0 && h0+24 <= end {
			scan(&p.slim)
			continue
		}
		for h := max(first-h0, 0); h < min(end-h0, 24); h++ {
			if t := p.hours[h]; t != nil {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				scan(t)
			}
		}
	}
	index = nil
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	order := orderGroups(&gs, fields, &strs, 64)

	rows := make([]apiusage.Row, len(order))
	for i, o := range order {
		g := gs.at(o.i)
		rows[i] = apiusage.Row{
			Date:           buckets[g.bucket],
			OrganizationID: strs[fOrg][g.k.org],
			ClientID:       strs[fClient][g.k.client],
			UserID:         strs[fUser][g.k.user],
			TemplateURI:    strs[fTmpl][g.k.tmpl],
			Method:         strs[fMethod][g.k.method],
			Counts:         g.c,
		}
		if mask.client != 0 {
			rows[i].ClientName = strs[fName][s.st.names[g.k.client]]
		}
	}
	s.m.querySeconds.Observe(time.Since(start).Seconds())
	return rows, nil
}

// orderGroups returns the groups in the order apiusage.CompareRows orders
// rows: by bucket, then by the grouped fields' strings in GroupBy order.
// Comparing strings for every comparison of a large result is slow, so each
// grouped field's distinct ids are ranked once by their strings, and the
// ranks packed into one integer per group, compared as such when they fit in
// 64 bits. What is sorted is small (index, packed ranks) pairs, not groups.
// maxBits is 64 but in tests of the other path.
func orderGroups(gs *groups, fields []int, strs *[numFields][]string, maxBits int) []ordered {
	order := make([]ordered, gs.n)
	for i := range order {
		order[i].i = int32(i)
	}
	if gs.n < 2 {
		return order
	}
	fieldOf := func(k *key, f int) uint32 {
		switch f {
		case fOrg:
			return k.org
		case fClient:
			return k.client
		case fUser:
			return k.user
		case fTmpl:
			return k.tmpl
		}
		return k.method
	}
	ranks := make([][]uint32, len(fields))
	width := make([]int, len(fields))
	total := bits.Len(uint(gs.at(int32(gs.n - 1)).bucket))
	for i, f := range fields {
		seen := make([]bool, len(strs[f]))
		var ids []uint32
		for _, c := range gs.chunks {
			for j := range c {
				if id := fieldOf(&c[j].k, f); !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
		names := strs[f]
		slices.SortFunc(ids, func(a, b uint32) int { return strings.Compare(names[a], names[b]) })
		rank := make([]uint32, len(names))
		for r, id := range ids {
			rank[id] = uint32(r)
		}
		ranks[i] = rank
		width[i] = bits.Len(uint(len(ids)))
		total += width[i]
	}
	if total <= maxBits {
		for j := range order {
			g := gs.at(int32(j))
			ord := uint64(g.bucket)
			for i, f := range fields {
				ord = ord<<width[i] | uint64(ranks[i][fieldOf(&g.k, f)])
			}
			order[j].ord = ord
		}
		slices.SortFunc(order, func(a, b ordered) int { return cmp.Compare(a.ord, b.ord) })
		return order
	}
	slices.SortFunc(order, func(x, y ordered) int {
		a, b := gs.at(x.i), gs.at(y.i)
		if c := cmp.Compare(a.bucket, b.bucket); c != 0 {
			return c
		}
		for i, f := range fields {
			if c := cmp.Compare(ranks[i][fieldOf(&a.k, f)], ranks[i][fieldOf(&b.k, f)]); c != 0 {
				return c
			}
		}
		return 0
	})
	return order
}
