package embedded

import (
	"context"
	"testing"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// hinting is a store whose Appends carry apiusage.BatchStrings, as the
// server's decoder sends them; spoil makes the hint wrong in a way the store
// must notice.
type hinting struct {
	*Store
	spoil func(*apiusage.BatchStrings)
}

func (h hinting) Append(ctx context.Context, b apiusage.Batch) (apiusage.Receipt, error) {
	b.Events = append([]apiusage.Event(nil), b.Events...)
	b.Strings = hintOf(b.Events)
	if h.spoil != nil && len(b.Events) > 0 {
		h.spoil(b.Strings)
	}
	return h.Store.Append(ctx, b)
}

// hintOf interns the events' strings as a decoder does, each event then
// holding the very strings of the hint.
func hintOf(events []apiusage.Event) *apiusage.BatchStrings {
	h := &apiusage.BatchStrings{Refs: make([][6]uint32, len(events))}
	var seen [6]map[string]uint32
	for f := range seen {
		seen[f] = map[string]uint32{"": 0}
		h.Values[f] = []string{""}
	}
	intern := func(f int, s *string, ref *uint32) {
		r, ok := seen[f][*s]
		if !ok {
			r = uint32(len(h.Values[f]))
			seen[f][*s] = r
			h.Values[f] = append(h.Values[f], *s)
		}
		*s, *ref = h.Values[f][r], r
	}
	for i := range events {
		e, r := &events[i], &h.Refs[i]
		intern(0, &e.OrganizationID, &r[0])
		intern(1, &e.ClientID, &r[1])
		intern(2, &e.ClientName, &r[2])
		intern(3, &e.UserID, &r[3])
		intern(4, &e.TemplateURI, &r[4])
		intern(5, &e.Method, &r[5])
	}
	return h
}

// TestContractHinted runs the contract with hints on every batch: right
// ones, and wrong ones of every kind, which the store must ignore.
func TestContractHinted(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(*apiusage.BatchStrings)
	}{
		{"right", nil},
		{"refs swapped", func(h *apiusage.BatchStrings) {
			last := len(h.Refs) - 1
			h.Refs[0][1], h.Refs[last][1] = h.Refs[last][1], h.Refs[0][1]
			h.Refs[0][3] = uint32(len(h.Values[3]) - 1)
		}},
		{"ref out of range", func(h *apiusage.BatchStrings) { h.Refs[len(h.Refs)-1][4] = uint32(len(h.Values[4])) }},
		{"value changed", func(h *apiusage.BatchStrings) { h.Values[0][len(h.Values[0])-1] += "x" }},
		{"too few refs", func(h *apiusage.BatchStrings) { h.Refs = h.Refs[1:] }},
		{"no values", func(h *apiusage.BatchStrings) { h.Values[2] = nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) apiusage.Store {
				return hinting{Store: openTest(t, "", Options{}), spoil: c.spoil}
			})
		})
	}
}

