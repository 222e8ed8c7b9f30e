package embedded

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// workload makes events shaped like real API traffic: a few organizations,
// clients and templates used with a skew (a Zipf law: some are far more
// common than others), many users, mostly 2xx.
type workload struct {
	rng                    *rand.Rand
	client, tmpl, user     *rand.Zipf
	orgs, clients, users   []string
	tmpls, methods         []string
	statuses               []int
	start                  time.Time
	perHour, eventsCounter int
}

func newWorkload(seed uint64, perHour int) *workload {
	rng := rand.New(rand.NewPCG(seed, 1))
	w := &workload{
		rng:      rng,
		client:   rand.NewZipf(rng, 1.2, 1, 199),
		tmpl:     rand.NewZipf(rng, 1.1, 1, 299),
		user:     rand.NewZipf(rng, 1.05, 1, 19999),
		methods:  []string{"GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH"},
		statuses: []int{200, 200, 200, 200, 200, 200, 201, 204, 304, 400, 401, 404, 429, 500, 503},
		start:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		perHour:  perHour,
	}
	for i := range 10 {
		w.orgs = append(w.orgs, fmt.Sprintf("org-%d", i))
	}
	for i := range 200 {
		w.clients = append(w.clients, fmt.Sprintf("client-%04d", i))
	}
	for i := range 300 {
		w.tmpls = append(w.tmpls, fmt.Sprintf("api/v2/resource%d/{id}/sub%d", i/10, i%10))
	}
	for i := range 20000 {
		w.users = append(w.users, fmt.Sprintf("user-%05d", i))
	}
	return w
}

// event returns the next event; time advances so that perHour events fill
// each hour.
func (w *workload) event() apiusage.Event {
	n := w.eventsCounter
	w.eventsCounter++
	// Dividing first: n × time.Hour overflows past 2.5 million events.
	at := w.start.Add(time.Duration(n) * (time.Hour / time.Duration(w.perHour)))
	c := int(w.client.Uint64())
	e := apiusage.Event{
		Time:           at,
		OrganizationID: w.orgs[c%len(w.orgs)],
		ClientID:       w.clients[c],
		TemplateURI:    w.tmpls[(int(w.tmpl.Uint64())+c)%len(w.tmpls)],
		Method:         w.methods[w.rng.IntN(len(w.methods))],
		Status:         w.statuses[w.rng.IntN(len(w.statuses))],
	}
	if w.rng.IntN(3) > 0 {
		e.UserID = w.users[w.user.Uint64()]
	}
	return e
}

func (w *workload) batch(n int) apiusage.Batch {
	b := apiusage.Batch{Events: make([]apiusage.Event, n)}
	for i := range b.Events {
		b.Events[i] = w.event()
	}
	return b
}

// BenchmarkRollupUpdate measures what one event costs the rollups: turning a
// batch into deltas (its Append goroutine's share) and applying them (the
// writer's), without the WAL.
func BenchmarkRollupUpdate(b *testing.B) {
	s := openTest(b, "", Options{})
	w := newWorkload(1, 50_000)
	batches := make([]apiusage.Batch, 64)
	for i := range batches {
		batches[i] = w.batch(1000)
	}
	b.ResetTimer()
	b.ReportAllocs()
	events := 0
	for i := 0; b.Loop(); i++ {
		p, err := s.prepare(context.Background(), batches[i%len(batches)])
		if err != nil {
			b.Fatal(err)
		}
		s.st.applyPrepared(p)
		s.release(p)
		events += len(batches[i%len(batches)].Events)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(events), "ns/event")
}

// BenchmarkAppend measures durable appends of 1000-event batches: one writer
// at a time, and many at once sharing fsyncs (group commit).
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openTest(b, "", Options{})
			var mu sync.Mutex
			w := newWorkload(2, 200_000)
			batches := make([]apiusage.Batch, 256)
			for i := range batches {
				batches[i] = w.batch(1000)
			}
			next := 0
			b.SetParallelism(writers)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					mu.Lock()
					batch := batches[next%len(batches)]
					next++
					mu.Unlock()
					if _, err := s.Append(context.Background(), batch); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// benchPerHour sizes BenchmarkQuery's store: smaller sizes compare
