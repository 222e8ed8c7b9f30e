package capture

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestVerifier(tb testing.TB, is *issuer, cfg VerifierConfig) (*Verifier, *clock) {
	tb.Helper()
	clk := &clock{t: time.Now()}
	cfg.JWKSURL = is.url()
	if cfg.Now == nil {
		cfg.Now = clk.now
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return v, clk
}

func TestVerifyAlgorithms(t *testing.T) {
	is := newIssuer(t)
	for _, kid := range []string{"ed", "rsa", "ec"} {
		t.Run(kid+" valid", func(t *testing.T) {
			v, clk := newTestVerifier(t, is, VerifierConfig{})
			token := is.sign(t, kid, claims("org-1", "client-1", clk.now()))
			got, err := v.Verify(context.Background(), token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Identity{OrganizationID: "org-1", ClientID: "client-1"}
			if got != want {
				t.Errorf("identity = %+v, want %+v", got, want)
			}
		})
		t.Run(kid+" bad signature", func(t *testing.T) {
			v, clk := newTestVerifier(t, is, VerifierConfig{})
			token := is.sign(t, kid, claims("org-1", "client-1", clk.now()))
			// Swap the payload for another one: the signature no longer
			// covers it.
			other := is.sign(t, kid, claims("org-2", "client-1", clk.now()))
			parts, otherParts := strings.Split(token, "."), strings.Split(other, ".")
			forged := parts[0] + "." + otherParts[1] + "." + parts[2]
			if _, err := v.Verify(context.Background(), forged); !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify(forged) error = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestVerifyRefusals(t *testing.T) {
	is := newIssuer(t)
	now := time.Now()
	tests := []struct {
		name  string
		cfg   VerifierConfig
		token func(t *testing.T) string
		want  error
	}{
		{"expired", VerifierConfig{}, func(t *testing.T) string {
			c := claims("o", "c", now)
			c["exp"] = now.Add(-time.Second).Unix()
			return is.sign(t, "ed", c)
		}, ErrExpiredToken},
		{"no exp", VerifierConfig{}, func(t *testing.T) string {
			c := claims("o", "c", now)
			delete(c, "exp")
			return is.sign(t, "ed", c)
		}, ErrInvalidToken},
		{"not yet valid", VerifierConfig{}, func(t *testing.T) string {
			c := claims("o", "c", now)
			c["nbf"] = now.Add(time.Minute).Unix()
			return is.sign(t, "ec", c)
		}, ErrInvalidToken},
		{"unknown kid", VerifierConfig{}, func(t *testing.T) string {
			return is.signAs(t, "ed", "EdDSA", "nope", claims("o", "c", now))
		}, ErrUnknownKey},
		{"alg none", VerifierConfig{}, func(t *testing.T) string {
			tok := is.sign(t, "ed", claims("o", "c", now))
			parts := strings.Split(tok, ".")
			return b64([]byte(`{"alg":"none","kid":"ed"}`)) + "." + parts[1] + "."
		}, ErrInvalidToken},
		{"HMAC with the public key", VerifierConfig{}, func(t *testing.T) string {
			tok := is.sign(t, "ed", claims("o", "c", now))
			parts := strings.Split(tok, ".")
			return b64([]byte(`{"alg":"HS256","kid":"ed"}`)) + "." + parts[1] + "." + parts[2]
		}, ErrInvalidToken},
		{"alg of another key", VerifierConfig{}, func(t *testing.T) string {
			// Signed by the RSA key but naming the Ed25519 key: the key
			// verifies EdDSA only.
			return is.signAs(t, "rsa", "RS256", "ed", claims("o", "c", now))
		}, ErrInvalidToken},
		{"encryption key", VerifierConfig{}, func(t *testing.T) string {
			return is.signAs(t, "rsa", "RS256", "enc", claims("o", "c", now))
		}, ErrUnknownKey},
		{"no organization", VerifierConfig{}, func(t *testing.T) string {
			c := claims("o", "c", now)
			delete(c, "org")
			return is.sign(t, "ed", c)
		}, ErrInvalidToken},
		{"wrong issuer", VerifierConfig{Issuer: "https://idp"}, func(t *testing.T) string {
			c := claims("o", "c", now)
			c["iss"] = "https://evil"
			return is.sign(t, "ed", c)
		}, ErrInvalidToken},
		{"wrong audience", VerifierConfig{Audience: "api"}, func(t *testing.T) string {
			c := claims("o", "c", now)
			c["aud"] = []string{"other"}
			return is.sign(t, "ed", c)
		}, ErrInvalidToken},
		{"not a JWT", VerifierConfig{}, func(t *testing.T) string { return "abc.def" }, ErrInvalidToken},
		{"too long", VerifierConfig{}, func(t *testing.T) string { return strings.Repeat("a", maxTokenLength+1) }, ErrInvalidToken},
		{"empty", VerifierConfig{}, func(t *testing.T) string { return "" }, ErrNoToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Now = func() time.Time { return now }
			v, _ := newTestVerifier(t, is, cfg)
			id, err := v.Verify(context.Background(), tt.token(t))
			if !errors.Is(err, tt.want) {
				t.Errorf("Verify error = %v (identity %+v), want %v", err, id, tt.want)
			}
		})
	}
}

func TestVerifyClaims(t *testing.T) {
	is := newIssuer(t)
	now := time.Now()
	tests := []struct {
		name   string
		cfg    VerifierConfig
		claims map[string]any
		want   Identity
	}{
		{
			name:   "server token",
			claims: claims("org", "client", now),
			want:   Identity{OrganizationID: "org", ClientID: "client"},
		},
		{
			name: "namespaced and nested claims of an IdP",
			cfg: VerifierConfig{
				Claims:   Claims{Organization: "https://example.com/org", Client: "azp", User: "ext.user.id", ClientName: "client_name"},
				Issuer:   "https://idp",
				Audience: "api",
			},
			claims: map[string]any{
				"https://example.com/org": "acme", "azp": "app-7", "client_name": "Billing",
				"ext": map[string]any{"user": map[string]any{"id": 42}},
				"iss": "https://idp", "aud": []string{"x", "api"}, "exp": now.Add(time.Minute).Unix(),
			},
			want: Identity{OrganizationID: "acme", ClientID: "app-7", ClientName: "Billing", UserID: "42"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Now = func() time.Time { return now }
			v, _ := newTestVerifier(t, is, cfg)
			got, err := v.Verify(context.Background(), is.sign(t, "ec", tt.claims))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got != tt.want {
				t.Errorf("identity = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestVerifyCacheHonorsExpiry(t *testing.T) {
	is := newIssuer(t)
	v, clk := newTestVerifier(t, is, VerifierConfig{})
	c := claims("o", "c", clk.now())
	c["exp"] = clk.now().Add(10 * time.Second).Unix()
	token := is.sign(t, "ed", c)
	for i := range 3 {
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Fatalf("Verify %d: %v", i, err)
		}
	}
	if got := v.cache.len(); got != 1 {
		t.Errorf("cached tokens = %d, want 1", got)
	}
	clk.advance(11 * time.Second)
	if _, err := v.Verify(context.Background(), token); !errors.Is(err, ErrExpiredToken) {
		t.Errorf("Verify after expiry error = %v, want ErrExpiredToken", err)
	}
}

func TestVerifyCacheIsBounded(t *testing.T) {
	is := newIssuer(t)
	v, clk := newTestVerifier(t, is, VerifierConfig{CacheSize: 32})
	for i := range 200 {
		c := claims("o", "c", clk.now())
		c["jti"] = i
		if _, err := v.Verify(context.Background(), is.sign(t, "ed", c)); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.cache.len(); got > 32 {
		t.Errorf("cached tokens = %d, want at most 32", got)
	}
}

func TestJWKSRefresh(t *testing.T) {
	is := newIssuer(t)
	is.publish("ed")
	v, clk := newTestVerifier(t, is, VerifierConfig{MinRefresh: time.Minute, MaxKeyAge: time.Hour})
	ctx := context.Background()

	if _, err := v.Verify(ctx, is.sign(t, "ed", claims("o", "c", clk.now()))); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got := is.gets.Load(); got != 1 {
		t.Fatalf("JWKS fetches after first token = %d, want 1", got)
	}

	// A token of a key not published yet, once MinRefresh has passed: one
	// fetch, then no more within MinRefresh however many such tokens come.
	clk.advance(time.Minute)
	for range 5 {
		if _, err := v.Verify(ctx, is.sign(t, "ec", claims("o", "c", clk.now()))); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Verify(unknown kid) error = %v, want ErrUnknownKey", err)
		}
	}
	if got := is.gets.Load(); got != 2 {
		t.Errorf("JWKS fetches after unknown kids = %d, want 2 (rate-limited)", got)
	}

	// The key is rotated in; after MinRefresh, the unknown kid fetches
	// the keys again and the token passes.
	is.publish("ed", "ec")
	clk.advance(time.Minute)
	if _, err := v.Verify(ctx, is.sign(t, "ec", claims("o", "c", clk.now()))); err != nil {
		t.Fatalf("Verify after rotation: %v", err)
	}
	if got := is.gets.Load(); got != 3 {
		t.Errorf("JWKS fetches after rotation = %d, want 3", got)
	}

	// A key withdrawn is trusted no longer once the keys are older than
	// MaxKeyAge.
	is.publish("ec")
	clk.advance(time.Hour)
	if _, err := v.Verify(ctx, is.sign(t, "ed", claims("o", "c2", clk.now()))); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Verify(withdrawn key) error = %v, want ErrUnknownKey", err)
	}
}

func TestParseJWKS(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string
		kids    []string
	}{
		{"no keys", `{"keys":[]}`, "no usable key", nil},
		{"not json", `{`, "parse jwks", nil},
		{"short RSA", `{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]}`, "2048", nil},
		{"bad Ed25519", `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"e","x":"AAAA"}]}`, "bad Ed25519", nil},
		{"point off the curve", `{"keys":[{"kty":"EC","crv":"P-256","kid":"p","x":"` + b64(make([]byte, 32)) + `","y":"` + b64(append(make([]byte, 31), 1)) + `"}]}`, "P-256 point", nil},
		{"wrong alg for key", `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"e","alg":"ES256","x":"` + b64(make([]byte, 32)) + `"}]}`, "does not fit", nil},
		{"skips unknown types", `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},{"kty":"OKP","crv":"Ed25519","kid":"e","x":"` + b64(make([]byte, 32)) + `"}]}`, "", []string{"e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := parseJWKS([]byte(tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseJWKS error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseJWKS: %v", err)
			}
			for _, kid := range tt.kids {
				if _, ok := keys[kid]; !ok {
					t.Errorf("key %q missing from %v", kid, keys)
				}
			}
			if len(keys) != len(tt.kids) {
				t.Errorf("keys = %d, want %d", len(keys), len(tt.kids))
			}
		})
	}
}

// FuzzVerify feeds arbitrary tokens to the verifier: it must refuse them
// without panicking, and accept only what the issuer signed.
func FuzzVerify(f *testing.F) {
	is := newIssuer(f)
	now := time.Now()
	for _, kid := range []string{"ed", "rsa", "ec"} {
		f.Add(is.sign(f, kid, claims("o", "c", now)))
	}
	f.Add("a.b.c")
	f.Add("..")
	f.Add(b64([]byte(`{"alg":"EdDSA","kid":"ed","crit":["x"]}`)) + ".e30.")
	v, err := NewVerifier(VerifierConfig{JWKSURL: is.url(), Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(context.Background(), token)
		if err == nil && (id.OrganizationID != "o" || id.ClientID != "c") {
			t.Errorf("Verify(%q) accepted an identity the issuer never signed: %+v", token, id)
		}
	})
}

// FuzzParseJWKS checks that no JWKS document makes the parser panic.
func FuzzParseJWKS(f *testing.F) {
	is := newIssuer(f)
	doc := is.jwks()
	b, _ := json.Marshal(doc)
	f.Add(b)
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"","e":"AAAAAAAA"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseJWKS(data)
		if err == nil && len(keys) == 0 {
			t.Errorf("parseJWKS(%q) = no keys and no error", data)
		}
	})
}
