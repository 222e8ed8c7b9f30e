package capture

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// ingest speaks the server's token and ingest protocol, checking what the
// sender sends. The real server is exercised end to end by
// cmd/apiusage's proxy tests; this one lets a test choose the answers.
type ingest struct {
	t       *testing.T
	mu      sync.Mutex
	tokens  int // tokens issued
	valid   string
	keys    []string
	events  []apiusage.Event
	answer  func(w http.ResponseWriter) bool // answers instead, when it returns true
	expires int
}

func newIngest(t *testing.T) (*ingest, *httptest.Server) {
	in := &ingest{t: t, expires: 3600}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "proxy" || secret != "s3cret+/=" || r.FormValue("grant_type") != "client_credentials" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"bad"}`)
			return
		}
		in.mu.Lock()
		defer in.mu.Unlock()
		in.tokens++
		in.valid = fmt.Sprintf("tok-%d", in.tokens)
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":%d}`, in.valid, in.expires)
	})
	mux.HandleFunc("POST /api/v2/usage/events", func(w http.ResponseWriter, r *http.Request) {
		in.mu.Lock()
		defer in.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+in.valid {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"code":"bad.credentials","message":"expired","status":401}`)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
			t.Errorf("Content-Type = %q", ct)
		}
		if in.answer != nil && in.answer(w) {
			return
		}
		in.keys = append(in.keys, r.Header.Get("Idempotency-Key"))
		sc := bufio.NewScanner(r.Body)
		n := 0
		for sc.Scan() {
			var e apiusage.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("line %q: %v", sc.Text(), err)
			}
			in.events = append(in.events, e)
			n++
		}
		w.WriteHeader(202)
		fmt.Fprintf(w, `{"accepted":%d}`, n)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return in, srv
}

func TestHTTPSenderAppends(t *testing.T) {
	in, srv := newIngest(t)
	s, err := NewHTTPSender(srv.URL+"/", "proxy", "s3cret+/=", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b1 := apiusage.Batch{IdempotencyKey: "k1", Events: []apiusage.Event{event(1).Normalize(), event(2).Normalize()}}
	b2 := apiusage.Batch{IdempotencyKey: "k2", Events: []apiusage.Event{event(3).Normalize()}}
	for _, b := range []apiusage.Batch{b1, b2} {
		rc, err := s.Append(ctx, b)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if rc.Accepted != len(b.Events) {
			t.Errorf("accepted = %d, want %d", rc.Accepted, len(b.Events))
		}
	}
	if in.tokens != 1 {
		t.Errorf("tokens fetched = %d, want 1 (cached)", in.tokens)
	}
	if len(in.keys) != 2 || in.keys[0] != "k1" || in.keys[1] != "k2" {
		t.Errorf("idempotency keys = %q, want [k1 k2]", in.keys)
	}
	want := append(append([]apiusage.Event{}, b1.Events...), b2.Events...)
	if len(in.events) != len(want) {
		t.Fatalf("server got %d events, want %d", len(in.events), len(want))
	}
	for i := range want {
		if !in.events[i].Time.Equal(want[i].Time) {
			t.Errorf("event %d time = %v, want %v", i, in.events[i].Time, want[i].Time)
		}
		in.events[i].Time = want[i].Time
		if in.events[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, in.events[i], want[i])
		}
	}

	// The server forgets the token (a restart with a new key): the sender
	// gets a new one and the call succeeds.
	in.mu.Lock()
	in.valid = "something else"
	in.mu.Unlock()
	if _, err := s.Append(ctx, b1); err != nil {
		t.Fatalf("Append after revocation: %v", err)
	}
	if in.tokens != 2 {
		t.Errorf("tokens fetched = %d, want 2", in.tokens)
	}

	// A token is renewed before it expires.
	now := time.Now()
	s.now = func() time.Time { return now.Add(3600 * time.Second) }
	if _, err := s.Append(ctx, b1); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if in.tokens != 3 {
		t.Errorf("tokens fetched = %d, want 3 (renewed)", in.tokens)
	}
}

func TestHTTPSenderErrors(t *testing.T) {
	tests := []struct {
		name       string
		secret     string
		answer     func(w http.ResponseWriter) bool
		wantCode   string
		permanent  bool
		retryAfter time.Duration
	}{
		{name: "bad credentials", secret: "wrong", wantCode: apiusage.CodeBadCredentials},
		{name: "invalid batch", answer: func(w http.ResponseWriter) bool {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"code":"bad.request","message":"events[0].status: bad","status":400}`)
			return true
		}, wantCode: apiusage.CodeBadRequest, permanent: true},
		{name: "too large without a body", answer: func(w http.ResponseWriter) bool {
			w.WriteHeader(413)
			return true
		}, wantCode: apiusage.CodeTooLarge, permanent: true},
		{name: "overloaded", answer: func(w http.ResponseWriter) bool {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
			fmt.Fprint(w, `{"code":"too.many.requests","message":"slow down","status":429}`)
			return true
		}, wantCode: apiusage.CodeTooManyRequests, retryAfter: 7 * time.Second},
		{name: "server error", answer: func(w http.ResponseWriter) bool {
			w.WriteHeader(503)
			return true
		}, wantCode: apiusage.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, srv := newIngest(t)
			in.answer = tt.answer
			secret := tt.secret
			if secret == "" {
				secret = "s3cret+/="
			}
			s, err := NewHTTPSender(srv.URL, "proxy", secret, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Append(context.Background(), apiusage.Batch{IdempotencyKey: "k", Events: []apiusage.Event{event(1)}})
			if got := apiusage.ErrorCode(err); got != tt.wantCode {
				t.Errorf("error %v has code %q, want %q", err, got, tt.wantCode)
			}
			if got := permanent(err); got != tt.permanent {
				t.Errorf("permanent(%v) = %v, want %v", err, got, tt.permanent)
			}
			var ra interface{ RetryAfter() time.Duration }
			got := time.Duration(0)
			if errors.As(err, &ra) {
				got = ra.RetryAfter()
			}
			if got != tt.retryAfter {
				t.Errorf("retry after = %v, want %v", got, tt.retryAfter)
			}
		})
	}
}

func TestHTTPSenderDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	s, err := NewHTTPSender(url, "proxy", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Append(context.Background(), apiusage.Batch{Events: []apiusage.Event{event(1)}})
	if err == nil || permanent(err) {
		t.Errorf("Append to a closed server error = %v, want a retryable one", err)
	}
}

func TestNewHTTPSenderErrors(t *testing.T) {
	for _, tt := range []struct{ url, id, secret string }{
		{"ftp://x", "a", "b"}, {"http://", "a", "b"}, {"http://x", "", "b"}, {"http://x", "a", ""},
	} {
		if _, err := NewHTTPSender(tt.url, tt.id, tt.secret, nil); err == nil {
			t.Errorf("NewHTTPSender(%q, %q, %q) error = nil, want one", tt.url, tt.id, tt.secret)
		}
	}
}
