package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/embedded"
	"github.com/apiusage/apiusage/server"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

// clock is a settable time source shared by the server and the embedded
// components of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// faultyStore is the real store with faults that tests switch on: Query
// (and ClientNames) or Append fail, or Query or Append waits at a gate until
// the test opens it. It is a fault injector around the real component, not
// a mock of it.
type faultyStore struct {
	apiusage.Store
	fail       atomic.Bool
	failAppend atomic.Bool

	// appends counts the Appends begun.
	appends atomic.Int32

	mu         sync.Mutex
	gate       chan struct{} // of queries
	appendGate chan struct{}
}

var errInjected = errors.New("injected store fault")

// enter is where a query meets the faults: it waits at the gate, if any,
// and fails when told to.
func (s *faultyStore) enter(ctx context.Context) error {
	if err := s.pass(ctx, &s.gate); err != nil {
		return err
	}
	if s.fail.Load() {
		return errInjected
	}
	return nil
}

// pass waits at the gate *g, if any, until it opens or ctx is done.
func (s *faultyStore) pass(ctx context.Context, g *chan struct{}) error {
	s.mu.Lock()
	gate := *g
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *faultyStore) Query(ctx context.Context, q apiusage.Query) ([]apiusage.Row, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	return s.Store.Query(ctx, q)
}

// QueryRowSet and ReleaseRowSet pass on the store's own, as the server
// uses them (every store the tests put in an env has them).
func (s *faultyStore) QueryRowSet(ctx context.Context, q apiusage.Query) (*apiusage.RowSet, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	return s.Store.(apiusage.RowSetQuerier).QueryRowSet(ctx, q)
}

func (s *faultyStore) ReleaseRowSet(rs *apiusage.RowSet) {
	s.Store.(apiusage.RowSetQuerier).ReleaseRowSet(rs)
}

func (s *faultyStore) Append(ctx context.Context, b apiusage.Batch) (apiusage.Receipt, error) {
	s.appends.Add(1)
	if err := s.pass(ctx, &s.appendGate); err != nil {
		return apiusage.Receipt{}, err
	}
	if s.failAppend.Load() {
		return apiusage.Receipt{}, errInjected
	}
	return s.Store.Append(ctx, b)
}

// hold makes queries wait until the returned function is called.
func (s *faultyStore) hold() (release func()) { return s.shut(&s.gate) }

// holdAppends makes appends wait until the returned function is called.
func (s *faultyStore) holdAppends() (release func()) { return s.shut(&s.appendGate) }

// shut puts a closed gate at *g and returns the function that opens it.
func (s *faultyStore) shut(g *chan struct{}) (open func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	*g = gate
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			*g = nil
			s.mu.Unlock()
			close(gate)
		})
	}
}

// env is a server over the real embedded store, directory and registry,
// behind a real HTTP listener, with a platform client bootstrapped.
type env struct {
	t        testing.TB
	clock    *clock
	store    *faultyStore
	dir      apiusage.Directory
	srv      *server.Server
	http     *httptest.Server
	registry *prometheus.Registry
	logs     *syncBuffer

	platformOrg    string
	platformID     string
	platformSecret string
	platformToken  string
}

// t0 is the tests' "now": a Wednesday afternoon.
var t0 = time.Date(2026, 11, 25, 15, 30, 0, 0, time.UTC)

func newEnv(t testing.TB, mutate ...func(*server.Config)) *env {
	t.Helper()
	clk := &clock{now: t0}
	dir := t.TempDir()
	store, err := embedded.Open(dir+"/usage", embedded.Options{Now: clk.Now})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	directory, err := embedded.OpenDirectory(dir + "/directory.json")
	if err != nil {
		t.Fatalf("open directory: %v", err)
	}
	execs := embedded.NewExecutions(clk.Now)

	cfg := server.Config{HashCost: bcrypt.MinCost, Now: clk.Now, Workers: 2, TokenTTL: time.Hour, ResultTTL: time.Hour}
	for _, m := range mutate {
		m(&cfg)
	}
	e := &env{t: t, clock: clk, store: &faultyStore{Store: store}, dir: directory, registry: prometheus.NewRegistry(), logs: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	e.srv, err = server.New(cfg, logger, e.store, directory, execs, key, e.registry)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	e.http = httptest.NewServer(e.srv)
	t.Cleanup(func() {
		e.http.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.srv.Close(ctx); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	e.platformID, e.platformSecret = "platform-admin", "platform-secret"
	c, _, err := server.Bootstrap(context.Background(), directory, e.platformID, e.platformSecret, bcrypt.MinCost, clk.Now())
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	e.platformOrg = c.OrganizationID
	e.platformToken = e.login(e.platformID, e.platformSecret)
	return e
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// response is an answer of the server.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic value.
func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode body %q: %v", r.body, err)
	}
	return v
}

// request is a request to send.
type request struct {
	method, path, token string
	body                any // []byte, string and io.Reader are sent as they are; anything else as JSON
	header              map[string]string
}

func (e *env) do(req request) response {
	e.t.Helper()
	var body io.Reader
	switch b := req.body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	case string:
		body = strings.NewReader(b)
	case io.Reader:
		body = b
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("encode request body: %v", err)
		}
		body = bytes.NewReader(raw)
	}
	r, err := http.NewRequest(req.method, e.http.URL+req.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if req.token != "" {
		r.Header.Set("Authorization", "Bearer "+req.token)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	res, err := e.http.Client().Do(r)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: raw}
}

// call sends a JSON request and fails unless it answers want.
func (e *env) call(want int, method, path, token string, body any) map[string]any {
	e.t.Helper()
	res := e.do(request{method: method, path: path, token: token, body: body})
	if res.status != want {
		e.t.Fatalf("%s %s: status %d (%s), want %d", method, path, res.status, res.body, want)
	}
	if len(res.body) == 0 {
		return nil
	}
	return res.json(e.t)
}

// login gets a token with Basic auth.
func (e *env) login(id, secret string) string {
	e.t.Helper()
	res := e.tokenRequest(id, secret, url.Values{"grant_type": {"client_credentials"}})
	if res.status != http.StatusOK {
		e.t.Fatalf("login %s: status %d (%s), want 200", id, res.status, res.body)
	}
	tok, _ := res.json(e.t)["access_token"].(string)
	if tok == "" {
		e.t.Fatalf("login %s: no access_token in %s", id, res.body)
	}
	return tok
}

// tokenRequest posts the form to /oauth/token, with Basic auth when id is set.
func (e *env) tokenRequest(id, secret string, form url.Values) response {
	e.t.Helper()
	r, err := http.NewRequest(http.MethodPost, e.http.URL+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		r.SetBasicAuth(id, secret)
	}
	res, err := e.http.Client().Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: raw}
}

