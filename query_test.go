package apiusage_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

func TestGranularityTruncate(t *testing.T) {
	tests := []struct {
		name string
		g    apiusage.Granularity
		in   time.Time
		want time.Time
	}{
		{"day drops the clock", apiusage.GranularityDay, utc(2020, 2, 1, 23, 59, 59, 999999999), day(2020, 2, 1)},
		{"day of a leap day", apiusage.GranularityDay, utc(2020, 2, 29, 12, 0, 0, 0), day(2020, 2, 29)},
		{"day is the UTC day", apiusage.GranularityDay, time.Date(2020, 2, 2, 1, 0, 0, 0, time.FixedZone("", 2*3600)), day(2020, 2, 1)},
		{"week of a Monday is itself", apiusage.GranularityWeek, utc(2020, 2, 3, 10, 0, 0, 0), day(2020, 2, 3)},
		{"week of a Sunday is the Monday before", apiusage.GranularityWeek, utc(2020, 2, 9, 23, 0, 0, 0), day(2020, 2, 3)},
		{"week of a Wednesday", apiusage.GranularityWeek, day(2020, 2, 5), day(2020, 2, 3)},
		{"week spans the year end on Thursday", apiusage.GranularityWeek, day(2020, 12, 31), day(2020, 12, 28)},
		{"week spans the year end on Sunday", apiusage.GranularityWeek, utc(2021, 1, 3, 12, 0, 0, 0), day(2020, 12, 28)},
		{"week after the year end starts in January", apiusage.GranularityWeek, day(2021, 1, 4), day(2021, 1, 4)},
		{"week spans a leap day", apiusage.GranularityWeek, day(2020, 3, 1), day(2020, 2, 24)},
		{"month", apiusage.GranularityMonth, utc(2020, 2, 29, 23, 0, 0, 0), day(2020, 2, 1)},
		{"month of December 31", apiusage.GranularityMonth, utc(2020, 12, 31, 23, 59, 0, 0), day(2020, 12, 1)},
		{"month is the UTC month", apiusage.GranularityMonth, time.Date(2020, 3, 1, 1, 0, 0, 0, time.FixedZone("", 2*3600)), day(2020, 2, 1)},
		{"none is the zero time", apiusage.GranularityNone, utc(2020, 2, 5, 1, 0, 0, 0), time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.g.Truncate(tt.in)
			if !got.Equal(tt.want) {
				t.Errorf("Granularity(%q).Truncate(%v) = %v, want %v", tt.g, tt.in, got, tt.want)
			}
			if !got.IsZero() && got.Location() != time.UTC {
				t.Errorf("Granularity(%q).Truncate(%v) location = %v, want UTC", tt.g, tt.in, got.Location())
			}
		})
	}
}

func TestCountsCountStatus(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		want     apiusage.Counts
	}{
		{"none", nil, apiusage.Counts{}},
		{"2xx", []int{200, 201, 299}, apiusage.Counts{Status200: 3, Requests: 3}},
		{"3xx", []int{301, 304}, apiusage.Counts{Status300: 2, Requests: 2}},
		{"4xx", []int{400, 404, 499}, apiusage.Counts{Status400: 3, Requests: 3}},
		{"429 is also a 4xx", []int{429, 429, 404}, apiusage.Counts{Status400: 3, Status429: 2, Requests: 3}},
		{"5xx", []int{500, 503}, apiusage.Counts{Status500: 2, Requests: 2}},
		{"1xx counts only in the total", []int{100, 101}, apiusage.Counts{Requests: 2}},
		{"mixed", []int{200, 302, 429, 500, 100}, apiusage.Counts{Status200: 1, Status300: 1, Status400: 1, Status429: 1, Status500: 1, Requests: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got apiusage.Counts
			for _, s := range tt.statuses {
				got.CountStatus(s)
			}
			if got != tt.want {
				t.Errorf("counting %v = %+v, want %+v", tt.statuses, got, tt.want)
			}
		})
	}
}

func TestCountsAdd(t *testing.T) {
	c := apiusage.Counts{Status200: 1, Status300: 2, Status400: 3, Status500: 4, Status429: 5, Requests: 6}
	c.Add(apiusage.Counts{Status200: 10, Status300: 20, Status400: 30, Status500: 40, Status429: 50, Requests: 60})
	want := apiusage.Counts{Status200: 11, Status300: 22, Status400: 33, Status500: 44, Status429: 55, Requests: 66}
	if c != want {
		t.Errorf("Add = %+v, want %+v", c, want)
	}
}

