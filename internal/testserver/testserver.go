// Package testserver starts a real apiusage server (the embedded store behind
// the HTTP server) inside a test, and gives the calls a test needs to set it
// up: tokens, organizations, clients and ingestion. It is the in-process
// twin of "apiusage serve"; tests of the SDK, the capture middleware and the
// proxy run against it.
package testserver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/embedded"
	"github.com/apiusage/apiusage/server"
)

// Options change how Start builds the server. The zero value is a server
// with default limits, the real clock and fast (minimum-cost) secret hashes.
type Options struct {
	// Config is the server's configuration; its zero fields take defaults.
	// HashCost defaults to bcrypt.MinCost here, to keep tests fast.
	Config server.Config
	// WrapStore, when set, wraps the embedded store before the server gets
	// it: a place to inject faults or delays.
	WrapStore func(apiusage.Store) apiusage.Store
	// Dir is the data directory; a fresh temporary one when empty.
	Dir string
}

// Server is a running apiusage server.
type Server struct {
	// URL is the base URL, such as http://127.0.0.1:41234.
	URL string
	// ClientID and ClientSecret are the platform client's: it holds every
	// permission, platform ones included.
	ClientID, ClientSecret string
	// Store is the embedded store, unwrapped.
	Store *embedded.Store
	// Registry is the server's metrics registry.
	Registry *prometheus.Registry

	http *httptest.Server
}

// Start starts a server and stops it when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	dir := opts.Dir
	if dir == "" {
		dir = tb.TempDir()
	}
	store, err := embedded.Open(filepath.Join(dir, "usage"), embedded.Options{})
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	directory, err := embedded.OpenDirectory(filepath.Join(dir, "directory.json"))
	if err != nil {
		tb.Fatalf("open directory: %v", err)
	}
	cfg := opts.Config
	if cfg.HashCost == 0 {
		cfg.HashCost = bcrypt.MinCost
	}
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	id, secret := "platform-"+randomHex(8), randomHex(24)
	if _, _, err := server.Bootstrap(context.Background(), directory, id, secret, cfg.HashCost, now()); err != nil {
		tb.Fatalf("bootstrap: %v", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	var s apiusage.Store = store
	if opts.WrapStore != nil {
		s = opts.WrapStore(store)
	}
	reg := prometheus.NewRegistry()
	srv, err := server.New(cfg, nil, s, directory, embedded.NewExecutions(now), key, reg)
	if err != nil {
		tb.Fatalf("server: %v", err)
	}
	hs := httptest.NewServer(srv)
	tb.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
		if err := store.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return &Server{URL: hs.URL, ClientID: id, ClientSecret: secret, Store: store, Registry: reg, http: hs}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// Token returns an access token for the client.
func (s *Server) Token(tb testing.TB, clientID, secret string) string {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/oauth/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	if err != nil {
		tb.Fatal(err)
	}
	req.SetBasicAuth(clientID, secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out struct {
		AccessToken string `json:"access_token"`
	}
	s.do(tb, req, http.StatusOK, &out)
	return out.AccessToken
}

// PlatformToken returns an access token of the platform client.
func (s *Server) PlatformToken(tb testing.TB) string {
	tb.Helper()
	return s.Token(tb, s.ClientID, s.ClientSecret)
}

// Org is an organization created by CreateOrg, with its first client, which
// holds every organization permission.
type Org struct {
	ID                   string
	AdminID, AdminSecret string
	AdminToken           string
}

// CreateOrg creates an organization through the API.
func (s *Server) CreateOrg(tb testing.TB, name string) Org {
	tb.Helper()
	var out struct {
		ID          string `json:"id"`
		AdminClient struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
		} `json:"adminClient"`
	}
	s.Do(tb, s.PlatformToken(tb), http.MethodPost, "/api/v2/organizations", map[string]string{"name": name}, http.StatusCreated, &out)
	o := Org{ID: out.ID, AdminID: out.AdminClient.ID, AdminSecret: out.AdminClient.Secret}
	o.AdminToken = s.Token(tb, o.AdminID, o.AdminSecret)
	return o
}

// CreateClient creates a client in the organization of token's client, and
// returns its id and secret.
func (s *Server) CreateClient(tb testing.TB, token, name string, permissions ...string) (id, secret string) {
	tb.Helper()
	var out struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	body := map[string]any{"name": name, "permissions": permissions}
	s.Do(tb, token, http.MethodPost, "/api/v2/oauth/clients", body, http.StatusCreated, &out)
	return out.ID, out.Secret
}

// Ingest posts events as one JSON batch and fails the test unless they are
// accepted.
func (s *Server) Ingest(tb testing.TB, token string, events []apiusage.Event) {
	tb.Helper()
	s.Do(tb, token, http.MethodPost, "/api/v2/usage/events", events, http.StatusAccepted, nil)
}

// Do sends a JSON request with the token and fails the test unless the
// answer has the status; it decodes the answer into out when out is not nil.
func (s *Server) Do(tb testing.TB, token, method, path string, body any, status int, out any) {
	tb.Helper()
	Send(tb, s.http.Client(), JSONRequest(tb, method, s.URL+path, token, body), status, out)
}

func (s *Server) do(tb testing.TB, req *http.Request, status int, out any) {
	tb.Helper()
	Send(tb, s.http.Client(), req, status, out)
}

// JSONRequest returns a request with body encoded as JSON (none when body is
// nil) and, when token is set, the bearer token.
func JSONRequest(tb testing.TB, method, url, token string, body any) *http.Request {
	tb.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// Send sends req with hc and fails the test unless the answer has the
// status; it decodes the answer into out when out is not nil.
func Send(tb testing.TB, hc *http.Client, req *http.Request, status int, out any) {
	tb.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode != status {
		tb.Fatalf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("%s %s: decode %s: %v", req.Method, req.URL.Path, b, err)
		}
	}
}
