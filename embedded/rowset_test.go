package embedded

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// TestReleasedRowsAreReused checks that a large result's rows, handed back,
// hold the next large result, and that every answer stays exact.
func TestReleasedRowsAreReused(t *testing.T) {
	s := openTest(t, "", Options{})
	var m storetest.Model
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var events []apiusage.Event
	for i := range 6000 {
		events = append(events, apiusage.Event{
			Time: start.Add(time.Duration(i%3) * 24 * time.Hour), OrganizationID: "org",
			ClientID: fmt.Sprintf("c%d", i%50), TemplateURI: fmt.Sprintf("/t/%d", i%40), Method: "GET",
			UserID: fmt.Sprintf("u%d", i), Status: 200 + i%4*100,
		})
	}
	storetest.AppendBatch(t, s, &m, apiusage.Batch{Events: events})
	iv := apiusage.Interval{Start: start, End: start.Add(3 * 24 * time.Hour)}
	byUser := apiusage.Query{Interval: iv, Granularity: apiusage.GranularityDay, GroupBy: []apiusage.Dimension{apiusage.DimUser}, OrganizationID: "org"}
	byCTM := apiusage.Query{Interval: iv, Granularity: apiusage.GranularityDay, OrganizationID: "org",
		GroupBy: []apiusage.Dimension{apiusage.DimClient, apiusage.DimTemplateURI, apiusage.DimMethod}}

	first, err := s.QueryRowSet(context.Background(), byUser)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Rows) < minPooledRows {
		t.Fatalf("%d rows: too few for the pool, the test proves nothing", len(first.Rows))
	}
	kept := &first.Rows[:1][0]
	s.ReleaseRowSet(first)
	for _, q := range []apiusage.Query{byCTM, byUser, byUser} {
		rs, err := s.QueryRowSet(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if rows, want := rs.RowSlice(), storetest.Count(m.Events(), q); !slices.Equal(rows, want) {
			t.Fatalf("%s after a release: %d rows, want %d (or different)", storetest.FormatQuery(q), len(rows), len(want))
		}
		if len(rs.Rows) >= minPooledRows && &rs.Rows[:1][0] != kept {
			t.Errorf("%s: %d rows not in the released memory", storetest.FormatQuery(q), len(rs.Rows))
		}
		s.ReleaseRowSet(rs)
	}
}
