package apiusage_test

import (
	"fmt"
	"testing"

	"github.com/apiusage/apiusage"
)

// TestBatchStringsDescribes checks when a hint is a batch's own: every
// event's strings the values its refs name, within range.
func TestBatchStringsDescribes(t *testing.T) {
	events := []apiusage.Event{
		{OrganizationID: "o", ClientID: "c", TemplateURI: "t", Method: "GET"},
		{OrganizationID: "o", ClientID: "c", ClientName: "n", UserID: "u", TemplateURI: "t", Method: "POST"},
	}
	hint := func() *apiusage.BatchStrings {
		return &apiusage.BatchStrings{
			Values: [6][]string{{"", "o"}, {"", "c"}, {"", "n"}, {"", "u"}, {"", "t"}, {"", "GET", "POST"}},
			Refs:   [][6]uint32{{1, 1, 0, 0, 1, 1}, {1, 1, 1, 1, 1, 2}},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(h *apiusage.BatchStrings) *apiusage.BatchStrings
		want   bool
	}{
		{"exact", func(h *apiusage.BatchStrings) *apiusage.BatchStrings { return h }, true},
		{"nil", func(*apiusage.BatchStrings) *apiusage.BatchStrings { return nil }, false},
		{"a ref short", func(h *apiusage.BatchStrings) *apiusage.BatchStrings { h.Refs = h.Refs[:1]; return h }, false},
		{"a ref out of range", func(h *apiusage.BatchStrings) *apiusage.BatchStrings { h.Refs[1][5] = 3; return h }, false},
		{"another value", func(h *apiusage.BatchStrings) *apiusage.BatchStrings { h.Refs[1][5] = 1; return h }, false},
		{"a field without values", func(h *apiusage.BatchStrings) *apiusage.BatchStrings { h.Values[3] = nil; return h }, false},
	} {
		if got := tc.change(hint()).Describes(events); got != tc.want {
			t.Errorf("%s: Describes = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// BenchmarkDescribes checks a decoder's hint of 10,000 events, whose
// strings are the very strings of its values, as a server does twice a
// batch.
func BenchmarkDescribes(b *testing.B) {
	const n = 10_000
	h := &apiusage.BatchStrings{Refs: make([][6]uint32, n)}
	for f := range h.Values {
		for j := range 100 {
			h.Values[f] = append(h.Values[f], fmt.Sprintf("value-%d-%d-of-a-field-long-as-a-uuid", f, j))
		}
	}
	events := make([]apiusage.Event, n)
	for i := range events {
		r := &h.Refs[i]
		for f := range r {
			r[f] = uint32((i*7 + f*13) % 100)
		}
		events[i] = apiusage.Event{OrganizationID: h.Values[0][r[0]], ClientID: h.Values[1][r[1]], ClientName: h.Values[2][r[2]],
			UserID: h.Values[3][r[3]], TemplateURI: h.Values[4][r[4]], Method: h.Values[5][r[5]]}
	}
	b.ReportAllocs()
	for b.Loop() {
		if !h.Describes(events) {
			b.Fatal("the hint does not describe its events")
		}
	}
}
