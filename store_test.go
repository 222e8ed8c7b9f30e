package apiusage_test

import (
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
