package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// Run holds a Store implementation to the contract. newStore returns a new,
// empty store for each subtest and arranges its own cleanup (t.Cleanup); Run
// closes nothing.
//
// Every check compares the store with the Model and Count on the same events,
// exactly: counts, buckets, groups, order, client names and receipts.
func Run(t *testing.T, newStore func(t *testing.T) apiusage.Store) {
	t.Run("RandomEventsAndQueries", func(t *testing.T) { testRandom(t, newStore(t)) })
	t.Run("IdempotencyKeyReplays", func(t *testing.T) { testIdempotency(t, newStore(t)) })
	t.Run("EventIDsCountOnce", func(t *testing.T) { testEventIDs(t, newStore(t)) })
	t.Run("EmptyResults", func(t *testing.T) { testEmpty(t, newStore(t)) })
	t.Run("HourEdges", func(t *testing.T) { testHourEdges(t, newStore(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceled(t, newStore(t)) })
	t.Run("ConcurrentAppendsAndQueries", func(t *testing.T) { testConcurrent(t, newStore(t)) })
}

// AppendBatch appends b to s and checks the receipt against m, which it
// updates the same way.
func AppendBatch(tb testing.TB, s apiusage.Store, m *Model, b apiusage.Batch) apiusage.Receipt {
	tb.Helper()
	got, err := s.Append(context.Background(), b)
	if err != nil {
		tb.Fatalf("Append(%d events, key %q): %v", len(b.Events), b.IdempotencyKey, err)
	}
	want := m.Append(b)
	if got != want {
		tb.Fatalf("Append(%d events, key %q) receipt = %+v, want %+v", len(b.Events), b.IdempotencyKey, got, want)
	}
	return got
}

// CheckQuery runs q on s and compares the rows with Count(events, q).
func CheckQuery(tb testing.TB, s apiusage.Store, events []apiusage.Event, q apiusage.Query) {
	tb.Helper()
	got, err := s.Query(context.Background(), q)
	if err != nil {
		tb.Fatalf("Query(%s): %v", FormatQuery(q), err)
	}
	want := Count(events, q)
	if diff := DiffRows(got, want); diff != "" {
		tb.Fatalf("Query(%s): %s", FormatQuery(q), diff)
	}
}

// CheckClientNames compares s.ClientNames with m's. Entries with an empty
// name are ignored: a store may or may not list clients that never had one.
func CheckClientNames(tb testing.TB, s apiusage.Store, m *Model) {
	tb.Helper()
	got, err := s.ClientNames(context.Background())
	if err != nil {
		tb.Fatalf("ClientNames: %v", err)
	}
	maps.DeleteFunc(got, func(_, v string) bool { return v == "" })
	if want := m.ClientNames(); !maps.Equal(got, want) {
		tb.Fatalf("ClientNames() = %v, want %v", got, want)
	}
}

// DiffRows describes the first difference between got and want, or returns
// "" when they are equal. Dates compare as instants.
func DiffRows(got, want []apiusage.Row) string {
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if !g.Date.Equal(w.Date) || g.ClientID != w.ClientID || g.ClientName != w.ClientName ||
			g.OrganizationID != w.OrganizationID || g.UserID != w.UserID ||
			g.TemplateURI != w.TemplateURI || g.Method != w.Method || g.Counts != w.Counts {
			return fmt.Sprintf("row %d (of %d, want %d):\n got  %s\n want %s", i, len(got), len(want), FormatRow(g), FormatRow(w))
		}
	}
	switch {
	case len(got) > len(want):
		return fmt.Sprintf("got %d rows, want %d; first extra: %s", len(got), len(want), FormatRow(got[len(want)]))
	case len(got) < len(want):
		return fmt.Sprintf("got %d rows, want %d; first missing: %s", len(got), len(want), FormatRow(want[len(got)]))
	}
	return ""
}

// FormatRow formats a row on one line.
func FormatRow(r apiusage.Row) string {
	return fmt.Sprintf("{%s client=%q name=%q org=%q user=%q tmpl=%q method=%q %+v}",
		r.Date.UTC().Format(time.RFC3339), r.ClientID, r.ClientName, r.OrganizationID, r.UserID,
		r.TemplateURI, r.Method, r.Counts)
}

// FormatQuery formats a query on one line.
func FormatQuery(q apiusage.Query) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s gran=%q group=%v", q.Interval, q.Granularity, q.GroupBy)
	if q.OrganizationID != "" {
		fmt.Fprintf(&b, " org=%q", q.OrganizationID)
	}
	if q.ClientIDs != nil {
		fmt.Fprintf(&b, " clients=%q", q.ClientIDs)
	}
	if q.Methods != nil {
		fmt.Fprintf(&b, " methods=%q", q.Methods)
	}
	if q.TemplateURIs != nil {
		fmt.Fprintf(&b, " templates=%q", q.TemplateURIs)
	}
	return b.String()
}

