package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// testUpstream is an API with templated routes that answers with the status
// a request asks for (?status=), so that a test controls the mix.
func testUpstream(tb testing.TB) *httptest.Server {
	tb.Helper()
	answer := func(w http.ResponseWriter, r *http.Request) {
		status := 200
		if s := r.URL.Query().Get("status"); s != "" {
			status, _ = strconv.Atoi(s)
		}
		if status/100 == 3 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", answer)
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv
}

// proxyRoutes is the route table the tests give the proxy, as OpenAPI.
const proxyRoutes = `openapi: 3.0.3
info: {title: test API, version: "1"}
servers: [{url: /api/v2}]
paths:
  /users: {get: {}, post: {}}
  /users/{userId}: {get: {}, put: {}, delete: {}}
  /users/{userId}/roles/{roleId}: {patch: {}}
  /users/me: {get: {}}
`

type runningProxy struct {
	URL string
	// Admin is the base URL of /-/healthz and /-/metrics: URL, or the
	// --admin-listen address.
	Admin  string
	cancel context.CancelFunc
	done   chan error
	stderr *syncBuffer
}

var (
	proxyListening = regexp.MustCompile(`apiusage proxy listening on (https?://\S+),`)
	proxyAdmin     = regexp.MustCompile(`apiusage proxy admin on (http://\S+)`)
)

// probe checks the proxy's health. It trusts any certificate: it asks
// whether the proxy is up, and the tests check its certificate elsewhere.
var probe = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// startProxy runs apiusage proxy in process with args added to the
// required ones, and waits until its health endpoint answers.
func startProxy(tb testing.TB, env map[string]string, args ...string) *runningProxy {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &runningProxy{cancel: cancel, done: make(chan error, 1), stderr: &syncBuffer{}}
	var stdout syncBuffer
	getenv := func(k string) string { return env[k] }
	all := append([]string{"apiusage", "proxy", "--listen", "127.0.0.1:0", "--log-level", "warn"}, args...)
	go func() { p.done <- run(ctx, all, getenv, &stdout, p.stderr) }()
	tb.Cleanup(func() { p.stop(tb) })
	deadline := time.Now().Add(30 * time.Second)
	for p.URL == "" {
		if m := proxyListening.FindStringSubmatch(stdout.String()); m != nil {
			// The admin line, when there is one, comes before
			// this one.
			p.URL, p.Admin = m[1], m[1]
			if a := proxyAdmin.FindStringSubmatch(stdout.String()); a != nil {
				p.Admin = a[1]
			}
			break
		}
		select {
		case err := <-p.done:
			p.done <- err
			tb.Fatalf("apiusage proxy exited: %v\n%s", err, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("apiusage proxy did not print its address\n%s", p.stderr)
		}
	}
	for {
		resp, err := probe.Get(p.Admin + "/-/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("proxy /-/healthz: %v %v", resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop shuts the proxy down, which flushes its buffer, and fails the test
// unless it exits cleanly.
func (p *runningProxy) stop(tb testing.TB) {
	tb.Helper()
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			tb.Errorf("apiusage proxy exited with %v\n%s", err, p.stderr)
		}
	case <-time.After(time.Minute):
		tb.Errorf("apiusage proxy did not stop within a minute\n%s", p.stderr)
	}
}

// metric reads one sample of the proxy's /-/metrics.
func (p *runningProxy) metric(tb testing.TB, series string) float64 {
	tb.Helper()
	resp, err := probe.Get(p.Admin + "/-/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				tb.Fatal(err)
			}
			return v
		}
	}
	return 0
}

// call is one request through the proxy and what it should be counted as.
type call struct {
	client   string // index into the clients
	method   string
	path     string
	template string
	status   int
}

// send makes a request with the token and checks the status the client got.
func send(tb testing.TB, hc *http.Client, base, token string, c call) {
	tb.Helper()
	if err := trySend(hc, base, token, c); err != nil {
		tb.Fatal(err)
	}
}

// trySend is send for goroutines other than the test's.
func trySend(hc *http.Client, base, token string, c call) error {
	sep := "?"
	if strings.Contains(c.path, "?") {
		sep = "&"
	}
	req, err := http.NewRequest(c.method, base+c.path+sep+"status="+strconv.Itoa(c.status), strings.NewReader(`{}`))
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", c.method, c.path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != c.status {
		return fmt.Errorf("%s %s: status %d, want %d", c.method, c.path, resp.StatusCode, c.status)
	}
	return nil
}

