package embedded

import (
	"context"
	"math/bits"
	"slices"
	"time"

	"github.com/apiusage/apiusage"
)

// filters are a query's filters as dictionary ids.
type filters struct {
	orgs, clients, methods, tmpls idSet
}

// match reports whether a rollup row of k passes every filter. An
// organization filter names one organization, so it is one comparison.
func (f *filters) match(k *key) bool {
	return (!f.orgs.on || k.org == f.orgs.small[0]) && f.clients.has(k.client) &&
		f.methods.has(k.method) && f.tmpls.has(k.tmpl)
}

// scopeOf returns the rows of frozen tables a query with flt needs to read:
// those of its organization, or of the organizations its clients have rows
// in, and of its clients within them. It reports false when the clients
// have no rows at all. The caller holds s.mu.
func (s *Store) scopeOf(flt *filters, sc *scratch) (scope, bool) {
	var out scope
	switch {
	case flt.orgs.on:
		out.orgs = flt.orgs.small[:1]
	case flt.clients.on:
		orgs := sc.orgs[:0]
		for _, c := range flt.clients.small {
			orgs = s.st.orgsOf(c, orgs)
		}
		slices.Sort(orgs)
		orgs = slices.Compact(orgs)
		sc.orgs = orgs
		if len(orgs) == 0 {
			return out, false
		}
		out.orgs = orgs
	default:
		return out, true
	}
	// A client's rows are found by two binary searches per organization:
	// worth it for a few clients, not for hundreds.
	if flt.clients.on && len(flt.clients.small) <= 64 {
		clients := append(sc.clients[:0], flt.clients.small...)
		slices.Sort(clients)
		clients = slices.Compact(clients)
		sc.clients = clients
		out.clients = clients
	}
	return out, true
}

// clientNames returns how to find the name id of a client id for a result
// of n rows, or nil when the result does not group by client. The caller
// holds s.mu. A large result looks names up in a dense array built once,
// instead of in the map of names once a row.
func (s *Store) clientNames(grouped bool, n int, strs *[numFields][]string) func(client uint32) uint32 {
	if !grouped {
		return nil
	}
	names := s.st.names
	if n < 4*len(names) {
		return func(client uint32) uint32 { return names[client] }
	}
	dense := make([]uint32, len(strs[fClient]))
	for client, name := range names {
		if int(client) < len(dense) {
			dense[client] = name
		}
	}
	return func(client uint32) uint32 { return dense[client] }
}

// dayEntry is a rollup row on its way to becoming a result row: its key
// with the fields not grouped on zeroed, and its counters.
type dayEntry struct {
	k key
	c cnt
}

