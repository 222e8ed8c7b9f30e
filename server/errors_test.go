package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/server"
)

// TestContractErrors walks the rows of usage-api.md §5 on the usage
// endpoints.
func TestContractErrors(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.MaxBodyBytes = 4096 })
	a := e.newTenant("Acme")
	_, _, noPerms := e.newClient(a, "no permissions")
	tests := []struct {
		name    string
		req     request
		status  int
		code    string
		mention []string // what the message must name
	}{
		{"malformed JSON", request{method: "POST", path: "/api/v2/usage/query", token: a.admin, body: `{"interval":`},
			400, apiusage.CodeBadRequest, []string{"malformed JSON"}},
		{"a JSON value of the wrong type", request{method: "POST", path: "/api/v2/usage/query", token: a.admin, body: `{"interval":7}`},
			400, apiusage.CodeBadRequest, []string{"interval"}},
		{"data after the body", request{method: "POST", path: "/api/v2/usage/query", token: a.admin, body: `{"interval":"2020/2021"} {}`},
			400, apiusage.CodeBadRequest, nil},
		{"an empty body", request{method: "POST", path: "/api/v2/usage/query", token: a.admin, body: ``},
			400, apiusage.CodeBadRequest, nil},
		{"a missing interval", request{method: "POST", path: "/api/v2/usage/query", token: a.admin, body: `{}`},
			400, apiusage.CodeBadRequest, []string{"interval is required"}},
		{"a bad interval is quoted", request{method: "POST", path: "/api/v2/usage/simplesearch", token: a.admin, body: `{"interval":"2020-02-30/2020-03-01"}`},
			400, apiusage.CodeBadRequest, []string{"2020-02-30/2020-03-01"}},
		{"an unknown enum names field and value", request{method: "POST", path: "/api/v2/usage/query", token: a.admin, body: `{"interval":"2020/2021","granularity":"Hour"}`},
			400, apiusage.CodeBadRequest, []string{"granularity", "Hour"}},
		{"an unknown method in a search", request{method: "POST", path: "/api/v2/usage/simplesearch", token: a.admin, body: `{"interval":"2020/2021","httpMethods":["FETCH"]}`},
			400, apiusage.CodeBadRequest, []string{"httpMethods", "FETCH"}},
		{"no token", request{method: "POST", path: "/api/v2/usage/query", body: `{"interval":"2020/2021"}`},
			401, apiusage.CodeAuthRequired, nil},
		{"a Basic header instead of a token", request{method: "GET", path: "/api/v2/usage/query/x/results", header: map[string]string{"Authorization": "Basic YTpi"}},
			401, apiusage.CodeAuthRequired, nil},
		{"a token that is not ours", request{method: "GET", path: "/api/v2/usage/query/x/results", token: "eyJhbGciOiJub25lIn0.e30."},
			401, apiusage.CodeBadCredentials, nil},
		{"a token without the permissions", request{method: "POST", path: "/api/v2/usage/query", token: noPerms, body: `{"interval":"2020/2021"}`},
			403, apiusage.CodeMissingPerms, []string{apiusage.PermClientView, apiusage.PermUsageOrganization}},
		{"an unknown execution", request{method: "GET", path: "/api/v2/usage/query/00000000-0000-4000-8000-000000000000/results", token: a.admin},
			404, apiusage.CodeNotFound, nil},
		{"an unknown client", request{method: "POST", path: "/api/v2/oauth/clients/nobody/usage/query", token: a.admin, body: `{"interval":"2020/2021"}`},
			404, apiusage.CodeNotFound, nil},
		{"an unknown path", request{method: "GET", path: "/api/v2/usage/nothing", token: a.admin},
			404, apiusage.CodeNotFound, nil},
		{"a body over the limit", request{method: "POST", path: "/api/v2/usage/query", token: a.admin, body: `{"interval":"` + strings.Repeat("x", 5000) + `"}`},
			413, apiusage.CodeTooLarge, []string{"4096"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := checkError(t, e.do(tt.req), tt.status, tt.code)
			for _, m := range tt.mention {
				if !strings.Contains(body["message"].(string), m) {
					t.Fatalf("message %q does not name %q", body["message"], m)
				}
			}
		})
	}

	t.Run("a 403 names the permissions in messageParams", func(t *testing.T) {
		body := checkError(t, e.do(request{method: "POST", path: "/api/v2/usage/simplesearch", token: noPerms, body: `{"interval":"2020/2021"}`}),
			403, apiusage.CodeMissingPerms)
		params := body["messageParams"].(map[string]any)
		want := apiusage.PermClientView + ", " + apiusage.PermUsageSimpleSearch
		if params["permissions"] != want {
			t.Fatalf("messageParams %v, want permissions %q", params, want)
		}
		if mwp := body["messageWithParams"].(string); !strings.Contains(mwp, "{permissions}") || strings.Contains(mwp, apiusage.PermClientView) {
			t.Fatalf("messageWithParams %q, want the {permissions} placeholder instead of the list", mwp)
		}
	})
	t.Run("several problems are listed one by one", func(t *testing.T) {
		body := checkError(t, e.do(request{method: "POST", path: "/api/v2/usage/query", token: a.admin,
			body: `{"granularity":"Hour","metrics":["Status600"]}`}), 400, apiusage.CodeBadRequest)
		errs := body["errors"].([]any)
		if len(errs) != 3 {
			t.Fatalf("errors %v, want 3 (interval, granularity, metrics)", errs)
		}
		for _, sub := range errs {
			if sub.(map[string]any)["code"] != apiusage.CodeBadRequest {
				t.Fatalf("sub-error %v, want code bad.request", sub)
			}
		}
	})
	t.Run("a 500 is generic and logged under its contextId", func(t *testing.T) {
		e.store.failAppend.Store(true)
		defer e.store.failAppend.Store(false)
		res := e.do(request{method: "POST", path: "/api/v2/usage/events", token: a.admin,
			body: []apiusage.Event{event(a.id, "c", "", "GET", "t", 20, 1, 200)}})
		body := checkError(t, res, 500, apiusage.CodeInternal)
		if strings.Contains(string(res.body), "injected") {
			t.Fatalf("the 500 body %s leaks the internal error", res.body)
		}
		logs := e.logs.String()
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, body["contextId"].(string)) && strings.Contains(line, "injected store fault") {
				return
			}
		}
		t.Fatalf("no log line holds contextId %v and the error; logs:\n%s", body["contextId"], logs)
	})
	t.Run("every response has a fresh correlation id", func(t *testing.T) {
		seen := map[string]bool{}
		for _, req := range []request{
			{method: "GET", path: "/healthz"},
			{method: "GET", path: "/healthz"},
			{method: "GET", path: "/api/v2/oauth/clients", token: a.admin},
			{method: "GET", path: "/nothing"},
		} {
			id := e.do(req).header.Get("ININ-Correlation-Id")
			if id == "" || seen[id] {
				t.Fatalf("%s %s: correlation id %q, want a new one", req.method, req.path, id)
			}
			seen[id] = true
		}
	})
}

