package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apiusage/apiusage"
)

// HTTPSender is an Appender that sends batches to an apiusage server's
// ingest endpoint (POST /api/v2/usage/events) as newline-delimited JSON,
// with the batch's Idempotency-Key. It authenticates with OAuth client
// credentials at {url}/oauth/token and keeps the token until shortly before
// it expires. The client needs usage:event:add (events of its own
// organization) or usage:event:add:any.
//
// One call is one attempt (but for getting a new token when the server
// refuses the old one): the Recorder retries with backoff, the same way
// whatever the Appender. Errors the server answered are *apiusage.Error with
// its code.
//
// An HTTPSender is safe for concurrent use.
type HTTPSender struct {
	base         string
	id, secret   string
	client       *http.Client
	now          func() time.Time
	mu           sync.Mutex
	token        string
	tokenExpires time.Time
}

var _ apiusage.Appender = (*HTTPSender)(nil)

// NewHTTPSender returns an HTTPSender for the server at baseURL (such as
// http://127.0.0.1:8080), with a client's id and secret. A nil httpClient
// means one with a 30 second timeout.
func NewHTTPSender(baseURL, clientID, secret string, httpClient *http.Client) (*HTTPSender, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sender: bad server URL %q", baseURL)
	}
	if clientID == "" || secret == "" {
		return nil, errors.New("sender: client id and secret are required")
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &HTTPSender{
		base:   strings.TrimSuffix(baseURL, "/"),
		id:     clientID,
		secret: secret,
		client: httpClient,
		now:    time.Now,
	}, nil
}

// maxAnswerBytes bounds what is read of the server's answers.
const maxAnswerBytes = 1 << 20

// Append sends the batch. See HTTPSender.
func (s *HTTPSender) Append(ctx context.Context, b apiusage.Batch) (apiusage.Receipt, error) {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, e := range b.Events {
		if err := enc.Encode(e); err != nil { // Encode ends each with \n
			return apiusage.Receipt{}, fmt.Errorf("encode event: %w", err)
		}
	}
	for try := 0; ; try++ {
		token, err := s.getToken(ctx)
		if err != nil {
			return apiusage.Receipt{}, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/api/v2/usage/events", bytes.NewReader(body.Bytes()))
		if err != nil {
			return apiusage.Receipt{}, fmt.Errorf("ingest request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+token)
		if b.IdempotencyKey != "" {
			req.Header.Set("Idempotency-Key", b.IdempotencyKey)
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return apiusage.Receipt{}, fmt.Errorf("post events: %w", err)
		}
		answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
		resp.Body.Close()
		if err != nil {
			return apiusage.Receipt{}, fmt.Errorf("read ingest answer: %w", err)
		}
		if resp.StatusCode == http.StatusUnauthorized && try == 0 {
			// The token was revoked or the server's key changed: get a
			// new one and try once more.
			s.dropToken(token)
			continue
		}
		if resp.StatusCode/100 != 2 {
			return apiusage.Receipt{}, answerError(resp, answer)
		}
		var rc apiusage.Receipt
		if err := json.Unmarshal(answer, &rc); err != nil {
			return apiusage.Receipt{}, fmt.Errorf("decode ingest answer: %w", err)
		}
		return rc, nil
	}
}

// getToken returns the cached token, or gets one.
func (s *HTTPSender) getToken(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && s.now().Before(s.tokenExpires) {
		return s.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	req.SetBasicAuth(s.id, s.secret) // as the server reads it: not form-encoded
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("get token: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var oe struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(answer, &oe)
		code := apiusage.CodeBadCredentials
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			code = apiusage.CodeUnavailable
		}
		return "", &apiusage.Error{Code: code, Message: fmt.Sprintf("get token: status %d: %s %s", resp.StatusCode, oe.Error, oe.Description)}
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(answer, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("decode token: no access_token (%v)", err)
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	// Renew a tenth of the lifetime early (at most a minute), so that a
	// token does not expire between here and the server.
	s.token, s.tokenExpires = tok.AccessToken, s.now().Add(life-min(life/10, time.Minute))
	return s.token, nil
}

// dropToken forgets the token, unless another call already replaced it.
func (s *HTTPSender) dropToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == token {
		s.token = ""
	}
}

// answerError turns an error answer into an *apiusage.Error with the
// ErrorBody's code, or a code from the status when the body has none.
func answerError(resp *http.Response, body []byte) error {
	var eb struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &eb)
	if eb.Code == "" {
		eb.Code = codeForStatus(resp.StatusCode)
	}
	if eb.Message == "" {
		eb.Message = http.StatusText(resp.StatusCode)
	}
	e := &apiusage.Error{Code: eb.Code, Message: fmt.Sprintf("ingest: status %d: %s", resp.StatusCode, eb.Message)}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs > 0 {
			return retryAfterError{err: e, after: time.Duration(secs) * time.Second}
		}
	}
	return e
}

func codeForStatus(status int) string {
	switch {
	case status == http.StatusBadRequest:
		return apiusage.CodeBadRequest
	case status == http.StatusUnauthorized:
		return apiusage.CodeBadCredentials
	case status == http.StatusForbidden:
		return apiusage.CodeMissingPerms
	case status == http.StatusRequestEntityTooLarge:
		return apiusage.CodeTooLarge
	case status == http.StatusTooManyRequests:
		return apiusage.CodeTooManyRequests
	case status >= 500:
		return apiusage.CodeUnavailable
	}
	return apiusage.CodeInternal
}

// retryAfterError is an error answer with a Retry-After: the Recorder waits
// at least that long before the next attempt.
type retryAfterError struct {
	err   *apiusage.Error
	after time.Duration
}

func (e retryAfterError) Error() string             { return e.err.Error() }
func (e retryAfterError) Unwrap() error             { return e.err }
func (e retryAfterError) RetryAfter() time.Duration { return e.after }