// queryDays answers a query whose every bucket is one day (Day granularity)
// and whose grouped fields nearly tell apart the rows of a slim daily
// rollup (they include client, template and method, and a client belongs
// to one organization). A day's groups are then about its slim rollup's
// rows: instead of hashing every row into a group and sorting the whole
// result, it sorts each day's rows by the ranks of their grouped strings
// and emits them in that order, summing neighbours with one key (the rows
// of the hours of a day the interval cuts, which differ by user and hour;
// rows of one client in two organizations when the organization is not
// grouped on; the rare row continued after its counters filled up). The
// caller holds s.mu.
// maxBits is 64 but in tests of the path for ranks too wide to pack.
func (s *Store) queryDays(ctx context.Context, q apiusage.Query, first, end int64, flt *filters, scope *scope, mask key,
	fields []int, strs *[numFields][]string, maxBits int, sc *scratch) (*apiusage.RowSet, error) {
	// The tables each day of the interval is read from: its slim rollup
	// when the interval holds it whole, the hours it holds otherwise.
	lastDay := floorDiv(end-1, 24)
	days := s.st.days
	from := s.st.find(floorDiv(first, 24))
	// Of each table, only the spans of rows the scope may hold.
	sc.rows.setLimits(strs)
	var scanErr error
	tables := func(p *dayPart, yield func(keys []key, cnts []cnt)) {
		read := func(t *table) {
			if err := t.read(scope, &sc.spans, &sc.rows, yield); err != nil && scanErr == nil {
				scanErr = err
			}
		}
		h0 := p.day * 24
		if first <= h0 && h0+24 <= end {
			read(&p.slim)
			return
		}
		for h := max(first-h0, 0); h < min(end-h0, 24); h++ {
			if t := p.hours[h]; t != nil {
				read(t)
			}
		}
	}

	// The first pass counts the rows that pass the filters, the most the
	// result can have, and marks the ids they hold to rank them; the
	// second sorts and emits one day at a time, so that only a day's rows
	// are ever copied. Every field of a slim row is marked, grouped on or
	// not (the organization may not be), so that the loop does not branch
	// on it.
	var seen [numFields][]bool
	for _, f := range []int{fOrg, fClient, fTmpl, fMethod} {
		seen[f] = sc.seenArray(f, len(strs[f]))
	}
	// Ranking clears the marks of the grouped fields; the others' (and
	// everyone's when the query ends early) are cleared here.
	defer func() {
		for _, f := range []int{fOrg, fClient, fTmpl, fMethod} {
			clear(seen[f])
		}
	}()
	matched, longest := 0, 0
	for i := from; i < len(days) && days[i].day <= lastDay; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := 0
		tables(days[i], func(keys []key, _ []cnt) {
			for j := range keys {
				k := &keys[j]
				if !flt.match(k) {
					continue
				}
				n++
				seen[fOrg][k.org] = true
				seen[fClient][k.client] = true
				seen[fTmpl][k.tmpl] = true
				seen[fMethod][k.method] = true
			}
		})
		matched += n
		longest = max(longest, n)
	}
	if scanErr != nil {
		return nil, scanErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var ranks [numFields][]uint32
	var width [numFields]int
	total := 0
	for i, f := range fields {
		ranks[i], width[i] = sc.rankSeen(&s.order, f, seen[f], strs[f])
		total += width[i]
	}
	// A day's rows sort as plain integers, with no comparison function
	// called, when the packed ranks and the row's index in its day fit in 64
	// bits: the ranks above, the index below.
	idxBits := bits.Len(uint(longest))
	packed := total+idxBits <= maxBits
	idxMask := uint64(1)<<idxBits - 1

	nameOf := s.clientNames(true, matched, strs)
	rs := s.newRowSet(strs, matched)
	emit := func(date uint32, e *dayEntry, sum *apiusage.Counts) {
		r := apiusage.RowRef{Date: date, Counts: *sum}
		r.Refs[apiusage.RefOrganization] = e.k.org
		r.Refs[apiusage.RefClient] = e.k.client
		r.Refs[apiusage.RefClientName] = nameOf(e.k.client)
		r.Refs[apiusage.RefTemplate] = e.k.tmpl
		r.Refs[apiusage.RefMethod] = e.k.method
		rs.Rows = append(rs.Rows, r)
	}
	ords, ordsTmp, idx := sc.ords[:0], sc.ordsTmp, sc.idx[:0]
	day := reuse(sc.day, longest)
	defer func() { sc.ords, sc.ordsTmp, sc.idx, sc.day = ords, ordsTmp, idx, day }()
	for i := from; i < len(days) && days[i].day <= lastDay; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := days[i]
		day = day[:0]
		tables(p, func(keys []key, cnts []cnt) {
			for j := range keys {
				k := &keys[j]
				if flt.match(k) {
					day = append(day, dayEntry{
						k: key{org: k.org & mask.org, client: k.client, tmpl: k.tmpl, method: k.method},
						c: cnts[j],
					})
				}
			}
		})
		if scanErr != nil {
			return nil, scanErr
		}
		if len(day) == 0 {
			continue
		}
		date := uint32(len(rs.Dates))
		rs.Dates = append(rs.Dates, q.Granularity.Truncate(time.Unix(p.day*86400, 0)))
		// order lists the day's entries in result order.
		var order func(yield func(int) bool)
		if packed {
			ords = ords[:0]
			for j := range day {
				var ord uint64
				for i, f := range fields {
					ord = ord<<width[i] | uint64(ranks[i][fieldOf(&day[j].k, f)])
				}
				ords = append(ords, ord<<idxBits|uint64(j))
			}
			ords, ordsTmp = sortOrds(ords, ordsTmp, total+idxBits)
			order = func(yield func(int) bool) {
				for _, o := range ords {
					if !yield(int(o & idxMask)) {
						return
					}
				}
			}
		} else {
			idx = idx[:0]
			for j := range day {
				idx = append(idx, int32(j))
			}
			slices.SortFunc(idx, func(x, y int32) int {
				a, b := &day[x].k, &day[y].k
				for i, f := range fields {
					if ra, rb := ranks[i][fieldOf(a, f)], ranks[i][fieldOf(b, f)]; ra != rb {
						if ra < rb {
							return -1
						}
						return 1
					}
				}
				return 0
			})
			order = func(yield func(int) bool) {
				for _, j := range idx {
					if !yield(int(j)) {
						return
					}
				}
			}
		}
		var cur *dayEntry
		var sum apiusage.Counts
		for j := range order {
			e := &day[j]
			if cur != nil && e.k != cur.k {
				emit(date, cur, &sum)
				sum = apiusage.Counts{}
			}
			cur = e
			e.c.addTo(&sum)
		}
		if cur != nil {
			emit(date, cur, &sum)
		}
	}
	return rs, nil
}