// RandomBatches appends n batches of g.Batches to s, checking every receipt
// against m.
func RandomBatches(tb testing.TB, s apiusage.Store, m *Model, g *Gen, n, maxSize int) {
	tb.Helper()
	for _, b := range g.Batches(n, maxSize) {
		AppendBatch(tb, s, m, b)
	}
}

func testRandom(t *testing.T, s apiusage.Store) {
	g := NewGen(1)
	var m Model
	RandomBatches(t, s, &m, g, 12, 600)
	for range 400 {
		CheckQuery(t, s, m.Events(), g.Query())
	}
	CheckClientNames(t, s, &m)

	// More batches after queries: a store must not answer from a stale
	// cache or lose what it already had.
	RandomBatches(t, s, &m, g, 4, 300)
	for range 100 {
		CheckQuery(t, s, m.Events(), g.Query())
	}
	// Every granularity and every single dimension over everything.
	all := apiusage.Interval{Start: date(1969, 1, 1, 0, 0), End: date(2100, 1, 1, 0, 0)}
	for _, gran := range []apiusage.Granularity{"", apiusage.GranularityDay, apiusage.GranularityWeek, apiusage.GranularityMonth} {
		for _, d := range []apiusage.Dimension{apiusage.DimClient, apiusage.DimOrganization, apiusage.DimUser, apiusage.DimTemplateURI, apiusage.DimMethod} {
			CheckQuery(t, s, m.Events(), apiusage.Query{Interval: all, Granularity: gran, GroupBy: []apiusage.Dimension{d}})
		}
		CheckQuery(t, s, m.Events(), apiusage.Query{Interval: all, Granularity: gran})
	}
	CheckClientNames(t, s, &m)
}

func testIdempotency(t *testing.T, s apiusage.Store) {
	g := NewGen(2)
	var m Model
	first := apiusage.Batch{IdempotencyKey: "client-1:abc", Events: g.Events(50)}
	first.Events[1].ID, first.Events[2].ID = "dup", "dup"
	first.Events[2].OrganizationID = first.Events[1].OrganizationID
	r := AppendBatch(t, s, &m, first)
	if r.Replayed || r.Accepted != 50 || r.Duplicates < 1 {
		t.Fatalf("first receipt = %+v, want 50 accepted, a duplicate, not replayed", r)
	}
	// The same key with other events: the first receipt, nothing stored.
	again := apiusage.Batch{IdempotencyKey: "client-1:abc", Events: g.Events(7)}
	r = AppendBatch(t, s, &m, again)
	if !r.Replayed || r.Accepted != 50 {
		t.Fatalf("replayed receipt = %+v, want the first receipt, replayed", r)
	}
	// Keys are exact strings: a different one stores.
	AppendBatch(t, s, &m, apiusage.Batch{IdempotencyKey: "client-2:abc", Events: g.Events(5)})
	// An empty batch with a key is remembered too.
	AppendBatch(t, s, &m, apiusage.Batch{IdempotencyKey: "empty"})
	AppendBatch(t, s, &m, apiusage.Batch{IdempotencyKey: "empty", Events: g.Events(3)})
	// Without a key nothing is replayed.
	b := apiusage.Batch{Events: g.Events(4)}
	AppendBatch(t, s, &m, b)
	AppendBatch(t, s, &m, b)
	for range 100 {
		CheckQuery(t, s, m.Events(), g.Query())
	}
	CheckClientNames(t, s, &m)
}

