package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// errorCase is one row of the contract's error table exercised over HTTP.
type errorCase struct {
	name   string
	req    e2eRequest
	status int
	code   string
	// contains are texts the message must hold: the field and the value
	// named, the interval quoted.
	contains []string
}

// runErrorCases sends every case and checks its full ErrorBody; it also
// checks that every answer had its own contextId.
func runErrorCases(t *testing.T, s *testServer, cases []errorCase) {
	t.Helper()
	seen := map[string]string{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := e2eCheckError(t, c.req.Method+" "+c.req.Path, s.e2eRaw(t, c.req), c.status, c.code)
			for _, want := range c.contains {
				if !strings.Contains(body.Message, want) {
					t.Errorf("message %q does not contain %q", body.Message, want)
				}
			}
			if prev, ok := seen[body.ContextID]; ok {
				t.Errorf("contextId %s of this answer was also the contextId of %q", body.ContextID, prev)
			}
			seen[body.ContextID] = c.name
		})
	}
}

// randomUUID returns a random UUIDv4, the form of the server's ids.
func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// TestE2EErrors sends every error of the contract's table (usage-api.md §5)
// that one server with default limits can give, and checks each is a full
// ErrorBody with the right status, code and message.
func TestE2EErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	orgID, adminClient := s.createOrganization(t, "Acme")
	admin := s.token(t, adminClient.ID, adminClient.Secret)
	nobody := s.createClient(t, admin, "No Permissions")
	nobodyToken := s.token(t, nobody.ID, nobody.Secret)
	adder := s.createClient(t, admin, "Event Adder", apiusage.PermEventAdd)
	adderToken := s.token(t, adder.ID, adder.Secret)
	otherOrg, otherAdmin := s.createOrganization(t, "Globex")

	// Three events on three days, so that a simple search read a row a page
	// has cursors.
	var events []apiusage.Event
	for d := range 3 {
		events = append(events, apiusage.Event{Time: time.Date(2025, 3, 1+d, 10, 0, 0, 0, time.UTC), OrganizationID: orgID,
			ClientID: adminClient.ID, TemplateURI: "api/v2/users", Method: "GET", Status: 200})
	}
	s.ingest(t, admin, events)
	s.e2eWaitRequests(t, admin, "/api/v2/usage/query", 3)
	search := s.e2eStart(t, admin, "/api/v2/usage/simplesearch", map[string]any{"interval": "2025-03/2025-04"})
	firstPage := s.e2eWait(t, admin, search.ResultsURI+"?pageSize=1")
	if firstPage.Cursors == nil || len(firstPage.Results) != 1 {
		t.Fatalf("simple search page of 1 of 3 rows: got %+v, want a row and a cursor", firstPage)
	}
	other := s.e2eStart(t, admin, "/api/v2/usage/simplesearch", map[string]any{"interval": "2025-03/2025-04"})
	otherPage := s.e2eWait(t, admin, other.ResultsURI+"?pageSize=1")
	if otherPage.Cursors == nil {
		t.Fatalf("second simple search: no cursor")
	}

	post := func(path, body string) e2eRequest {
		return e2eRequest{Method: http.MethodPost, Path: path, Token: admin, Body: []byte(body)}
	}
	get := func(path string) e2eRequest { return e2eRequest{Method: http.MethodGet, Path: path, Token: admin} }
	const (
		orgQuery    = "/api/v2/usage/query"
		simple      = "/api/v2/usage/simplesearch"
		eventsPath  = "/api/v2/usage/events"
		clientsPath = "/api/v2/oauth/clients"
	)
	clientQuery := "/api/v2/oauth/clients/" + adminClient.ID + "/usage/query"
	summary := "/api/v2/oauth/clients/" + adminClient.ID + "/usage/summary"
	bad := func(name string, req e2eRequest, contains ...string) errorCase {
		return errorCase{name: name, req: req, status: http.StatusBadRequest, code: apiusage.CodeBadRequest, contains: contains}
	}

	var cases []errorCase
	// 400: malformed JSON, on every endpoint with a body.
	for _, path := range []string{orgQuery, simple, clientQuery, clientsPath, eventsPath} {
		cases = append(cases,
			bad("malformed JSON "+path, post(path, `{"interval": "2025-03/2025-04",`), "malformed JSON"),
			bad("empty body "+path, post(path, ``), "malformed JSON"),
		)
	}
	for _, path := range []string{orgQuery, simple, clientQuery} {
		cases = append(cases,
			bad("an array for the body "+path, post(path, `[{"interval": "2025-03/2025-04"}]`), "malformed JSON"),
			bad("a number for the interval "+path, post(path, `{"interval": 2025}`), "interval"),
			bad("data after the body "+path, post(path, `{"interval": "2025-03/2025-04"} {}`), "malformed JSON"),
			bad("missing interval "+path, post(path, `{"granularity": "Day"}`), "interval is required"),
			bad("empty interval "+path, post(path, `{"interval": ""}`), "interval is required"),
		)
	}
	cases = append(cases, bad("organization without a name", e2eRequest{Method: http.MethodPost, Path: "/api/v2/organizations",
		Token: s.token(t, s.BootstrapID, s.BootstrapSecret), Body: []byte(`{"name": "  "}`)}, "name"))
	cases = append(cases, bad("client with an unknown permission", post(clientsPath, `{"name": "x", "permissions": ["usage:everything"]}`),
		"permissions", `"usage:everything"`))

	// 400: every bad interval form, quoted in the message.
	badIntervals := []string{
		"2020-02-01", "2020-02-01/", "/2020-02-01", "2020-02-30/2020-03-01", "2019-02-29/2019-03-01",
		"2020-03-01/2020-02-01", "2020-02-01/2020-02-01", "P1D/P2D", "P/2020-02-01", "yesterday/today",
		"2020-02-01T25:00/2020-02-02", "2020-13/2021", "2020-02-01/2020-02-02/2020-02-03",
		"2020-02-01T10:00:00+25:00/2020-02-02", "2020-02-01T10:00:60Z/2020-02-02", "20200201/20200301",
		"2020-02-01 10:00/2020-02-02", "2020-02-01T10:00Z/PT0S",
	}
	for i, iv := range badIntervals {
		path := []string{orgQuery, simple, clientQuery}[i%3]
		cases = append(cases, bad("interval "+iv, post(path, string(e2eJSON(t, map[string]string{"interval": iv}))), strconv.Quote(iv)))
	}

	// 400: unknown enum values, naming the field and the value.
	enum := func(path, field, value string, list bool) errorCase {
		var v any = value
		if list {
			v = []string{"Requests", value}
			if path == simple {
				v = []string{"Date", value}
			}
			if field == "httpMethods" {
				v = []string{"GET", value}
			}
		}
		body := e2eJSON(t, map[string]any{"interval": "2025-03/2025-04", field: v})
		return bad(fmt.Sprintf("%s %s %s", path, field, value), post(path, string(body)), field, strconv.Quote(value))
	}
	cases = append(cases,
		enum(orgQuery, "granularity", "Hour", false),
		enum(orgQuery, "metrics", "Status201", true),
		enum(orgQuery, "groupBy", "Country", true),
		enum(clientQuery, "granularity", "Year", false),
		enum(clientQuery, "groupBy", "UserId", true),
		enum(clientQuery, "metrics", "Status600", true),
		enum(simple, "metrics", "Requests", true),
		enum(simple, "httpMethods", "FETCH", true),
	)

	// 400: bad days.
	for _, days := range []string{"0", "367", "abc", "-1", "7.5", "1e2", "%207", "+7", "1000000000000"} {
		cases = append(cases, bad("days="+days, get(summary+"?days="+days), "days"))
	}
	cases = append(cases, bad("malformed query string", get(summary+"?days=%zz"), "query string"))

	// 400: bad pageSize and bad cursors, on a finished search.
	for _, size := range []string{"0", "1001", "abc", "-5", "2.5"} {
		cases = append(cases, bad("pageSize="+size, get(search.ResultsURI+"?pageSize="+size), "pageSize"))
	}
	cursor := func(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }
	for name, after := range map[string]string{
		"not base64":                       "!!not-a-cursor!!",
		"another search's cursor":          otherPage.Cursors.After,
		"an offset past the end":           cursor(search.ExecutionID + ":4"),
		"a negative offset":                cursor(search.ExecutionID + ":-1"),
		"no offset":                        cursor(search.ExecutionID),
		"an unknown execution id":          cursor(randomUUID() + ":1"),
		"a cursor longer than any of ours": strings.Repeat("A", 200),
	} {
		cases = append(cases, bad("cursor: "+name, get(search.ResultsURI+"?pageSize=1&after="+url.QueryEscape(after)), "after"))
	}

	// 400: invalid events, named by index and field; nothing is stored.
	valid := string(e2eJSON(t, events[0]))
	cases = append(cases,
		bad("an invalid event in a batch", post(eventsPath, `[`+valid+`, {"timestamp": "2025-03-01T00:00:00Z", "organizationId": "`+orgID+
			`", "clientId": "c", "httpMethod": "GET", "status": 700}]`), "event 1", "status", "templateUri"),
		bad("an event with an unknown method", post(eventsPath, `[{"timestamp": "2025-03-01T00:00:00Z", "organizationId": "`+orgID+
			`", "clientId": "c", "templateUri": "t", "httpMethod": "FETCH", "status": 200}]`), "event 0", "httpMethod", `"FETCH"`),
		bad("an event with a bad timestamp", post(eventsPath, `[{"timestamp": "yesterday", "organizationId": "`+orgID+
			`", "clientId": "c", "templateUri": "t", "httpMethod": "GET", "status": 200}]`), "event 0"),
		bad("NDJSON with a broken line", e2eRequest{Method: http.MethodPost, Path: eventsPath, Token: admin,
			ContentType: "application/x-ndjson", Body: []byte(valid + "\n{\"timestamp\":\n")}, "event 1"),
		bad("an Idempotency-Key too long", e2eRequest{Method: http.MethodPost, Path: eventsPath, Token: admin,
			Body: []byte("[" + valid + "]"), Header: map[string]string{"Idempotency-Key": strings.Repeat("k", 300)}}, "Idempotency-Key"),
	)

	// 401: no token, or one that is not a token, on every kind of endpoint.
	for _, r := range []e2eRequest{
		{Method: http.MethodPost, Path: orgQuery, Body: []byte(`{"interval": "2025/2026"}`)},
		{Method: http.MethodGet, Path: search.ResultsURI},
		{Method: http.MethodGet, Path: summary},
		{Method: http.MethodPost, Path: eventsPath, Body: []byte("[" + valid + "]")},
		{Method: http.MethodGet, Path: clientsPath},
		{Method: http.MethodGet, Path: "/api/v2/organizations/" + orgID},
	} {
		noToken := r
		cases = append(cases, errorCase{name: "no token " + r.Method + " " + r.Path, req: noToken,
			status: http.StatusUnauthorized, code: apiusage.CodeAuthRequired})
		basic := r
		basic.Header = map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(adminClient.ID+":"+adminClient.Secret))}
		cases = append(cases, errorCase{name: "Basic credentials instead of a token " + r.Path, req: basic,
			status: http.StatusUnauthorized, code: apiusage.CodeAuthRequired})
		garbage := r
		garbage.Token = "not-a-token"
		cases = append(cases, errorCase{name: "an unknown token " + r.Method + " " + r.Path, req: garbage,
			status: http.StatusUnauthorized, code: apiusage.CodeBadCredentials})
	}
	empty := e2eRequest{Method: http.MethodGet, Path: clientsPath, Header: map[string]string{"Authorization": "Bearer "}}
	cases = append(cases, errorCase{name: "an empty bearer token", req: empty, status: http.StatusUnauthorized, code: apiusage.CodeAuthRequired})
	// A token with one character of its payload changed, and a well-formed
	// token signed by another server.
	parts := strings.Split(admin, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWT", admin)
	}
	payload := []byte(parts[1])
	payload[len(payload)/2] ^= 1
	tampered := parts[0] + "." + string(payload) + "." + parts[2]
	foreign := startServer(t, nil)
	foreignToken := foreign.token(t, foreign.BootstrapID, foreign.BootstrapSecret)
	for name, tok := range map[string]string{"a tampered token": tampered, "another server's token": foreignToken,
		"a token without its signature": parts[0] + "." + parts[1] + "."} {
		cases = append(cases, errorCase{name: name, req: e2eRequest{Method: http.MethodGet, Path: clientsPath, Token: tok},
			status: http.StatusUnauthorized, code: apiusage.CodeBadCredentials})
	}

	// 404: unknown executions, clients, organizations and routes; a client of
	// another organization.
	notFound := func(name string, req e2eRequest) errorCase {
		return errorCase{name: name, req: req, status: http.StatusNotFound, code: apiusage.CodeNotFound}
	}
	for _, id := range []string{randomUUID(), "not-an-id", strings.Repeat("9", 300)} {
		cases = append(cases,
			notFound("unknown organization query execution "+id[:8], get("/api/v2/usage/query/"+id+"/results")),
			notFound("unknown simple search execution "+id[:8], get("/api/v2/usage/simplesearch/"+id+"/results")),
			notFound("unknown client query execution "+id[:8], get("/api/v2/oauth/clients/"+adminClient.ID+"/usage/query/results/"+id)),
		)
	}
	for _, client := range []string{"no-such-client", otherAdmin.ID} {
		base := "/api/v2/oauth/clients/" + client
		cases = append(cases,
			notFound("client query of "+client, post(base+"/usage/query", `{"interval": "2025/2026"}`)),
			notFound("summary of "+client, get(base+"/usage/summary")),
			notFound("client results of "+client, get(base+"/usage/query/results/"+randomUUID())),
			notFound("GET "+client, get(base)),
			notFound("PUT "+client, e2eRequest{Method: http.MethodPut, Path: base, Token: admin, Body: []byte(`{"name": "Renamed"}`)}),
			notFound("DELETE "+client, e2eRequest{Method: http.MethodDelete, Path: base, Token: admin}),
			notFound("rotate the secret of "+client, post(base+"/secret", ``)),
		)
	}
	cases = append(cases,
		notFound("another organization", get("/api/v2/organizations/"+otherOrg)),
		notFound("an unknown organization", get("/api/v2/organizations/"+randomUUID())),
		notFound("an unknown route", get("/api/v2/usage/nothing")),
		notFound("an unknown route without a token", e2eRequest{Method: http.MethodGet, Path: "/api/v3/usage"}),
	)

	// 413: a body over the 1 MiB bound of every endpoint but ingestion.
	huge := `{"interval": "2025/2026", "pad": "` + strings.Repeat("x", 1<<20) + `"}`
	cases = append(cases, errorCase{name: "a query body over 1 MiB", req: post(orgQuery, huge),
		status: http.StatusRequestEntityTooLarge, code: apiusage.CodeTooLarge})

	runErrorCases(t, s, cases)

	// 403, with messageParams naming the permissions.
	t.Run("403 names the permissions", func(t *testing.T) {
		for _, c := range []struct {
			req   e2eRequest
			perms string
		}{
			{e2eRequest{Method: http.MethodPost, Path: orgQuery, Token: nobodyToken, Body: []byte(`{"interval": "2025/2026"}`)},
				"oauth:client:view, usage:organization:view"},
			{e2eRequest{Method: http.MethodGet, Path: search.ResultsURI, Token: nobodyToken}, "oauth:client:view, usage:simpleSearch:view"},
			{e2eRequest{Method: http.MethodGet, Path: summary, Token: nobodyToken}, "oauth:client:view, usage:client:view"},
			{e2eRequest{Method: http.MethodPost, Path: eventsPath, Token: nobodyToken, Body: []byte("[" + valid + "]")},
				"usage:event:add, usage:event:add:any"},
			{e2eRequest{Method: http.MethodPost, Path: clientsPath, Token: adderToken, Body: []byte(`{"name": "x"}`)}, "oauth:client:add"},
			// An event in another organization's name needs add:any.
			{e2eRequest{Method: http.MethodPost, Path: eventsPath, Token: adderToken,
				Body: []byte(`[` + strings.Replace(valid, orgID, otherOrg, 1) + `]`)}, "usage:event:add:any"},
			// A client cannot grant what it does not hold; platform
			// permissions exist only in the platform organization.
			{e2eRequest{Method: http.MethodPost, Path: clientsPath, Token: admin,
				Body: []byte(`{"name": "x", "permissions": ["usage:client:view", "platform:organization:add"]}`)}, "platform:organization:add"},
		} {
			what := c.req.Method + " " + c.req.Path
			body := e2eCheckError(t, what, s.e2eRaw(t, c.req), http.StatusForbidden, apiusage.CodeMissingPerms)
			if got := body.MessageParams["permissions"]; got != c.perms {
				t.Errorf("%s: messageParams.permissions %q, want %q", what, got, c.perms)
			}
			if !strings.Contains(body.MessageWithParams, "{permissions}") || strings.Contains(body.MessageWithParams, c.perms) {
				t.Errorf("%s: messageWithParams %q, want the permissions as {permissions}", what, body.MessageWithParams)
			}
			if !strings.Contains(body.Message, c.perms) {
				t.Errorf("%s: message %q does not name %q", what, body.Message, c.perms)
			}
		}
	})

	t.Run("several problems at once are listed in errors", func(t *testing.T) {
		resp := s.e2eRaw(t, post(orgQuery, `{"interval": "nope", "granularity": "Hour", "groupBy": ["Country"]}`))
		body := e2eCheckError(t, "three bad fields", resp, http.StatusBadRequest, apiusage.CodeBadRequest)
		if len(body.Errors) != 3 {
			t.Fatalf("errors: got %d entries %+v, want 3", len(body.Errors), body.Errors)
		}
		for i, want := range []string{`"nope"`, `"Hour"`, `"Country"`} {
			e := body.Errors[i]
			if e.Code != apiusage.CodeBadRequest || e.Status != http.StatusBadRequest || !strings.Contains(e.Message, want) ||
				e.ContextID != body.ContextID || e.MessageParams == nil || e.Details == nil || e.Errors == nil {
				t.Errorf("errors[%d] = %+v, want a full bad.request naming %s with contextId %s", i, e, want, body.ContextID)
			}
			if !strings.Contains(body.Message, want) {
				t.Errorf("message %q does not name %s", body.Message, want)
			}
		}
	})

	t.Run("nothing of a rejected batch is stored", func(t *testing.T) {
		s.e2eWaitRequests(t, admin, "/api/v2/usage/query", 3)
	})

	t.Run("the OAuth error shape for bad logins", func(t *testing.T) {
		e2eCheckOAuthError(t, "a wrong secret", s.e2eLogin(t, adminClient.ID, "wrong"), http.StatusUnauthorized, "invalid_client")
		e2eCheckOAuthError(t, "an unknown client", s.e2eLogin(t, "no-such-client", "secret"), http.StatusUnauthorized, "invalid_client")
		e2eCheckOAuthError(t, "another client's secret", s.e2eLogin(t, nobody.ID, adminClient.Secret), http.StatusUnauthorized, "invalid_client")
		e2eCheckOAuthError(t, "no credentials", s.e2eRawLogin(t, "grant_type=client_credentials", "", ""), http.StatusUnauthorized, "invalid_client")
		e2eCheckOAuthError(t, "no grant type", s.e2eRawLogin(t, "", adminClient.ID, adminClient.Secret), http.StatusBadRequest, "invalid_request")
		e2eCheckOAuthError(t, "the password grant", s.e2eRawLogin(t, "grant_type=password&username=a&password=b", adminClient.ID, adminClient.Secret),
			http.StatusBadRequest, "unsupported_grant_type")
		e2eCheckOAuthError(t, "a malformed form", s.e2eRawLogin(t, "grant_type=%zz", adminClient.ID, adminClient.Secret), http.StatusBadRequest, "invalid_request")
		// The credentials in the form, as some clients send them, work too.
		if r := s.e2eRawLogin(t, "grant_type=client_credentials&client_id="+url.QueryEscape(adminClient.ID)+
			"&client_secret="+url.QueryEscape(adminClient.Secret), "", ""); r.Status != http.StatusOK {
			t.Errorf("login with the credentials in the form: %s, want 200", r)
		}
	})
}

