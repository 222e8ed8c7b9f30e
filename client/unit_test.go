package client

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

func TestLoginURL(t *testing.T) {
	tests := []struct{ base, want string }{
		{"https://api.mypurecloud.com", "https://login.mypurecloud.com"},
		{"https://api.usw2.pure.cloud", "https://login.usw2.pure.cloud"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://usage.example.com/api.v1", "https://usage.example.com/api.v1"},
	}
	for _, tt := range tests {
		if got := LoginURL(tt.base); got != tt.want {
			t.Errorf("LoginURL(%q) = %q, want %q", tt.base, got, tt.want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		base string
		opts []Option
	}{
		{"no scheme", "127.0.0.1:8080", nil},
		{"other scheme", "ftp://example.com", nil},
		{"no host", "http://", nil},
		{"query", "http://example.com?x=1", nil},
		{"user", "http://u:p@example.com", nil},
		{"empty secret", "http://example.com", []Option{WithClientCredentials("id", "")}},
		{"token and credentials", "http://example.com", []Option{WithAccessToken("t"), WithClientCredentials("id", "s")}},
		{"bad retry policy", "http://example.com", []Option{WithRetryPolicy(RetryPolicy{})}},
		{"nil http client", "http://example.com", []Option{WithHTTPClient(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := New(tt.base, tt.opts...); err == nil {
				t.Errorf("New(%q) = %v, want an error", tt.base, c.BaseURL())
			}
		})
	}
}

func TestNewTrimsBase(t *testing.T) {
	c, err := New("http://example.com/prefix/")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.BaseURL(), "http://example.com/prefix"; got != want {
		t.Errorf("BaseURL() = %q, want %q", got, want)
	}
}

func TestBackoffBounds(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 10, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxRetryAfter: time.Minute}
	for n := 1; n <= 8; n++ {
		base := min(p.MinBackoff<<(n-1), p.MaxBackoff)
		for range 50 {
			got := p.backoff(n)
			if got < base/2 || got > base {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, got, base/2, base)
			}
		}
	}
}

func TestBackoffJitters(t *testing.T) {
	p := DefaultRetryPolicy
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[p.backoff(3)] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 backoffs gave %d distinct waits, want jitter", len(seen))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 30 ", 30 * time.Second},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "1", "120", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "9999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if d := parseRetryAfter(s, now); d < 0 {
			t.Errorf("parseRetryAfter(%q) = %s, want no negative wait", s, d)
		}
	})
}

func TestResultsPath(t *testing.T) {
	c, err := New("https://usage.example.com/base")
	if err != nil {
		t.Fatal(err)
	}
	good := []struct{ uri, want string }{
		{"/api/v2/usage/query/abc/results", "/api/v2/usage/query/abc/results"},
		{"/api/v2/oauth/clients/c%2F1/usage/query/results/x", "/api/v2/oauth/clients/c%2F1/usage/query/results/x"},
		{"https://usage.example.com/base/api/v2/usage/simplesearch/x/results", "/api/v2/usage/simplesearch/x/results"},
	}
	for _, tt := range good {
		got, _, err := c.resultsPath(tt.uri)
		if err != nil || got != tt.want {
			t.Errorf("resultsPath(%q) = %q, %v; want %q", tt.uri, got, err, tt.want)
		}
	}
	// The token goes wherever the results path points: only the server's
	// own API paths are followed.
	bad := []string{
		"",
		"https://evil.example.com/api/v2/usage/query/x/results",
		"http://usage.example.com/base/api/v2/usage/query/x/results",
		"//evil.example.com/api/v2/usage/query/x/results",
		"/oauth/token",
		"/api/v2/../../admin",
		"api/v2/usage/query/x/results",
		"/api/v2/usage/query/x/results/..",
	}
	for _, uri := range bad {
		if got, _, err := c.resultsPath(uri); err == nil {
			t.Errorf("resultsPath(%q) = %q, want an error", uri, got)
		}
	}
}

