package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiusage/apiusage/internal/testserver"
)

// testServer is an apiusage server started in process by run, the way main
// starts it, on a free port and a fresh data directory.
type testServer struct {
	// URL is the server's base URL, such as http://127.0.0.1:41234.
	URL string
	// BootstrapID and BootstrapSecret are the platform client's credentials.
	BootstrapID, BootstrapSecret string

	client *http.Client
}

// syncBuffer is an io.Writer safe for the server's goroutines and the test's.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listeningLine = regexp.MustCompile(`apiusage listening on (http://\S+)`)

// startServer runs apiusage serve on 127.0.0.1:0 with a temporary data
// directory and waits until /healthz answers 200. env adds to (and
// overrides) the environment the server sees; the bootstrap client is set
// in it. The server is shut down, and must exit cleanly, when the test ends.
func startServer(tb testing.TB, env map[string]string) *testServer {
	tb.Helper()
	s := &testServer{
		BootstrapID:     "platform-admin",
		BootstrapSecret: "platform-admin-secret-for-tests",
		client:          &http.Client{Timeout: 30 * time.Second},
	}
	vars := map[string]string{
		"APIUSAGE_BOOTSTRAP_CLIENT_ID":     s.BootstrapID,
		"APIUSAGE_BOOTSTRAP_CLIENT_SECRET": s.BootstrapSecret,
		// The cheapest bcrypt cost: tests log in often and prove nothing
		// about hashing speed.
		"APIUSAGE_HASH_COST": "4",
		"APIUSAGE_LOG_LEVEL": "warn",
	}
	for k, v := range env {
		vars[k] = v
	}
	getenv := func(k string) string { return vars[k] }

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	args := []string{"apiusage", "serve", "--addr", "127.0.0.1:0", "--data", tb.TempDir()}
	go func() { done <- run(ctx, args, getenv, &stdout, &stderr) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("apiusage serve exited with %v\nstderr:\n%s", err, stderr.String())
			}
		case <-time.After(time.Minute):
			tb.Errorf("apiusage serve did not stop within a minute of its context ending\nstderr:\n%s", stderr.String())
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for s.URL == "" {
		if m := listeningLine.FindStringSubmatch(stdout.String()); m != nil {
			s.URL = m[1]
			break
		}
		select {
		case err := <-done:
			tb.Fatalf("apiusage serve exited before listening: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("apiusage serve did not print its address\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
	}
	for {
		resp, err := s.client.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("GET /healthz did not answer 200 (last: %v, %v)\nstderr:\n%s", resp, err, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// token logs in with client credentials, as the SDKs do, and returns the
// access token.
func (s *testServer) token(tb testing.TB, id, secret string) string {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	s.send(tb, req, http.StatusOK, &out)
	if out.AccessToken == "" {
		tb.Fatalf("POST /oauth/token for %s: no access_token", id)
	}
	return out.AccessToken
}

// do sends a JSON request with the bearer token, checks the status and
// decodes the answer into out (when out is not nil).
func (s *testServer) do(tb testing.TB, token, method, path string, body any, wantStatus int, out any) {
	tb.Helper()
	s.send(tb, testserver.JSONRequest(tb, method, s.URL+path, token, body), wantStatus, out)
}

func (s *testServer) send(tb testing.TB, req *http.Request, wantStatus int, out any) {
	tb.Helper()
	testserver.Send(tb, s.client, req, wantStatus, out)
}

// newClient is a client as POST /api/v2/organizations and POST
// /api/v2/oauth/clients return it, with its secret.
type newClient struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Secret      string   `json:"secret"`
	Permissions []string `json:"permissions"`
}

// createOrganization creates an organization with the platform client and
// returns its id and its first client.
func (s *testServer) createOrganization(tb testing.TB, name string) (string, newClient) {
	tb.Helper()
	platform := s.token(tb, s.BootstrapID, s.BootstrapSecret)
	var out struct {
		ID          string    `json:"id"`
		AdminClient newClient `json:"adminClient"`
	}
	s.do(tb, platform, http.MethodPost, "/api/v2/organizations", map[string]string{"name": name}, http.StatusCreated, &out)
	if out.ID == "" || out.AdminClient.ID == "" || out.AdminClient.Secret == "" {
		tb.Fatalf("POST /api/v2/organizations: got %+v, want an id and an admin client with a secret", out)
	}
	return out.ID, out.AdminClient
}

// createClient creates a client in the token's organization.
func (s *testServer) createClient(tb testing.TB, token, name string, perms ...string) newClient {
	tb.Helper()
	var out newClient
	s.do(tb, token, http.MethodPost, "/api/v2/oauth/clients",
		map[string]any{"name": name, "permissions": perms}, http.StatusCreated, &out)
	if out.ID == "" || out.Secret == "" {
		tb.Fatalf("POST /api/v2/oauth/clients: got %+v, want an id and a secret", out)
	}
	return out
}

// ingest posts events with the token and checks that all were accepted.
func (s *testServer) ingest(tb testing.TB, token string, events any) {
	tb.Helper()
	var out struct {
		Accepted int `json:"accepted"`
	}
	s.do(tb, token, http.MethodPost, "/api/v2/usage/events", events, http.StatusAccepted, &out)
	if n := lenOf(events); out.Accepted != n {
		tb.Fatalf("POST /api/v2/usage/events: accepted %d, want %d", out.Accepted, n)
	}
}

func lenOf(v any) int {
	b, _ := json.Marshal(v)
	var list []json.RawMessage
	_ = json.Unmarshal(b, &list)
	return len(list)
}

// query starts an execution (POST path with body, or GET path when body is
// nil), polls the results URI it names until Complete and returns the rows.
func (s *testServer) query(tb testing.TB, token, path string, body any) []map[string]any {
	tb.Helper()
	var exec struct {
		ExecutionID string `json:"executionId"`
		ResultsURI  string `json:"resultsUri"`
	}
	method := http.MethodPost
	if body == nil {
		method = http.MethodGet
	}
	s.do(tb, token, method, path, body, http.StatusAccepted, &exec)
	if exec.ExecutionID == "" || !strings.HasPrefix(exec.ResultsURI, "/api/v2/") {
		tb.Fatalf("%s %s: got %+v, want an execution id and a results URI", method, path, exec)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var res struct {
			QueryStatus string           `json:"queryStatus"`
			Results     []map[string]any `json:"results"`
		}
		s.do(tb, token, http.MethodGet, exec.ResultsURI, nil, http.StatusOK, &res)
		switch res.QueryStatus {
		case "Complete":
			return res.Results
		case "Running":
		default:
			tb.Fatalf("GET %s: queryStatus %q", exec.ResultsURI, res.QueryStatus)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("GET %s: still Running after 30s", exec.ResultsURI)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pathEscape escapes a path segment such as a client id.
func pathEscape(s string) string { return url.PathEscape(s) }
