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

// add appends a group. Chunks are kept empty by a reused scratch, and
// filled again.
func (g *groups) add(x group) int32 {
	c := g.n / groupChunk
	if c == len(g.chunks) {
		g.chunks = append(g.chunks, make([]group, 0, groupChunk))
	}
	g.chunks[c] = append(g.chunks[c], x)
	g.n++
	return int32(g.n - 1)
}

// QueryRowSet answers q from the rollups, as rows that refer to the
// dictionaries' strings (see rowset.go); it is never nil without an error.
// Days wholly inside the interval come from a daily rollup where one can
// answer: the slim rollup unless the query groups by user, else the user
// rollup if the query groups by nothing else but the organization and
// filters on neither clients, templates nor methods. (Not grouping by user,
// the slim rollup is the one read even where the user rollup has fewer
// rows: it is never packed, so its rows are read as they are, where packed
// ones are decoded first.) The hours of days cut by the interval, and of
// whole days no daily rollup answers for, come from the hourly rollup.
// Buckets of every granularity are whole UTC days, so a day's rows all land
// in one bucket.
//
// A query at Day that groups by client, template and method but not user
// (the usual question, with the largest answers) takes queryDays: each
// day's rows are nearly its groups already, so they are sorted, not
// hashed. Any other sums rows into groups, found in a dense array when the
// grouped fields have few values between them and in a map otherwise, and
// orders the groups once at the end.
func (s *Store) QueryRowSet(ctx context.Context, q apiusage.Query) (*apiusage.RowSet, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.isClosed() {
		return nil, errClosed
	}
	first, end := q.Interval.Hours()
	if first >= end {
		return &apiusage.RowSet{}, nil
	}
	var orgs idSet
	var ok bool
	if q.OrganizationID != "" {
		if orgs, ok = s.newIDSet(fOrg, []string{q.OrganizationID}); !ok {
			return &apiusage.RowSet{}, nil
		}
	}
	clients, ok1 := s.newIDSet(fClient, q.ClientIDs)
	methods, ok2 := s.newIDSet(fMethod, q.Methods)
	tmpls, ok3 := s.newIDSet(fTmpl, q.TemplateURIs)
	if !ok1 || !ok2 || !ok3 {
		return &apiusage.RowSet{}, nil
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
	// byUser is whether the user rollups can answer: they keep only
	// organizations and users.
	byUser := mask.client == 0 && mask.tmpl == 0 && mask.method == 0 && !clients.on && !methods.on && !tmpls.on
	flt := filters{orgs: orgs, clients: clients, methods: methods, tmpls: tmpls}
	sc := s.getScratch()
	defer s.putScratch(sc)

	s.mu.RLock()
	defer s.mu.RUnlock()
	// Taken under s.mu: every id in the state was given before the state
	// changed to use it.
	strs := s.dict.all()
	scope, some := s.scopeOf(&flt, sc)
	if !some {
		return &apiusage.RowSet{}, nil
	}

	if q.Granularity == apiusage.GranularityDay && !needUser && mask.client != 0 && mask.tmpl != 0 && mask.method != 0 {
		rs, err := s.queryDays(ctx, q, first, end, &flt, &scope, mask, fields, &strs, s.packBits, sc)
		if err != nil {
			return nil, err
		}
		s.m.querySeconds.Observe(time.Since(start).Seconds())
		return rs, nil
	}

	// The days to read, each with its bucket and which tables to read: a
	// daily rollup for whole days, as said above, the hours within the
	// interval otherwise.
	var buckets []time.Time
	plan := sc.plan[:0]
	var planRows int
	lastDay := floorDiv(end-1, 24)
	days := s.st.days
	for i := s.st.find(floorDiv(first, 24)); i < len(days) && days[i].day <= lastDay; i++ {
		p := days[i]
		if b := q.Granularity.Truncate(time.Unix(p.day*86400, 0)); len(buckets) == 0 || !b.Equal(buckets[len(buckets)-1]) {
			buckets = append(buckets, b)
		}
		h0 := p.day * 24
		d := dayPlan{p: p, bucket: int32(len(buckets) - 1), lo: max(first-h0, 0), hi: min(end-h0, 24)}
		if d.lo == 0 && d.hi == 24 {
			switch {
			case !needUser:
				d.daily = &p.slim
			case byUser:
				d.daily = &p.users
			}
		}
		d.rows = d.estimate()
		planRows += d.rows
		plan = append(plan, d)
	}
	sc.plan = plan

	var mul key
	slots := denseSlots(fields, &strs, s.maxDense)
	if slots > 0 {
		m := uint32(1)
		for _, f := range slices.Backward(fields) {
			*fieldPtr(&mul, f) = m
			m *= uint32(len(strs[f]))
		}
	}
	newAgg := func(sc *scratch) *aggregator {
		a := &aggregator{ctx: ctx, sc: sc, gs: &sc.groups, flt: &flt, scope: &scope, mask: mask, mul: mul}
		if slots > 0 {
			a.dense = sc.denseArray(slots)
		} else {
			a.index = map[key]int32{}
		}
		sc.rows.setLimits(&strs)
		return a
	}
	agg := newAgg(sc)
	defer agg.clearDense()
	if err := s.sumDays(agg, plan, planRows, newAgg); err != nil {
		return nil, err
	}
	gs := agg.gs
	order := orderGroups(gs, fields, &strs, 64, sc, &s.order)

	nameOf := s.clientNames(mask.client != 0, len(order), &strs)
	rs := s.newRowSet(&strs, len(order))
	rs.Dates = buckets
	for _, o := range order {
		g := gs.at(o)
		r := apiusage.RowRef{Date: uint32(g.bucket), Counts: g.c}
		r.Refs[apiusage.RefOrganization] = g.k.org
		r.Refs[apiusage.RefClient] = g.k.client
		r.Refs[apiusage.RefUser] = g.k.user
		r.Refs[apiusage.RefTemplate] = g.k.tmpl
		r.Refs[apiusage.RefMethod] = g.k.method
		if nameOf != nil {
			r.Refs[apiusage.RefClientName] = nameOf(g.k.client)
		}
		rs.Rows = append(rs.Rows, r)
	}
	s.m.querySeconds.Observe(time.Since(start).Seconds())
	return rs, nil
}

// orderGroups returns the groups in the order apiusage.CompareRows orders
// rows: by bucket, then by the grouped fields' strings in GroupBy order.
// Comparing strings for every comparison of a large result is slow, so each
// grouped field's distinct ids are ranked once by their strings, and the
// ranks packed into one integer per group, compared as such when they fit in
// 64 bits with the group's index below them: what is sorted is then plain
// integers, with no comparison function called. It returns group indexes.
// maxBits is 64 but in tests of the other path.
// The slices are the scratch's (sc nil in tests allocates them).
func orderGroups(gs *groups, fields []int, strs *[numFields][]string, maxBits int, sc *scratch, do *dictOrder) []int32 {
	if sc == nil {
		sc = &scratch{}
	}
	order := reuse(sc.idx, gs.n)[:gs.n]
	sc.idx = order
	for i := range order {
		order[i] = int32(i)
	}
	if gs.n < 2 {
		return order
	}
	var ranks [numFields][]uint32
	var width [numFields]int
	total := bits.Len(uint(gs.at(int32(gs.n - 1)).bucket))
	for i, f := range fields {
		seen := sc.seenArray(f, len(strs[f]))
		for _, c := range gs.chunks {
			for j := range c {
				seen[fieldOf(&c[j].k, f)] = true
			}
		}
		ranks[i], width[i] = sc.rankSeen(do, f, seen, strs[f])
		total += width[i]
	}
	if idxBits := bits.Len(uint(gs.n)); total+idxBits <= maxBits {
		ords := reuse(sc.ords, gs.n)
		for j := range order {
			g := gs.at(int32(j))
			ord := uint64(g.bucket)
			for i, f := range fields {
				ord = ord<<width[i] | uint64(ranks[i][fieldOf(&g.k, f)])
			}
			ords = append(ords, ord<<idxBits|uint64(j))
		}
		ords, sc.ordsTmp = sortOrds(ords, sc.ordsTmp, total+idxBits)
		mask := uint64(1)<<idxBits - 1
		for j, o := range ords {
			order[j] = int32(o & mask)
		}
		sc.ords = ords
		return order
	}
	slices.SortFunc(order, func(x, y int32) int {
		a, b := gs.at(x), gs.at(y)
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

// fieldOf returns k's id in field f.
func fieldOf(k *key, f int) uint32 {
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

// rankSeen ranks the ids marked in seen by their strings in names: rank[id]
// orders id among them as its string orders among theirs. Only the ids a
// result holds are ranked, so that the ranks stay narrow (a few bits for a
// field of a million values of which a query meets a hundred) and sorting
// them costs what the result does, not what the dictionary does. It also
// returns the bits a rank takes. It clears the marks in seen (the
// scratch's), and rank is the scratch's array of field f: only the ranks of
// the marked ids are set. With a cache of the dictionary's order (do, nil
// in tests) that covers every marked id, the ids are sorted as integers.
func (sc *scratch) rankSeen(do *dictOrder, f int, seen []bool, names []string) (rank []uint32, width int) {
	ids := sc.ids[:0]
	for id, ok := range seen {
		if ok {
			ids = append(ids, uint32(id))
			seen[id] = false
		}
	}
	sc.ids = ids
	var cached []uint32
	if do != nil && len(ids) > 64 {
		if cached = do.ranks(f); len(ids) > 0 && int(ids[len(ids)-1]) >= len(cached) {
			do.refresh(f, names)
			cached = nil
		}
	}
	if cached != nil {
		// The dictionary's ranks above, the id below: sorting these sorts
		// the ids by their strings. (ids ascend: the last is the largest.)
		idBits := bits.Len32(ids[len(ids)-1])
		ords := reuse(sc.rankOrds, len(ids))
		for _, id := range ids {
			ords = append(ords, uint64(cached[id])<<idBits|uint64(id))
		}
		ords, sc.ordsTmp = sortOrds(ords, sc.ordsTmp, bits.Len(uint(len(cached)))+idBits)
		mask := uint64(1)<<idBits - 1
		for i, o := range ords {
			ids[i] = uint32(o & mask)
		}
		sc.rankOrds = ords
	} else {
		slices.SortFunc(ids, func(a, b uint32) int { return strings.Compare(names[a], names[b]) })
	}
	rank = sc.rankArray(f, len(names))
	for r, id := range ids {
		rank[id] = uint32(r)
	}
	return rank, bits.Len(uint(len(ids)))
}

// maxDenseSlots bounds the dense array a query may find its groups in (4
// bytes a slot): a few hundred thousand slots are cheaper to allocate than a
// map of as many groups is to fill.
const maxDenseSlots = 1 << 18

// denseSlots returns how many slots a dense array of every combination of
// the grouped fields' ids takes, or 0 when that is more than limit.
func denseSlots(fields []int, strs *[numFields][]string, limit int) int {
	n := 1
	for _, f := range fields {
		n *= len(strs[f])
		if n > limit {
			return 0
		}
	}
	return n
}

// fieldPtr returns the address of k's id in field f.
func fieldPtr(k *key, f int) *uint32 {
	switch f {
	case fOrg:
		return &k.org
	case fClient:
		return &k.client
	case fUser:
		return &k.user
	case fTmpl:
		return &k.tmpl
	}
	return &k.method
}
