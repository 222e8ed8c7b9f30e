package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// TestE2EPermissionMatrix calls every endpoint that checks permissions with
// a token holding exactly one permission, for each permission the endpoint
// lists (allowed), and with a token holding every other permission (403
// naming the listed ones). Everything happens in the platform organization,
// the one place every permission can be held, so that the tokens differ in
// their permissions and nothing else.
func TestE2EPermissionMatrix(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	platform := s.token(t, s.BootstrapID, s.BootstrapSecret)
	var boot struct {
		OrganizationID string `json:"organizationId"`
	}
	s.do(t, platform, http.MethodGet, "/api/v2/oauth/clients/"+s.BootstrapID, nil, http.StatusOK, &boot)
	platformOrg := boot.OrganizationID
	otherOrg, _ := s.createOrganization(t, "Globex")

	// A token per permission, holding only it.
	all := apiusage.PlatformPermissions
	only := map[string]string{}
	for _, p := range all {
		c := s.createClient(t, platform, "only "+p, p)
		only[p] = s.token(t, c.ID, c.Secret)
	}
	// A token holding every permission but the listed ones, made once per
	// distinct list.
	allBut := map[string]string{}
	allBut1 := func(listed []string) string {
		key := strings.Join(listed, ", ")
		if tok, ok := allBut[key]; ok {
			return tok
		}
		var perms []string
		for _, p := range all {
			if !slices.Contains(listed, p) {
				perms = append(perms, p)
			}
		}
		c := s.createClient(t, platform, "all but "+key, perms...)
		allBut[key] = s.token(t, c.ID, c.Secret)
		return allBut[key]
	}

	// What the allowed calls read and change: a client whose usage is
	// queried, executions of every kind, and clients to edit, rotate and
	// delete (a fresh one for each DELETE).
	subject := s.createClient(t, platform, "Subject", apiusage.PermUsageClient)
	target := s.createClient(t, platform, "Target")
	event := apiusage.Event{Time: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), OrganizationID: platformOrg,
		ClientID: subject.ID, TemplateURI: "api/v2/users", Method: "GET", Status: 200}
	s.ingest(t, platform, []apiusage.Event{event})
	orgExec := s.e2eStart(t, platform, "/api/v2/usage/query", map[string]any{"interval": "2025/2026"})
	searchExec := s.e2eStart(t, platform, "/api/v2/usage/simplesearch", map[string]any{"interval": "2025/2026"})
	clientExec := s.e2eStart(t, platform, "/api/v2/oauth/clients/"+subject.ID+"/usage/query", map[string]any{"interval": "2025/2026"})
	query := []byte(`{"interval": "2025/2026"}`)
	subjectPath := "/api/v2/oauth/clients/" + subject.ID

	type endpoint struct {
		name string
		// req makes the request; it is called once per token, so that
		// each DELETE has its own client to delete.
		req    func(t *testing.T) e2eRequest
		anyOf  []string
		status int
	}
	fixed := func(method, path string, body []byte) func(*testing.T) e2eRequest {
		return func(*testing.T) e2eRequest { return e2eRequest{Method: method, Path: path, Body: body} }
	}
	endpoints := []endpoint{
		{"1 POST usage/query", fixed(http.MethodPost, "/api/v2/usage/query", query),
			[]string{apiusage.PermClientView, apiusage.PermUsageOrganization}, http.StatusAccepted},
		{"2 GET usage/query results", fixed(http.MethodGet, orgExec.ResultsURI, nil),
			[]string{apiusage.PermClientView, apiusage.PermUsageOrganization}, http.StatusOK},
		{"3 POST usage/simplesearch", fixed(http.MethodPost, "/api/v2/usage/simplesearch", query),
			[]string{apiusage.PermClientView, apiusage.PermUsageSimpleSearch}, http.StatusAccepted},
		{"4 GET usage/simplesearch results", fixed(http.MethodGet, searchExec.ResultsURI+"?pageSize=10", nil),
			[]string{apiusage.PermClientView, apiusage.PermUsageSimpleSearch}, http.StatusOK},
		{"5 POST client usage/query", fixed(http.MethodPost, subjectPath+"/usage/query", query),
			[]string{apiusage.PermClientView, apiusage.PermUsageClient}, http.StatusAccepted},
		{"6 GET client usage/query results", fixed(http.MethodGet, clientExec.ResultsURI, nil),
			[]string{apiusage.PermClientView, apiusage.PermUsageClient}, http.StatusOK},
		{"7 GET client usage/summary", fixed(http.MethodGet, subjectPath+"/usage/summary?days=3", nil),
			[]string{apiusage.PermClientView, apiusage.PermUsageClient}, http.StatusAccepted},
		{"POST organizations", fixed(http.MethodPost, "/api/v2/organizations", []byte(`{"name": "Initech"}`)),
			[]string{apiusage.PermOrganizationAdd}, http.StatusCreated},
		{"POST oauth/clients", fixed(http.MethodPost, "/api/v2/oauth/clients", []byte(`{"name": "New", "permissions": []}`)),
			[]string{apiusage.PermClientAdd}, http.StatusCreated},
		{"GET oauth/clients", fixed(http.MethodGet, "/api/v2/oauth/clients", nil),
			[]string{apiusage.PermClientView}, http.StatusOK},
		{"GET oauth/clients/{id}", fixed(http.MethodGet, subjectPath, nil),
			[]string{apiusage.PermClientView}, http.StatusOK},
		{"PUT oauth/clients/{id}", fixed(http.MethodPut, "/api/v2/oauth/clients/"+target.ID, []byte(`{"name": "Target renamed"}`)),
			[]string{apiusage.PermClientEdit}, http.StatusOK},
		{"POST oauth/clients/{id}/secret", fixed(http.MethodPost, "/api/v2/oauth/clients/"+target.ID+"/secret", nil),
			[]string{apiusage.PermClientEdit}, http.StatusOK},
		{"DELETE oauth/clients/{id}", func(t *testing.T) e2eRequest {
			c := s.createClient(t, platform, "Doomed")
			return e2eRequest{Method: http.MethodDelete, Path: "/api/v2/oauth/clients/" + c.ID}
		}, []string{apiusage.PermClientDelete}, http.StatusNoContent},
		{"POST usage/events", fixed(http.MethodPost, "/api/v2/usage/events", e2eJSON(t, []apiusage.Event{event})),
			[]string{apiusage.PermEventAdd, apiusage.PermEventAddAny}, http.StatusAccepted},
	}
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			for _, p := range ep.anyOf {
				req := ep.req(t)
				req.Token = only[p]
				if resp := s.e2eRaw(t, req); resp.Status != ep.status {
					t.Errorf("%s %s with only %s: %s, want %d", req.Method, req.Path, p, resp, ep.status)
				}
			}
			// Every permission the endpoint does not list, one at a time and
			// all together.
			want := strings.Join(ep.anyOf, ", ")
			check := func(who, tok string) {
				t.Helper()
				req := ep.req(t)
				req.Token = tok
				body := e2eCheckError(t, fmt.Sprintf("%s %s with %s", req.Method, req.Path, who), s.e2eRaw(t, req),
					http.StatusForbidden, apiusage.CodeMissingPerms)
				if got := body.MessageParams["permissions"]; got != want {
					t.Errorf("%s %s with %s: messageParams.permissions %q, want %q", req.Method, req.Path, who, got, want)
				}
			}
			for _, p := range all {
				if !slices.Contains(ep.anyOf, p) {
					check("only "+p, only[p])
				}
			}
			check("every other permission", allBut1(ep.anyOf))
		})
	}

	// GET organizations/{id} lists no permission: a caller reads its own
	// organization with any token, and another only with
	// platform:organization:view; anyone else gets 404, so that ids do not
	// leak.
	t.Run("GET organizations/{id}", func(t *testing.T) {
		for _, p := range all {
			s.do(t, only[p], http.MethodGet, "/api/v2/organizations/"+platformOrg, nil, http.StatusOK, nil)
			want := http.StatusNotFound
			if p == apiusage.PermOrganizationView {
				want = http.StatusOK
			}
			resp := s.e2eRaw(t, e2eRequest{Method: http.MethodGet, Path: "/api/v2/organizations/" + otherOrg, Token: only[p]})
			if want == http.StatusOK {
				if resp.Status != http.StatusOK {
					t.Errorf("another organization with only %s: %s, want 200", p, resp)
				}
			} else {
				e2eCheckError(t, "another organization with only "+p, resp, http.StatusNotFound, apiusage.CodeNotFound)
			}
		}
		resp := s.e2eRaw(t, e2eRequest{Method: http.MethodGet, Path: "/api/v2/organizations/" + otherOrg,
			Token: allBut1([]string{apiusage.PermOrganizationView})})
		e2eCheckError(t, "another organization with every other permission", resp, http.StatusNotFound, apiusage.CodeNotFound)
	})

	// Outside the platform organization, platform permissions cannot be
	// granted, and usage:event:add records only the caller's organization.
	t.Run("an organization's clients", func(t *testing.T) {
		orgID, admin := s.createOrganization(t, "Hooli")
		tok := s.token(t, admin.ID, admin.Secret)
		for _, p := range []string{apiusage.PermOrganizationAdd, apiusage.PermOrganizationView, apiusage.PermEventAddAny} {
			resp := s.e2eRaw(t, e2eRequest{Method: http.MethodPost, Path: "/api/v2/oauth/clients", Token: tok,
				Body: e2eJSON(t, map[string]any{"name": "x", "permissions": []string{p}})})
			body := e2eCheckError(t, "grant "+p, resp, http.StatusForbidden, apiusage.CodeMissingPerms)
			if body.MessageParams["permissions"] != p {
				t.Errorf("grant %s: messageParams %v", p, body.MessageParams)
			}
		}
		// A client cannot grant what it does not hold, nor add it by PUT.
		viewer := s.createClient(t, tok, "Viewer", apiusage.PermClientView, apiusage.PermClientAdd, apiusage.PermClientEdit)
		vt := s.token(t, viewer.ID, viewer.Secret)
		resp := s.e2eRaw(t, e2eRequest{Method: http.MethodPost, Path: "/api/v2/oauth/clients", Token: vt,
			Body: e2eJSON(t, map[string]any{"name": "x", "permissions": []string{apiusage.PermClientView, apiusage.PermUsageOrganization}})})
		if body := e2eCheckError(t, "grant a permission not held", resp, http.StatusForbidden, apiusage.CodeMissingPerms); body.MessageParams["permissions"] != apiusage.PermUsageOrganization {
			t.Errorf("grant a permission not held: messageParams %v", body.MessageParams)
		}
		resp = s.e2eRaw(t, e2eRequest{Method: http.MethodPut, Path: "/api/v2/oauth/clients/" + viewer.ID, Token: vt,
			Body: e2eJSON(t, map[string]any{"name": "Viewer", "permissions": []string{apiusage.PermClientView, apiusage.PermClientDelete}})})
		e2eCheckError(t, "add a permission not held by PUT", resp, http.StatusForbidden, apiusage.CodeMissingPerms)
		e := apiusage.Event{Time: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC), OrganizationID: orgID,
			ClientID: admin.ID, TemplateURI: "api/v2/users", Method: "GET", Status: 200}
		s.ingest(t, tok, []apiusage.Event{e})
		e.OrganizationID = otherOrg
		resp = s.e2eRaw(t, e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/events", Token: tok, Body: e2eJSON(t, []apiusage.Event{e})})
		e2eCheckError(t, "an event in another organization's name", resp, http.StatusForbidden, apiusage.CodeMissingPerms)
	})
}
