package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// TestE2ETokenExpiry runs a server whose tokens last two seconds: a token
// works, then, once expired, is 401 bad.credentials on every endpoint, and a
// new login works again.
func TestE2ETokenExpiry(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"APIUSAGE_TOKEN_TTL": "2s"})
	_, admin := s.createOrganization(t, "Acme")
	// Tokens expire at a whole second (their exp claim is in seconds), so a
	// token got late in a second lasts barely one: log in just after a
	// second starts, for close to the full two seconds of use.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	resp := s.e2eLogin(t, admin.ID, admin.Secret)
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if resp.Status != http.StatusOK || json.Unmarshal(resp.Body, &tok) != nil || tok.ExpiresIn != 2 {
		t.Fatalf("login: %s, want a token that expires in 2 s", resp)
	}
	calls := []e2eRequest{
		{Method: http.MethodGet, Path: "/api/v2/oauth/clients"},
		{Method: http.MethodPost, Path: "/api/v2/usage/query", Body: []byte(`{"interval": "2025/2026"}`)},
		{Method: http.MethodGet, Path: "/api/v2/oauth/clients/" + admin.ID + "/usage/summary"},
	}
	for _, c := range calls {
		c.Token = tok.AccessToken
		if r := s.e2eRaw(t, c); r.Status >= 300 {
			t.Fatalf("%s %s with a fresh token: %s", c.Method, c.Path, r)
		}
	}
	time.Sleep(3 * time.Second)
	for _, c := range calls {
		c.Token = tok.AccessToken
		e2eCheckError(t, c.Method+" "+c.Path+" with an expired token", s.e2eRaw(t, c), http.StatusUnauthorized, apiusage.CodeBadCredentials)
	}
	fresh := s.token(t, admin.ID, admin.Secret)
	s.do(t, fresh, http.MethodGet, "/api/v2/oauth/clients", nil, http.StatusOK, nil)
}

// TestE2ETokenRevocation checks that a client's tokens stop working at once
// when its secret is rotated (the old secret stops working, the new one
// works) and when it is deleted (and its secret with it); that a change of
// permissions applies to tokens already issued; and that other clients'
// tokens are untouched throughout.
func TestE2ETokenRevocation(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	_, admin := s.createOrganization(t, "Acme")
	adminToken := s.token(t, admin.ID, admin.Secret)
	bot := s.createClient(t, adminToken, "Bot", apiusage.PermClientView, apiusage.PermUsageOrganization)
	old := s.token(t, bot.ID, bot.Secret)
	works := func(tok string) {
		t.Helper()
		s.do(t, tok, http.MethodGet, "/api/v2/oauth/clients/"+bot.ID, nil, http.StatusOK, nil)
	}
	revoked := func(what, tok string) {
		t.Helper()
		resp := s.e2eRaw(t, e2eRequest{Method: http.MethodGet, Path: "/api/v2/oauth/clients", Token: tok})
		e2eCheckError(t, what, resp, http.StatusUnauthorized, apiusage.CodeBadCredentials)
	}
	works(old)

	// Permissions are read at every call: taking oauth:client:view and
	// usage:organization:view away forbids the query at once, with the same
	// token; giving them back allows it again.
	s.do(t, old, http.MethodPost, "/api/v2/usage/query", map[string]any{"interval": "2025/2026"}, http.StatusAccepted, nil)
	setPerms := func(perms ...string) {
		t.Helper()
		s.do(t, adminToken, http.MethodPut, "/api/v2/oauth/clients/"+bot.ID,
			map[string]any{"name": "Bot", "permissions": perms}, http.StatusOK, nil)
	}
	setPerms(apiusage.PermUsageClient)
	resp := s.e2eRaw(t, e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/query", Token: old, Body: []byte(`{"interval": "2025/2026"}`)})
	e2eCheckError(t, "query after losing its permissions", resp, http.StatusForbidden, apiusage.CodeMissingPerms)
	setPerms(apiusage.PermClientView, apiusage.PermUsageOrganization)
	s.do(t, old, http.MethodPost, "/api/v2/usage/query", map[string]any{"interval": "2025/2026"}, http.StatusAccepted, nil)
	works(old)

	// Rotation.
	var rotated newClient
	s.do(t, adminToken, http.MethodPost, "/api/v2/oauth/clients/"+bot.ID+"/secret", nil, http.StatusOK, &rotated)
	if rotated.Secret == "" || rotated.Secret == bot.Secret || rotated.ID != bot.ID {
		t.Fatalf("rotate: got %+v, want a new secret for %s", rotated, bot.ID)
	}
	revoked("the token issued before the rotation", old)
	e2eCheckOAuthError(t, "login with the old secret", s.e2eLogin(t, bot.ID, bot.Secret), http.StatusUnauthorized, "invalid_client")
	current := s.token(t, bot.ID, rotated.Secret)
	works(current)
	works(adminToken)
	// A client may rotate its own secret, given oauth:client:edit; its
	// token then stops working too.
	self := s.createClient(t, adminToken, "Self-rotating", apiusage.PermClientEdit)
	selfToken := s.token(t, self.ID, self.Secret)
	var selfRotated newClient
	s.do(t, selfToken, http.MethodPost, "/api/v2/oauth/clients/"+self.ID+"/secret", nil, http.StatusOK, &selfRotated)
	revoked("the token of a client that rotated its own secret", selfToken)
	s.token(t, self.ID, selfRotated.Secret)

	// Deletion.
	s.do(t, adminToken, http.MethodDelete, "/api/v2/oauth/clients/"+bot.ID, nil, http.StatusNoContent, nil)
	revoked("the token of a deleted client", current)
	e2eCheckOAuthError(t, "login of a deleted client", s.e2eLogin(t, bot.ID, rotated.Secret), http.StatusUnauthorized, "invalid_client")
	resp = s.e2eRaw(t, e2eRequest{Method: http.MethodGet, Path: "/api/v2/oauth/clients/" + bot.ID, Token: adminToken})
	e2eCheckError(t, "GET a deleted client", resp, http.StatusNotFound, apiusage.CodeNotFound)
	works2 := s.e2eRaw(t, e2eRequest{Method: http.MethodGet, Path: "/api/v2/oauth/clients", Token: adminToken})
	if works2.Status != http.StatusOK {
		t.Errorf("the admin token after deleting another client: %s", works2)
	}
	// A client cannot delete itself (the organization would lose its
	// way in), and its token keeps working.
	resp = s.e2eRaw(t, e2eRequest{Method: http.MethodDelete, Path: "/api/v2/oauth/clients/" + admin.ID, Token: adminToken})
	e2eCheckError(t, "a client deleting itself", resp, http.StatusConflict, apiusage.CodeConflict)
	s.do(t, adminToken, http.MethodGet, "/api/v2/oauth/clients/"+admin.ID, nil, http.StatusOK, nil)
}
