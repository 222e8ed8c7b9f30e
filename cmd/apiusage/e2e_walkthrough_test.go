package main

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// TestE2EWalkthrough is the README's curl walk-through as code: log in with
// the platform client, create an organization, create a client in it, ingest
// NDJSON and a JSON array, run an organization query and poll it, a client
// query, the summaries and a simple search read page by page. Every number
// is worked out by hand from the events below, not by the oracle, so that
// this test and the property test cannot share a mistake.
func TestE2EWalkthrough(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)

	// 1. A token for the platform client, as curl -u id:secret would get.
	resp := s.e2eLogin(t, s.BootstrapID, s.BootstrapSecret)
	if resp.Status != http.StatusOK {
		t.Fatalf("POST /oauth/token: %s", resp)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(resp.Body, &tok); err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.TokenType != "bearer" || tok.ExpiresIn != 86400 {
		t.Fatalf("POST /oauth/token: got %+v, want a bearer token that lasts 86400 s", tok)
	}
	platform := tok.AccessToken

	// 2. An organization, with its first client.
	var org struct {
		ID          string    `json:"id"`
		Name        string    `json:"name"`
		AdminClient newClient `json:"adminClient"`
	}
	s.do(t, platform, http.MethodPost, "/api/v2/organizations", map[string]string{"name": "Acme"}, http.StatusCreated, &org)
	if org.ID == "" || org.Name != "Acme" || org.AdminClient.ID == "" || org.AdminClient.Secret == "" {
		t.Fatalf("POST /api/v2/organizations: got %+v, want Acme with an admin client and its secret", org)
	}
	if !slices.Equal(slices.Sorted(slices.Values(org.AdminClient.Permissions)), slices.Sorted(slices.Values(apiusage.OrganizationPermissions))) {
		t.Errorf("admin client permissions %v, want every organization permission %v", org.AdminClient.Permissions, apiusage.OrganizationPermissions)
	}
	admin := s.token(t, org.AdminClient.ID, org.AdminClient.Secret)
	var gotOrg map[string]any
	s.do(t, admin, http.MethodGet, "/api/v2/organizations/"+org.ID, nil, http.StatusOK, &gotOrg)
	if gotOrg["id"] != org.ID || gotOrg["name"] != "Acme" {
		t.Errorf("GET /api/v2/organizations/{id}: got %v, want Acme", gotOrg)
	}

	// 3. A second client, for a reporting bot that also records requests.
	bot := s.createClient(t, admin, "Reporting Bot",
		apiusage.PermUsageOrganization, apiusage.PermUsageClient, apiusage.PermUsageSimpleSearch, apiusage.PermEventAdd)
	botToken := s.token(t, bot.ID, bot.Secret)
	var list struct {
		Entities []map[string]any `json:"entities"`
		Total    int              `json:"total"`
	}
	s.do(t, admin, http.MethodGet, "/api/v2/oauth/clients", nil, http.StatusOK, &list)
	if list.Total != 2 || len(list.Entities) != 2 {
		t.Fatalf("GET /api/v2/oauth/clients: got %+v, want the admin client and the bot", list)
	}
	for _, c := range list.Entities {
		if _, ok := c["secret"]; ok {
			t.Errorf("GET /api/v2/oauth/clients shows a secret: %v", c)
		}
		if c["organizationId"] != org.ID || c["authorizedGrantType"] != "CLIENT-CREDENTIALS" {
			t.Errorf("client %v: want organizationId %s and authorizedGrantType CLIENT-CREDENTIALS", c, org.ID)
		}
	}

	// 4. Events: three as NDJSON from the bot, four as a JSON array from the
	// admin client. "ext-1" is a client only the events know.
	adminID, botID := org.AdminClient.ID, bot.ID
	users, details, queues := "api/v2/users/{userId}", "api/v2/analytics/conversations/details/query", "api/v2/routing/queues"
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	ev := func(ts, client, user, tmpl, method string, status int) apiusage.Event {
		return apiusage.Event{Time: at(ts), OrganizationID: org.ID, ClientID: client, UserID: user,
			TemplateURI: tmpl, Method: method, Status: status}
	}
	ndjsonBatch := []apiusage.Event{
		ev("2025-06-25T10:15:02.123Z", adminID, "u1", users, "GET", 200),
		ev("2025-06-25T10:16:00Z", adminID, "", users, "get", 404),
		ev("2025-06-26T09:00:00+01:00", botID, "", details, "POST", 429),
	}
	ext := ev("2025-06-27T12:00:00Z", "ext-1", "", users, "GET", 201)
	ext.ClientName = "Legacy Tool"
	now := e2eAwayFromMidnight(t)
	today := now.Truncate(24 * time.Hour)
	yesterday, threeDaysAgo := today.Add(-24*time.Hour+6*time.Hour), today.Add(-72*time.Hour+6*time.Hour)
	arrayBatch := []apiusage.Event{
		ev("2025-06-26T09:00:00Z", botID, "", details, "POST", 200),
		ev("2025-06-27T23:59:59.999Z", adminID, "u2", queues, "GET", 302),
		ev("2025-06-28T00:00:00Z", adminID, "", queues, "DELETE", 503),
		ext,
		// Two recent events for the summaries.
		{Time: yesterday, OrganizationID: org.ID, ClientID: adminID, TemplateURI: users, Method: "GET", Status: 200},
		{Time: threeDaysAgo, OrganizationID: org.ID, ClientID: adminID, TemplateURI: users, Method: "GET", Status: 500},
	}
	resp = s.e2eRaw(t, e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/events", Token: botToken,
		Body: e2eNDJSON(t, ndjsonBatch), ContentType: "application/x-ndjson"})
	if resp.Status != http.StatusAccepted || !strings.Contains(string(resp.Body), `"accepted":3`) {
		t.Fatalf("POST NDJSON events: got %s, want 202 with accepted 3", resp)
	}
	if resp.Header.Get("ININ-Correlation-Id") == "" {
		t.Errorf("POST events: no ININ-Correlation-Id header on a success")
	}
	s.ingest(t, admin, arrayBatch)
	s.e2eWaitRequests(t, admin, "/api/v2/usage/query", 9)

	sortByClient := func(rows []map[string]any) []map[string]any {
		slices.SortStableFunc(rows, func(a, b map[string]any) int {
			return strings.Compare(a["clientId"].(string), b["clientId"].(string))
		})
		return rows
	}
	row := func(fields map[string]any) map[string]any {
		r := map[string]any{"clientId": "", "clientName": "", "organizationId": "", "userId": "", "templateUri": "", "httpMethod": ""}
		for k, v := range fields {
			r[k] = v
		}
		return r
	}
	counts := func(c200, c300, c400, c500, c429, req int) map[string]any {
		return map[string]any{"status200": c200, "status300": c300, "status400": c400, "status500": c500, "status429": c429, "requests": req}
	}
	merge := func(ms ...map[string]any) map[string]any {
		out := map[string]any{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return row(out)
	}
	check := func(what string, got []map[string]any, want []map[string]any) {
		t.Helper()
		if d := e2eDiffRows(got, e2eRows(t, want)); d != "" {
			t.Errorf("%s: %s", what, d)
		}
	}

	// 5. The organization query, polled until Complete: by client (the
	// default), all metrics (the default), one bucket without a date. The
	// DELETE at 2025-06-28T00:00 is outside the half-open interval.
	x := s.e2eStart(t, admin, "/api/v2/usage/query", map[string]any{"interval": "2025-06-25/2025-06-28"})
	if want := "/api/v2/usage/query/" + x.ExecutionID + "/results"; x.ResultsURI != want {
		t.Errorf("resultsUri %q, want %q", x.ResultsURI, want)
	}
	page := s.e2eWait(t, admin, x.ResultsURI)
	check("organization query by client", page.Results, sortByClient([]map[string]any{
		merge(map[string]any{"clientId": adminID, "clientName": "Acme admin"}, counts(1, 1, 1, 0, 0, 3)),
		merge(map[string]any{"clientId": botID, "clientName": "Reporting Bot"}, counts(1, 0, 1, 0, 1, 2)),
		merge(map[string]any{"clientId": "ext-1", "clientName": "Legacy Tool"}, counts(1, 0, 0, 0, 0, 1)),
	}))
	if page.Cursors != nil {
		t.Errorf("organization query result has cursors %+v, want none", page.Cursors)
	}

	check("organization query by day and method, two metrics",
		s.query(t, admin, "/api/v2/usage/query", map[string]any{"interval": "2025-06-25T00:00:00Z/P3D", "granularity": "day",
			"groupBy": []string{"httpmethod"}, "metrics": []string{"requests", "Status400"}}),
		[]map[string]any{
			row(map[string]any{"date": "2025-06-25T00:00:00Z", "httpMethod": "GET", "status400": 1, "requests": 2}),
			row(map[string]any{"date": "2025-06-26T00:00:00Z", "httpMethod": "POST", "status400": 1, "requests": 2}),
			row(map[string]any{"date": "2025-06-27T00:00:00Z", "httpMethod": "GET", "status400": 0, "requests": 2}),
		})

	// 6. A client query: the admin client by day and template over the
	// month, requests only.
	cx := s.e2eStart(t, admin, "/api/v2/oauth/clients/"+adminID+"/usage/query",
		map[string]any{"interval": "2025-06/2025-07", "granularity": "Day", "groupBy": []string{"TemplateUri"}, "metrics": []string{"Requests"}})
	if want := "/api/v2/oauth/clients/" + adminID + "/usage/query/results/" + cx.ExecutionID; cx.ResultsURI != want {
		t.Errorf("client query resultsUri %q, want %q", cx.ResultsURI, want)
	}
	wantClient := []map[string]any{
		row(map[string]any{"date": "2025-06-25T00:00:00Z", "templateUri": users, "requests": 2}),
		row(map[string]any{"date": "2025-06-27T00:00:00Z", "templateUri": queues, "requests": 1}),
		row(map[string]any{"date": "2025-06-28T00:00:00Z", "templateUri": queues, "requests": 1}),
	}
	check("client query", s.e2eWait(t, admin, cx.ResultsURI).Results, wantClient)

	// 7. The summaries: days=2 sees yesterday only; the default 7 days see
	// three days ago too.
	adminRow := map[string]any{"clientId": adminID, "clientName": "Acme admin"}
	check("summary of 2 days", s.query(t, admin, "/api/v2/oauth/clients/"+adminID+"/usage/summary?days=2", nil), []map[string]any{
		merge(adminRow, map[string]any{"date": yesterday.Truncate(24 * time.Hour).Format(time.RFC3339)}, counts(1, 0, 0, 0, 0, 1)),
	})
	check("summary of the default 7 days", s.query(t, admin, "/api/v2/oauth/clients/"+adminID+"/usage/summary", nil), []map[string]any{
		merge(adminRow, map[string]any{"date": threeDaysAgo.Truncate(24 * time.Hour).Format(time.RFC3339)}, counts(0, 0, 0, 1, 0, 1)),
		merge(adminRow, map[string]any{"date": yesterday.Truncate(24 * time.Hour).Format(time.RFC3339)}, counts(1, 0, 0, 0, 0, 1)),
	})

	// 8. A simple search read two rows a page: one row per day, client,
	// method and template.
	search := func(fields map[string]any) map[string]any {
		r := row(fields)
		for _, k := range []string{"status200", "status300", "status400", "status500", "status429"} {
			if _, ok := r[k]; !ok {
				r[k] = 0
			}
		}
		return r
	}
	day := func(d string) string { return "2025-06-" + d + "T00:00:00Z" }
	name := map[string]string{adminID: "Acme admin", botID: "Reporting Bot", "ext-1": "Legacy Tool"}
	bySearchOrder := func(rows []map[string]any) []map[string]any {
		slices.SortStableFunc(rows, func(a, b map[string]any) int {
			if c := strings.Compare(a["date"].(string), b["date"].(string)); c != 0 {
				return c
			}
			return strings.Compare(a["clientId"].(string), b["clientId"].(string))
		})
		return rows
	}
	client := func(id string) map[string]any { return map[string]any{"clientId": id, "clientName": name[id]} }
	cell := func(d, method, tmpl string) map[string]any {
		return map[string]any{"date": day(d), "httpMethod": method, "templateUri": tmpl}
	}
	check("simple search, two rows a page", s.e2eSearch(t, admin, map[string]any{"interval": "2025-06-25/2025-06-29"}, 2),
		bySearchOrder([]map[string]any{
			search(merge(cell("25", "GET", users), client(adminID), map[string]any{"status200": 1, "status400": 1})),
			search(merge(cell("26", "POST", details), client(botID), map[string]any{"status200": 1, "status400": 1, "status429": 1})),
			search(merge(cell("27", "GET", queues), client(adminID), map[string]any{"status300": 1})),
			search(merge(cell("27", "GET", users), client("ext-1"), map[string]any{"status200": 1})),
			search(merge(cell("28", "DELETE", queues), client(adminID), map[string]any{"status500": 1})),
		}))
	check("simple search by method and client name, some columns",
		s.e2eSearch(t, admin, map[string]any{"interval": "2025-06-25/2025-06-29", "httpMethods": []string{"get"},
			"oauthClientNames": []string{"Legacy Tool", "Reporting Bot"}, "metrics": []string{"ClientName", "status200"}}, 0),
		[]map[string]any{row(map[string]any{"clientId": "ext-1", "clientName": "Legacy Tool", "status200": 1})})
}

// e2eAwayFromMidnight returns the time now, after waiting out the last two
// minutes of a UTC day: tests whose events are placed relative to today
// query summaries the server reckons from its own clock, and both must see
// the same day.
func e2eAwayFromMidnight(tb testing.TB) time.Time {
	tb.Helper()
	now := time.Now().UTC()
	next := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
	if wait := next.Sub(now); wait < 2*time.Minute {
		tb.Logf("waiting %v for the UTC day to turn", wait)
		time.Sleep(wait + time.Second)
		return time.Now().UTC()
	}
	return now
}
