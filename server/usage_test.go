package server_test

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/server"
	"github.com/apiusage/apiusage/storetest"
)

// usageFixture is two tenants with usage: A has a registered client c1
// (renamed after its events named it), a second registered client c2 and an
// unregistered client "ext"; B has its own client, and c1 also made requests
// in B.
type usageFixture struct {
	e      *env
	a, b   tenant
	c1, c2 string
	bc     string
	events []apiusage.Event // every event ingested, normalized
}

func newUsageFixture(t *testing.T, mutate ...func(*server.Config)) *usageFixture {
	t.Helper()
	e := newEnv(t, mutate...)
	f := &usageFixture{e: e, a: e.newTenant("Acme"), b: e.newTenant("Bravo")}
	f.c1, _, _ = e.newClient(f.a, "c1 old")
	f.c2, _, _ = e.newClient(f.a, "c2")
	f.bc, _, _ = e.newClient(f.b, "bravo client")
	a, b := f.a.id, f.b.id
	var inA, inB []apiusage.Event
	for day := 19; day <= 25; day++ {
		inA = append(inA,
			event(a, f.c1, "c1 by event", "GET", "api/v2/users/{userId}", day, 9, 200),
			event(a, f.c1, "c1 by event", "post", "api/v2/users", day, 10, 429),
			event(a, f.c2, "", "GET", "api/v2/users/{userId}", day, 11, 503),
			event(a, "ext", "External", "DELETE", "api/v2/groups/{groupId}", day, 12, 302),
		)
		inB = append(inB,
			event(b, f.bc, "", "GET", "api/v2/users/{userId}", day, 9, 200),
			event(b, f.c1, "", "PUT", "api/v2/users/{userId}", day, 13, 404),
		)
	}
	inA[0].UserID = "user-1"
	inA[4].UserID = "user-2"
	// A ingests its own; B's requests, c1's included, come through the
	// platform, which may record any organization's.
	e.ingest(f.a.admin, inA)
	e.ingest(e.platformToken, inB)
	// c1's registered name changes after its events named it: rows show the
	// current name.
	e.call(http.StatusOK, "PUT", "/api/v2/oauth/clients/"+f.c1, f.a.admin, map[string]any{"name": "c1 renamed"})
	for _, ev := range append(inA, inB...) {
		f.events = append(f.events, ev.Normalize())
	}
	return f
}

// want renders the oracle's rows of q the way the contract writes them.
func (f *usageFixture) want(q apiusage.Query, metrics []apiusage.Metric) []map[string]any {
	names := map[string]string{f.c1: "c1 renamed", f.c2: "c2"}
	if q.OrganizationID == f.b.id {
		names = map[string]string{f.bc: "bravo client"}
	}
	out := []map[string]any{}
	for _, r := range storetest.Count(f.events, q) {
		row := map[string]any{
			"clientId": r.ClientID, "clientName": r.ClientName, "organizationId": r.OrganizationID,
			"userId": r.UserID, "templateUri": r.TemplateURI, "httpMethod": r.Method,
		}
		if n, ok := names[r.ClientID]; ok {
			row["clientName"] = n
		}
		counts := map[apiusage.Metric]int64{
			apiusage.MetricStatus200: r.Counts.Status200, apiusage.MetricStatus300: r.Counts.Status300,
			apiusage.MetricStatus400: r.Counts.Status400, apiusage.MetricStatus500: r.Counts.Status500,
			apiusage.MetricStatus429: r.Counts.Status429, apiusage.MetricRequests: r.Counts.Requests,
		}
		for _, m := range metrics {
			row[strings.ToLower(string(m[:1]))+string(m[1:])] = float64(counts[m])
		}
		if q.Granularity != apiusage.GranularityNone {
			row["date"] = r.Date.Format(time.RFC3339)
		}
		out = append(out, row)
	}
	return out
}

func checkRows(t *testing.T, got, want []map[string]any) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("the test expects no rows; it would pass for a server that returns none")
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows:\n got %v\nwant %v", got, want)
	}
}