// noRedirects is a client that shows 3xx answers instead of following them.
var noRedirects = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// usageRows asks the Usage API for the organization's counts by client,
// template and method, as comparable strings.
func usageRows(tb testing.TB, s *testServer, token string) []string {
	tb.Helper()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	rows := s.query(tb, token, "/api/v2/usage/query", map[string]any{
		"interval": today.Add(-24*time.Hour).Format("2006-01-02") + "/" + today.Add(48*time.Hour).Format("2006-01-02"),
		"groupBy":  []string{"OAuthClientId", "TemplateUri", "HttpMethod"},
	})
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%v %v %v 2xx=%v 3xx=%v 4xx=%v 5xx=%v 429=%v n=%v",
			r["clientId"], r["templateUri"], r["httpMethod"], r["status200"], r["status300"], r["status400"], r["status500"], r["status429"], r["requests"]))
	}
	sort.Strings(out)
	return out
}

// wantRows counts the calls of one organization's clients the way the Usage
// API must report them.
func wantRows(calls []call, clients map[string]string, ids ...string) []string {
	type key struct{ client, template, method string }
	counts := map[key]*apiusage.Counts{}
	for _, c := range calls {
		id := clients[c.client]
		if !contains(ids, id) {
			continue
		}
		k := key{id, c.template, c.method}
		if counts[k] == nil {
			counts[k] = &apiusage.Counts{}
		}
		counts[k].CountStatus(c.status)
	}
	var out []string
	for k, n := range counts {
		out = append(out, fmt.Sprintf("%s %s %s 2xx=%d 3xx=%d 4xx=%d 5xx=%d 429=%d n=%d",
			k.client, k.template, k.method, n.Status200, n.Status300, n.Status400, n.Status500, n.Status429, n.Requests))
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestProxyEndToEnd puts the proxy between clients of two organizations and
// an API, reporting to a real server: the Usage API then reports exactly the
// requests made, per client, template and method.
func TestProxyEndToEnd(t *testing.T) {
	srv := startServer(t, nil)
	orgA, adminA := srv.createOrganization(t, "Acme")
	orgB, adminB := srv.createOrganization(t, "Globex")
	tokA := srv.token(t, adminA.ID, adminA.Secret)
	tokB := srv.token(t, adminB.ID, adminB.Secret)
	appA := srv.createClient(t, tokA, "acme-app", "usage:event:add")
	appB := srv.createClient(t, tokB, "globex-app", "usage:event:add")
	// The proxy's own client, in the platform organization, may only add
	// events, for any organization.
	platform := srv.token(t, srv.BootstrapID, srv.BootstrapSecret)
	reporter := srv.createClient(t, platform, "proxy", "usage:event:add:any")

	up := testUpstream(t)
	routes := filepath.Join(t.TempDir(), "openapi.yaml")
	if err := os.WriteFile(routes, []byte(proxyRoutes), 0o600); err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, map[string]string{"APIUSAGE_CLIENT_ID": reporter.ID, "APIUSAGE_CLIENT_SECRET": reporter.Secret},
		"--upstream", up.URL, "--routes", routes, "--url", srv.URL, "--flush-interval", "50ms", "--batch-size", "37")

	tokens := map[string]string{
		"a": srv.token(t, appA.ID, appA.Secret),
		"b": srv.token(t, appB.ID, appB.Secret),
	}
	ids := map[string]string{"a": appA.ID, "b": appB.ID}
	shapes := []struct{ method, path, template string }{
		{"GET", "/api/v2/users", "api/v2/users"},
		{"POST", "/api/v2/users", "api/v2/users"},
		{"GET", "/api/v2/users/%d", "api/v2/users/{userId}"},
		{"PUT", "/api/v2/users/%d", "api/v2/users/{userId}"},
		{"DELETE", "/api/v2/users/%d", "api/v2/users/{userId}"},
		{"PATCH", "/api/v2/users/%d/roles/%d", "api/v2/users/{userId}/roles/{roleId}"},
		{"GET", "/api/v2/users/me", "api/v2/users/me"},
		{"GET", "/internal/debug/%d", "unmatched"},
	}
	statuses := []int{200, 200, 200, 201, 204, 302, 304, 400, 404, 429, 500, 503}
	rng := mathrand.New(mathrand.NewPCG(4, 2))
	const n = 600
	var calls []call
	for i := range n {
		sh := shapes[rng.IntN(len(shapes))]
		path := sh.path
		if strings.Contains(path, "%d") {
			path = strings.ReplaceAll(path, "%d", strconv.Itoa(rng.IntN(1000)))
		}
		c := call{client: []string{"a", "b"}[i%2], method: sh.method, path: path, template: sh.template, status: statuses[rng.IntN(len(statuses))]}
		calls = append(calls, c)
	}
	// Two clients at once, as traffic comes.
	errs := make(chan error, 2)
	for _, who := range []string{"a", "b"} {
		go func() {
			for _, c := range calls {
				if c.client == who {
					if err := trySend(noRedirects, px.URL, tokens[who], c); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	// Calls without a valid token are refused and not counted.
	for _, tok := range []string{"", "not-a-token", tokens["a"] + "x"} {
		resp, body := rawGet(t, px.URL+"/api/v2/users", tok)
		var eb struct {
			Code   string `json:"code"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(body), &eb); err != nil || resp.StatusCode != 401 || eb.Status != 401 {
			t.Errorf("token %q: %d %s, want a 401 ErrorBody", tok, resp.StatusCode, body)
		}
	}

	if got := px.metric(t, `apiusage_capture_requests_total{auth="valid"}`); got != n {
		t.Errorf("requests with a valid token = %v, want %d", got, n)
	}
	if got := px.metric(t, `apiusage_capture_requests_total{auth="rejected"}`); got != 3 {
		t.Errorf("requests rejected = %v, want 3", got)
	}
	// Stopping the proxy flushes its buffer.
	px.stop(t)

	for _, org := range []struct {
		name, id, token, client string
	}{{"Acme", orgA, tokA, appA.ID}, {"Globex", orgB, tokB, appB.ID}} {
		got := usageRows(t, srv, org.token)
		want := wantRows(calls, ids, org.client)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: the Usage API reports\n%s\nwant\n%s", org.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

func rawGet(tb testing.TB, url, token string) (*http.Response, string) {
	tb.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestProxyServerOutage stops the server while traffic goes on: the proxy
// keeps answering, the events beyond its buffer are counted as dropped, and
// the buffered ones reach the server once it is back.
func TestProxyServerOutage(t *testing.T) {
	data := t.TempDir()
	port := freePort(t)
	env := map[string]string{
		"APIUSAGE_BOOTSTRAP_CLIENT_ID":     "platform-admin",
		"APIUSAGE_BOOTSTRAP_CLIENT_SECRET": "platform-admin-secret-for-tests",
		"APIUSAGE_HASH_COST":               "4",
		"APIUSAGE_LOG_LEVEL":               "warn",
	}
	stopServer := serveAt(t, port, data, env)
	srv := &testServer{URL: "http://" + port, BootstrapID: env["APIUSAGE_BOOTSTRAP_CLIENT_ID"],
		BootstrapSecret: env["APIUSAGE_BOOTSTRAP_CLIENT_SECRET"], client: &http.Client{Timeout: 30 * time.Second}}
	waitHealthy(t, srv.URL)
	_, admin := srv.createOrganization(t, "Acme")
	adminTok := srv.token(t, admin.ID, admin.Secret)
	app := srv.createClient(t, adminTok, "app", "usage:event:add")
	reporter := srv.createClient(t, srv.token(t, srv.BootstrapID, srv.BootstrapSecret), "proxy", "usage:event:add:any")
	appTok := srv.token(t, app.ID, app.Secret)

	up := testUpstream(t)
	routes := filepath.Join(t.TempDir(), "routes.txt")
	os.WriteFile(routes, []byte("/api/v2/users/{userId}\n"), 0o600)
	px := startProxy(t, map[string]string{"APIUSAGE_CLIENT_ID": reporter.ID, "APIUSAGE_CLIENT_SECRET": reporter.Secret},
		"--upstream", up.URL, "--routes", routes, "--url", srv.URL,
		"--buffer", "50", "--batch-size", "10", "--flush-interval", "20ms")

	// One request while the server is up: its token is now verified and
	// remembered, so the outage does not stop the proxy from checking it.
	c := call{method: "GET", path: "/api/v2/users/1", template: "api/v2/users/{userId}", status: 200}
	send(t, noRedirects, px.URL, appTok, c)
	waitUntil(t, "the first event shipped", func() bool {
		return px.metric(t, "apiusage_capture_events_shipped_total") == 1
	})

	stopServer()
	const n = 300
	for range n {
		send(t, noRedirects, px.URL, appTok, c)
	}
	recorded := px.metric(t, "apiusage_capture_events_recorded_total")
	dropped := px.metric(t, `apiusage_capture_events_dropped_total{reason="buffer_full"}`)
	if recorded+dropped != n+1 || dropped == 0 {
		t.Errorf("recorded %v + dropped %v, want %d with some dropped", recorded, dropped, n+1)
	}

	serveAt(t, port, data, env)
	waitHealthy(t, srv.URL)
	waitUntil(t, "the buffered events shipped", func() bool {
		return px.metric(t, "apiusage_capture_events_shipped_total") == recorded
	})
	px.stop(t)
	got := usageRows(t, srv, adminTok)
	want := []string{fmt.Sprintf("%s api/v2/users/{userId} GET 2xx=%d 3xx=0 4xx=0 5xx=0 429=0 n=%d", app.ID, int(recorded), int(recorded))}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the Usage API reports %q, want %q (each buffered event once)", got, want)
	}
}

// serveAt runs apiusage serve on a fixed address and data directory, and
// returns a function that stops it (also called when the test ends).
func serveAt(tb testing.TB, addr, data string, env map[string]string) func() {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr syncBuffer
	go func() {
		done <- run(ctx, []string{"apiusage", "serve", "--addr", addr, "--data", data}, func(k string) string { return env[k] }, io.Discard, &stderr)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("apiusage serve: %v\n%s", err, stderr.String())
		}
	}
	tb.Cleanup(stop)
	return stop
}

func freePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHealthy(tb testing.TB, base string) {
	tb.Helper()
	waitUntil(tb, base+"/healthz", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// waitUntil polls cond until it holds, failing after a generous bound.
func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProxyConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"nothing", nil, nil, "--upstream"},
		{"no credential", []string{"--upstream", "http://x", "--url", "http://y"}, nil, "credential"},
		{"bad upstream", []string{"--upstream", "x", "--url", "http://y"}, map[string]string{"APIUSAGE_CLIENT_ID": "a", "APIUSAGE_CLIENT_SECRET": "b"}, "--upstream"},
		{"half TLS", []string{"--upstream", "http://x", "--url", "http://y", "--tls-cert", "c.pem"}, map[string]string{"APIUSAGE_CLIENT_ID": "a", "APIUSAGE_CLIENT_SECRET": "b"}, "--tls-key"},
		{"anonymous org without anonymous", []string{"--upstream", "http://x", "--url", "http://y", "--anonymous-org", "o"}, map[string]string{"APIUSAGE_CLIENT_ID": "a", "APIUSAGE_CLIENT_SECRET": "b"}, "--allow-anonymous"},
		{"missing routes file", []string{"--upstream", "http://x", "--url", "http://y", "--routes", "/nonexistent/routes"}, map[string]string{"APIUSAGE_CLIENT_ID": "a", "APIUSAGE_CLIENT_SECRET": "b"}, "routes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"apiusage", "proxy"}, tt.args...)
			err := run(context.Background(), args, func(k string) string { return tt.env[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) || exitCode(err) != 1 {
				t.Errorf("run(%q) = %v (exit %d), want a usage error mentioning %q", args, err, exitCode(err), tt.want)
			}
		})
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting the certificate.
func selfSigned(tb testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "apiusage proxy test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(tb, certFile, "CERTIFICATE", der)
	writePEM(tb, keyFile, "PRIVATE KEY", keyDER)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func writePEM(tb testing.TB, path, kind string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// TestProxyTLSAdminAndAnonymous serves HTTPS in front of an HTTPS upstream
// trusted through --ca-file, with the admin endpoints on their own listener
// and anonymous calls let through and recorded in an organization.
func TestProxyTLSAdminAndAnonymous(t *testing.T) {
	srv := startServer(t, nil)
	org, admin := srv.createOrganization(t, "Acme")
	adminTok := srv.token(t, admin.ID, admin.Secret)
	app := srv.createClient(t, adminTok, "app", "usage:event:add")
	reporter := srv.createClient(t, srv.token(t, srv.BootstrapID, srv.BootstrapSecret), "proxy", "usage:event:add:any")

	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"path":%q,"proto":%q}`, r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer up.Close()
	caFile := filepath.Join(t.TempDir(), "upstream-ca.pem")
	writePEM(t, caFile, "CERTIFICATE", up.Certificate().Raw)
	certFile, keyFile, pool := selfSigned(t)
	routes := filepath.Join(t.TempDir(), "routes.txt")
	os.WriteFile(routes, []byte("/api/v2/users/{userId}\n"), 0o600)

	px := startProxy(t, map[string]string{"APIUSAGE_CLIENT_ID": reporter.ID, "APIUSAGE_CLIENT_SECRET": reporter.Secret},
		"--upstream", up.URL, "--routes", routes, "--url", srv.URL,
		"--tls-cert", certFile, "--tls-key", keyFile, "--ca-file", caFile,
		"--admin-listen", "127.0.0.1:0", "--allow-anonymous", "--anonymous-org", org)
	if !strings.HasPrefix(px.URL, "https://") || px.Admin == px.URL {
		t.Fatalf("proxy at %s, admin at %s: want HTTPS and a separate admin listener", px.URL, px.Admin)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(path, token string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", px.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: status %d: %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if body := get("/api/v2/users/5", srv.token(t, app.ID, app.Secret)); body != `{"path":"/api/v2/users/5","proto":"https"}` {
		t.Errorf("upstream answered %s", body)
	}
	get("/api/v2/users/6", "") // anonymous
	// With an admin listener, /-/healthz is the upstream's like any path.
	if body := get("/-/healthz", ""); !strings.Contains(body, `"path":"/-/healthz"`) {
		t.Errorf("/-/healthz on the proxied listener answered %s, want the upstream's answer", body)
	}
	if got := px.metric(t, `apiusage_capture_requests_total{auth="anonymous"}`); got != 2 {
		t.Errorf("anonymous requests = %v, want 2", got)
	}
	px.stop(t)

	got := usageRows(t, srv, adminTok)
	want := []string{
		fmt.Sprintf("%s api/v2/users/{userId} GET 2xx=1 3xx=0 4xx=0 5xx=0 429=0 n=1", app.ID),
		"anonymous api/v2/users/{userId} GET 2xx=1 3xx=0 4xx=0 5xx=0 429=0 n=1",
		"anonymous unmatched GET 2xx=1 3xx=0 4xx=0 5xx=0 429=0 n=1",
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the Usage API reports\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