// TestE2EErrorsIngestLimits checks the 413s of ingestion: a body over
// --max-ingest-bytes and a batch over --max-batch-events, as a JSON array
// and as NDJSON, each stored not at all.
func TestE2EErrorsIngestLimits(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"APIUSAGE_MAX_INGEST_BYTES": "4096", "APIUSAGE_MAX_BATCH_EVENTS": "5"})
	orgID, adminClient := s.createOrganization(t, "Acme")
	admin := s.token(t, adminClient.ID, adminClient.Secret)
	// long events are valid (fields within their 512-byte bound) and five of
	// them are over 4096 bytes.
	batch := func(n int, long bool) []apiusage.Event {
		out := make([]apiusage.Event, n)
		for i := range out {
			out[i] = apiusage.Event{Time: time.Date(2025, 3, 1, 10, i, 0, 0, time.UTC), OrganizationID: orgID,
				ClientID: adminClient.ID, TemplateURI: "api/v2/users", Method: "GET", Status: 200}
			if long {
				out[i].UserID = strings.Repeat("u", 500)
				out[i].TemplateURI = "api/v2/" + strings.Repeat("t", 490)
			}
		}
		return out
	}
	arr := func(events []apiusage.Event) []byte { return e2eJSON(t, events) }
	for _, c := range []struct {
		name, contentType string
		body              []byte
		contains          string
	}{
		{"a JSON array over the byte limit", "application/json", arr(batch(5, true)), "4096"},
		{"NDJSON over the byte limit", "application/x-ndjson", e2eNDJSON(t, batch(5, true)), "4096"},
		{"a JSON array of 6 events", "application/json", arr(batch(6, false)), "5 events"},
		{"NDJSON of 6 events", "application/x-ndjson", e2eNDJSON(t, batch(6, false)), "5 events"},
		{"whitespace padding over the byte limit", "application/json",
			append(arr(batch(1, false)), bytes.Repeat([]byte(" "), 5000)...), "4096"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.contains == "4096" && len(c.body) <= 4096 {
				t.Fatalf("the body has %d bytes, want more than the limit", len(c.body))
			}
			if c.contains == "5 events" && len(c.body) > 4096 {
				t.Fatalf("the body has %d bytes, want it within the byte limit", len(c.body))
			}
			resp := s.e2eRaw(t, e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/events", Token: admin,
				Body: c.body, ContentType: c.contentType})
			body := e2eCheckError(t, c.name, resp, http.StatusRequestEntityTooLarge, apiusage.CodeTooLarge)
			if !strings.Contains(body.Message, c.contains) {
				t.Errorf("message %q does not contain %q", body.Message, c.contains)
			}
		})
	}
	// A batch at both limits is accepted, and it alone is counted: none of
	// the rejected batches left a part behind.
	s.ingest(t, admin, batch(5, false))
	s.e2eWaitRequests(t, admin, "/api/v2/usage/query", 5)
}

