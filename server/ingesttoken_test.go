package server

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/embedded"
	"github.com/apiusage/apiusage/storetest"
)

// TestRecentEntryIsACacheLine checks that an entry, token included, fills
// one cache line: a hit reads one line.
func TestRecentEntryIsACacheLine(t *testing.T) {
	if n := unsafe.Sizeof(recentEntry{}); n != 64 {
		t.Fatalf("a recentEntry takes %d bytes, want 64", n)
	}
}

// ingestThrough decodes body with p and appends it to s as the handler
// does, the parser remembering the store's tokens; it returns the events
// and how many of the batch's values went with a token.
func ingestThrough(t *testing.T, p *eventParser, s apiusage.Store, body []byte) (events []apiusage.Event, values, known int) {
	t.Helper()
	defer p.reset()
	events, hint, err := p.decodeReused(bytes.NewReader(body), 0, true, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	if !validHinted(events, hint) {
		t.Fatal("validHinted rejects the batch")
	}
	for f, vals := range hint.Values {
		values += len(vals) - 1
		for j := range vals[1:] {
			if hint.Tokens[f][j+1] != 0 {
				known++
			}
		}
	}
	if _, err := s.Append(context.Background(), apiusage.Batch{Events: events, Strings: hint}); err != nil {
		t.Fatal(err)
	}
	p.remember(hint)
	return slices.Clone(events), values, known
}

// TestIngestTokens appends batches through one parser to a store, then to
// another, then to the first again: the parser must send the tokens the
// first store gave back to it, the second store must not take them, and
// both must count exactly what an oracle counts. Methods of two spellings
// check that a value validation rewrites does not get the token of its
// canonical form.
func TestIngestTokens(t *testing.T) {
	open := func() *embedded.Store {
		s, err := embedded.Open(t.TempDir(), embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	lines := bytes.SplitAfter(workloadBatch(t, 6000), []byte{'\n'})
	var bodies [][]byte
	for i := 0; i+2000 <= len(lines); i += 2000 {
		body := bytes.Join(lines[i:i+2000], nil)
		// Some methods as senders may spell them: the same method, two
		// values of the parser's.
		body = bytes.ReplaceAll(body, []byte(`"httpMethod":"GET","status":404`), []byte(`"httpMethod":"get","status":404`))
		bodies = append(bodies, body)
	}
	var ps eventParsers
	p := ps.get()
	var all [2][]apiusage.Event
	var named [2]uint64
	for round, s := range []*embedded.Store{a, a, b, b, a} {
		store := map[*embedded.Store]int{a: 0, b: 1}[s]
		values, known := 0, 0
		for i, body := range bodies {
			events, v, k := ingestThrough(t, p, s, body)
			if round == 0 && i == 0 && k != 0 {
				t.Errorf("%d of %d values with a token before any store gave one", k, v)
			}
			all[store] = append(all[store], events...)
			values, known = values+v, known+k
		}
		// Once a store named them, most values come back with their
		// tokens (users lose cache entries to collisions).
		if (round == 1 || round == 3) && known < values*3/4 {
			t.Errorf("round %d: %d of %d values with a token, want most", round, known, values)
		}
		// The cache's tokens are of the store last appended to.
		if named[store] == 0 {
			named[store] = p.cache.tokStore
		}
		if p.cache.tokStore == 0 || p.cache.tokStore != named[store] || named[0] == named[1] {
			t.Errorf("round %d: the cache's tokens are of %d, the stores' %v", round, p.cache.tokStore, named)
		}
	}
	if !strings.Contains(string(bodies[0]), `"get"`) {
		t.Fatal("the workload lost its lower-case methods")
	}
	iv := apiusage.Interval{Start: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i, s := range []*embedded.Store{a, b} {
		for _, q := range []apiusage.Query{
			{Interval: iv, GroupBy: []apiusage.Dimension{apiusage.DimOrganization, apiusage.DimClient, apiusage.DimUser, apiusage.DimTemplateURI, apiusage.DimMethod}},
			{Interval: iv, Granularity: apiusage.GranularityDay, GroupBy: []apiusage.Dimension{apiusage.DimUser, apiusage.DimMethod}},
		} {
			t.Run(fmt.Sprintf("store%d", i), func(t *testing.T) { storetest.CheckQuery(t, s, all[i], q) })
		}
	}
}

// TestIngestTokensFollowTheirValue sends values that share a cache entry
// one after another, through batches the store takes and batches that
// validation rejects (after which the parser learns no token): a value must
// never go with the token of the one its entry held before.
func TestIngestTokensFollowTheirValue(t *testing.T) {
	s, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Equal in length and in their first and last eight bytes: one slot.
	user := func(i int) string { return fmt.Sprintf("aaaaaaaa-%04d-zzzzzzzz", i) }
	body := func(u string, status int) []byte {
		var b bytes.Buffer
		for range 3 {
			fmt.Fprintf(&b, `{"timestamp":"2026-11-25T10:00:00Z","organizationId":"o","clientId":"c","userId":%q,"templateUri":"t","httpMethod":"GET","status":%d}`+"\n", u, status)
		}
		return b.Bytes()
	}
	var ps eventParsers
	p := ps.get()
	var all []apiusage.Event
	for i := range 6 {
		// A value the store names, then another in its entry, in a batch
		// rejected and then in one taken.
		for _, b := range []struct {
			user   string
			status int
		}{{user(2 * i), 200}, {user(2*i + 1), 999}, {user(2*i + 1), 200}} {
			events, hint, err := p.decodeReused(bytes.NewReader(body(b.user, b.status)), 0, true, 100)
			if err != nil {
				t.Fatal(err)
			}
			if valid := validHinted(events, hint); valid != (b.status == 200) {
				t.Fatalf("validHinted = %v for status %d", valid, b.status)
			}
			if b.status == 200 {
				if _, err := s.Append(context.Background(), apiusage.Batch{Events: events, Strings: hint}); err != nil {
					t.Fatal(err)
				}
				p.remember(hint)
				all = append(all, slices.Clone(events)...)
			}
			p.reset()
		}
	}
	iv := apiusage.Interval{Start: time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}
	storetest.CheckQuery(t, s, all, apiusage.Query{Interval: iv, GroupBy: []apiusage.Dimension{apiusage.DimUser}})
}

// TestIngestSharedCaches ingests batches from several goroutines at once
// through parsers of one pool, which share their caches of recent strings,
// into two stores in turn, so that a cache's tokens change store while
// other batches are parsed with it: each store must count exactly what an
// oracle counts, and the race detector must find nothing. Tokens must still
// be sent, or the test would not test them.
func TestIngestSharedCaches(t *testing.T) {
	var stores [2]*embedded.Store
	for i := range stores {
		s, err := embedded.Open(t.TempDir(), embedded.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	lines := bytes.SplitAfter(workloadBatch(t, 16000), []byte{'\n'})
	var bodies [][]byte
	for i := 0; i+1000 <= len(lines); i += 1000 {
		bodies = append(bodies, bytes.Join(lines[i:i+1000], nil))
	}
	const workers, rounds = 4, 3
	var (
		ps    eventParsers
		mu    sync.Mutex
		all   [2][]apiusage.Event
		known int
		wg    sync.WaitGroup
		errs  = make(chan error, workers)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				for i := w; i < len(bodies); i += workers {
					// Mostly the first store, each worker to the second
					// in a round of its own.
					store := 0
					if r == w%rounds && i%3 == 0 {
						store = 1
					}
					p := ps.get()
					events, hint, err := p.decodeReused(bytes.NewReader(bodies[i]), 0, true, 100_000)
					if err == nil && !validHinted(events, hint) {
						err = fmt.Errorf("validHinted rejects body %d", i)
					}
					sent := 0
					for _, toks := range hint.Tokens {
						for _, tok := range toks {
							if tok != 0 {
								sent++
							}
						}
					}
					if err == nil {
						_, err = stores[store].Append(context.Background(), apiusage.Batch{Events: events, Strings: hint})
					}
					if err != nil {
						errs <- err
						return
					}
					p.remember(hint)
					mu.Lock()
					all[store] = append(all[store], slices.Clone(events)...)
					known += sent
					mu.Unlock()
					ps.put(p)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if known == 0 {
		t.Fatal("no value was sent with a token")
	}
	iv := apiusage.Interval{Start: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i, s := range stores {
		q := apiusage.Query{Interval: iv, GroupBy: []apiusage.Dimension{apiusage.DimOrganization, apiusage.DimClient, apiusage.DimUser, apiusage.DimTemplateURI, apiusage.DimMethod}}
		t.Run(fmt.Sprintf("store%d", i), func(t *testing.T) { storetest.CheckQuery(t, s, all[i], q) })
	}
}

// TestRecentCachesGrowWithOverlap checks that parses that do not overlap
// share one cache, that overlapping ones get caches of their own up to one
// per core, and that past that they wait for one.
func TestRecentCachesGrowWithOverlap(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	var cs recentCaches
	a := cs.acquire()
	a.mu.Unlock()
	if again := cs.acquire(); again != a {
		t.Fatal("a parse after another took a second cache")
	}
	b := cs.acquire() // a is held
	if b == a {
		t.Fatal("two overlapping parses got the same cache")
	}
	got := make(chan *recentCache)
	go func() { got <- cs.acquire() }()
	b.mu.Unlock()
	a.mu.Unlock()
	c := <-got
	if c != a && c != b {
		t.Fatal("a third overlapping parse made a third cache on two cores")
	}
	if n := len(*cs.caches.Load()); n != 2 {
		t.Fatalf("%d caches, want 2", n)
	}
	c.mu.Unlock()
}