func testEventIDs(t *testing.T, s apiusage.Store) {
	g := NewGen(3)
	var m Model
	ev := func(org, id string, status int) apiusage.Event {
		e := g.Event()
		e.OrganizationID, e.ClientID, e.ID, e.Status = org, "client-x", id, status
		e.Time = date(2024, 2, 29, 10, 30)
		return e
	}
	cases := []struct {
		name  string
		batch []apiusage.Event
		dups  int
	}{
		{"fresh", []apiusage.Event{ev("o1", "a", 200), ev("o1", "b", 200), ev("o1", "", 200)}, 0},
		{"seen before", []apiusage.Event{ev("o1", "a", 500), ev("o1", "c", 404)}, 1},
		{"twice in one batch", []apiusage.Event{ev("o1", "d", 200), ev("o1", "d", 500), ev("o1", "d", 429)}, 2},
		{"same id in another org", []apiusage.Event{ev("o2", "a", 301)}, 0},
		{"no id never deduplicated", []apiusage.Event{ev("o1", "", 200), ev("o1", "", 200)}, 0},
		{"all seen", []apiusage.Event{ev("o1", "a", 200), ev("o1", "b", 200), ev("o2", "a", 200)}, 3},
	}
	for _, c := range cases {
		r := AppendBatch(t, s, &m, apiusage.Batch{Events: c.batch})
		if r.Duplicates != c.dups || r.Accepted != len(c.batch) {
			t.Fatalf("%s: receipt = %+v, want %d accepted, %d duplicates", c.name, r, len(c.batch), c.dups)
		}
	}
	for _, gran := range []apiusage.Granularity{"", apiusage.GranularityDay} {
		CheckQuery(t, s, m.Events(), apiusage.Query{
			Interval:    apiusage.Interval{Start: date(2024, 2, 29, 0, 0), End: date(2024, 3, 1, 0, 0)},
			Granularity: gran,
			GroupBy:     []apiusage.Dimension{apiusage.DimOrganization, apiusage.DimClient},
		})
	}
	rows, err := s.Query(context.Background(), apiusage.Query{
		Interval: apiusage.Interval{Start: date(2024, 2, 29, 0, 0), End: date(2024, 3, 1, 0, 0)},
		GroupBy:  []apiusage.Dimension{apiusage.DimOrganization},
	})
	if err != nil {
		t.Fatal(err)
	}
	// o1: a, b, no id, c, d, no id, no id = 7; o2: a = 1.
	if len(rows) != 2 || rows[0].Counts.Requests != 7 || rows[1].Counts.Requests != 1 {
		t.Fatalf("requests by organization = %v, want o1: 7, o2: 1", rows)
	}
}

