package embedded

import (
	"context"
	"slices"
	"time"

	"github.com/apiusage/apiusage"
)

// idSet is a query filter on one dimension, as dictionary ids. Most filters
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

// newIDSet resolves a filter's values. It reports false when the filter is
// on and no value has an id: nothing can match.
func (s *Store) newIDSet(values []string) (idSet, bool) {
	if len(values) == 0 {
		return idSet{}, true
	}
	f := idSet{on: true}
	for _, v := range values {
		if id, ok := s.dict.lookup(v); ok {
			f.small = append(f.small, id)
		}
	}
	if len(f.small) > 8 {
		f.big = make(map[uint32]struct{}, len(f.small))
		for _, id := range f.small {
			f.big[id] = struct{}{}
		}
	}
	return f, len(f.small) > 0
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
		if orgs, ok = s.newIDSet([]string{q.OrganizationID}); !ok {
			return nil, nil
		}
	}
	clients, ok1 := s.newIDSet(q.ClientIDs)
	methods, ok2 := s.newIDSet(q.Methods)
	tmpls, ok3 := s.newIDSet(q.TemplateURIs)
	if !ok1 || !ok2 || !ok3 {
		return nil, nil
	}
	// A mask per dimension: all ones when grouped on, zero when not, so that
	// the group key of a row is its key ANDed with the masks.
	var mask key
	for _, d := range q.GroupBy {
		switch d {
		case apiusage.DimOrganization:
			mask.org = ^uint32(0)
		case apiusage.DimClient:
			mask.client = ^uint32(0)
		case apiusage.DimUser:
			mask.user = ^uint32(0)
		case apiusage.DimTemplateURI:
			mask.tmpl = ^uint32(0)
		case apiusage.DimMethod:
			mask.method = ^uint32(0)
		}
	}
	needUser := mask.user != 0

	s.mu.RLock()
	defer s.mu.RUnlock()
	// Taken under s.mu: every id in the state was given before the state
	// changed to use it.
	strs := s.dict.all()

	var rows []apiusage.Row
	groups := map[key]int32{}
	var gkeys []key
	var sums []apiusage.Counts
	var bucket time.Time
	flush := func() {
		for i, k := range gkeys {
			r := apiusage.Row{
				Date:           bucket,
				OrganizationID: strs[k.org],
				ClientID:       strs[k.client],
				UserID:         strs[k.user],
				TemplateURI:    strs[k.tmpl],
				Method:         strs[k.method],
				Counts:         sums[i],
			}
			if mask.client != 0 {
				r.ClientName = strs[s.st.names[k.client]]
			}
			rows = append(rows, r)
		}
		clear(groups)
		gkeys, sums = gkeys[:0], sums[:0]
	}
	scan := func(t *table) {
		for i, k := range t.keys {
			if orgs.on && k.org != orgs.small[0] || !clients.has(k.client) || !methods.has(k.method) || !tmpls.has(k.tmpl) {
				continue
			}
			g := key{org: k.org & mask.org, client: k.client & mask.client, user: k.user & mask.user,
				tmpl: k.tmpl & mask.tmpl, method: k.method & mask.method}
			j, ok := groups[g]
			if !ok {
				j = int32(len(gkeys))
				groups[g] = j
				gkeys = append(gkeys, g)
				sums = append(sums, apiusage.Counts{})
			}
			c, sum := &t.cnts[i], &sums[j]
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
		b := q.Granularity.Truncate(time.Unix(p.day*86400, 0))
		if !b.Equal(bucket) {
			flush()
			bucket = b
		}
		h0 := p.day * 24
		if !needUser && first <= h0 && h0+24 <= end {
			scan(&p.slim)
			continue
		}
		for h := max(first-h0, 0); h < min(end-h0, 24); h++ {
			if t := p.hours[h]; t != nil {
				scan(t)
			}
		}
	}
	flush()
	slices.SortFunc(rows, apiusage.CompareRows(q.GroupBy))
	s.m.querySeconds.Observe(time.Since(start).Seconds())
	return rows, nil
}
