package main

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// tenant is an organization of the isolation test with what it owns.
type tenant struct {
	name        string
	orgID       string
	admin       newClient
	bot         newClient
	adminToken  string
	events      int
	botRequests int
	// Executions it started, by kind.
	orgExec, searchExec, clientExec, summaryExec e2eExecution
	searchCursor                                 string
}

// TestE2ETenantIsolation sets up two organizations with clients, events and
// executions, and checks from each side that nothing of the other is
// visible on any endpoint: queries count only the caller's requests, and
// every use of the other's client, organization or execution ids, or of
// guessed ones, is 404, never 403.
func TestE2ETenantIsolation(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	a := newTenant(t, s, "Acme", 7)
	b := newTenant(t, s, "Globex", 11)
	for _, c := range []struct{ from, to *tenant }{{a, b}, {b, a}} {
		t.Run(c.from.name+" cannot see "+c.to.name, func(t *testing.T) {
			checkIsolation(t, s, c.from, c.to)
		})
	}
	// Idempotency keys and event ids belong to their organization: the
	// same key and the same event id in two organizations are two batches
	// and two requests, each counted.
	t.Run("keys and event ids do not cross organizations", func(t *testing.T) {
		for _, tn := range []*tenant{a, b} {
			e := apiusage.Event{ID: "same-event-id", Time: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), OrganizationID: tn.orgID,
				ClientID: tn.admin.ID, TemplateURI: "api/v2/" + strings.ToLower(tn.name), Method: "GET", Status: 200}
			resp := s.e2eRaw(t, e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/events", Token: tn.adminToken,
				Body: e2eJSON(t, []apiusage.Event{e}), Header: map[string]string{"Idempotency-Key": "same-key"}})
			if resp.Status != http.StatusAccepted || !strings.Contains(string(resp.Body), `"accepted":1,"duplicates":0`) {
				t.Errorf("%s: POST with a key and an event id the other organization used: %s, want accepted 1, duplicates 0", tn.name, resp)
			}
			tn.events++
			s.e2eWaitRequests(t, tn.adminToken, "/api/v2/usage/query", tn.events)
		}
	})

	// Nothing that was tried changed the other organization: its clients
	// still have their names and secrets, and its counts are whole.
	for _, tn := range []*tenant{a, b} {
		var got map[string]any
		s.do(t, tn.adminToken, http.MethodGet, "/api/v2/oauth/clients/"+tn.bot.ID, nil, http.StatusOK, &got)
		if got["name"] != tn.bot.Name {
			t.Errorf("%s's bot after the other's attempts: %v, want the name %q", tn.name, got, tn.bot.Name)
		}
		s.token(t, tn.bot.ID, tn.bot.Secret)
		if n := e2eTotalRequests(s.query(t, tn.adminToken, "/api/v2/usage/query", map[string]any{"interval": "2025/2026"})); n != tn.events {
			t.Errorf("%s counts %d requests after the other's attempts, want %d", tn.name, n, tn.events)
		}
	}
}

// newTenant creates an organization with a second client, ingests n
// requests of each of its clients (the bot's as NDJSON with its own token)
// and starts one execution of every kind.
func newTenant(t *testing.T, s *testServer, name string, n int) *tenant {
	t.Helper()
	tn := &tenant{name: name}
	tn.orgID, tn.admin = s.createOrganization(t, name)
	tn.adminToken = s.token(t, tn.admin.ID, tn.admin.Secret)
	tn.bot = s.createClient(t, tn.adminToken, name+" Bot", apiusage.OrganizationPermissions...)
	var events []apiusage.Event
	for i := range 2 * n {
		client := tn.admin.ID
		if i%2 == 1 {
			client = tn.bot.ID
			tn.botRequests++
		}
		events = append(events, apiusage.Event{
			Time:           time.Date(2025, 5, 1+i%5, i, 0, 0, 0, time.UTC),
			OrganizationID: tn.orgID, ClientID: client, ClientName: name + " client",
			UserID: name + "-user", TemplateURI: "api/v2/" + strings.ToLower(name), Method: "GET", Status: 200 + i%2*300,
		})
	}
	s.ingest(t, tn.adminToken, events)
	tn.events = len(events)
	s.e2eWaitRequests(t, tn.adminToken, "/api/v2/usage/query", tn.events)

	body := map[string]any{"interval": "2025/2026"}
	tn.orgExec = s.e2eStart(t, tn.adminToken, "/api/v2/usage/query", body)
	tn.searchExec = s.e2eStart(t, tn.adminToken, "/api/v2/usage/simplesearch", body)
	tn.clientExec = s.e2eStart(t, tn.adminToken, "/api/v2/oauth/clients/"+tn.bot.ID+"/usage/query", body)
	tn.summaryExec = s.e2eStart(t, tn.adminToken, "/api/v2/oauth/clients/"+tn.bot.ID+"/usage/summary", nil)
	for _, x := range []e2eExecution{tn.orgExec, tn.clientExec, tn.summaryExec} {
		s.e2eWait(t, tn.adminToken, x.ResultsURI)
	}
	page := s.e2eWait(t, tn.adminToken, tn.searchExec.ResultsURI+"?pageSize=1")
	if page.Cursors == nil {
		t.Fatalf("%s's simple search read a row a page has no cursor", name)
	}
	tn.searchCursor = page.Cursors.After
	return tn
}

