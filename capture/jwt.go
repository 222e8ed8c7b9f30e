package capture

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Identity is who made a request: what a verified token says.
type Identity struct {
	OrganizationID string
	ClientID       string
	// ClientName is the client's name when the token carries one; the
	// server uses it for clients it does not know.
	ClientName string
	UserID     string
}

// Claims names the token claims that carry an Identity. A name is looked up
// at the top level of the claims first; when it is not there and has dots,
// as a path into nested objects (realm.org), so that both namespaced claims
// such as https://example.com/org and nested ones work.
type Claims struct {
	Organization string
	Client       string
	ClientName   string
	User         string
}

// DefaultClaims are the claims of the apiusage server's own tokens: the
// organization in org and the client in sub. They carry no user.
var DefaultClaims = Claims{Organization: "org", Client: "sub"}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// JWKSURL is where the verification keys are published: the apiusage
	// server's {url}/oauth/jwks, or an identity provider's JWKS.
	JWKSURL string
	// HTTPClient fetches the JWKS; nil means one with a 10 second timeout.
	HTTPClient *http.Client
	// Claims names the identity claims; zero fields take DefaultClaims'.
	Claims Claims
	// Issuer and Audience, when set, must match the iss claim and be one
	// of the aud claim's values.
	Issuer   string
	Audience string
	// Leeway tolerates clock skew on exp and nbf.
	Leeway time.Duration
	// MinRefresh is the least time between two fetches of the JWKS. A
	// token with an unknown key id triggers a fetch, so without this bound
	// anyone could make the verifier hammer the JWKS endpoint.
	MinRefresh time.Duration
	// MaxKeyAge is how long fetched keys are used before they are fetched
	// again (when a token needs verifying), so that a key withdrawn from
	// the JWKS stops being trusted.
	MaxKeyAge time.Duration
	// CacheSize bounds the verified tokens remembered: a remembered token
	// is not verified again until it expires.
	CacheSize int
	// Logger logs JWKS fetches that fail; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier verifies bearer tokens (JWS compact JWTs signed with EdDSA,
// RS256 or ES256) against the keys of a JWKS, and remembers verified tokens
// until they expire, so that a known token costs a map lookup.
//
// A Verifier is safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	cache  *tokenCache

	mu        sync.Mutex // serializes fetches; guards the fields below
	keys      map[string]jwk
	fetched   time.Time // last successful fetch
	attempted time.Time // last fetch, successful or not
}

// Errors of Verify. Any error of Verify means the token is not to be
// trusted; these tell why.
var (
	ErrNoToken      = errors.New("no bearer token")
	ErrInvalidToken = errors.New("invalid token")
	ErrExpiredToken = errors.New("token expired")
	ErrUnknownKey   = errors.New("token signed with an unknown key")
)

// NewVerifier returns a Verifier. It fetches no keys until a token needs
// them; call Refresh to fetch them ahead.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.JWKSURL == "" {
		return nil, errors.New("verifier: JWKS URL is required")
	}
	if cfg.Claims.Organization == "" {
		cfg.Claims.Organization = DefaultClaims.Organization
	}
	if cfg.Claims.Client == "" {
		cfg.Claims.Client = DefaultClaims.Client
	}
	if cfg.MinRefresh <= 0 {
		cfg.MinRefresh = 10 * time.Second
	}
	if cfg.MaxKeyAge <= 0 {
		cfg.MaxKeyAge = time.Hour
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 10000
	}
	v := &Verifier{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger, now: cfg.Now}
	if v.client == nil {
		v.client = &http.Client{Timeout: 10 * time.Second}
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.now == nil {
		v.now = time.Now
	}
	v.cache = newTokenCache(cfg.CacheSize)
	return v, nil
}

// maxTokenLength bounds the tokens looked at: cached tokens are kept in
// memory, and no real token comes near this.
const maxTokenLength = 8 << 10

// Verify returns the identity a token carries once its signature, expiry and
// claims check out. Errors wrap ErrInvalidToken, ErrExpiredToken or
// ErrUnknownKey.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	return v.verifyAt(ctx, token, v.now())
}

// verifyAt is Verify at a time the caller already read from the clock.
func (v *Verifier) verifyAt(ctx context.Context, token string, now time.Time) (Identity, error) {
	if token == "" {
		return Identity{}, ErrNoToken
	}
	if len(token) > maxTokenLength {
		return Identity{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, maxTokenLength)
	}
	if id, ok := v.cache.get(token, now.Unix()); ok {
		return id, nil
	}
	id, exp, err := v.verify(ctx, token, now)
	if err != nil {
		return Identity{}, err
	}
	v.cache.put(token, id, exp.Unix(), now.Unix())
	return id, nil
}

// jwk is a verification key of the JWKS.
type jwk struct {
	alg string // the one algorithm the key verifies
	key crypto.PublicKey
}

type tokenHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Crit json.RawMessage `json:"crit"`
}

func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (Identity, time.Time, error) {
	invalid := func(format string, args ...any) (Identity, time.Time, error) {
		return Identity{}, time.Time{}, fmt.Errorf("%w: %s", ErrInvalidToken, fmt.Sprintf(format, args...))
	}
	h64, rest, ok1 := strings.Cut(token, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") {
		return invalid("not a JWS compact token")
	}
	hb, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return invalid("header: %v", err)
	}
	var hdr tokenHeader
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return invalid("header: %v", err)
	}
	if len(hdr.Crit) > 0 {
		return invalid("unsupported critical header")
	}
	switch hdr.Alg {
	case "EdDSA", "RS256", "ES256":
	default:
		// Anything else, "none" and HMAC above all, is refused: a JWKS
		// holds public keys, and only these algorithms verify with one.
		return invalid("unsupported alg %q", hdr.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return invalid("signature: %v", err)
	}
	key, err := v.key(ctx, hdr.Kid, hdr.Alg, now)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	if key.alg != hdr.Alg {
		// Binding each key to one algorithm closes algorithm confusion.
		return invalid("alg %q does not match the key's %q", hdr.Alg, key.alg)
	}
	if !verifySignature(key, token[:len(h64)+1+len(p64)], sig) {
		return invalid("bad signature")
	}
	pb, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		return invalid("payload: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(pb))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return invalid("payload: %v", err)
	}
	exp, ok := numericDate(claims["exp"])
	if !ok {
		// A token without an expiry would be trusted, and cached, forever.
		return invalid("no exp claim")
	}
	if !now.Before(exp.Add(v.cfg.Leeway)) {
		return Identity{}, time.Time{}, fmt.Errorf("%w at %s", ErrExpiredToken, exp.UTC().Format(time.RFC3339))
	}
	if nbf, ok := numericDate(claims["nbf"]); ok && now.Add(v.cfg.Leeway).Before(nbf) {
		return invalid("not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	if v.cfg.Issuer != "" {
		if iss, _ := claims["iss"].(string); iss != v.cfg.Issuer {
			return invalid("issuer %q is not %q", iss, v.cfg.Issuer)
		}
	}
	if v.cfg.Audience != "" && !hasAudience(claims["aud"], v.cfg.Audience) {
		return invalid("audience is not %q", v.cfg.Audience)
	}
	id := Identity{
		OrganizationID: claimString(claims, v.cfg.Claims.Organization),
		ClientID:       claimString(claims, v.cfg.Claims.Client),
		ClientName:     claimString(claims, v.cfg.Claims.ClientName),
		UserID:         claimString(claims, v.cfg.Claims.User),
	}
	if id.OrganizationID == "" {
		return invalid("no organization claim %q", v.cfg.Claims.Organization)
	}
	if id.ClientID == "" {
		return invalid("no client claim %q", v.cfg.Claims.Client)
	}
	return id, exp.Add(v.cfg.Leeway), nil
}

func verifySignature(k jwk, signed string, sig []byte) bool {
	switch k.alg {
	case "EdDSA":
		pub, ok := k.key.(ed25519.PublicKey)
		return ok && ed25519.Verify(pub, []byte(signed), sig)
	case "RS256":
		pub, ok := k.key.(*rsa.PublicKey)
		if !ok {
			return false
		}
		sum := sha256.Sum256([]byte(signed))
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil
	case "ES256":
		pub, ok := k.key.(*ecdsa.PublicKey)
		if !ok || len(sig) != 64 {
			return false
		}
		sum := sha256.Sum256([]byte(signed))
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(pub, sum[:], r, s)
	}
	return false
}

// numericDate reads a JWT NumericDate: seconds since the epoch, possibly
// with a fraction.
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	if i, err := n.Int64(); err == nil {
		return time.Unix(i, 0), true
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e12 {
		return time.Time{}, false
	}
	return time.Unix(0, 0).Add(time.Duration(f * float64(time.Second))), true
}

func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok && s == want {
				return true
			}
		}
	}
	return false
}

// claimString returns a claim as a string: a string as it is, a number in
// its JSON spelling, anything else (or nothing) as "".
func claimString(claims map[string]any, name string) string {
	if name == "" {
		return ""
	}
	v, ok := claims[name]
	if !ok && strings.Contains(name, ".") {
		var cur any = claims
		for part := range strings.SplitSeq(name, ".") {
			m, isMap := cur.(map[string]any)
			if !isMap {
				cur = nil
				break
			}
			cur = m[part]
		}
		v = cur
	}
	switch s := v.(type) {
	case string:
		return s
	case json.Number:
		return s.String()
	}
	return ""
}

