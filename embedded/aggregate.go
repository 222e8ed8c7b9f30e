package embedded

import (
	"context"
	"runtime"
)

// dayPlan is one day a query reads: its bucket, the hours [lo, hi) of it
// within the interval, the daily rollup that answers for them if one does
// (see Store.Query), and about how many rows that is.
type dayPlan struct {
	p      *dayPart
	bucket int32
	lo, hi int64
	daily  *table // the day's slim or user rollup, or nil for its hours
	rows   int
}

// estimate returns how many rows the day's tables to read hold.
func (d *dayPlan) estimate() int {
	if d.daily != nil {
		return d.daily.rows()
	}
	n := 0
	for h := d.lo; h < d.hi; h++ {
		if t := d.p.hours[h]; t != nil {
			n += t.rows()
		}
	}
	return n
}

// parRows is the fewest rows (about) a query reads for it to read them on
// two cores: below it, a goroutine and a second scratch cost more than
// they save.
const parRows = 1 << 18

// aggregator sums the rows of days into groups: found in a dense array of
// every combination of the grouped fields' ids when there are few (a slot
// holds its group's index plus one, valid when it is a group of the
// current bucket, so that the array needs no clearing between buckets),
// in a map otherwise. Each aggregator has a scratch of its own, so that
// two can sum the two halves of a query's days at once.
type aggregator struct {
	ctx   context.Context
	sc    *scratch
	gs    *groups
	flt   *filters
	scope *scope
	mask  key // all ones in grouped fields
	mul   key // each field's multiplier in the dense array, 0 when not grouped on
	dense []int32
	index map[key]int32

	bucket      int32
	bucketFirst int32 // the first group of the current bucket
	started     bool
}

// sumDays sums the days of plan, rows rows about, with agg. A large read is
// split in two at a bucket boundary, each half summed on a core of its own
// (the second by an aggregator newAgg makes of another scratch) into
// groups of its own buckets, which agg then takes: no group is in both.
func (s *Store) sumDays(agg *aggregator, plan []dayPlan, rows int, newAgg func(*scratch) *aggregator) error {
	split := 0
	if rows >= s.parRows && runtime.GOMAXPROCS(0) > 1 {
		sum := 0
		for i, d := range plan {
			if i > 0 && d.bucket != plan[i-1].bucket && sum >= rows/2 {
				split = i
				break
			}
			sum += d.rows
		}
	}
	if split == 0 {
		return agg.run(plan)
	}
	sc2 := s.getScratch()
	defer s.putScratch(sc2)
	agg2 := newAgg(sc2)
	defer agg2.clearDense()
	done := make(chan error, 1)
	go func() { done <- agg2.run(plan[split:]) }()
	err := agg.run(plan[:split])
	if err2 := <-done; err == nil {
		err = err2
	}
	if err == nil {
		agg.take(agg2)
	}
	return err
}

// run sums the rows of the days of plan, in order.
func (a *aggregator) run(plan []dayPlan) error {
	for i := range plan {
		d := &plan[i]
		if err := a.ctx.Err(); err != nil {
			return err
		}
		if !a.started || d.bucket != a.bucket {
			a.bucket, a.started = d.bucket, true
			clear(a.index) // groups of earlier buckets are complete
			a.bucketFirst = int32(a.gs.n)
		}
		if d.daily != nil {
			if err := a.scan(d.daily); err != nil {
				return err
			}
			continue
		}
		for h := d.lo; h < d.hi; h++ {
			if t := d.p.hours[h]; t != nil {
				if err := a.ctx.Err(); err != nil {
					return err
				}
				if err := a.scan(t); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// scan sums the rows of t in scope that match the filters.
func (a *aggregator) scan(t *table) error {
	gs, dense, index, flt := a.gs, a.dense, a.index, a.flt
	mask, mul, b, first := a.mask, a.mul, a.bucket, a.bucketFirst
	err := t.read(a.scope, &a.sc.spans, &a.sc.rows, func(keys []key, cnts []cnt) {
		for i := range keys {
			k := &keys[i]
			if !flt.match(k) {
				continue
			}
			g := key{org: k.org & mask.org, client: k.client & mask.client, user: k.user & mask.user,
				tmpl: k.tmpl & mask.tmpl, method: k.method & mask.method}
			var j int32
			if dense != nil {
				slot := &dense[denseSlot(&g, &mul)]
				if j = *slot - 1; j < first {
					j = gs.add(group{bucket: b, k: g})
					*slot = j + 1
				}
			} else {
				var ok bool
				if j, ok = index[g]; !ok {
					j = gs.add(group{bucket: b, k: g})
					index[g] = j
				}
			}
			cnts[i].addTo(&gs.at(j).c)
		}
	})
	return err
}

// denseSlot returns the slot of group key g in a dense array whose fields
// have the multipliers mul.
func denseSlot(g, mul *key) uint32 {
	return g.org*mul.org + g.client*mul.client + g.user*mul.user + g.tmpl*mul.tmpl + g.method*mul.method
}

// take appends the groups of o, which summed other buckets, to a's.
func (a *aggregator) take(o *aggregator) {
	for _, c := range o.gs.chunks {
		for i := range c {
			a.gs.add(c[i])
		}
	}
}

// clearDense zeroes the slots of the dense array a set, through its groups
// when they are few, before its scratch is given back.
func (a *aggregator) clearDense() {
	if a.dense == nil {
		return
	}
	if a.gs.n > len(a.dense)/8 {
		clear(a.dense)
		return
	}
	for _, c := range a.gs.chunks {
		for j := range c {
			a.dense[denseSlot(&c[j].k, &a.mul)] = 0
		}
	}
}
