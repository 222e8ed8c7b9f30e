// Package baselinetest holds the baselines (ClickHouse, PostgreSQL) of the
// benchmark to the oracle: a small workload of the benchmark's shape and
// query shapes of every kind, each answer compared with storetest.Count.
package baselinetest

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/bench/workload"
	"github.com/apiusage/apiusage/storetest"
)

// Workload returns a few days of the benchmark's workload in a small
// universe, as NDJSON and decoded. Its days hold a leap day, a month
// boundary and a week boundary.
func Workload(tb testing.TB) ([]byte, []apiusage.Event) {
	tb.Helper()
	g, err := workload.New(workload.Config{Seed: 11, Events: 5000, Days: 10,
		End:           time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC),
		Organizations: 3, Clients: 20, Users: 60, Templates: 30})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	var events []apiusage.Event
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var e apiusage.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			tb.Fatal(err)
		}
		events = append(events, e.Normalize())
	}
	return buf.Bytes(), events
}

// Queries returns query shapes of every kind over events: the benchmark's,
// each granularity, groupBy orders, filters, intervals on and off the hour,
// and one that matches nothing.
func Queries(events []apiusage.Event) []apiusage.Query {
	mid := events[len(events)/2]
	iv := func(s string) apiusage.Interval {
		v, err := apiusage.ParseInterval(s)
		if err != nil {
			panic(err)
		}
		return v
	}
	all := iv("2024-02-24/2024-03-05")
	return []apiusage.Query{
		{Interval: all, Granularity: apiusage.GranularityDay, OrganizationID: mid.OrganizationID,
			GroupBy: []apiusage.Dimension{apiusage.DimClient, apiusage.DimTemplateURI, apiusage.DimMethod}},
		{Interval: all, Granularity: apiusage.GranularityMonth, OrganizationID: mid.OrganizationID,
			GroupBy: []apiusage.Dimension{apiusage.DimClient}},
		{Interval: iv("2024-02-27/P7D"), Granularity: apiusage.GranularityDay, OrganizationID: mid.OrganizationID,
			GroupBy: []apiusage.Dimension{apiusage.DimUser}},
		{Interval: all, Granularity: apiusage.GranularityWeek, ClientIDs: []string{mid.ClientID},
			GroupBy: []apiusage.Dimension{apiusage.DimMethod, apiusage.DimTemplateURI}},
		{Interval: iv("2024-02-28T10:30:00Z/2024-03-01T07:00:00.001Z"), OrganizationID: mid.OrganizationID,
			GroupBy: []apiusage.Dimension{apiusage.DimTemplateURI, apiusage.DimOrganization}},
		{Interval: all, Granularity: apiusage.GranularityDay, OrganizationID: mid.OrganizationID,
			Methods: []string{"GET", "POST"}, TemplateURIs: []string{mid.TemplateURI, "api/v2/users"},
			GroupBy: []apiusage.Dimension{apiusage.DimClient, apiusage.DimMethod, apiusage.DimTemplateURI}},
		{Interval: all},
		{Interval: iv("2030-01-01/2030-02-01"), Granularity: apiusage.GranularityDay},
	}
}

// Check runs every query of Queries through query and compares its rows,
// order included, with the oracle's.
func Check(t *testing.T, events []apiusage.Event, query func(context.Context, apiusage.Query) ([]apiusage.Row, error)) {
	t.Helper()
	qs := Queries(events)
	for i, q := range qs {
		got, err := query(context.Background(), q)
		if err != nil {
			t.Fatalf("query %d (%+v): %v", i, q, err)
		}
		want := storetest.Count(events, q)
		if len(want) == 0 && i < len(qs)-1 {
			t.Fatalf("query %d matches no event: the comparison would prove nothing", i)
		}
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("query %d (%s %q %v org=%q clients=%v methods=%v templates=%v):\n got %d rows, first %v\nwant %d rows, first %v",
				i, q.Interval, q.Granularity, q.GroupBy, q.OrganizationID, q.ClientIDs, q.Methods, q.TemplateURIs,
				len(got), got[:min(len(got), 2)], len(want), want[:min(len(want), 2)])
		}
	}
}