// wantBadRequest checks that err is a bad request whose message names every
// one of parts, that is, that every problem was reported at once.
func wantBadRequest(tb testing.TB, err error, parts ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("error = nil, want a %s naming %q", apiusage.CodeBadRequest, parts)
	}
	if code := apiusage.ErrorCode(err); code != apiusage.CodeBadRequest {
		tb.Errorf("error code = %q, want %q (error %v)", code, apiusage.CodeBadRequest, err)
	}
	msg := apiusage.ErrorMessage(err)
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			tb.Errorf("error message = %q, want it to contain %q", msg, p)
		}
	}
}

func TestOrgQueryNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   apiusage.OrgQuery
		want apiusage.OrgQuery
	}{
		{
			name: "defaults",
			in:   apiusage.OrgQuery{Interval: "2020-02-01/2020-02-02"},
			want: apiusage.OrgQuery{Interval: "2020-02-01/2020-02-02", Metrics: apiusage.AllMetrics, GroupBy: []apiusage.Dimension{apiusage.DimClient}},
		},
		{
			name: "empty lists take the defaults",
			in:   apiusage.OrgQuery{Interval: "2020-02-01/2020-02-02", Metrics: []apiusage.Metric{}, GroupBy: []apiusage.Dimension{}},
			want: apiusage.OrgQuery{Interval: "2020-02-01/2020-02-02", Metrics: apiusage.AllMetrics, GroupBy: []apiusage.Dimension{apiusage.DimClient}},
		},
		{
			name: "case-insensitive enums come back canonical",
			in: apiusage.OrgQuery{Interval: "2020-02-01/2020-02-02", Granularity: "dAY",
				Metrics: []apiusage.Metric{"status429", "REQUESTS"}, GroupBy: []apiusage.Dimension{"templateURI", "httpmethod", "userid", "organizationid", "oauthclientid"}},
			want: apiusage.OrgQuery{Interval: "2020-02-01/2020-02-02", Granularity: apiusage.GranularityDay,
				Metrics: []apiusage.Metric{apiusage.MetricStatus429, apiusage.MetricRequests},
				GroupBy: []apiusage.Dimension{apiusage.DimTemplateURI, apiusage.DimMethod, apiusage.DimUser, apiusage.DimOrganization, apiusage.DimClient}},
		},
		{
			name: "duplicates dropped keeping the first",
			in: apiusage.OrgQuery{Interval: "2020-02-01/2020-02-02", Granularity: "week",
				Metrics: []apiusage.Metric{"Status200", "status200", "Status500", "STATUS200"}, GroupBy: []apiusage.Dimension{"HttpMethod", "httpMethod"}},
			want: apiusage.OrgQuery{Interval: "2020-02-01/2020-02-02", Granularity: apiusage.GranularityWeek,
				Metrics: []apiusage.Metric{apiusage.MetricStatus200, apiusage.MetricStatus500}, GroupBy: []apiusage.Dimension{apiusage.DimMethod}},
		},
		{
			name: "month",
			in:   apiusage.OrgQuery{Interval: "2020/2021", Granularity: "MONTH"},
			want: apiusage.OrgQuery{Interval: "2020/2021", Granularity: apiusage.GranularityMonth, Metrics: apiusage.AllMetrics, GroupBy: []apiusage.Dimension{apiusage.DimClient}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, iv, err := tt.in.Normalize()
			if err != nil {
				t.Fatalf("Normalize(%+v): %v", tt.in, err)
			}
			if err := tt.in.Validate(); err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", tt.in, err)
			}
			if got.Interval != tt.want.Interval || got.Granularity != tt.want.Granularity ||
				!slices.Equal(got.Metrics, tt.want.Metrics) || !slices.Equal(got.GroupBy, tt.want.GroupBy) {
				t.Errorf("Normalize(%+v) = %+v, want %+v", tt.in, got, tt.want)
			}
			wantIV, _ := apiusage.ParseInterval(tt.in.Interval)
			if iv != wantIV {
				t.Errorf("Normalize(%+v) interval = %v, want %v", tt.in, iv, wantIV)
			}
		})
	}
}

func TestOrgQueryNormalizeDoesNotAliasDefaults(t *testing.T) {
	q, _, err := apiusage.OrgQuery{Interval: "2020/2021"}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	q.Metrics[0] = "changed"
	if apiusage.AllMetrics[0] != apiusage.MetricStatus200 {
		t.Fatalf("changing a normalized query changed AllMetrics[0] to %q", apiusage.AllMetrics[0])
	}
}