// endpoint is one call of the permission matrix: the path (made fresh for
// each call, for calls that consume their target) and the status of success.
type endpoint struct {
	name   string
	method string
	path   func() string
	body   string
	ok     int
	anyOf  []string
}

// TestPermissionMatrix calls every endpoint with a token holding each
// organization permission alone, and one holding none: exactly the tokens
// holding one of the endpoint's permissions get through.
func TestPermissionMatrix(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.MaxRunningPerOrg = 1000; c.MaxQueued = 1000 })
	a := e.newTenant("Acme")
	target, _, _ := e.newClient(a, "target")
	query := `{"interval":"2026-11-01/2026-11-02"}`
	orgExec := strings.Split(e.start(a.admin, "/api/v2/usage/query", query), "/")[5]
	searchExec := strings.Split(e.start(a.admin, "/api/v2/usage/simplesearch", query), "/")[5]
	clientExec := e.start(a.admin, "/api/v2/oauth/clients/"+target+"/usage/query", query)
	fixed := func(p string) func() string { return func() string { return p } }
	fresh := func(suffix string) func() string {
		return func() string {
			id, _, _ := e.newClient(a, "victim")
			return "/api/v2/oauth/clients/" + id + suffix
		}
	}
	const (
		view   = apiusage.PermClientView
		add    = apiusage.PermClientAdd
		edit   = apiusage.PermClientEdit
		del    = apiusage.PermClientDelete
		org    = apiusage.PermUsageOrganization
		client = apiusage.PermUsageClient
		search = apiusage.PermUsageSimpleSearch
		events = apiusage.PermEventAdd
	)
	endpoints := []endpoint{
		{"1 org query", "POST", fixed("/api/v2/usage/query"), query, 202, []string{view, org}},
		{"2 org results", "GET", fixed("/api/v2/usage/query/" + orgExec + "/results"), "", 200, []string{view, org}},
		{"3 simple search", "POST", fixed("/api/v2/usage/simplesearch"), query, 202, []string{view, search}},
		{"4 search results", "GET", fixed("/api/v2/usage/simplesearch/" + searchExec + "/results"), "", 200, []string{view, search}},
		{"5 client query", "POST", fixed("/api/v2/oauth/clients/" + target + "/usage/query"), query, 202, []string{view, client}},
		{"6 client results", "GET", fixed(clientExec), "", 200, []string{view, client}},
		{"7 summary", "GET", fixed("/api/v2/oauth/clients/" + target + "/usage/summary"), "", 202, []string{view, client}},
		{"create client", "POST", fixed("/api/v2/oauth/clients"), `{"name":"new","permissions":[]}`, 201, []string{add}},
		{"list clients", "GET", fixed("/api/v2/oauth/clients"), "", 200, []string{view}},
		{"get client", "GET", fixed("/api/v2/oauth/clients/" + target), "", 200, []string{view}},
		{"update client", "PUT", fixed("/api/v2/oauth/clients/" + target), `{"name":"target"}`, 200, []string{edit}},
		{"delete client", "DELETE", fresh(""), "", 204, []string{del}},
		{"rotate secret", "POST", fresh("/secret"), "", 200, []string{edit}},
		{"ingest", "POST", fixed("/api/v2/usage/events"), `[]`, 202, []string{events, apiusage.PermEventAddAny}},
		{"create organization", "POST", fixed("/api/v2/organizations"), `{"name":"x"}`, 201, []string{apiusage.PermOrganizationAdd}},
	}
	tokens := map[string]string{}
	_, _, tokens[""] = e.newClient(a, "holds nothing")
	for _, p := range apiusage.OrganizationPermissions {
		_, _, tokens[p] = e.newClient(a, "holds "+p, p)
	}
	for _, ep := range endpoints {
		for held, token := range tokens {
			allowed := held != "" && contains(ep.anyOf, held)
			name := ep.name + " with " + held
			if held == "" {
				name = ep.name + " with no permission"
			}
			t.Run(name, func(t *testing.T) {
				req := request{method: ep.method, path: ep.path(), token: token}
				if ep.body != "" {
					req.body = ep.body
				}
				res := e.do(req)
				if !allowed {
					body := checkError(t, res, http.StatusForbidden, apiusage.CodeMissingPerms)
					if got := body["messageParams"].(map[string]any)["permissions"]; got != strings.Join(ep.anyOf, ", ") {
						t.Fatalf("messageParams.permissions %v, want %q", got, strings.Join(ep.anyOf, ", "))
					}
					return
				}
				if res.status != ep.ok {
					t.Fatalf("status %d (%s), want %d", res.status, res.body, ep.ok)
				}
			})
		}
	}
	t.Run("the platform creates organizations", func(t *testing.T) {
		e.call(http.StatusCreated, "POST", "/api/v2/organizations", e.platformToken, map[string]any{"name": "y"})
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestTenantIsolation makes organization A try everything on organization
// B's clients and executions, and on guessed ids: all 404, never 403.
func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	a, b := e.newTenant("Acme"), e.newTenant("Bravo")
	a1, _, _ := e.newClient(a, "a1")
	a2, _, _ := e.newClient(a, "a2")
	bc, _, _ := e.newClient(b, "bc")
	q := `{"interval":"2026-11-01/2026-11-02"}`
	bOrg := e.start(b.admin, "/api/v2/usage/query", q)
	bSearch := e.start(b.admin, "/api/v2/usage/simplesearch", q)
	bClient := e.start(b.admin, "/api/v2/oauth/clients/"+bc+"/usage/query", q)
	bSummary := e.startWith("GET", b.admin, "/api/v2/oauth/clients/"+bc+"/usage/summary", nil)
	aOrg := e.start(a.admin, "/api/v2/usage/query", q)
	aSearch := e.start(a.admin, "/api/v2/usage/simplesearch", q)
	aClient := e.start(a.admin, "/api/v2/oauth/clients/"+a1+"/usage/query", q)
	idOf := func(uri string) string {
		parts := strings.Split(uri, "/")
		if parts[len(parts)-1] == "results" {
			return parts[len(parts)-2]
		}
		return parts[len(parts)-1]
	}
	guess := "3f1c9a52-8f7e-4c1b-9d2e-5a6b7c8d9e0f"
	for _, tt := range []struct {
		name string
		req  request
	}{
		{"B's org query results", request{method: "GET", path: bOrg}},
		{"B's search results", request{method: "GET", path: bSearch}},
		{"B's client query results", request{method: "GET", path: bClient}},
		{"B's summary results", request{method: "GET", path: bSummary}},
		{"B's client query results under A's client", request{method: "GET", path: "/api/v2/oauth/clients/" + a1 + "/usage/query/results/" + idOf(bClient)}},
		{"a client query of B's client", request{method: "POST", path: "/api/v2/oauth/clients/" + bc + "/usage/query", body: q}},
		{"a summary of B's client", request{method: "GET", path: "/api/v2/oauth/clients/" + bc + "/usage/summary"}},
		{"B's client", request{method: "GET", path: "/api/v2/oauth/clients/" + bc}},
		{"an update of B's client", request{method: "PUT", path: "/api/v2/oauth/clients/" + bc, body: `{"name":"mine"}`}},
		{"a delete of B's client", request{method: "DELETE", path: "/api/v2/oauth/clients/" + bc}},
		{"a rotation of B's secret", request{method: "POST", path: "/api/v2/oauth/clients/" + bc + "/secret"}},
		{"organization B", request{method: "GET", path: "/api/v2/organizations/" + b.id}},
		{"a guessed org execution", request{method: "GET", path: "/api/v2/usage/query/" + guess + "/results"}},
		{"a guessed search execution", request{method: "GET", path: "/api/v2/usage/simplesearch/" + guess + "/results"}},
		{"a guessed client execution", request{method: "GET", path: "/api/v2/oauth/clients/" + a1 + "/usage/query/results/" + guess}},
		{"a guessed client", request{method: "GET", path: "/api/v2/oauth/clients/" + guess}},
		{"A's org query read as a search", request{method: "GET", path: "/api/v2/usage/simplesearch/" + idOf(aOrg) + "/results"}},
		{"A's org query read as a client query", request{method: "GET", path: "/api/v2/oauth/clients/" + a1 + "/usage/query/results/" + idOf(aOrg)}},
		{"A's search read as an org query", request{method: "GET", path: "/api/v2/usage/query/" + idOf(aSearch) + "/results"}},
		{"A's client query read as an org query", request{method: "GET", path: "/api/v2/usage/query/" + idOf(aClient) + "/results"}},
		{"A's client query read under another client", request{method: "GET", path: "/api/v2/oauth/clients/" + a2 + "/usage/query/results/" + idOf(aClient)}},
	} {
		t.Run(tt.name+" is a 404", func(t *testing.T) {
			tt.req.token = a.admin
			checkError(t, e.do(tt.req), http.StatusNotFound, apiusage.CodeNotFound)
		})
	}
	t.Run("B still sees its own", func(t *testing.T) {
		for _, uri := range []string{bOrg, bSearch, bClient, bSummary} {
			if body := e.wait(b.admin, uri); body["queryStatus"] != "Complete" {
				t.Fatalf("%s: %v, want Complete", uri, body)
			}
		}
		e.call(http.StatusOK, "GET", "/api/v2/oauth/clients/"+bc, b.admin, nil)
	})
	t.Run("A lists only its clients", func(t *testing.T) {
		list := e.call(http.StatusOK, "GET", "/api/v2/oauth/clients?pageSize=500", a.admin, nil)
		for _, c := range list["entities"].([]any) {
			if org := c.(map[string]any)["organizationId"]; org != a.id {
				t.Fatalf("A's list holds a client of %v", org)
			}
		}
		if list["total"] != float64(3) {
			t.Fatalf("total %v, want 3 (admin, a1, a2)", list["total"])
		}
	})
}