// versions quicker on a busy machine.
var benchPerHour = flag.Int("embedded.perhour", 20_000, "events an hour in BenchmarkQuery's store")

// queryFixture is a store holding days of traffic at perHour events an hour,
// built once per size: building it is the slow part.
var queryFixtures sync.Map

func queryFixture(b *testing.B, days, perHour int) *Store {
	b.Helper()
	k := [2]int{days, perHour}
	if s, ok := queryFixtures.Load(k); ok {
		return s.(*Store)
	}
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	w := newWorkload(3, perHour)
	total := days * 24 * perHour
	for n := 0; n < total; n += 10_000 {
		p, err := s.prepare(context.Background(), w.batch(min(10_000, total-n)))
		if err != nil {
			b.Fatal(err)
		}
		s.st.applyPrepared(p)
		s.release(p)
	}
	for f := range numFields {
		s.logged[f] = len(s.dict.strs[f]) // as if the WAL held them
	}
	s.freezeAll() // as after a restart, or once the days have gone cold
	queryFixtures.Store(k, s)
	return s
}

// BenchmarkQuery measures queries over a rollup of days of traffic: the
// common one (whole days, grouped by client, template and method at Day,
// answered from the slim daily rollup, for every organization and for
// one), one grouped by user (the hourly
// rollup), and one whose interval cuts days (both).
func BenchmarkQuery(b *testing.B) {
	const days = 90
	perHour := *benchPerHour // 20,000: 43 million events
	s := queryFixture(b, days, perHour)
	full, slim := 0, 0
	for _, p := range s.st.days {
		slim += len(p.slim.keys)
		for _, t := range p.hours {
			if t != nil {
				full += len(t.keys)
			}
		}
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		q    apiusage.Query
	}{
		{"days/client,template,method", apiusage.Query{
			Interval:    apiusage.Interval{Start: start, End: start.AddDate(0, 0, days)},
			Granularity: apiusage.GranularityDay,
			GroupBy:     []apiusage.Dimension{apiusage.DimClient, apiusage.DimTemplateURI, apiusage.DimMethod},
		}},
		{"days/client,template,method/one org", apiusage.Query{
			Interval:       apiusage.Interval{Start: start, End: start.AddDate(0, 0, days)},
			Granularity:    apiusage.GranularityDay,
			GroupBy:        []apiusage.Dimension{apiusage.DimClient, apiusage.DimTemplateURI, apiusage.DimMethod},
			OrganizationID: "org-3",
		}},
		{"days/client/one org", apiusage.Query{
			Interval:       apiusage.Interval{Start: start, End: start.AddDate(0, 0, days)},
			Granularity:    apiusage.GranularityMonth,
			GroupBy:        []apiusage.Dimension{apiusage.DimClient},
			OrganizationID: "org-3",
		}},
		{"week/user", apiusage.Query{
			Interval:    apiusage.Interval{Start: start, End: start.AddDate(0, 0, 7)},
			Granularity: apiusage.GranularityDay,
			GroupBy:     []apiusage.Dimension{apiusage.DimUser},
		}},
		{"week/user/one org", apiusage.Query{
			Interval:       apiusage.Interval{Start: start.AddDate(0, 0, days-7), End: start.AddDate(0, 0, days)},
			Granularity:    apiusage.GranularityDay,
			GroupBy:        []apiusage.Dimension{apiusage.DimUser},
			OrganizationID: "org-3",
		}},
		{"days/template,method/one client", apiusage.Query{
			Interval:    apiusage.Interval{Start: start, End: start.AddDate(0, 0, days)},
			Granularity: apiusage.GranularityDay,
			GroupBy:     []apiusage.Dimension{apiusage.DimTemplateURI, apiusage.DimMethod},
			ClientIDs:   []string{"client-0003"},
		}},
		{"days/search: one org, 3 clients, 2 methods", apiusage.Query{
			Interval:       apiusage.Interval{Start: start, End: start.AddDate(0, 0, days)},
			Granularity:    apiusage.GranularityDay,
			GroupBy:        []apiusage.Dimension{apiusage.DimClient, apiusage.DimMethod, apiusage.DimTemplateURI},
			OrganizationID: "org-3",
			ClientIDs:      []string{"client-0013", "client-0023", "client-0033"},
			Methods:        []string{"GET", "POST"},
		}},
		{"summary: one client, 7 days", apiusage.Query{
			Interval:    apiusage.Interval{Start: start.AddDate(0, 0, days-7), End: start.AddDate(0, 0, days).Add(-time.Hour)},
			Granularity: apiusage.GranularityDay,
			ClientIDs:   []string{"client-0003"},
			GroupBy:     []apiusage.Dimension{apiusage.DimClient},
		}},
		{"unaligned/client,method", apiusage.Query{
			Interval:    apiusage.Interval{Start: start.Add(90 * time.Minute), End: start.AddDate(0, 0, days).Add(-90 * time.Minute)},
			Granularity: apiusage.GranularityWeek,
			GroupBy:     []apiusage.Dimension{apiusage.DimClient, apiusage.DimMethod},
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			rows := 0
			cpu0 := cpuTime()
			for b.Loop() {
				r, err := s.Query(context.Background(), c.q)
				if err != nil {
					b.Fatal(err)
				}
				rows = len(r)
			}
			// CPU time (the GC's included) is steadier than wall time on a
			// machine shared with other work.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(rows), "rows")
			b.ReportMetric(float64(full), "hourly-rows")
			b.ReportMetric(float64(slim), "daily-rows")
		})
	}
}