func TestOrgQueryInvalid(t *testing.T) {
	tests := []struct {
		name  string
		in    apiusage.OrgQuery
		parts []string
	}{
		{"no interval", apiusage.OrgQuery{}, []string{"interval is required"}},
		{"bad interval is quoted", apiusage.OrgQuery{Interval: "2020-02-30/2020-03-01"}, []string{`"2020-02-30/2020-03-01"`}},
		{"unknown granularity", apiusage.OrgQuery{Interval: "2020/2021", Granularity: "Hour"}, []string{"granularity", `"Hour"`}},
		{"unknown metric", apiusage.OrgQuery{Interval: "2020/2021", Metrics: []apiusage.Metric{"Status200", "Status201"}}, []string{"metrics", `"Status201"`}},
		{"unknown dimension", apiusage.OrgQuery{Interval: "2020/2021", GroupBy: []apiusage.Dimension{"Platform"}}, []string{"groupBy", `"Platform"`}},
		{
			"every problem at once",
			apiusage.OrgQuery{Interval: "bad", Granularity: "Year", Metrics: []apiusage.Metric{"Status600", "Nope"}, GroupBy: []apiusage.Dimension{"Country"}},
			[]string{`"bad"`, `"Year"`, `"Status600"`, `"Nope"`, `"Country"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.in.Normalize()
			wantBadRequest(t, err, tt.parts...)
			wantBadRequest(t, tt.in.Validate(), tt.parts...)
		})
	}
}

func TestClientQueryNormalize(t *testing.T) {
	in := apiusage.ClientQuery{Interval: "2020/2021", Granularity: "day", GroupBy: []apiusage.Dimension{"templateuri", "OAuthClientID", "organizationId", "HTTPMETHOD"}}
	got, _, err := in.Normalize()
	if err != nil {
		t.Fatalf("Normalize(%+v): %v", in, err)
	}
	wantGroupBy := []apiusage.Dimension{apiusage.DimTemplateURI, apiusage.DimClient, apiusage.DimOrganization, apiusage.DimMethod}
	if got.Granularity != apiusage.GranularityDay || !slices.Equal(got.GroupBy, wantGroupBy) || !slices.Equal(got.Metrics, apiusage.AllMetrics) {
		t.Errorf("Normalize(%+v) = %+v, want granularity Day, groupBy %v and every metric", in, got, wantGroupBy)
	}

	def, _, err := apiusage.ClientQuery{Interval: "2020/2021"}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if want := []apiusage.Dimension{apiusage.DimClient}; !slices.Equal(def.GroupBy, want) {
		t.Errorf("default groupBy = %v, want %v", def.GroupBy, want)
	}
}

func TestClientQueryRejectsUserID(t *testing.T) {
	q := apiusage.ClientQuery{Interval: "2020/2021", GroupBy: []apiusage.Dimension{"OAuthClientId", "UserId"}}
	wantBadRequest(t, q.Validate(), "groupBy", `"UserId"`)
	// The same grouping is fine for an organization query.
	if err := apiusage.OrgQuery(q).Validate(); err != nil {
		t.Errorf("OrgQuery with UserId: %v, want nil", err)
	}
	// And every problem is reported together with it.
	q.Interval = ""
	q.Metrics = []apiusage.Metric{"Bogus"}
	wantBadRequest(t, q.Validate(), "interval is required", `"UserId"`, `"Bogus"`)
}

func TestSimpleSearchNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   apiusage.SimpleSearch
		want apiusage.SimpleSearch
	}{
		{
			name: "every column by default",
			in:   apiusage.SimpleSearch{Interval: "2020/2021"},
			want: apiusage.SimpleSearch{Interval: "2020/2021", Metrics: apiusage.AllColumns},
		},
		{
			name: "canonical columns and methods, duplicates dropped, names and URIs kept",
			in: apiusage.SimpleSearch{Interval: "2020/2021",
				Metrics:          []apiusage.Column{"date", "CLIENTNAME", "templateURI", "status429", "Date"},
				HTTPMethods:      []string{"get", "Post", "GET", "options"},
				OAuthClientNames: []string{"My Client", "my client"},
				TemplateURIs:     []string{"api/v2/users/{userId}", "API/v2/users/{userId}"}},
			want: apiusage.SimpleSearch{Interval: "2020/2021",
				Metrics:          []apiusage.Column{apiusage.ColumnDate, apiusage.ColumnClientName, apiusage.ColumnTemplateURI, apiusage.ColumnStatus429},
				HTTPMethods:      []string{"GET", "POST", "OPTIONS"},
				OAuthClientNames: []string{"My Client", "my client"},
				TemplateURIs:     []string{"api/v2/users/{userId}", "API/v2/users/{userId}"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, iv, err := tt.in.Normalize()
			if err != nil {
				t.Fatalf("Normalize(%+v): %v", tt.in, err)
			}
			if got.Interval != tt.want.Interval || !slices.Equal(got.Metrics, tt.want.Metrics) || !slices.Equal(got.HTTPMethods, tt.want.HTTPMethods) ||
				!slices.Equal(got.OAuthClientNames, tt.want.OAuthClientNames) || !slices.Equal(got.TemplateURIs, tt.want.TemplateURIs) {
				t.Errorf("Normalize(%+v) = %+v, want %+v", tt.in, got, tt.want)
			}
			if want := (apiusage.Interval{Start: day(2020, 1, 1), End: day(2021, 1, 1)}); iv != want {
				t.Errorf("Normalize(%+v) interval = %v, want %v", tt.in, iv, want)
			}
		})
	}
}

func TestSimpleSearchInvalid(t *testing.T) {
	tests := []struct {
		name  string
		in    apiusage.SimpleSearch
		parts []string
	}{
		{"no interval", apiusage.SimpleSearch{}, []string{"interval is required"}},
		{"Requests is not a column", apiusage.SimpleSearch{Interval: "2020/2021", Metrics: []apiusage.Column{"Requests"}}, []string{"metrics", `"Requests"`}},
		{"unknown method", apiusage.SimpleSearch{Interval: "2020/2021", HTTPMethods: []string{"GET", "FETCH"}}, []string{"httpMethods", `"FETCH"`}},
		{
			"every problem at once",
			apiusage.SimpleSearch{Interval: "2020-13/2021", Metrics: []apiusage.Column{"UserId"}, HTTPMethods: []string{"BREW"}},
			[]string{`"2020-13/2021"`, `"UserId"`, `"BREW"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.in.Normalize()
			wantBadRequest(t, err, tt.parts...)
			wantBadRequest(t, tt.in.Validate(), tt.parts...)
		})
	}
}