// tenant is an organization made through the API, with its admin client.
type tenant struct {
	id          string
	adminID     string
	adminSecret string
	admin       string // the admin's token
}

func (e *env) newTenant(name string) tenant {
	e.t.Helper()
	body := e.call(http.StatusCreated, "POST", "/api/v2/organizations", e.platformToken, map[string]any{"name": name})
	admin := body["adminClient"].(map[string]any)
	tn := tenant{id: body["id"].(string), adminID: admin["id"].(string), adminSecret: admin["secret"].(string)}
	tn.admin = e.login(tn.adminID, tn.adminSecret)
	return tn
}

// newClient creates a client in the tenant with the permissions and returns
// its id and a token.
func (e *env) newClient(tn tenant, name string, perms ...string) (id, secret, token string) {
	e.t.Helper()
	if perms == nil {
		perms = []string{}
	}
	body := e.call(http.StatusCreated, "POST", "/api/v2/oauth/clients", tn.admin,
		map[string]any{"name": name, "permissions": perms})
	id, secret = body["id"].(string), body["secret"].(string)
	return id, secret, e.login(id, secret)
}

// ingest posts events with the token and fails unless they are accepted.
func (e *env) ingest(token string, events []apiusage.Event) map[string]any {
	e.t.Helper()
	return e.call(http.StatusAccepted, "POST", "/api/v2/usage/events", token, events)
}

// wait polls a results URI until the execution is no longer Running, and
// returns the final body. The bound keeps a broken server from hanging the
// test; it asserts nothing about speed.
func (e *env) wait(token, uri string) map[string]any {
	e.t.Helper()
	for range 5000 {
		body := e.call(http.StatusOK, "GET", uri, token, nil)
		if body["queryStatus"] != "Running" {
			return body
		}
		time.Sleep(2 * time.Millisecond)
	}
	e.t.Fatalf("%s: still Running after 5000 polls", uri)
	return nil
}

// start posts a query and returns its results URI.
func (e *env) start(token, path string, body any) string {
	e.t.Helper()
	return e.startWith("POST", token, path, body)
}

// startWith starts an execution with the method (GET for a summary).
func (e *env) startWith(method, token, path string, body any) string {
	e.t.Helper()
	res := e.call(http.StatusAccepted, method, path, token, body)
	uri, _ := res["resultsUri"].(string)
	if uri == "" || res["executionId"] == "" {
		e.t.Fatalf("POST %s: no resultsUri or executionId in %v", path, res)
	}
	return uri
}

// rows returns the results of a finished execution.
func rows(t *testing.T, body map[string]any) []map[string]any {
	t.Helper()
	if body["queryStatus"] != "Complete" {
		t.Fatalf("queryStatus %v, want Complete (body %v)", body["queryStatus"], body)
	}
	list, ok := body["results"].([]any)
	if !ok {
		t.Fatalf("results %T in %v, want an array", body["results"], body)
	}
	out := make([]map[string]any, len(list))
	for i, r := range list {
		out[i] = r.(map[string]any)
	}
	return out
}

// checkError fails unless res is the contract's ErrorBody with the status
// and code, and returns it.
func checkError(t *testing.T, res response, status int, code string) map[string]any {
	t.Helper()
	if res.status != status {
		t.Fatalf("status %d (%s), want %d", res.status, res.body, status)
	}
	body := res.json(t)
	for _, field := range []string{"message", "code", "status", "messageWithParams", "messageParams", "contextId", "details", "errors"} {
		if _, ok := body[field]; !ok {
			t.Fatalf("ErrorBody %s lacks %q", res.body, field)
		}
	}
	if body["code"] != code || body["status"] != float64(status) {
		t.Fatalf("ErrorBody code %v status %v, want %s %d (%s)", body["code"], body["status"], code, status, res.body)
	}
	if got := res.header.Get("ININ-Correlation-Id"); got == "" || got != body["contextId"] {
		t.Fatalf("ININ-Correlation-Id %q, want the contextId %v", got, body["contextId"])
	}
	return body
}

// event is a valid event at hour h of day d (in November 2026) with the status.
func event(org, client, name, method, tmpl string, day, hour, status int) apiusage.Event {
	return apiusage.Event{
		Time:           time.Date(2026, 11, day, hour, 10, 0, 0, time.UTC),
		OrganizationID: org, ClientID: client, ClientName: name,
		TemplateURI: tmpl, Method: method, Status: status,
	}
}

func openDirectory(t *testing.T) apiusage.Directory {
	t.Helper()
	d, err := embedded.OpenDirectory(t.TempDir() + "/directory.json")
	if err != nil {
		t.Fatal(err)
	}
	return d
}