// BenchmarkCheckpoint measures writing a snapshot of 30 days of traffic, and
// its size per event: what the data directory costs once checkpointed.
func BenchmarkCheckpoint(b *testing.B) {
	const days = 30
	perHour := *benchPerHour
	s := queryFixture(b, days, perHour)
	dir := b.TempDir()
	var size int64
	for i := 0; b.Loop(); i++ {
		seg := uint64(i + 1)
		if _, err := s.cloneState(seg, 0).write(dir); err != nil {
			b.Fatal(err)
		}
		st, err := os.Stat(filepath.Join(dir, snapName(seg)))
		if err != nil {
			b.Fatal(err)
		}
		size = st.Size()
		os.Remove(filepath.Join(dir, snapName(seg)))
	}
	b.ReportMetric(float64(size)/float64(days*24*perHour), "bytes/event")
	b.ReportMetric(float64(size)/(1<<20), "MiB")
}

// BenchmarkOpen measures a restart: loading the snapshot of 30 days of
// traffic (and freezing its tables), then with the WAL of a million more
// events (a day) to replay, as after a kill -9.
func BenchmarkOpen(b *testing.B) {
	const days = 30
	perHour := *benchPerHour
	s := queryFixture(b, days, perHour)
	snapDir := b.TempDir()
	if _, err := s.cloneState(1, 0).write(snapDir); err != nil {
		b.Fatal(err)
	}
	// The same snapshot and the WAL of a day's appends after it, copied
	// while the store is open: what a kill -9 leaves.
	walDir := b.TempDir()
	copyFiles(b, snapDir, walDir)
	{
		t, err := Open(walDir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		const more = 1_000_000
		w := newWorkload(4, more/24)
		w.start = w.start.AddDate(0, 0, days)
		for n := 0; n < more; n += 10_000 {
			if _, err := t.Append(context.Background(), w.batch(10_000)); err != nil {
				b.Fatal(err)
			}
		}
		crash := b.TempDir()
		copyFiles(b, walDir, crash)
		t.Close()
		walDir = crash
	}
	for _, c := range []struct{ name, dir string }{{"snapshot", snapDir}, {"snapshot+WAL", walDir}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var cpu int64
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				copyFiles(b, c.dir, dir)
				b.StartTimer()
				cpu0 := cpuTime()
				t, err := Open(dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - cpu0
				b.StopTimer()
				// Closing writes a snapshot: not part of a restart.
				if err := t.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// copyFiles copies the files of src but its lock into dst.
func copyFiles(tb testing.TB, src, dst string) {
	tb.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "LOCK" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}