func TestCompareRows(t *testing.T) {
	rows := []apiusage.Row{
		{Date: day(2020, 2, 2), ClientID: "a", Method: "GET"},
		{Date: day(2020, 2, 1), ClientID: "b", Method: "GET"},
		{Date: day(2020, 2, 1), ClientID: "a", Method: "POST"},
		{Date: day(2020, 2, 1), ClientID: "a", Method: "GET"},
	}
	tests := []struct {
		name    string
		groupBy []apiusage.Dimension
		want    []string // client/method in order
	}{
		{"date then client then method", []apiusage.Dimension{apiusage.DimClient, apiusage.DimMethod}, []string{"a/GET", "a/POST", "b/GET", "a/GET"}},
		{"date then method then client", []apiusage.Dimension{apiusage.DimMethod, apiusage.DimClient}, []string{"a/GET", "b/GET", "a/POST", "a/GET"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sorted := slices.Clone(rows)
			slices.SortStableFunc(sorted, apiusage.CompareRows(tt.groupBy))
			var got []string
			for _, r := range sorted {
				got = append(got, r.ClientID+"/"+r.Method)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("sorted = %v, want %v", got, tt.want)
			}
			if !sorted[3].Date.Equal(day(2020, 2, 2)) {
				t.Errorf("last row date = %v, want the latest date", sorted[3].Date)
			}
		})
	}
}

func TestRowDimension(t *testing.T) {
	r := apiusage.Row{ClientID: "c", OrganizationID: "o", UserID: "u", TemplateURI: "t", Method: "GET"}
	tests := []struct {
		d    apiusage.Dimension
		want string
	}{
		{apiusage.DimClient, "c"}, {apiusage.DimOrganization, "o"}, {apiusage.DimUser, "u"},
		{apiusage.DimTemplateURI, "t"}, {apiusage.DimMethod, "GET"}, {"Unknown", ""},
	}
	for _, tt := range tests {
		if got := r.Dimension(tt.d); got != tt.want {
			t.Errorf("Dimension(%q) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestCountsGet(t *testing.T) {
	c := apiusage.Counts{Status200: 1, Status300: 2, Status400: 3, Status500: 4, Status429: 5, Requests: 6}
	want := map[apiusage.Metric]int64{
		apiusage.MetricStatus200: 1, apiusage.MetricStatus300: 2, apiusage.MetricStatus400: 3,
		apiusage.MetricStatus500: 4, apiusage.MetricStatus429: 5, apiusage.MetricRequests: 6,
		"Bogus": 0,
	}
	for m, w := range want {
		if got := c.Get(m); got != w {
			t.Errorf("Get(%s) = %d, want %d", m, got, w)
		}
	}
	if len(apiusage.AllMetrics) != 6 {
		t.Fatalf("AllMetrics has %d metrics; Get covers 6", len(apiusage.AllMetrics))
	}
}