// key returns the key with the id, fetching the JWKS when the id is unknown
// or the keys are old, at most once per MinRefresh. A token without a key id
// uses the one key of its algorithm, when there is exactly one.
func (v *Verifier) key(ctx context.Context, kid, alg string, now time.Time) (jwk, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k, found := lookupKey(v.keys, kid, alg)
	stale := v.fetched.IsZero() || now.Sub(v.fetched) >= v.cfg.MaxKeyAge
	if (!found || stale) && now.Sub(v.attempted) >= v.cfg.MinRefresh {
		v.attempted = now
		// Holding the lock while fetching makes concurrent misses wait
		// for one fetch rather than each start their own.
		keys, err := v.fetch(ctx)
		if err != nil {
			v.log.Warn("fetch JWKS", "url", v.cfg.JWKSURL, "err", err)
		} else {
			v.keys, v.fetched = keys, now
			k, found = lookupKey(v.keys, kid, alg)
		}
	}
	if !found {
		return jwk{}, fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	return k, nil
}

func lookupKey(keys map[string]jwk, kid, alg string) (jwk, bool) {
	if kid != "" {
		k, ok := keys[kid]
		return k, ok
	}
	var only jwk
	n := 0
	for _, k := range keys {
		if k.alg == alg {
			only = k
			n++
		}
	}
	return only, n == 1
}

// Refresh fetches the JWKS now, whatever MinRefresh says.
func (v *Verifier) Refresh(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	v.attempted = now
	keys, err := v.fetch(ctx)
	if err != nil {
		return err
	}
	v.keys, v.fetched = keys, now
	return nil
}

// maxJWKSBytes bounds a JWKS document.
const maxJWKSBytes = 1 << 20

func (v *Verifier) fetch(ctx context.Context) (map[string]jwk, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get jwks: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get jwks: status %d", resp.StatusCode)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("jwks larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body)
}

// rawJWK is a JSON Web Key as published: only the members verification
// needs.
type rawJWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// parseJWKS parses a JWKS document ({"keys": [...]}) into verification keys
// by key id. Keys it cannot use (encryption keys, other key types or curves,
// RSA keys under 2048 bits) are skipped; a document with no usable key is an
// error.
func parseJWKS(data []byte) (map[string]jwk, error) {
	var doc struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	keys := map[string]jwk{}
	var errs []error
	for i, raw := range doc.Keys {
		if raw.Use != "" && raw.Use != "sig" {
			continue
		}
		k, err := raw.key()
		if err != nil {
			errs = append(errs, fmt.Errorf("key %d (kid %q): %w", i, raw.Kid, err))
			continue
		}
		if k.alg == "" {
			continue // a key type we do not verify with
		}
		if _, dup := keys[raw.Kid]; dup {
			errs = append(errs, fmt.Errorf("key %d: duplicate kid %q", i, raw.Kid))
			continue
		}
		keys[raw.Kid] = k
	}
	if len(keys) == 0 {
		return nil, errors.Join(append([]error{errors.New("jwks has no usable key")}, errs...)...)
	}
	return keys, nil
}

func (raw rawJWK) key() (jwk, error) {
	b64 := base64.RawURLEncoding
	want := func(alg string) error {
		if raw.Alg != "" && raw.Alg != alg {
			return fmt.Errorf("alg %q does not fit a %s key", raw.Alg, raw.Kty)
		}
		return nil
	}
	switch {
	case raw.Kty == "OKP" && raw.Crv == "Ed25519":
		if err := want("EdDSA"); err != nil {
			return jwk{}, err
		}
		x, err := b64.DecodeString(raw.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return jwk{}, errors.New("bad Ed25519 x")
		}
		return jwk{alg: "EdDSA", key: ed25519.PublicKey(x)}, nil
	case raw.Kty == "RSA":
		if raw.Alg != "" && raw.Alg != "RS256" {
			return jwk{}, nil // PS256, RS512...: not supported, skipped
		}
		n, err1 := b64.DecodeString(raw.N)
		e, err2 := b64.DecodeString(raw.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return jwk{}, errors.New("bad RSA n or e")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
		for _, c := range e {
			pub.E = pub.E<<8 | int(c)
		}
		if pub.N.BitLen() < 2048 {
			return jwk{}, errors.New("RSA key shorter than 2048 bits")
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return jwk{}, errors.New("bad RSA exponent " + strconv.Itoa(pub.E))
		}
		return jwk{alg: "RS256", key: pub}, nil
	case raw.Kty == "EC" && raw.Crv == "P-256":
		if err := want("ES256"); err != nil {
			return jwk{}, err
		}
		x, err1 := b64.DecodeString(raw.X)
		y, err2 := b64.DecodeString(raw.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return jwk{}, errors.New("bad P-256 x or y")
		}
		// The uncompressed point encoding lets crypto/ecdh check that the
		// point is on the curve before ecdsa trusts it.
		point := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return jwk{}, fmt.Errorf("bad P-256 point: %w", err)
		}
		return jwk{alg: "ES256", key: pub}, nil
	}
	return jwk{}, nil
}