func TestNewError(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantCode   string
		wantMsg    string
		wantCorrID string
		wantRetry  time.Duration
	}{
		{
			name:   "error body",
			status: 400,
			header: http.Header{CorrelationHeader: {"corr-1"}},
			body: `{"message":"interval is required","code":"bad.request","status":400,
				"messageWithParams":"interval is required","messageParams":{},"contextId":"corr-1","details":[],"errors":[]}`,
			wantCode: "bad.request", wantMsg: "interval is required", wantCorrID: "corr-1",
		},
		{
			name:     "context id only in the body",
			status:   404,
			body:     `{"message":"not found","code":"not.found","status":404,"contextId":"corr-2"}`,
			wantCode: "not.found", wantMsg: "not found", wantCorrID: "corr-2",
		},
		{
			name:     "oauth error",
			status:   401,
			body:     `{"error":"invalid_client","description":"bad secret","error_description":"the client secret is wrong"}`,
			wantCode: "invalid_client", wantMsg: "the client secret is wrong",
		},
		{
			name:     "429",
			status:   429,
			header:   http.Header{"Retry-After": {"3"}},
			body:     `{"message":"slow down","code":"too.many.requests","status":429}`,
			wantCode: "too.many.requests", wantMsg: "slow down", wantRetry: 3 * time.Second,
		},
		{
			name:    "plain text from a proxy",
			status:  502,
			body:    "Bad Gateway\n",
			wantMsg: "Bad Gateway",
		},
		{
			name:   "empty",
			status: 503,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			e := newError(&http.Response{StatusCode: tt.status, Header: h, Body: io.NopCloser(strings.NewReader(tt.body))})
			if e.StatusCode != tt.status || e.Body.Code != tt.wantCode || e.Body.Message != tt.wantMsg ||
				e.CorrelationID != tt.wantCorrID || e.RetryAfter != tt.wantRetry || e.Body.Status != tt.status {
				t.Errorf("newError = %+v, want status %d code %q message %q correlation %q retry %s",
					e, tt.status, tt.wantCode, tt.wantMsg, tt.wantCorrID, tt.wantRetry)
			}
			msg := e.Error()
			if !strings.Contains(msg, http.StatusText(tt.status)) && !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("Error() = %q, want the message %q", msg, tt.wantMsg)
			}
			if tt.wantCorrID != "" && !strings.Contains(msg, tt.wantCorrID) {
				t.Errorf("Error() = %q, want the correlation id %q", msg, tt.wantCorrID)
			}
		})
	}
}

func TestErrorMatchesDomain(t *testing.T) {
	var err error = &Error{StatusCode: 404, Body: ErrorBody{Code: apiusage.CodeNotFound, Message: "no such client"}}
	if !errors.Is(err, apiusage.ErrNotFound) {
		t.Errorf("errors.Is(%v, ErrNotFound) = false, want true", err)
	}
	if got := apiusage.ErrorCode(err); got != apiusage.CodeNotFound {
		t.Errorf("ErrorCode = %q, want %q", got, apiusage.CodeNotFound)
	}
	if got := apiusage.ErrorMessage(err); got != "no such client" {
		t.Errorf("ErrorMessage = %q, want %q", got, "no such client")
	}
	var other error = &Error{StatusCode: 400, Body: ErrorBody{Code: apiusage.CodeBadRequest}}
	if errors.Is(other, apiusage.ErrNotFound) {
		t.Errorf("errors.Is(%v, ErrNotFound) = true, want false", other)
	}
}

func FuzzNewError(f *testing.F) {
	f.Add(400, `{"message":"m","code":"bad.request","status":400}`)
	f.Add(401, `{"error":"invalid_client","error_description":"no"}`)
	f.Add(500, "<html>oops</html>")
	f.Add(429, `{"errors":[{"errors":[{}]}],"messageParams":{"a":"b"}}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		e := newError(&http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))})
		if e.StatusCode != status {
			t.Errorf("StatusCode = %d, want %d", e.StatusCode, status)
		}
		_ = e.Error()
	})
}
