package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// jsSDKDir holds the Node test that drives the official Genesys Cloud
// JavaScript SDK (purecloud-platform-client-v2, pinned in its package.json).
const jsSDKDir = "../../sdktest/js"

// TestJSSDK runs the official JavaScript SDK against the real server: it
// starts apiusage serve, creates two organizations and their clients,
// ingests known events, writes what every query must return (computed by
// the storetest oracle from the same events) and runs sdktest/js with
// npm ci and node --test, which logs in with loginClientCredentialsGrant and
// calls all seven UsageApi methods.
//
// Without node or npm the test is skipped, except under CI, where it fails.
func TestJSSDK(t *testing.T) {
	onCI := os.Getenv("CI") != ""
	if testing.Short() && !onCI {
		t.Skip("runs npm ci and node; skipped in -short mode")
	}
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		if onCI {
			t.Fatalf("CI is set but the JavaScript SDK test cannot run: node: %v; npm: %v", errNode, errNpm)
		}
		t.Skipf("node or npm not found (node: %v; npm: %v)", errNode, errNpm)
	}

	now := awayFromMidnight(t, time.Now().UTC())
	s := startServer(t, nil)
	fx := newJSFixture(t, s, now)

	expectPath := filepath.Join(t.TempDir(), "expect.json")
	b, err := json.MarshalIndent(fx.expectations(now), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(expectPath, b, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if out, err := runIn(ctx, jsSDKDir, nil, npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", jsSDKDir, err, out)
	}
	out, err := runIn(ctx, jsSDKDir, []string{
		"APIUSAGE_URL=" + s.URL,
		"APIUSAGE_CLIENT_ID=" + fx.admin.ID,
		"APIUSAGE_CLIENT_SECRET=" + fx.admin.Secret,
		"APIUSAGE_EXPECT=" + expectPath,
	}, node, "--test", "--test-reporter=spec", "usage.test.mjs")
	if err != nil {
		note := ""
		if !time.Now().UTC().Truncate(24 * time.Hour).Equal(now.Truncate(24 * time.Hour)) {
			note = "\n(the UTC day changed while the test ran, which moves the summaries' days)"
		}
		t.Fatalf("node --test usage.test.mjs: %v%s\n%s", err, note, out)
	}
	t.Logf("node --test usage.test.mjs passed:\n%s", out)
}

// runIn runs a command in dir with extra environment variables and returns
// its combined output.
func runIn(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// awayFromMidnight returns now, or waits out the last two minutes of a UTC
// day and returns the new time: the summaries count days the server reckons
// from its own clock, and the expectations must be reckoned from the same day.
func awayFromMidnight(tb testing.TB, now time.Time) time.Time {
	tb.Helper()
	next := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
	if wait := next.Sub(now); wait < 2*time.Minute {
		tb.Logf("waiting %v for the UTC day to turn", wait)
		time.Sleep(wait + time.Second)
		return time.Now().UTC()
	}
	return now
}

// jsFixture is the data the SDK test runs against: an organization Acme,
// whose admin client the SDK logs in with, a second client of Acme, a
// client only known from events, and an organization Globex.
type jsFixture struct {
	acmeID, globexID string
	admin            newClient // Acme's first client: every organization permission
	bot              newClient // a second Acme client
	globex           newClient // Globex's first client
	external         string    // a client id only events know, in Acme
	names            map[string]string
	events           []apiusage.Event // as stored: valid, normalized
}

const externalName = "Legacy Integration"

func newJSFixture(t *testing.T, s *testServer, now time.Time) *jsFixture {
	t.Helper()
	fx := &jsFixture{external: "external-client-1"}
	fx.acmeID, fx.admin = s.createOrganization(t, "Acme")
	fx.globexID, fx.globex = s.createOrganization(t, "Globex")
	acme := s.token(t, fx.admin.ID, fx.admin.Secret)
	fx.bot = s.createClient(t, acme, "Reporting Bot", apiusage.PermUsageOrganization)
	globex := s.token(t, fx.globex.ID, fx.globex.Secret)
	platform := s.token(t, s.BootstrapID, s.BootstrapSecret)
	fx.names = map[string]string{
		fx.admin.ID:  fx.admin.Name,
		fx.bot.ID:    fx.bot.Name,
		fx.globex.ID: fx.globex.Name,
		fx.external:  externalName,
	}

	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	today := now.Truncate(24 * time.Hour)
	users, queues, queue := "api/v2/users/{userId}", "api/v2/routing/queues", "api/v2/routing/queues/{queueId}"
	details := "api/v2/analytics/conversations/details/query"
	// Each line is n identical requests. wire is the method as ingested
	// (the server upper-cases it).
	type group struct {
		org, client string
		at          time.Time
		user, tmpl  string
		wire        string
		status, n   int
	}
	A, B, X, G := fx.admin.ID, fx.bot.ID, fx.external, fx.globex.ID
	groups := []group{
		{fx.acmeID, A, at("2024-03-01T09:15:00Z"), "user-1", users, "GET", 200, 3},
		{fx.acmeID, A, at("2024-03-01T10:00:00Z"), "", details, "POST", 201, 1},
		{fx.acmeID, A, at("2024-03-01T10:30:00Z"), "", details, "POST", 429, 2},
		{fx.acmeID, B, at("2024-03-01T23:59:59.999Z"), "", users, "GET", 404, 1},
		{fx.acmeID, B, at("2024-03-02T00:00:00Z"), "", users, "GET", 500, 1},
		{fx.acmeID, X, at("2024-03-04T12:00:00+02:00"), "", queues, "GET", 302, 1},
		{fx.acmeID, A, at("2024-03-05T08:00:00Z"), "user-2", users, "GET", 200, 2},
		{fx.acmeID, B, at("2024-03-05T08:00:00Z"), "", queue, "DELETE", 204, 1},
		{fx.acmeID, X, at("2024-03-11T00:00:00Z"), "", queues, "get", 200, 4},
		{fx.acmeID, A, at("2024-03-11T00:00:00Z"), "user-1", users, "GET", 101, 1},
		// Just outside March on either side.
		{fx.acmeID, A, at("2024-02-29T23:00:00Z"), "user-1", users, "GET", 200, 5},
		{fx.acmeID, A, at("2024-04-01T00:00:00Z"), "user-1", users, "GET", 200, 1},
		// Another organization: invisible to Acme's organization queries,
		// except that Acme's client used there counts in its client query.
		{fx.globexID, G, at("2024-03-04T10:00:00Z"), "", "api/v2/users/me", "GET", 200, 5},
		{fx.globexID, A, at("2024-03-05T09:00:00Z"), "", users, "GET", 200, 1},
		// Recent days, for the summaries (days=2 and the default 7).
		{fx.acmeID, A, today, "", users, "GET", 200, 2},
		{fx.acmeID, A, today.Add(-24*time.Hour + 12*time.Hour), "", users, "GET", 500, 1},
		{fx.acmeID, A, today.Add(-48 * time.Hour), "", users, "GET", 429, 1},
		{fx.acmeID, A, today.Add(-48*time.Hour - time.Second), "", users, "GET", 200, 1},
		{fx.acmeID, A, today.Add(-10 * 24 * time.Hour), "", users, "GET", 200, 1},
	}
	var acmeBatch, globexBatch, platformBatch []apiusage.Event
	for _, g := range groups {
		for range g.n {
			e := apiusage.Event{Time: g.at, OrganizationID: g.org, ClientID: g.client, UserID: g.user,
				TemplateURI: g.tmpl, Method: g.wire, Status: g.status}
			if g.client == X {
				e.ClientName = externalName
			}
			switch {
			case g.org == fx.acmeID:
				acmeBatch = append(acmeBatch, e)
			case g.client == G:
				globexBatch = append(globexBatch, e)
			default:
				// Only the platform may record a request in another
				// organization's name.
				platformBatch = append(platformBatch, e)
			}
			fx.events = append(fx.events, e.Normalize())
		}
	}
	s.ingest(t, acme, acmeBatch)
	s.ingest(t, globex, globexBatch)
	s.ingest(t, platform, platformBatch)

	// Accepted events become visible to queries within a second; wait for
	// every organization's to show rather than sleep.
	fx.waitVisible(t, s, acme, "/api/v2/usage/query", fx.count(func(e apiusage.Event) bool { return e.OrganizationID == fx.acmeID }))
	fx.waitVisible(t, s, globex, "/api/v2/usage/query", fx.count(func(e apiusage.Event) bool { return e.OrganizationID == fx.globexID }))
	fx.waitVisible(t, s, acme, "/api/v2/oauth/clients/"+pathEscape(A)+"/usage/query", fx.count(func(e apiusage.Event) bool { return e.ClientID == A }))
	return fx
}

// count returns how many of the events keep says yes to.
func (fx *jsFixture) count(keep func(apiusage.Event) bool) int {
	n := 0
	for _, e := range fx.events {
		if keep(e) {
			n++
		}
	}
	return n
}

// waitVisible runs the query at path over all time until it counts want
// requests.
func (fx *jsFixture) waitVisible(tb testing.TB, s *testServer, token, path string, want int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := 0
		for _, r := range s.query(tb, token, path, map[string]any{"interval": "2000/2100", "metrics": []string{"Requests"}}) {
			if n, ok := r["requests"].(float64); ok {
				got += int(n)
			}
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s over all time counts %d requests 10s after ingestion, want %d", path, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The expectation file's shape; see the top of sdktest/js/usage.test.mjs.
type (
	jsExpect struct {
		OrgQueries      []jsQuery `json:"orgQueries"`
		SimpleSearches  []jsQuery `json:"simpleSearches"`
		ClientQueries   []jsQuery `json:"clientQueries"`
		Summaries       []jsQuery `json:"summaries"`
		ForeignClientID string    `json:"foreignClientId"`
	}
	jsQuery struct {
		Name     string           `json:"name"`
		ClientID string           `json:"clientId,omitempty"`
		Body     map[string]any   `json:"body,omitempty"`
		PageSize int              `json:"pageSize,omitempty"`
		Days     string           `json:"days,omitempty"`
		Rows     []map[string]any `json:"rows"`
	}
)

// expectations returns the requests the SDK test makes and the rows each
// must return. Each body is written the way a caller might (enum values in
// any case); beside it is the canonical query the oracle answers.
func (fx *jsFixture) expectations(now time.Time) jsExpect {
	march := mustInterval("2024-03-01/2024-04-01")
	all := apiusage.AllMetrics
	m := func(ms ...apiusage.Metric) []apiusage.Metric { return ms }
	dims := func(ds ...apiusage.Dimension) []apiusage.Dimension { return ds }
	A, B := fx.admin.ID, fx.bot.ID
	today := now.Truncate(24 * time.Hour)

	var x jsExpect
	x.ForeignClientID = fx.globex.ID
	x.OrgQueries = []jsQuery{
		{
			Name: "requests per client over March",
			Body: map[string]any{"interval": "2024-03-01/2024-04-01"},
			Rows: fx.queryRows(apiusage.Query{Interval: march, GroupBy: dims(apiusage.DimClient), OrganizationID: fx.acmeID}, all),
		},
		{
			Name: "weekly per client and method, some metrics",
			Body: map[string]any{"interval": "2024-03-01T00:00:00.000Z/2024-04-01T00:00:00Z", "granularity": "week",
				"metrics": []string{"status200", "Status400", "STATUS429", "Requests"}, "groupBy": []string{"oauthClientId", "HttpMethod"}},
			Rows: fx.queryRows(apiusage.Query{Interval: march, Granularity: apiusage.GranularityWeek,
				GroupBy: dims(apiusage.DimClient, apiusage.DimMethod), OrganizationID: fx.acmeID},
				m(apiusage.MetricStatus200, apiusage.MetricStatus400, apiusage.MetricStatus429, apiusage.MetricRequests)),
		},
		{
			Name: "daily per user and template over the week before March 8",
			Body: map[string]any{"interval": "P7D/2024-03-08", "granularity": "Day", "metrics": []string{"Requests"}, "groupBy": []string{"UserId", "TemplateUri"}},
			Rows: fx.queryRows(apiusage.Query{Interval: mustInterval("2024-03-01/2024-03-08"), Granularity: apiusage.GranularityDay,
				GroupBy: dims(apiusage.DimUser, apiusage.DimTemplateURI), OrganizationID: fx.acmeID}, m(apiusage.MetricRequests)),
		},
	}
	x.SimpleSearches = []jsQuery{
		{
			Name:     "every column, two rows a page",
			Body:     map[string]any{"interval": "2024-03-01/2024-04-01"},
			PageSize: 2,
			Rows:     fx.searchRows(apiusage.Query{Interval: march, OrganizationID: fx.acmeID}, apiusage.AllColumns),
		},
		{
			Name: "GET requests of two clients by name, some columns",
			Body: map[string]any{"interval": "2024-03-01/2024-04-01", "metrics": []string{"date", "ClientName", "TemplateUri", "Status200", "Status400"},
				"httpMethods": []string{"get"}, "oauthClientNames": []string{externalName, fx.admin.Name}},
			PageSize: 100,
			Rows: fx.searchRows(apiusage.Query{Interval: march, OrganizationID: fx.acmeID, Methods: []string{"GET"}, ClientIDs: []string{fx.external, A}},
				[]apiusage.Column{apiusage.ColumnDate, apiusage.ColumnClientName, apiusage.ColumnTemplateURI, apiusage.ColumnStatus200, apiusage.ColumnStatus400}),
		},
	}
	x.ClientQueries = []jsQuery{
		{
			Name:     "the admin client daily by organization and template, in every organization it was used",
			ClientID: A,
			Body:     map[string]any{"interval": "2024-03-01/2024-04-01", "granularity": "day", "groupBy": []string{"OrganizationId", "templateUri"}},
			Rows: fx.queryRows(apiusage.Query{Interval: march, Granularity: apiusage.GranularityDay,
				GroupBy: dims(apiusage.DimOrganization, apiusage.DimTemplateURI), ClientIDs: []string{A}}, all),
		},
		{
			Name:     "the second client with defaults",
			ClientID: B,
			Body:     map[string]any{"interval": "2024-03-01/2024-04-01"},
			Rows:     fx.queryRows(apiusage.Query{Interval: march, GroupBy: dims(apiusage.DimClient), ClientIDs: []string{B}}, all),
		},
	}
	summary := func(days int) []map[string]any {
		iv := apiusage.Interval{Start: today.AddDate(0, 0, -days), End: now}
		return fx.queryRows(apiusage.Query{Interval: iv, Granularity: apiusage.GranularityDay,
			GroupBy: dims(apiusage.DimClient), ClientIDs: []string{A}}, all)
	}
	x.Summaries = []jsQuery{
		{Name: "the admin client over 2 days", ClientID: A, Days: "2", Rows: summary(2)},
		{Name: "the admin client over the default 7 days", ClientID: A, Rows: summary(7)},
	}
	return x
}

func mustInterval(s string) apiusage.Interval {
	iv, err := apiusage.ParseInterval(s)
	if err != nil {
		panic(err)
	}
	return iv
}

// queryRows answers q with the oracle and writes the rows as the contract's
// ApiUsageRow: every dimension field, empty when not grouped on; the
// requested metrics; the date with a granularity. A registered client's name
// is its current name.
func (fx *jsFixture) queryRows(q apiusage.Query, metrics []apiusage.Metric) []map[string]any {
	rows := []map[string]any{}
	for _, r := range storetest.Count(fx.events, q) {
		w := map[string]any{
			"clientId": r.ClientID, "clientName": "", "organizationId": r.OrganizationID,
			"userId": r.UserID, "templateUri": r.TemplateURI, "httpMethod": r.Method,
		}
		if r.ClientID != "" {
			w["clientName"] = fx.names[r.ClientID]
		}
		for _, m := range metrics {
			w[wireKey(string(m))] = r.Counts.Get(m)
		}
		if q.Granularity != apiusage.GranularityNone {
			w["date"] = r.Date.UTC().Format(time.RFC3339)
		}
		rows = append(rows, w)
	}
	return rows
}

// searchRows answers a simple search with the oracle: one row per day,
// client, method and template URI, with only the requested columns.
func (fx *jsFixture) searchRows(q apiusage.Query, cols []apiusage.Column) []map[string]any {
	q.Granularity = apiusage.GranularityDay
	q.GroupBy = []apiusage.Dimension{apiusage.DimClient, apiusage.DimMethod, apiusage.DimTemplateURI}
	rows := []map[string]any{}
	for _, r := range storetest.Count(fx.events, q) {
		w := map[string]any{}
		for _, c := range cols {
			var v any
			switch c {
			case apiusage.ColumnDate:
				v = r.Date.UTC().Format(time.RFC3339)
			case apiusage.ColumnClientName:
				v = fx.names[r.ClientID]
			case apiusage.ColumnHTTPMethod:
				v = r.Method
			case apiusage.ColumnTemplateURI:
				v = r.TemplateURI
			default:
				v = r.Counts.Get(apiusage.Metric(c))
			}
			w[wireKey(string(c))] = v
		}
		rows = append(rows, w)
	}
	return rows
}

// wireKey is the JSON name of a metric or column: Status200 is status200.
func wireKey(s string) string { return strings.ToLower(s[:1]) + s[1:] }