func TestOrganizationQueryRows(t *testing.T) {
	f := newUsageFixture(t)
	nov := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		name    string
		body    map[string]any
		query   apiusage.Query
		metrics []apiusage.Metric
	}{{
		name:    "defaults: by client, every metric, no date",
		body:    map[string]any{"interval": "2026-11-01/2026-12-01"},
		query:   apiusage.Query{Interval: apiusage.Interval{Start: nov(1), End: nov(1).AddDate(0, 1, 0)}, GroupBy: []apiusage.Dimension{apiusage.DimClient}},
		metrics: apiusage.AllMetrics,
	}, {
		name: "by day, template and method, two metrics, enums in any case",
		body: map[string]any{"interval": "2026-11-20/2026-11-23", "granularity": "day",
			"metrics": []string{"status200", "STATUS429"}, "groupBy": []string{"templateuri", "HttpMethod"}},
		query: apiusage.Query{Interval: apiusage.Interval{Start: nov(20), End: nov(23)}, Granularity: apiusage.GranularityDay,
			GroupBy: []apiusage.Dimension{apiusage.DimTemplateURI, apiusage.DimMethod}},
		metrics: []apiusage.Metric{apiusage.MetricStatus200, apiusage.MetricStatus429},
	}, {
		name: "by week, user and organization, with an unknown field",
		body: map[string]any{"interval": "2026-11-16/2026-11-30", "granularity": "Week",
			"groupBy": []string{"UserId", "OrganizationId"}, "futureField": true},
		query: apiusage.Query{Interval: apiusage.Interval{Start: nov(16), End: nov(30)}, Granularity: apiusage.GranularityWeek,
			GroupBy: []apiusage.Dimension{apiusage.DimUser, apiusage.DimOrganization}},
		metrics: apiusage.AllMetrics,
	}, {
		name: "by month over a duration, a bucket the interval cuts",
		body: map[string]any{"interval": "P3DT12H/2026-11-24T12:00:00Z", "granularity": "Month", "metrics": []string{"Requests"}},
		query: apiusage.Query{Interval: apiusage.Interval{Start: nov(21), End: nov(24).Add(12 * time.Hour)}, Granularity: apiusage.GranularityMonth,
			GroupBy: []apiusage.Dimension{apiusage.DimClient}},
		metrics: []apiusage.Metric{apiusage.MetricRequests},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.query
			q.OrganizationID = f.a.id
			uri := f.e.start(f.a.admin, "/api/v2/usage/query", tt.body)
			if !strings.HasPrefix(uri, "/api/v2/usage/query/") || !strings.HasSuffix(uri, "/results") {
				t.Fatalf("resultsUri %q, want /api/v2/usage/query/{id}/results", uri)
			}
			body := f.e.wait(f.a.admin, uri)
			if _, ok := body["cursors"]; ok {
				t.Fatalf("a query result has cursors: %v", body)
			}
			checkRows(t, rows(t, body), f.want(q, tt.metrics))
		})
	}
}

