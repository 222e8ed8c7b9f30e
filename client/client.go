package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultUserAgent is the User-Agent of a Client made without WithUserAgent.
const DefaultUserAgent = "apiusage-go"

// maxResponseBytes bounds the body read from any response, so that a broken
// or hostile server cannot make the client allocate without limit. The
// largest legitimate body, a query result, stays far below it.
const maxResponseBytes = 256 << 20

// maxErrorBytes bounds the body read from an error response.
const maxErrorBytes = 1 << 20

// Client calls an apiusage server (or the Genesys Cloud Usage API). Make one
// with New; it is safe for concurrent use.
type Client struct {
	base      *url.URL
	login     *url.URL
	hc        *http.Client
	userAgent string
	retry     RetryPolicy
	tokens    *tokenSource
	now       func() time.Time
}

// Option configures a Client.
type Option func(*config) error

type config struct {
	clientID, clientSecret string
	token                  string
	hc                     *http.Client
	userAgent              string
	loginURL               string
	retry                  RetryPolicy
	now                    func() time.Time
}

// WithClientCredentials authenticates with the OAuth client-credentials
// grant: the client fetches an access token from the login host, caches it,
// and fetches a new one shortly before it expires or when the server stops
// accepting it.
func WithClientCredentials(clientID, clientSecret string) Option {
	return func(c *config) error {
		if clientID == "" || clientSecret == "" {
			return errors.New("client credentials: id and secret are required")
		}
		c.clientID, c.clientSecret = clientID, clientSecret
		return nil
	}
}

// WithAccessToken authenticates every call with a fixed bearer token, for a
// caller that obtains tokens itself.
func WithAccessToken(token string) Option {
	return func(c *config) error {
		if token == "" {
			return errors.New("access token: empty")
		}
		c.token = token
		return nil
	}
}

// WithHTTPClient makes the client send its requests with hc instead of a
// client of its own.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		if hc == nil {
			return errors.New("http client: nil")
		}
		c.hc = hc
		return nil
	}
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *config) error {
		c.userAgent = ua
		return nil
	}
}

// WithLoginURL sets the base URL of the login host, where tokens are
// fetched, instead of deriving it from the API's base URL.
func WithLoginURL(loginURL string) Option {
	return func(c *config) error {
		c.loginURL = loginURL
		return nil
	}
}

// WithRetryPolicy replaces DefaultRetryPolicy.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(c *config) error {
		if err := p.validate(); err != nil {
			return err
		}
		c.retry = p
		return nil
	}
}

// WithClock makes the client read the time from now, which decides when a
// cached token is due for refresh. Tests use it; programs need not.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("clock: nil")
		}
		c.now = now
		return nil
	}
}

// RetryPolicy says how calls that are safe to repeat are retried.
type RetryPolicy struct {
	// MaxAttempts is the number of attempts in all, the first included;
	// 1 turns retries off.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// attempts. Each wait is jittered, so that clients that failed together
	// do not come back together.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits out; an
	// answer asking for a longer wait is returned to the caller instead.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy is the retry policy of a Client made without
// WithRetryPolicy.
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:   4,
	MinBackoff:    200 * time.Millisecond,
	MaxBackoff:    5 * time.Second,
	MaxRetryAfter: time.Minute,
}

func (p RetryPolicy) validate() error {
	if p.MaxAttempts < 1 {
		return errors.New("retry policy: MaxAttempts must be at least 1")
	}
	if p.MinBackoff < 0 || p.MaxBackoff < p.MinBackoff || p.MaxRetryAfter < 0 {
		return errors.New("retry policy: need 0 <= MinBackoff <= MaxBackoff and MaxRetryAfter >= 0")
	}
	return nil
}

// backoff returns the wait before retry number n (from 1): exponential from
// MinBackoff, capped at MaxBackoff, with "equal jitter" (half fixed, half
// random) so that it never collapses to zero.
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.MinBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half)
}

// New returns a client of the server at baseURL (for example
// "http://127.0.0.1:8080" or "https://api.mypurecloud.com"). Without
// credentials only the unauthenticated calls work.
func New(baseURL string, opts ...Option) (*Client, error) {
	cfg := config{userAgent: DefaultUserAgent, retry: DefaultRetryPolicy, now: time.Now}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("new client: %w", err)
		}
	}
	if cfg.token != "" && cfg.clientID != "" {
		return nil, errors.New("new client: an access token and client credentials exclude each other")
	}
	base, err := parseBase(baseURL)
	if err != nil {
		return nil, fmt.Errorf("new client: base url: %w", err)
	}
	loginURL := cfg.loginURL
	if loginURL == "" {
		loginURL = LoginURL(base.String())
	}
	login, err := parseBase(loginURL)
	if err != nil {
		return nil, fmt.Errorf("new client: login url: %w", err)
	}
	hc := cfg.hc
	if hc == nil {
		// A client of its own rather than http.DefaultClient, so that
		// nothing another package does to the default changes this one.
		// The timeout is a safety net; contexts bound calls as callers want.
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	c := &Client{
		base:      base,
		login:     login,
		hc:        hc,
		userAgent: cfg.userAgent,
		retry:     cfg.retry,
		now:       cfg.now,
	}
	switch {
	case cfg.token != "":
		c.tokens = &tokenSource{fixed: cfg.token}
	case cfg.clientID != "":
		c.tokens = &tokenSource{id: cfg.clientID, secret: cfg.clientSecret, lock: make(chan struct{}, 1)}
	}
	return c, nil
}

