package capture

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// issuer is an identity provider for tests: it holds keys of every
// supported algorithm, signs tokens with them and serves their JWKS.
type issuer struct {
	ed    ed25519.PrivateKey
	rsa   *rsa.PrivateKey
	ec    *ecdsa.PrivateKey
	srv   *httptest.Server
	gets  atomic.Int64 // JWKS fetches
	mu    sync.Mutex
	kids  map[string]bool // the kids published; all three when nil
	extra []map[string]string
}

var (
	rsaKeyOnce sync.Once
	rsaKey     *rsa.PrivateKey
)

func newIssuer(tb testing.TB) *issuer {
	tb.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	// RSA keys are slow to make: one serves every test of the run.
	rsaKeyOnce.Do(func() { rsaKey, err = rsa.GenerateKey(rand.Reader, 2048) })
	if err != nil {
		tb.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	is := &issuer{ed: ed, rsa: rsaKey, ec: ec}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.gets.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(is.jwks())
	}))
	tb.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) url() string { return is.srv.URL + "/oauth/jwks" }

// publish sets which kids the JWKS holds.
func (is *issuer) publish(kids ...string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.kids = map[string]bool{}
	for _, k := range kids {
		is.kids[k] = true
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (is *issuer) jwks() map[string]any {
	is.mu.Lock()
	defer is.mu.Unlock()
	pad := func(b []byte) []byte { return append(make([]byte, 32-len(b)), b...) }
	all := []map[string]string{
		{"kty": "OKP", "crv": "Ed25519", "x": b64(is.ed.Public().(ed25519.PublicKey)), "kid": "ed", "alg": "EdDSA", "use": "sig"},
		{"kty": "RSA", "n": b64(is.rsa.N.Bytes()), "e": b64(big.NewInt(int64(is.rsa.E)).Bytes()), "kid": "rsa", "alg": "RS256", "use": "sig"},
		{"kty": "EC", "crv": "P-256", "x": b64(pad(is.ec.X.Bytes())), "y": b64(pad(is.ec.Y.Bytes())), "kid": "ec", "use": "sig"},
		{"kty": "RSA", "n": b64(is.rsa.N.Bytes()), "e": "AQAB", "kid": "enc", "use": "enc"},
	}
	var keys []map[string]string
	for _, k := range append(all, is.extra...) {
		if is.kids == nil || is.kids[k["kid"]] {
			keys = append(keys, k)
		}
	}
	return map[string]any{"keys": keys}
}

// sign makes a token with the key of kid ("ed", "rsa" or "ec"), its
// algorithm, and the claims.
func (is *issuer) sign(tb testing.TB, kid string, claims map[string]any) string {
	tb.Helper()
	alg := map[string]string{"ed": "EdDSA", "rsa": "RS256", "ec": "ES256"}[kid]
	return is.signAs(tb, kid, alg, kid, claims)
}

// signAs signs with the key keyOf, writing alg and kid in the header as
// given, so that tests can lie in them.
func (is *issuer) signAs(tb testing.TB, keyOf, alg, kid string, claims map[string]any) string {
	tb.Helper()
	hdr := map[string]string{"alg": alg, "typ": "JWT"}
	if kid != "" {
		hdr["kid"] = kid
	}
	hb, _ := json.Marshal(hdr)
	cb, _ := json.Marshal(claims)
	signed := b64(hb) + "." + b64(cb)
	sum := sha256.Sum256([]byte(signed))
	var sig []byte
	var err error
	switch keyOf {
	case "ed":
		sig = ed25519.Sign(is.ed, []byte(signed))
	case "rsa":
		sig, err = rsa.SignPKCS1v15(rand.Reader, is.rsa, crypto.SHA256, sum[:])
	case "ec":
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, is.ec, sum[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	default:
		tb.Fatalf("no key %q", keyOf)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return signed + "." + b64(sig)
}

// claims returns the claims of a server token for the client and
// organization, expiring in an hour from now.
func claims(org, client string, now time.Time) map[string]any {
	return map[string]any{"sub": client, "org": org, "gen": 1, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "x"}
}

// memAppender is an in-memory Appender: what the events would be stored
// as, with the batch's idempotency key honoured as the server does. It can
// be taken down, to fail every call.
type memAppender struct {
	mu     sync.Mutex
	events []apiusage.Event
	keys   []string // the key of every call, in order
	seen   map[string]bool
	down   bool
	// fail, when set, answers a call instead of storing.
	fail func(b apiusage.Batch) error
	// block, when set, holds every call until it is closed.
	block chan struct{}
}

func (m *memAppender) Append(ctx context.Context, b apiusage.Batch) (apiusage.Receipt, error) {
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return apiusage.Receipt{}, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = append(m.keys, b.IdempotencyKey)
	if m.down {
		return apiusage.Receipt{}, fmt.Errorf("append: %w", &apiusage.Error{Code: apiusage.CodeUnavailable, Message: "down"})
	}
	if m.fail != nil {
		if err := m.fail(b); err != nil {
			return apiusage.Receipt{}, err
		}
	}
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	if m.seen[b.IdempotencyKey] {
		return apiusage.Receipt{Accepted: len(b.Events), Replayed: true}, nil
	}
	m.seen[b.IdempotencyKey] = true
	m.events = append(m.events, b.Events...)
	return apiusage.Receipt{Accepted: len(b.Events)}, nil
}

func (m *memAppender) setDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

func (m *memAppender) stored() []apiusage.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]apiusage.Event(nil), m.events...)
}

// waitFor polls cond until it holds, failing the test after a generous
// bound (a bound on waiting, not an assertion about speed).
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