func TestClientQueryCoversEveryOrganization(t *testing.T) {
	f := newUsageFixture(t)
	iv := apiusage.Interval{Start: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		name    string
		body    map[string]any
		groupBy []apiusage.Dimension
		g       apiusage.Granularity
		metrics []apiusage.Metric
	}{
		{"default: one row per bucket", map[string]any{"interval": "2026-11/2026-12"},
			[]apiusage.Dimension{apiusage.DimClient}, apiusage.GranularityNone, apiusage.AllMetrics},
		{"by organization and method, by day", map[string]any{"interval": "2026-11/2026-12", "granularity": "Day",
			"groupBy": []string{"OrganizationId", "HttpMethod"}, "metrics": []string{"Status400", "Status500"}},
			[]apiusage.Dimension{apiusage.DimOrganization, apiusage.DimMethod}, apiusage.GranularityDay,
			[]apiusage.Metric{apiusage.MetricStatus400, apiusage.MetricStatus500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri := f.e.start(f.a.admin, "/api/v2/oauth/clients/"+f.c1+"/usage/query", tt.body)
			if want := "/api/v2/oauth/clients/" + f.c1 + "/usage/query/results/"; !strings.HasPrefix(uri, want) {
				t.Fatalf("resultsUri %q, want it under %s", uri, want)
			}
			got := rows(t, f.e.wait(f.a.admin, uri))
			want := f.want(apiusage.Query{Interval: iv, Granularity: tt.g, GroupBy: tt.groupBy, ClientIDs: []string{f.c1}}, tt.metrics)
			checkRows(t, got, want)
		})
	}
	t.Run("the rows include requests made in another organization", func(t *testing.T) {
		uri := f.e.start(f.a.admin, "/api/v2/oauth/clients/"+f.c1+"/usage/query",
			map[string]any{"interval": "2026-11/2026-12", "groupBy": []string{"OrganizationId"}})
		var orgs []string
		for _, r := range rows(t, f.e.wait(f.a.admin, uri)) {
			orgs = append(orgs, r["organizationId"].(string))
		}
		if want := []string{f.a.id, f.b.id}; !reflect.DeepEqual(orgs, sortedCopy(want)) {
			t.Fatalf("organizations %v, want %v", orgs, sortedCopy(want))
		}
	})
	t.Run("UserId is not a dimension of a client query", func(t *testing.T) {
		res := f.e.do(request{method: "POST", path: "/api/v2/oauth/clients/" + f.c1 + "/usage/query", token: f.a.admin,
			body: map[string]any{"interval": "2026-11/2026-12", "groupBy": []string{"UserId"}}})
		body := checkError(t, res, http.StatusBadRequest, apiusage.CodeBadRequest)
		if msg := body["message"].(string); !strings.Contains(msg, "groupBy") || !strings.Contains(msg, "UserId") {
			t.Fatalf("message %q, want it to name groupBy and UserId", msg)
		}
	})
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestSummary(t *testing.T) {
	f := newUsageFixture(t)
	today := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		query string
		days  int
	}{{"", 7}, {"?days=3", 3}, {"?days=1", 1}} {
		t.Run(fmt.Sprintf("days %d", tt.days), func(t *testing.T) {
			uri := f.e.startWith("GET", f.a.admin, "/api/v2/oauth/clients/"+f.c1+"/usage/summary"+tt.query, nil)
			if want := "/api/v2/oauth/clients/" + f.c1 + "/usage/query/results/"; !strings.HasPrefix(uri, want) {
				t.Fatalf("resultsUri %q, want it under %s", uri, want)
			}
			got := rows(t, f.e.wait(f.a.admin, uri))
			q := apiusage.Query{
				Interval:    apiusage.Interval{Start: today.AddDate(0, 0, -tt.days), End: t0},
				Granularity: apiusage.GranularityDay, GroupBy: []apiusage.Dimension{apiusage.DimClient}, ClientIDs: []string{f.c1},
			}
			want := f.want(q, apiusage.AllMetrics)
			checkRows(t, got, want)
			if last := got[len(got)-1]["date"]; last != today.Format(time.RFC3339) {
				t.Fatalf("last row's date %v, want today %s", last, today.Format(time.RFC3339))
			}
		})
	}
	for _, bad := range []string{"0", "367", "-1", "7.5", "seven", "+7", " 7", "1e2"} {
		t.Run("days "+bad+" is a 400", func(t *testing.T) {
			res := f.e.do(request{method: "GET", path: "/api/v2/oauth/clients/" + f.c1 + "/usage/summary?days=" + urlQueryEscape(bad), token: f.a.admin})
			checkError(t, res, http.StatusBadRequest, apiusage.CodeBadRequest)
		})
	}
}

func urlQueryEscape(s string) string {
	return strings.NewReplacer("+", "%2B", " ", "%20").Replace(s)
}

// searchRows renders the oracle's simple-search rows for the columns.
func (f *usageFixture) searchRows(q apiusage.Query, columns []string) []map[string]any {
	q.Granularity = apiusage.GranularityDay
	q.GroupBy = []apiusage.Dimension{apiusage.DimClient, apiusage.DimMethod, apiusage.DimTemplateURI}
	q.OrganizationID = f.a.id
	full := f.want(q, apiusage.AllMetrics)
	for _, row := range full {
		keep := map[string]bool{"organizationId": true, "userId": true}
		for _, c := range columns {
			switch c {
			case "Date":
				keep["date"] = true
			case "ClientName":
				keep["clientName"], keep["clientId"] = true, true
			case "HttpMethod":
				keep["httpMethod"] = true
			case "TemplateUri":
				keep["templateUri"] = true
			default:
				keep[strings.ToLower(c[:1])+c[1:]] = true
			}
		}
		for k := range row {
			if keep[k] {
				continue
			}
			switch k {
			case "clientId", "clientName", "httpMethod", "templateUri":
				row[k] = ""
			default:
				delete(row, k)
			}
		}
	}
	return full
}