func testEmpty(t *testing.T, s apiusage.Store) {
	g := NewGen(4)
	for range 20 {
		q := g.Query()
		rows, err := s.Query(context.Background(), q)
		if err != nil || len(rows) != 0 {
			t.Fatalf("Query(%s) on an empty store = %v, %v; want no rows", FormatQuery(q), rows, err)
		}
	}
	names, err := s.ClientNames(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	maps.DeleteFunc(names, func(_, v string) bool { return v == "" })
	if len(names) != 0 {
		t.Fatalf("ClientNames() on an empty store = %v, want none", names)
	}
	var m Model
	AppendBatch(t, s, &m, apiusage.Batch{Events: g.Events(100)})
	empties := []apiusage.Query{
		{Interval: apiusage.Interval{Start: date(2090, 1, 1, 0, 0), End: date(2091, 1, 1, 0, 0)}},
		{Interval: apiusage.Interval{Start: date(1960, 1, 1, 0, 0), End: date(1969, 1, 1, 0, 0)}},
		{Interval: apiusage.Interval{Start: date(1970, 1, 1, 0, 0), End: date(2030, 1, 1, 0, 0)}, OrganizationID: "org-none"},
		{Interval: apiusage.Interval{Start: date(1970, 1, 1, 0, 0), End: date(2030, 1, 1, 0, 0)}, ClientIDs: []string{"client-none"}},
		{Interval: apiusage.Interval{Start: date(1970, 1, 1, 0, 0), End: date(2030, 1, 1, 0, 0)}, TemplateURIs: []string{"api/v2/none"}},
		{Interval: apiusage.Interval{Start: date(1970, 1, 1, 0, 0), End: date(2030, 1, 1, 0, 0)}, Methods: []string{"TRACE"}},
		// Within one hour, not holding its first instant: no hour counts.
		{Interval: apiusage.Interval{Start: date(2024, 2, 29, 12, 0).Add(time.Nanosecond), End: date(2024, 2, 29, 13, 0)}},
	}
	for _, q := range empties {
		rows, err := s.Query(context.Background(), q)
		if err != nil || len(rows) != 0 {
			t.Fatalf("Query(%s) = %v, %v; want no rows", FormatQuery(q), rows, err)
		}
		CheckQuery(t, s, m.Events(), q)
	}
}

func testHourEdges(t *testing.T, s apiusage.Store) {
	g := NewGen(5)
	var m Model
	var events []apiusage.Event
	for _, a := range g.Anchors {
		for _, off := range []time.Duration{-time.Hour, -time.Nanosecond, 0, time.Nanosecond, time.Hour - time.Nanosecond, time.Hour} {
			if a.Add(off).Year() < 1970 {
				continue
			}
			e := g.Event()
			e.Time = a.Add(off)
			events = append(events, e)
		}
	}
	AppendBatch(t, s, &m, apiusage.Batch{Events: events})
	for _, a := range g.Anchors {
		for _, start := range []time.Duration{-time.Hour, -time.Nanosecond, 0, time.Nanosecond, time.Minute} {
			for _, length := range []time.Duration{time.Nanosecond, time.Hour, time.Hour + time.Nanosecond, 2 * time.Hour, 26 * time.Hour, 24 * 8 * time.Hour} {
				for _, gran := range []apiusage.Granularity{"", apiusage.GranularityDay, apiusage.GranularityWeek, apiusage.GranularityMonth} {
					CheckQuery(t, s, m.Events(), apiusage.Query{
						Interval:    apiusage.Interval{Start: a.Add(start), End: a.Add(start + length)},
						Granularity: gran,
						GroupBy:     []apiusage.Dimension{apiusage.DimOrganization, apiusage.DimMethod},
					})
				}
			}
		}
	}
}

func testCanceled(t *testing.T, s apiusage.Store) {
	g := NewGen(6)
	var m Model
	AppendBatch(t, s, &m, apiusage.Batch{Events: g.Events(20)})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Query(ctx, g.Query()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Query with a canceled context: error = %v, want context.Canceled", err)
	}
	// Append with a canceled context either fails and stores nothing, or
	// succeeds and stores everything.
	b := apiusage.Batch{Events: g.Events(20)}
	if _, err := s.Append(ctx, b); err == nil {
		m.Append(b)
	}
	all := apiusage.Interval{Start: date(1970, 1, 1, 0, 0), End: date(2100, 1, 1, 0, 0)}
	CheckQuery(t, s, m.Events(), apiusage.Query{Interval: all, GroupBy: []apiusage.Dimension{apiusage.DimClient}})
}

func testConcurrent(t *testing.T, s apiusage.Store) {
	const writers, batches, size = 4, 12, 150
	all := apiusage.Interval{Start: date(1970, 1, 1, 0, 0), End: date(2100, 1, 1, 0, 0)}
	total := apiusage.Query{Interval: all}

	// Each writer has its own organizations and ids, so that the final state
	// does not depend on the order the batches landed in.
	perWriter := make([][]apiusage.Batch, writers)
	var m Model
	check := NewGen(7)
	check.Orgs = nil
	for w := range writers {
		g := NewGen(uint64(100 + w))
		g.Namespace(fmt.Sprintf("w%d-", w))
		check.Orgs = append(check.Orgs, g.Orgs...)
		maps.Copy(check.Clients, g.Clients)
		for i := range batches {
			b := apiusage.Batch{Events: g.Events(size)}
			for j := range b.Events {
				b.Events[j].ClientName = "" // the last name would depend on timing
			}
			if i%3 == 0 {
				b.IdempotencyKey = fmt.Sprintf("w%d-%d", w, i)
			}
			perWriter[w] = append(perWriter[w], b)
		}
	}
	wantReceipts := make([][]apiusage.Receipt, writers)
	for w := range writers {
		for _, b := range perWriter[w] {
			wantReceipts[w] = append(wantReceipts[w], m.Append(b))
		}
	}
	wantTotal := Count(m.Events(), total)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, writers+2)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i, b := range perWriter[w] {
				r, err := s.Append(context.Background(), b)
				if err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, i, err)
					return
				}
				if r != wantReceipts[w][i] {
					errs <- fmt.Errorf("writer %d batch %d: receipt %+v, want %+v", w, i, r, wantReceipts[w][i])
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			var last int64
			for ctx.Err() == nil {
				rows, err := s.Query(context.Background(), total)
				if err != nil {
					errs <- fmt.Errorf("query while appending: %w", err)
					return
				}
				var n int64
				for _, r := range rows {
					n += r.Counts.Requests
				}
				if n < last || n > wantTotal[0].Counts.Requests {
					errs <- fmt.Errorf("query while appending: %d requests after %d, want a non-decreasing count up to %d", n, last, wantTotal[0].Counts.Requests)
					return
				}
				last = n
				time.Sleep(time.Millisecond)
			}
		})
	}
	wg.Wait()
	cancel()
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for range 50 {
		CheckQuery(t, s, m.Events(), check.Query())
	}
	CheckQuery(t, s, m.Events(), apiusage.Query{Interval: all, GroupBy: []apiusage.Dimension{apiusage.DimOrganization, apiusage.DimClient}})
}
