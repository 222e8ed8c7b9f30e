package server

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignerVerify(t *testing.T) {
	s, err := newSigner(ed25519.NewKeyFromSeed(seed(1)))
	if err != nil {
		t.Fatal(err)
	}
	other, err := newSigner(ed25519.NewKeyFromSeed(seed(2)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	claims := tokenClaims{Subject: "client-1", Organization: "org-1", Generation: 3,
		IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix(), ID: "jti-1"}
	token, err := s.sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.verify(token, now)
	if err != nil {
		t.Fatalf("verify a fresh token: %v", err)
	}
	if got != claims {
		t.Fatalf("verify: got claims %+v, want %+v", got, claims)
	}

	head, payload, sig := splitToken(t, token)
	foreign, err := other.sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	elevated := claims
	elevated.Organization = "org-2"
	elevatedPayload, _ := json.Marshal(elevated)
	noneHeader := b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"` + s.kid + `"}`))

	tests := []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"expired at its exp", token, now.Add(time.Hour), errTokenExpired},
		{"expired after its exp", token, now.Add(25 * time.Hour), errTokenExpired},
		{"signed by another key", foreign, now, errTokenSignature},
		{"payload swapped", head + "." + b64.EncodeToString(elevatedPayload) + "." + sig, now, errTokenSignature},
		{"alg none without a signature", noneHeader + "." + payload + ".", now, errTokenSignature},
		{"alg none with the old signature", noneHeader + "." + payload + "." + sig, now, errTokenSignature},
		{"signature cut", head + "." + payload + "." + sig[:10], now, errTokenMalformed},
		{"two parts", head + "." + payload, now, errTokenMalformed},
		{"four parts", token + ".x", now, errTokenMalformed},
		{"not base64", "!!!." + payload + "." + sig, now, errTokenMalformed},
		{"empty", "", now, errTokenMalformed},
		{"huge", strings.Repeat("a", maxTokenLength+1), now, errTokenMalformed},
		// The genuine token is remembered as verified by now: a token that
		// differs from it in one byte is not taken for it.
		{"last byte of the signature changed", token[:len(token)-1] + string(token[len(token)-1]^1), now, errTokenSignature},
		{"first byte changed", string(token[0]^1) + token[1:], now, errTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.verify(tt.token, tt.at)
			if !errors.Is(err, tt.want) {
				t.Fatalf("verify: got error %v, want %v", err, tt.want)
			}
		})
	}
	// Verified again and again (remembered), the token keeps its claims.
	for range 3 {
		if got, err := s.verify(token, now); err != nil || got != claims {
			t.Fatalf("verify again: %+v, %v; want %+v", got, err, claims)
		}
	}
}

func TestSignerRemembersOnlyGoodTokens(t *testing.T) {
	s, err := newSigner(ed25519.NewKeyFromSeed(seed(4)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	// An expired token with a good signature is remembered as verified,
	// and refused every time; a bad one is never remembered.
	old, _ := s.sign(tokenClaims{Subject: "c", Expires: now.Unix() - 1})
	head, payload, sig := splitToken(t, old)
	bad := head + "." + payload + "." + sig[:len(sig)-2] + "AA"
	for range 2 {
		if _, err := s.verify(old, now); !errors.Is(err, errTokenExpired) {
			t.Fatalf("expired token: %v, want %v", err, errTokenExpired)
		}
		if _, err := s.verify(bad, now); !errors.Is(err, errTokenSignature) {
			t.Fatalf("bad signature: %v, want %v", err, errTokenSignature)
		}
	}
	for i := range s.verified {
		if v := s.verified[i].Load(); v != nil && v.token == bad {
			t.Fatal("a token with a bad signature is remembered as verified")
		}
	}
}

func TestEqualConstantTime(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{{"", "", true}, {"abc", "abc", true}, {"abc", "abd", false}, {"abc", "ab", false}, {"xbc", "abc", false}} {
		if got := equalConstantTime(tt.a, tt.b); got != tt.want {
			t.Errorf("equalConstantTime(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// BenchmarkVerify measures checking an access token, as every API call
// does: the first time (a signature check), and again (remembered).
func BenchmarkVerify(b *testing.B) {
	s, err := newSigner(ed25519.NewKeyFromSeed(seed(5)))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	token, _ := s.sign(tokenClaims{Subject: "client-1", Organization: "org-1", Expires: now.Add(time.Hour).Unix(), ID: "jti"})
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			clear(s.verified[:])
			if _, err := s.verify(token, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("again", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.verify(token, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestSignerRejectsBadKey(t *testing.T) {
	if _, err := newSigner(ed25519.PrivateKey(make([]byte, 10))); err == nil {
		t.Fatal("newSigner accepted a 10-byte key, want an error")
	}
}

func TestJWKSVerifiesTokens(t *testing.T) {
	s, err := newSigner(ed25519.NewKeyFromSeed(seed(3)))
	if err != nil {
		t.Fatal(err)
	}
	token, err := s.sign(tokenClaims{Subject: "c", Expires: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	keys := s.jwks()["keys"]
	if len(keys) != 1 {
		t.Fatalf("jwks has %d keys, want 1", len(keys))
	}
	k := keys[0]
	if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Kid != s.kid {
		t.Fatalf("jwk %+v, want OKP Ed25519 EdDSA with kid %s", k, s.kid)
	}
	pub, err := b64.DecodeString(k.X)
	if err != nil {
		t.Fatal(err)
	}
	head, payload, sig := splitToken(t, token)
	rawSig, _ := b64.DecodeString(sig)
	if !ed25519.Verify(ed25519.PublicKey(pub), []byte(head+"."+payload), rawSig) {
		t.Fatal("the published key does not verify a token")
	}
}

func seed(b byte) []byte {
	s := make([]byte, ed25519.SeedSize)
	s[0] = b
	return s
}

func splitToken(t *testing.T, token string) (head, payload, sig string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts, want 3", token, len(parts))
	}
	return parts[0], parts[1], parts[2]
}