func TestSimpleSearch(t *testing.T) {
	f := newUsageFixture(t)
	iv := apiusage.Interval{Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)}
	all := []string{"Date", "ClientName", "HttpMethod", "TemplateUri", "Status200", "Status300", "Status400", "Status500", "Status429"}
	tests := []struct {
		name    string
		body    map[string]any
		filter  apiusage.Query
		columns []string
	}{
		{"every column by default", map[string]any{"interval": "2026-11-20/2026-11-24"}, apiusage.Query{}, all},
		{"some columns", map[string]any{"interval": "2026-11-20/2026-11-24", "metrics": []string{"date", "HttpMethod", "Status429"}},
			apiusage.Query{}, []string{"Date", "HttpMethod", "Status429"}},
		{"a registered client by its current name", map[string]any{"interval": "2026-11-20/2026-11-24", "oauthClientNames": []string{"c1 renamed"}},
			apiusage.Query{ClientIDs: []string{f.c1}}, all},
		{"an unregistered client by its event name, or two names", map[string]any{"interval": "2026-11-20/2026-11-24", "oauthClientNames": []string{"External", "c2"}},
			apiusage.Query{ClientIDs: []string{"ext", f.c2}}, all},
		{"methods and templates", map[string]any{"interval": "2026-11-20/2026-11-24", "httpMethods": []string{"get", "DELETE"},
			"templateUris": []string{"api/v2/users/{userId}", "api/v2/groups/{groupId}", "api/v2/nothing"}},
			apiusage.Query{Methods: []string{"GET", "DELETE"}, TemplateURIs: []string{"api/v2/users/{userId}", "api/v2/groups/{groupId}", "api/v2/nothing"}}, all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri := f.e.start(f.a.admin, "/api/v2/usage/simplesearch", tt.body)
			if !strings.HasPrefix(uri, "/api/v2/usage/simplesearch/") || !strings.HasSuffix(uri, "/results") {
				t.Fatalf("resultsUri %q", uri)
			}
			body := f.e.wait(f.a.admin, uri+"?pageSize=1000")
			q := tt.filter
			q.Interval = iv
			checkRows(t, rows(t, body), f.searchRows(q, tt.columns))
		})
	}
	for _, tt := range []struct {
		name  string
		names []string
	}{
		{"a registered client's old event name matches nothing", []string{"c1 by event"}},
		{"another organization's client name matches nothing", []string{"bravo client"}},
		{"an unknown name matches nothing", []string{"nobody"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			uri := f.e.start(f.a.admin, "/api/v2/usage/simplesearch", map[string]any{"interval": "2026-11-20/2026-11-24", "oauthClientNames": tt.names})
			if got := rows(t, f.e.wait(f.a.admin, uri)); len(got) != 0 {
				t.Fatalf("rows %v, want none", got)
			}
		})
	}
}

