package storetest

import (
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

func TestCount(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ev := func(ts, client string, status int) apiusage.Event {
		return apiusage.Event{Time: at(ts), OrganizationID: "o", ClientID: client, TemplateURI: "t", Method: "GET", Status: status}
	}
	events := []apiusage.Event{
		ev("2024-02-29T10:00:00Z", "a", 200),
		ev("2024-02-29T10:59:59.999999999Z", "a", 429),
		ev("2024-02-29T11:00:00Z", "b", 503),
		ev("2024-03-04T00:00:00Z", "a", 101), // a Monday: the next ISO week
	}
	iv := func(s, e string) apiusage.Interval { return apiusage.Interval{Start: at(s), End: at(e)} }
	cases := []struct {
		name string
		q    apiusage.Query
		want []apiusage.Row
	}{
		{"everything in one bucket", apiusage.Query{Interval: iv("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z")},
			[]apiusage.Row{{Counts: apiusage.Counts{Status200: 1, Status400: 1, Status429: 1, Status500: 1, Requests: 4}}}},
		{"by week and client", apiusage.Query{Interval: iv("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
			Granularity: apiusage.GranularityWeek, GroupBy: []apiusage.Dimension{apiusage.DimClient}},
			[]apiusage.Row{
				{Date: at("2024-02-26T00:00:00Z"), ClientID: "a", Counts: apiusage.Counts{Status200: 1, Status400: 1, Status429: 1, Requests: 2}},
				{Date: at("2024-02-26T00:00:00Z"), ClientID: "b", Counts: apiusage.Counts{Status500: 1, Requests: 1}},
				{Date: at("2024-03-04T00:00:00Z"), ClientID: "a", Counts: apiusage.Counts{Requests: 1}},
			}},
		{"a bound inside an hour skips that hour", apiusage.Query{Interval: iv("2024-02-29T10:00:00.000000001Z", "2024-02-29T12:00:00Z"),
			GroupBy: []apiusage.Dimension{apiusage.DimClient}},
			[]apiusage.Row{{ClientID: "b", Counts: apiusage.Counts{Status500: 1, Requests: 1}}}},
		{"filtered out", apiusage.Query{Interval: iv("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"), Methods: []string{"POST"}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := DiffRows(Count(events, c.q), c.want); diff != "" {
				t.Fatal(diff)
			}
		})
	}
}

func TestModel(t *testing.T) {
	e := func(org, id string) apiusage.Event { return apiusage.Event{OrganizationID: org, ID: id} }
	var m Model
	steps := []struct {
		batch apiusage.Batch
		want  apiusage.Receipt
	}{
		{apiusage.Batch{IdempotencyKey: "k", Events: []apiusage.Event{e("o", "1"), e("o", "1"), e("o", "")}}, apiusage.Receipt{Accepted: 3, Duplicates: 1}},
		{apiusage.Batch{IdempotencyKey: "k", Events: []apiusage.Event{e("o", "9")}}, apiusage.Receipt{Accepted: 3, Duplicates: 1, Replayed: true}},
		{apiusage.Batch{Events: []apiusage.Event{e("o", "1"), e("p", "1"), e("o", "")}}, apiusage.Receipt{Accepted: 3, Duplicates: 1}},
	}
	for i, s := range steps {
		if got := m.Append(s.batch); got != s.want {
			t.Fatalf("step %d: receipt %+v, want %+v", i, got, s.want)
		}
	}
	if n := len(m.Events()); n != 4 {
		t.Fatalf("events counted = %d, want 4 (o/1, o/-, p/1, o/-)", n)
	}
}
