package server

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync/atomic"
	"time"
)

// signer issues and verifies access tokens: compact JWTs signed with Ed25519
// (RFC 8037, alg EdDSA). A hand-rolled JWT is a few lines and keeps the
// accepted algorithm fixed, which is where JWT libraries have been attacked.
type signer struct {
	key ed25519.PrivateKey
	pub ed25519.PublicKey
	// kid is the RFC 7638 thumbprint of the public key.
	kid string
	// header is the encoded header of every token this signer issues.
	header string
	// verified remembers tokens whose signature verify has checked, by a
	// keyed hash of the token: a caller polling an execution every
	// millisecond presents the same token again and again, and an Ed25519
	// verification (tens of microseconds) was a tenth of the server's CPU
	// while a long query ran. Only the exact token (compared in constant
	// time) hits; its expiry is checked on every use.
	verified [verifiedSlots]atomic.Pointer[verifiedToken]
	seed     maphash.Seed
}

// verifiedSlots is how many verified tokens a signer remembers; a token
// that finds its slot taken by another is verified again, nothing worse.
const verifiedSlots = 1024

// verifiedToken is a token whose signature was good, and its claims.
type verifiedToken struct {
	token  string
	claims tokenClaims
}

// tokenClaims are the claims of an access token.
type tokenClaims struct {
	// Subject is the client id.
	Subject string `json:"sub"`
	// Organization is the client's organization when the token was issued.
	Organization string `json:"org"`
	// Generation is the client's secret generation: a token of an older
	// generation was issued before a rotation and is revoked.
	Generation int    `json:"gen"`
	IssuedAt   int64  `json:"iat"`
	Expires    int64  `json:"exp"`
	ID         string `json:"jti"`
}

type tokenHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

// maxTokenLength bounds the tokens verify looks at; ours are about 400 bytes.
const maxTokenLength = 4096

var b64 = base64.RawURLEncoding

func newSigner(key ed25519.PrivateKey) (*signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing key: want %d bytes of ed25519 private key, got %d", ed25519.PrivateKeySize, len(key))
	}
	pub := key.Public().(ed25519.PublicKey)
	// RFC 7638: the SHA-256 of the required members in lexicographic order.
	thumb := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(pub) + `"}`))
	s := &signer{key: key, pub: pub, kid: b64.EncodeToString(thumb[:]), seed: maphash.MakeSeed()}
	h, err := json.Marshal(tokenHeader{Alg: "EdDSA", Typ: "JWT", Kid: s.kid})
	if err != nil {
		return nil, fmt.Errorf("encode token header: %w", err)
	}
	s.header = b64.EncodeToString(h)
	return s, nil
}

// sign returns the compact JWT of c.
func (s *signer) sign(c tokenClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode token claims: %w", err)
	}
	signed := s.header + "." + b64.EncodeToString(payload)
	sig := ed25519.Sign(s.key, []byte(signed))
	return signed + "." + b64.EncodeToString(sig), nil
}

// Errors of verify. Their text is for the server log; callers see only
// bad.credentials.
var (
	errTokenMalformed = errors.New("malformed token")
	errTokenSignature = errors.New("bad token signature")
	errTokenExpired   = errors.New("token expired")
)

// verify checks a token's form, header, signature and expiry at now, and
// returns its claims.
func (s *signer) verify(token string, now time.Time) (tokenClaims, error) {
	if len(token) > maxTokenLength {
		return tokenClaims{}, errTokenMalformed
	}
	slot := &s.verified[maphash.String(s.seed, token)%verifiedSlots]
	var c tokenClaims
	if v := slot.Load(); v != nil && equalConstantTime(v.token, token) {
		c = v.claims
	} else {
		var err error
		if c, err = s.verifySignature(token); err != nil {
			return tokenClaims{}, err
		}
		slot.Store(&verifiedToken{token: strings.Clone(token), claims: c})
	}
	if now.Unix() >= c.Expires {
		return tokenClaims{}, errTokenExpired
	}
	return c, nil
}

// equalConstantTime reports whether a and b are equal, in a time that
// depends on their length only: a cached token is a secret, and a compare
// that stops at the first difference would tell how much of a guess is
// right.
func equalConstantTime(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := 0; i < len(a); i++ {
		d |= a[i] ^ b[i]
	}
	return d == 0
}

// verifySignature checks a token's form, header and signature, and returns
// its claims.
func (s *signer) verifySignature(token string) (tokenClaims, error) {
	head, rest, ok := strings.Cut(token, ".")
	if !ok {
		return tokenClaims{}, errTokenMalformed
	}
	payload, sigText, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sigText, ".") {
		return tokenClaims{}, errTokenMalformed
	}
	var h tokenHeader
	if raw, err := b64.DecodeString(head); err != nil || json.Unmarshal(raw, &h) != nil {
		return tokenClaims{}, errTokenMalformed
	}
	// Only our algorithm and key: "alg": "none" and friends never get as far
	// as a signature check.
	if h.Alg != "EdDSA" || h.Kid != s.kid {
		return tokenClaims{}, errTokenSignature
	}
	sig, err := b64.DecodeString(sigText)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return tokenClaims{}, errTokenMalformed
	}
	if !ed25519.Verify(s.pub, []byte(token[:len(head)+1+len(payload)]), sig) {
		return tokenClaims{}, errTokenSignature
	}
	var c tokenClaims
	raw, err := b64.DecodeString(payload)
	if err != nil || json.Unmarshal(raw, &c) != nil || c.Subject == "" {
		return tokenClaims{}, errTokenMalformed
	}
	return c, nil
}

// jwk is a public key in JWK form (RFC 8037 OKP).
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// jwks returns the JSON Web Key Set that verifies this signer's tokens.
func (s *signer) jwks() map[string][]jwk {
	return map[string][]jwk{"keys": {{
		Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(s.pub), Kid: s.kid, Alg: "EdDSA", Use: "sig",
	}}}
}
