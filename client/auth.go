package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// Token is an access token of the client-credentials grant: the body of a
// successful POST /oauth/token.
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	// ExpiresIn is the token's lifetime in seconds.
	ExpiresIn int64 `json:"expires_in"`
}

// tokenSource hands out the bearer token of every call: a fixed one, or one
// fetched with client credentials and cached until shortly before it
// expires.
type tokenSource struct {
	fixed string

	id, secret string
	// lock is a one-slot semaphore rather than a mutex, so that a caller
	// waiting for another's fetch still honours its own context.
	lock    chan struct{}
	current string
	// refreshAt is when the cached token is due for a new one.
	refreshAt time.Time
}

// renewable reports whether a refused token can be replaced by a new one.
func (s *tokenSource) renewable() bool { return s != nil && s.fixed == "" }

// invalidate drops the cached token if it is still tok: when calls that
// shared a refused token fail together, only the first drops it, and the
// others use the token it fetched.
func (s *tokenSource) invalidate(tok string) {
	if !s.renewable() {
		return
	}
	s.lock <- struct{}{}
	if s.current == tok {
		s.current = ""
	}
	<-s.lock
}

// token returns a valid access token, fetching one when none is cached or
// the cached one is due.
func (s *tokenSource) token(ctx context.Context, c *Client) (string, error) {
	if s.fixed != "" {
		return s.fixed, nil
	}
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.lock }()
	now := c.now()
	if s.current != "" && now.Before(s.refreshAt) {
		return s.current, nil
	}
	tok, err := c.FetchToken(ctx, s.id, s.secret)
	if err != nil {
		return "", &tokenError{err}
	}
	s.current = tok.AccessToken
	s.refreshAt = now.Add(refreshMargin(time.Duration(tok.ExpiresIn) * time.Second))
	return s.current, nil
}

// refreshMargin returns how long a token with lifetime ttl is used before a
// new one is fetched: a fifth of its life early, at most a minute early, so
// that a call that starts just before expiry does not arrive just after it.
func refreshMargin(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return 0 // no lifetime given: use it once, fetch a new one next time
	}
	return ttl - min(ttl/5, time.Minute)
}

// FetchToken gets an access token from the login host with the
// client-credentials grant. Clients made WithClientCredentials call it by
// themselves; it is exported for callers that manage tokens, and to check a
// pair of credentials.
func (c *Client) FetchToken(ctx context.Context, clientID, clientSecret string) (*Token, error) {
	if clientID == "" || clientSecret == "" {
		return nil, errors.New("fetch token: client id and secret are required")
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	r := request{
		method:      http.MethodPost,
		path:        "/oauth/token",
		body:        []byte(form.Encode()),
		contentType: "application/x-www-form-urlencoded",
		header:      http.Header{"Authorization": {basicAuth(clientID, clientSecret)}},
		// Getting a token changes nothing on the server: safe to repeat.
		idempotent: true,
		noAuth:     true,
		login:      true,
	}
	var tok Token
	if _, err := c.do(ctx, r, &tok); err != nil {
		return nil, err
	}
	if tok.AccessToken == "" {
		return nil, errors.New("fetch token: the answer holds no access_token")
	}
	return &tok, nil
}

func basicAuth(id, secret string) string {
	req := http.Request{Header: http.Header{}}
	req.SetBasicAuth(id, secret)
	return req.Header.Get("Authorization")
}
