package server_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

func TestTokenEndpoint(t *testing.T) {
	e := newEnv(t)
	a := e.newTenant("Acme")
	grant := url.Values{"grant_type": {"client_credentials"}}
	tests := []struct {
		name   string
		id     string // Basic auth when set
		secret string
		form   url.Values
		status int
		error  string
	}{
		{"Basic auth", a.adminID, a.adminSecret, grant, 200, ""},
		{"form fields", "", "", url.Values{"grant_type": {"client_credentials"}, "client_id": {a.adminID}, "client_secret": {a.adminSecret}}, 200, ""},
		{"a wrong secret", a.adminID, "nope", grant, 401, "invalid_client"},
		{"an unknown client", "nobody", a.adminSecret, grant, 401, "invalid_client"},
		{"no credentials", "", "", grant, 401, "invalid_client"},
		{"another grant", a.adminID, a.adminSecret, url.Values{"grant_type": {"password"}}, 400, "unsupported_grant_type"},
		{"no grant", a.adminID, a.adminSecret, url.Values{}, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.tokenRequest(tt.id, tt.secret, tt.form)
			if res.status != tt.status {
				t.Fatalf("status %d (%s), want %d", res.status, res.body, tt.status)
			}
			body := res.json(t)
			if tt.error != "" {
				if body["error"] != tt.error || body["description"] == "" || body["error_description"] != body["description"] {
					t.Fatalf("body %s, want error %q with description and error_description", res.body, tt.error)
				}
				return
			}
			if body["token_type"] != "bearer" || body["expires_in"] != float64(3600) || body["access_token"] == "" {
				t.Fatalf("body %s, want a bearer token expiring in 3600 s", res.body)
			}
			e.call(http.StatusOK, "GET", "/api/v2/oauth/clients/"+a.adminID, body["access_token"].(string), nil)
		})
	}
}

func TestTokenClaimsAndJWKS(t *testing.T) {
	e := newEnv(t)
	a := e.newTenant("Acme")
	jwks := e.call(http.StatusOK, "GET", "/oauth/jwks", "", nil)
	key := jwks["keys"].([]any)[0].(map[string]any)
	if key["kty"] != "OKP" || key["crv"] != "Ed25519" || key["kid"] == "" {
		t.Fatalf("jwk %v, want an OKP Ed25519 key with a kid", key)
	}
	pub, err := base64.RawURLEncoding.DecodeString(key["x"].(string))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(a.admin, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWT", a.admin)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		t.Fatal("the JWKS key does not verify the token")
	}
	var header, claims map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[0])
	json.Unmarshal(raw, &header)
	raw, _ = base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(raw, &claims)
	if header["alg"] != "EdDSA" || header["kid"] != key["kid"] {
		t.Fatalf("header %v, want alg EdDSA and kid %v", header, key["kid"])
	}
	want := map[string]any{"sub": a.adminID, "org": a.id, "gen": float64(0),
		"iat": float64(t0.Unix()), "exp": float64(t0.Add(time.Hour).Unix())}
	for k, v := range want {
		if claims[k] != v {
			t.Fatalf("claim %s = %v, want %v (claims %v)", k, claims[k], v, claims)
		}
	}
	if claims["jti"] == "" || claims["jti"] == nil {
		t.Fatalf("claims %v lack a jti", claims)
	}
}

func TestTokenExpiry(t *testing.T) {
	e := newEnv(t)
	a := e.newTenant("Acme")
	path := "/api/v2/oauth/clients/" + a.adminID
	e.clock.Advance(time.Hour - time.Second)
	e.call(http.StatusOK, "GET", path, a.admin, nil)
	e.clock.Advance(time.Second)
	checkError(t, e.do(request{method: "GET", path: path, token: a.admin}), 401, apiusage.CodeBadCredentials)
	fresh := e.login(a.adminID, a.adminSecret)
	e.call(http.StatusOK, "GET", path, fresh, nil)
}

func TestTokenRevocation(t *testing.T) {
	e := newEnv(t)
	a := e.newTenant("Acme")
	probe := func(token string) response {
		return e.do(request{method: "GET", path: "/api/v2/oauth/clients", token: token})
	}

	t.Run("deleting a client revokes its tokens", func(t *testing.T) {
		id, _, token := e.newClient(a, "doomed", apiusage.PermClientView)
		if res := probe(token); res.status != 200 {
			t.Fatalf("before the delete: status %d, want 200", res.status)
		}
		e.call(http.StatusNoContent, "DELETE", "/api/v2/oauth/clients/"+id, a.admin, nil)
		checkError(t, probe(token), 401, apiusage.CodeBadCredentials)
	})
	t.Run("rotating a secret revokes the old secret and tokens", func(t *testing.T) {
		id, secret, token := e.newClient(a, "rotated", apiusage.PermClientView)
		body := e.call(http.StatusOK, "POST", "/api/v2/oauth/clients/"+id+"/secret", a.admin, nil)
		newSecret, _ := body["secret"].(string)
		if newSecret == "" || newSecret == secret {
			t.Fatalf("rotation answered secret %q, want a new one", newSecret)
		}
		checkError(t, probe(token), 401, apiusage.CodeBadCredentials)
		if res := e.tokenRequest(id, secret, url.Values{"grant_type": {"client_credentials"}}); res.status != 401 {
			t.Fatalf("login with the old secret: status %d, want 401", res.status)
		}
		if res := probe(e.login(id, newSecret)); res.status != 200 {
			t.Fatalf("with a token of the new secret: status %d, want 200", res.status)
		}
	})
	t.Run("permissions are the client's current ones", func(t *testing.T) {
		id, _, token := e.newClient(a, "demoted", apiusage.PermClientView)
		if res := probe(token); res.status != 200 {
			t.Fatalf("before: status %d, want 200", res.status)
		}
		e.call(http.StatusOK, "PUT", "/api/v2/oauth/clients/"+id, a.admin, map[string]any{"name": "demoted", "permissions": []string{}})
		checkError(t, probe(token), 403, apiusage.CodeMissingPerms)
	})
	t.Run("the scheme is case-insensitive", func(t *testing.T) {
		res := e.do(request{method: "GET", path: "/api/v2/oauth/clients", header: map[string]string{"Authorization": "bearer " + a.admin}})
		if res.status != 200 {
			t.Fatalf("status %d (%s), want 200", res.status, res.body)
		}
	})
}