// TestPrepareHintSameDeltas holds a hinted batch to the same deltas, names
// and new strings as the batch without its hint, on the workload.
func TestPrepareHintSameDeltas(t *testing.T) {
	plain := openTest(t, "", Options{})
	hinted := openTest(t, "", Options{})
	w := newWorkload(7, 2000)
	for range 5 {
		b := w.batch(3000)
		for i := range b.Events {
			if i%7 == 0 {
				b.Events[i].ClientName = "name of " + b.Events[i].ClientID
			}
		}
		hb := b
		hb.Events = append([]apiusage.Event(nil), b.Events...)
		hb.Strings = hintOf(hb.Events)
		p, err := plain.prepare(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		q, err := hinted.prepare(context.Background(), hb)
		if err != nil {
			t.Fatal(err)
		}
		got, want := describe(hinted, q), describe(plain, p)
		if len(got) != len(want) {
			t.Fatalf("hinted batch: %d deltas and names, want %d", len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("hinted batch: %v = %v, want %v", k, got[k], v)
			}
		}
		if q.size != p.size {
			t.Errorf("hinted batch: size bound %d, want %d", q.size, p.size)
		}
		plain.st.applyPrepared(p)
		hinted.st.applyPrepared(q)
		plain.release(p)
		hinted.release(q)
	}
}

// describe spells a prepared batch's deltas and names out in strings, which
// do not depend on the order the dictionary gave ids in.
func describe(s *Store, p *prepared) map[[7]string]cnt {
	strs := s.dict.all()
	out := map[[7]string]cnt{}
	for _, d := range p.deltas {
		k := [7]string{"hour", string(rune(d.hour)), strs[fOrg][d.k.org], strs[fClient][d.k.client],
			strs[fUser][d.k.user], strs[fTmpl][d.k.tmpl], strs[fMethod][d.k.method]}
		c := out[k]
		c.add(d.c)
		out[k] = c
	}
	for _, d := range p.slim {
		k := [7]string{"day", string(rune(d.hour)), strs[fOrg][d.k.org], strs[fClient][d.k.client],
			strs[fUser][d.k.user], strs[fTmpl][d.k.tmpl], strs[fMethod][d.k.method]}
		c := out[k]
		c.add(d.c)
		out[k] = c
	}
	for _, n := range p.names {
		out[[7]string{"name", strs[fClient][n.client], strs[fName][n.name]}] = cnt{total: uint32(n.pos)}
	}
	return out
}

// TestResolveHintUsedOnlyWhenRight checks that a right hint is used and
// that each kind of wrong one is not.
func TestResolveHintUsedOnlyWhenRight(t *testing.T) {
	s := openTest(t, "", Options{})
	w := newWorkload(3, 100)
	cases := []struct {
		name  string
		spoil func(*apiusage.BatchStrings)
		want  bool
	}{
		{"right", func(*apiusage.BatchStrings) {}, true},
		{"ref to another value", func(h *apiusage.BatchStrings) { h.Refs[1][1] = h.Refs[1][1]%uint32(len(h.Values[1])-1) + 1 }, false},
		{"ref out of range", func(h *apiusage.BatchStrings) { h.Refs[2][5] = 1 << 20 }, false},
		{"equal value elsewhere", func(h *apiusage.BatchStrings) {
			h.Values[0] = append(h.Values[0], h.Values[0][h.Refs[0][0]])
			h.Refs[0][0] = uint32(len(h.Values[0]) - 1)
		}, true},
		{"missing field", func(h *apiusage.BatchStrings) { h.Values[4] = nil }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := w.batch(50)
			b.Strings = hintOf(b.Events)
			c.spoil(b.Strings)
			ids := make([]uint32, numFields*len(b.Events))
			_, _, hinted, err := s.resolveHint(b, &batchScratch{}, ids)
			if err != nil || hinted != c.want {
				t.Fatalf("resolveHint: hinted %v, err %v; want hinted %v", hinted, err, c.want)
			}
		})
	}
}

// BenchmarkPrepare measures an Append goroutine's share of a 10,000-event
// batch (the suite's): resolving its strings, without the hint a decoder
// gives, with it, and with it and the store's tokens of every value (as a
// decoder remembers them), and aggregating its deltas.
func BenchmarkPrepare(b *testing.B) {
	for _, hint := range []string{"none", "values", "tokens"} {
		b.Run("hint="+hint, func(b *testing.B) {
			s := openTest(b, "", Options{})
			w := newWorkload(5, 20_000)
			batches := make([]apiusage.Batch, 16)
			for i := range batches {
				batches[i] = w.batch(10_000)
				if hint != "none" {
					batches[i].Strings = hintOf(batches[i].Events)
				}
				if hint == "tokens" {
					for f, vals := range batches[i].Strings.Values {
						batches[i].Strings.Tokens[f] = make([]uint32, len(vals))
					}
				}
				// Every value in the dictionary, as in a steady stream,
				// and the tokens filled in.
				p, err := s.prepare(context.Background(), batches[i])
				if err != nil {
					b.Fatal(err)
				}
				s.release(p)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p, err := s.prepare(context.Background(), batches[i%len(batches)])
				if err != nil {
					b.Fatal(err)
				}
				s.release(p)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10_000), "ns/event")
		})
	}
}