// checkIsolation checks everything the caller organization (from) could try
// on the other (to).
func checkIsolation(t *testing.T, s *testServer, from, to *tenant) {
	tok := from.adminToken
	guess := randomUUID()

	t.Run("queries count only the caller's requests", func(t *testing.T) {
		rows := s.query(t, tok, "/api/v2/usage/query", map[string]any{"interval": "1970/2100",
			"groupBy": []string{"OrganizationId", "OAuthClientId", "UserId", "TemplateUri"}})
		if n := e2eTotalRequests(rows); n != from.events {
			t.Errorf("organization query counts %d requests, want %d", n, from.events)
		}
		for _, r := range rows {
			if r["organizationId"] != from.orgID || r["clientId"] == to.admin.ID || r["clientId"] == to.bot.ID ||
				strings.Contains(r["userId"].(string), to.name) || strings.Contains(r["clientName"].(string), to.name) {
				t.Errorf("organization query row %v shows %s's data", r, to.name)
			}
		}
		search := s.e2eSearch(t, tok, map[string]any{"interval": "1970/2100"}, 0)
		for _, r := range search {
			if r["clientId"] == to.admin.ID || r["clientId"] == to.bot.ID || strings.Contains(r["templateUri"].(string), strings.ToLower(to.name)) {
				t.Errorf("simple search row %v shows %s's data", r, to.name)
			}
		}
		// Searching by the other's client names finds nothing.
		if rows := s.e2eSearch(t, tok, map[string]any{"interval": "1970/2100",
			"oauthClientNames": []string{to.bot.Name, to.admin.Name, to.name + " client"}}, 0); len(rows) != 0 {
			t.Errorf("simple search by %s's client names: %v, want no rows", to.name, rows)
		}
		// The caller's own client query does not reach into the other.
		if n := e2eTotalRequests(s.query(t, tok, "/api/v2/oauth/clients/"+from.bot.ID+"/usage/query",
			map[string]any{"interval": "1970/2100"})); n != from.botRequests {
			t.Errorf("client query of the caller's bot counts %d requests, want %d", n, from.botRequests)
		}
		var list struct {
			Entities []map[string]any `json:"entities"`
			Total    int              `json:"total"`
		}
		s.do(t, tok, http.MethodGet, "/api/v2/oauth/clients?pageSize=500", nil, http.StatusOK, &list)
		for _, c := range list.Entities {
			if c["organizationId"] != from.orgID {
				t.Errorf("the client list shows %v", c)
			}
		}
		if list.Total != 2 {
			t.Errorf("the client list has %d clients, want the caller's 2", list.Total)
		}
	})

	notFound := func(name string, req e2eRequest) errorCase {
		req.Token = tok
		return errorCase{name: name, req: req, status: http.StatusNotFound, code: apiusage.CodeNotFound}
	}
	get := func(path string) e2eRequest { return e2eRequest{Method: http.MethodGet, Path: path} }
	query := []byte(`{"interval": "2025/2026"}`)
	var cases []errorCase
	for _, c := range []newClient{to.admin, to.bot} {
		base := "/api/v2/oauth/clients/" + url.PathEscape(c.ID)
		cases = append(cases,
			notFound("client query of "+c.Name, e2eRequest{Method: http.MethodPost, Path: base + "/usage/query", Body: query}),
			notFound("summary of "+c.Name, get(base+"/usage/summary?days=30")),
			notFound("GET "+c.Name, get(base)),
			notFound("PUT "+c.Name, e2eRequest{Method: http.MethodPut, Path: base, Body: []byte(`{"name": "Hijacked", "permissions": []}`)}),
			notFound("DELETE "+c.Name, e2eRequest{Method: http.MethodDelete, Path: base}),
			notFound("rotate the secret of "+c.Name, e2eRequest{Method: http.MethodPost, Path: base + "/secret"}),
		)
	}
	cases = append(cases, notFound("GET the other organization", get("/api/v2/organizations/"+to.orgID)))

	// The other's execution ids, on every results endpoint and under every
	// client path: none of them is readable.
	clientPaths := []string{from.admin.ID, from.bot.ID, to.admin.ID, to.bot.ID}
	for name, x := range map[string]e2eExecution{"organization query": to.orgExec, "simple search": to.searchExec,
		"client query": to.clientExec, "summary": to.summaryExec, "guessed": {ExecutionID: guess}} {
		id := x.ExecutionID
		cases = append(cases,
			notFound(name+" execution on the organization results", get("/api/v2/usage/query/"+id+"/results")),
			notFound(name+" execution on the search results", get("/api/v2/usage/simplesearch/"+id+"/results")),
			notFound(name+" execution on the search results with its cursor", get("/api/v2/usage/simplesearch/"+id+"/results?pageSize=1&after="+to.searchCursor)),
		)
		for _, c := range clientPaths {
			cases = append(cases, notFound(name+" execution on the client results of "+c[:8],
				get("/api/v2/oauth/clients/"+c+"/usage/query/results/"+id)))
		}
		if x.ResultsURI != "" {
			cases = append(cases, notFound(name+" execution at its own results URI", get(x.ResultsURI)))
		}
	}
	// The caller's own executions, on a results endpoint or client path
	// other than theirs.
	cases = append(cases,
		notFound("own organization query on the search results", get("/api/v2/usage/simplesearch/"+from.orgExec.ExecutionID+"/results")),
		notFound("own search on the organization results", get("/api/v2/usage/query/"+from.searchExec.ExecutionID+"/results")),
		notFound("own organization query on a client path", get("/api/v2/oauth/clients/"+from.bot.ID+"/usage/query/results/"+from.orgExec.ExecutionID)),
		notFound("own client query under another of its clients", get("/api/v2/oauth/clients/"+from.admin.ID+"/usage/query/results/"+from.clientExec.ExecutionID)),
		notFound("own summary under another of its clients", get("/api/v2/oauth/clients/"+from.admin.ID+"/usage/query/results/"+from.summaryExec.ExecutionID)),
		notFound("own client query on the organization results", get("/api/v2/usage/query/"+from.clientExec.ExecutionID+"/results")),
	)
	runErrorCases(t, s, cases)

	t.Run("a cursor of the other's search does not open the caller's", func(t *testing.T) {
		resp := s.e2eRaw(t, e2eRequest{Method: http.MethodGet, Token: tok,
			Path: from.searchExec.ResultsURI + "?pageSize=1&after=" + to.searchCursor})
		e2eCheckError(t, "foreign cursor", resp, http.StatusBadRequest, apiusage.CodeBadRequest)
	})

	t.Run("recording in the other's name is refused", func(t *testing.T) {
		e := apiusage.Event{Time: time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC), OrganizationID: to.orgID,
			ClientID: from.admin.ID, TemplateURI: "api/v2/x", Method: "GET", Status: 200}
		resp := s.e2eRaw(t, e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/events", Token: tok, Body: e2eJSON(t, []apiusage.Event{e})})
		body := e2eCheckError(t, "ingest in the other's name", resp, http.StatusForbidden, apiusage.CodeMissingPerms)
		if body.MessageParams["permissions"] != apiusage.PermEventAddAny {
			t.Errorf("messageParams %v, want permissions %s", body.MessageParams, apiusage.PermEventAddAny)
		}
	})

	t.Run("the caller's own executions still read", func(t *testing.T) {
		for _, x := range []e2eExecution{from.orgExec, from.searchExec, from.clientExec, from.summaryExec} {
			page := s.e2eWait(t, tok, x.ResultsURI)
			// The summary covers the last days, which have no events.
			if len(page.Results) == 0 && x != from.summaryExec {
				t.Errorf("GET %s: no rows", x.ResultsURI)
			}
			for _, r := range page.Results {
				if slices.Contains([]any{to.admin.ID, to.bot.ID}, r["clientId"]) {
					t.Errorf("GET %s: row %v of the other organization", x.ResultsURI, r)
				}
			}
		}
	})
}
