package apiusage_test

import (
	"slices"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

func TestRowSetRows(t *testing.T) {
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	rs := &apiusage.RowSet{
		Strings: [apiusage.NumRefs][]string{
			{"", "org"}, {"", "c1", "c2"}, {"", "name"}, {"", "u"}, {"", "/t"}, {"", "GET", "POST"},
		},
		Dates: []time.Time{{}, day},
		Rows: []apiusage.RowRef{
			{Refs: [apiusage.NumRefs]uint32{1, 2, 1, 1, 1, 2}, Date: 1, Counts: apiusage.Counts{Status200: 3, Requests: 3}},
			{Refs: [apiusage.NumRefs]uint32{1, 1, 0, 0, 0, 1}, Counts: apiusage.Counts{Status429: 1, Requests: 1}},
		},
	}
	want := []apiusage.Row{
		{Date: day, OrganizationID: "org", ClientID: "c2", ClientName: "name", UserID: "u", TemplateURI: "/t", Method: "POST",
			Counts: apiusage.Counts{Status200: 3, Requests: 3}},
		{OrganizationID: "org", ClientID: "c1", Method: "GET", Counts: apiusage.Counts{Status429: 1, Requests: 1}},
	}
	if got := rs.RowSlice(); !slices.Equal(got, want) {
		t.Errorf("RowSlice:\n got %+v\nwant %+v", got, want)
	}
	if got := (&apiusage.RowSet{}).RowSlice(); got != nil {
		t.Errorf("empty RowSet: %v, want nil", got)
	}
}