// LoginURL derives the login host's URL from an API base URL the way the
// official SDKs do: "https://api.mypurecloud.com" logs in at
// "https://login.mypurecloud.com". A URL without "//api." is its own login
// host, as an apiusage server is.
func LoginURL(baseURL string) string {
	return strings.Replace(baseURL, "//api.", "//login.", 1)
}

// BaseURL returns the base URL the client calls.
func (c *Client) BaseURL() string { return c.base.String() }

func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(s, "/"))
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q: no host", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q: must not carry a query, fragment or user", s)
	}
	return u, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// request is one API call.
type request struct {
	method string
	// path is appended to the base URL's path; it is already escaped.
	path        string
	query       url.Values
	body        []byte
	contentType string
	header      http.Header
	// idempotent calls are retried on 429, 5xx and network errors.
	idempotent bool
	// noAuth calls carry no bearer token.
	noAuth bool
	// login calls go to the login host.
	login bool
}

// jsonRequest returns a request with v encoded as its JSON body.
func jsonRequest(method, path string, v any) (request, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return request{}, fmt.Errorf("encode body: %w", err)
	}
	return request{method: method, path: path, body: b, contentType: "application/json"}, nil
}

// do sends r, retrying when r is idempotent, and decodes a 2xx body into out
// (when out is not nil). It returns the final response's header.
func (c *Client) do(ctx context.Context, r request, out any) (http.Header, error) {
	attempts := 1
	if r.idempotent {
		attempts = c.retry.MaxAttempts
	}
	refreshed := false
	for attempt := 1; ; attempt++ {
		var tok string
		if !r.noAuth && c.tokens != nil {
			var err error
			if tok, err = c.tokens.token(ctx, c); err != nil {
				return nil, err // fetching the token retried on its own
			}
		}
		header, err := c.once(ctx, r, tok, out)
		if err == nil {
			return header, nil
		}
		if ctx.Err() != nil {
			return header, err
		}
		var apiErr *Error
		isAPIErr := errors.As(err, &apiErr)
		// A token the server no longer accepts (expired early, revoked,
		// signed by a key the server rotated) is fetched anew once; the
		// call itself was refused, so repeating it is safe for any method.
		if isAPIErr && apiErr.StatusCode == http.StatusUnauthorized && !r.noAuth && !refreshed && c.tokens.renewable() {
			refreshed = true
			c.tokens.invalidate(tok)
			attempt--
			continue
		}
		if attempt >= attempts || !retryable(err) {
			return header, err
		}
		wait := c.retry.backoff(attempt)
		if isAPIErr && apiErr.RetryAfter > 0 {
			if apiErr.RetryAfter > c.retry.MaxRetryAfter {
				return header, err
			}
			wait = max(wait, apiErr.RetryAfter)
		}
		if serr := sleepCtx(ctx, wait); serr != nil {
			return header, err
		}
	}
}

// retryable reports whether err is worth another attempt of an idempotent
// call: the server was overloaded or failed, or the network did.
func retryable(err error) bool {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		switch apiErr.StatusCode {
		case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var netErr *url.Error
	return errors.As(err, &netErr)
}

// once sends r one time, with the bearer token tok unless it is empty.
func (c *Client) once(ctx context.Context, r request, tok string, out any) (http.Header, error) {
	base := c.base
	if r.login {
		base = c.login
	}
	// The base's escaped path and r.path, escaped already, joined as text:
	// a segment holding an escaped slash must stay one segment.
	u, err := url.Parse(base.String() + r.path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err // a *url.Error naming the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.Header, newError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		return resp.Header, nil
	}
	lr := &io.LimitedReader{R: resp.Body, N: maxResponseBytes + 1}
	if err := json.NewDecoder(lr).Decode(out); err != nil {
		if lr.N <= 0 {
			return resp.Header, fmt.Errorf("%s %s: response larger than %d bytes", r.method, r.path, maxResponseBytes)
		}
		return resp.Header, fmt.Errorf("%s %s: decode response: %w", r.method, r.path, err)
	}
	return resp.Header, nil
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// escape escapes one path segment.
func escape(s string) string { return url.PathEscape(s) }