// TestE2EErrorsTooManyRequests fills the organization's one execution slot
// (one worker, one running execution per organization) and checks that the
// queries over it are 429 with Retry-After, and that another organization
// is not held up by it for longer than its own slot.
func TestE2EErrorsTooManyRequests(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"APIUSAGE_MAX_RUNNING_PER_ORG": "1", "APIUSAGE_WORKERS": "1"})
	orgID, adminClient := s.createOrganization(t, "Acme")
	admin := s.token(t, adminClient.ID, adminClient.Secret)
	// Enough distinct rollups (hours × users × templates) that a query
	// grouped by all of them takes a while.
	var events []apiusage.Event
	for i := range 20_000 {
		events = append(events, apiusage.Event{
			Time:           time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i%2000) * time.Hour),
			OrganizationID: orgID, ClientID: adminClient.ID, UserID: "user-" + strconv.Itoa(i%97),
			TemplateURI: "api/v2/t/" + strconv.Itoa(i%13), Method: "GET", Status: 200,
		})
	}
	s.ingest(t, admin, events)
	heavy := e2eJSON(t, map[string]any{"interval": "2025/2026", "granularity": "Day",
		"groupBy": []string{"UserId", "TemplateUri", "OAuthClientId", "HttpMethod", "OrganizationId"}})
	simpleBody := e2eJSON(t, map[string]any{"interval": "2025/2026"})
	summaryPath := "/api/v2/oauth/clients/" + adminClient.ID + "/usage/summary"

	// Every 429 must be a full ErrorBody with Retry-After; stop once each
	// endpoint that starts executions has given one (or after many rounds,
	// which means there is no limit).
	var mu sync.Mutex
	got429 := map[string]bool{}
	var failures []string
	for round := 0; round < 50 && len(got429) < 3; round++ {
		var wg sync.WaitGroup
		for i := range 12 {
			req := e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/query", Token: admin, Body: heavy}
			switch i % 3 {
			case 1:
				req = e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/simplesearch", Token: admin, Body: simpleBody}
			case 2:
				req = e2eRequest{Method: http.MethodGet, Path: summaryPath, Token: admin}
			}
			wg.Go(func() {
				resp, err := s.e2eTry(req)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err.Error())
					return
				}
				switch resp.Status {
				case http.StatusAccepted:
				case http.StatusTooManyRequests:
					got429[req.Path] = true
					ra := resp.Header.Get("Retry-After")
					if n, err := strconv.Atoi(ra); err != nil || n < 1 {
						failures = append(failures, fmt.Sprintf("%s: Retry-After %q, want a positive number of seconds", req.Path, ra))
					}
					_, problems := e2eErrorProblems(resp, http.StatusTooManyRequests, apiusage.CodeTooManyRequests)
					for _, p := range problems {
						failures = append(failures, req.Path+": "+p)
					}
				default:
					failures = append(failures, fmt.Sprintf("%s: %s, want 202 or 429", req.Path, resp))
				}
			})
		}
		wg.Wait()
	}
	for _, f := range failures {
		t.Error(f)
	}
	if len(got429) < 3 {
		t.Fatalf("429 seen on %v after 50 rounds of 12 parallel executions with one slot, want all three of query, simplesearch, summary", got429)
	}

	// Once the slot frees up, the organization can query again, and the
	// answer is right.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp := s.e2eRaw(t, e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/query", Token: admin,
			Body: e2eJSON(t, map[string]any{"interval": "2025/2026", "metrics": []string{"Requests"}})})
		if resp.Status == http.StatusAccepted {
			var x e2eExecution
			if err := json.Unmarshal(resp.Body, &x); err != nil {
				t.Fatal(err)
			}
			if got := e2eTotalRequests(s.e2eWait(t, admin, x.ResultsURI).Results); got != len(events) {
				t.Errorf("after the 429s: %d requests, want %d", got, len(events))
			}
			break
		}
		if resp.Status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("query after the burst: %s, want 202 once the slot is free", resp)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