func TestSimpleSearchPaging(t *testing.T) {
	e := newEnv(t)
	a := e.newTenant("Acme")
	var events []apiusage.Event
	for i := range 25 {
		events = append(events, event(a.id, "ext", "External", "GET", fmt.Sprintf("api/v2/things/%02d", i), 20, 10, 200))
	}
	e.ingest(a.admin, events)
	uri := e.start(a.admin, "/api/v2/usage/simplesearch", map[string]any{"interval": "2026-11-20/2026-11-21"})
	whole := rows(t, e.wait(a.admin, uri+"?pageSize=1000"))
	if len(whole) != 25 {
		t.Fatalf("%d rows, want 25", len(whole))
	}
	if body := e.call(http.StatusOK, "GET", uri, a.admin, nil); len(rows(t, body)) != 25 || body["cursors"] != nil {
		t.Fatalf("default page size: %d rows and cursors %v, want 25 rows (under 100) and no cursors", len(rows(t, body)), body["cursors"])
	}

	var got []map[string]any
	var sizes []int
	after := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("more than 5 pages of 10 for 25 rows")
		}
		path := uri + "?pageSize=10"
		if after != "" {
			path += "&after=" + after
		}
		body := e.call(http.StatusOK, "GET", path, a.admin, nil)
		r := rows(t, body)
		got = append(got, r...)
		sizes = append(sizes, len(r))
		cur, _ := body["cursors"].(map[string]any)
		if cur == nil {
			break
		}
		after = cur["after"].(string)
	}
	if !reflect.DeepEqual(sizes, []int{10, 10, 5}) {
		t.Fatalf("page sizes %v, want [10 10 5]", sizes)
	}
	if !reflect.DeepEqual(got, whole) {
		t.Fatalf("pages joined:\n got %v\nwant %v", got, whole)
	}

	other := e.start(a.admin, "/api/v2/usage/simplesearch", map[string]any{"interval": "2026-11-20/2026-11-21"})
	e.wait(a.admin, other)
	first := e.call(http.StatusOK, "GET", uri+"?pageSize=10", a.admin, nil)
	cursor := first["cursors"].(map[string]any)["after"].(string)
	for _, tt := range []struct{ name, query string }{
		{"not base64", "?after=%%%"},
		{"garbage", "?after=bm90LWEtY3Vyc29y"},
		{"a cursor of another search", "?after=" + cursor + "&x=1"},
		{"pageSize 0", "?pageSize=0"},
		{"pageSize over 1000", "?pageSize=1001"},
		{"pageSize not a number", "?pageSize=ten"},
	} {
		t.Run(tt.name+" is a 400", func(t *testing.T) {
			path := uri + tt.query
			if tt.name == "a cursor of another search" {
				path = other + tt.query
			}
			checkError(t, e.do(request{method: "GET", path: path, token: a.admin}), http.StatusBadRequest, apiusage.CodeBadRequest)
		})
	}
}

func TestSimpleSearchKeepsAtMost20000Rows(t *testing.T) {
	if testing.Short() {
		t.Skip("ingests 20,001 distinct rows")
	}
	e := newEnv(t)
	a := e.newTenant("Acme")
	events := make([]apiusage.Event, 0, 20_001)
	for i := range 20_001 {
		events = append(events, event(a.id, "ext", "", "GET", fmt.Sprintf("api/v2/t/%05d", i), 20, 10, 200))
	}
	e.ingest(a.admin, events)
	uri := e.start(a.admin, "/api/v2/usage/simplesearch", map[string]any{"interval": "2026-11-20/2026-11-21", "metrics": []string{"TemplateUri"}})
	e.wait(a.admin, uri)
	n, after := 0, ""
	for range 21 {
		path := uri + "?pageSize=1000"
		if after != "" {
			path += "&after=" + after
		}
		body := e.call(http.StatusOK, "GET", path, a.admin, nil)
		n += len(rows(t, body))
		cur, _ := body["cursors"].(map[string]any)
		if cur == nil {
			break
		}
		after = cur["after"].(string)
	}
	if n != 20_000 {
		t.Fatalf("%d rows in all pages, want 20000", n)
	}
}

func TestRowShape(t *testing.T) {
	f := newUsageFixture(t)
	uri := f.e.start(f.a.admin, "/api/v2/usage/query", map[string]any{"interval": "2026-11-25/2026-11-26", "metrics": []string{"Status500"}, "groupBy": []string{"HttpMethod"}})
	res := f.e.do(request{method: "GET", path: uri, token: f.a.admin})
	for range 5000 {
		if !strings.Contains(string(res.body), "Running") {
			break
		}
		time.Sleep(2 * time.Millisecond)
		res = f.e.do(request{method: "GET", path: uri, token: f.a.admin})
	}
	// The raw JSON: every dimension present as a string, only status500, no date.
	want := `{"results":[` +
		`{"clientId":"","clientName":"","organizationId":"","userId":"","templateUri":"","httpMethod":"DELETE","status500":0},` +
		`{"clientId":"","clientName":"","organizationId":"","userId":"","templateUri":"","httpMethod":"GET","status500":1},` +
		`{"clientId":"","clientName":"","organizationId":"","userId":"","templateUri":"","httpMethod":"POST","status500":0}` +
		`],"queryStatus":"Complete"}` + "\n"
	if string(res.body) != want {
		t.Fatalf("body\n got %s\nwant %s", res.body, want)
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
}
