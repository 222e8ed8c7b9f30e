package capture

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// rig is a middleware under test: its token issuer, verifier, recorder and
// the appender the events end up in.
type rig struct {
	is  *issuer
	app *memAppender
	rec *Recorder
	cfg Config
}

func newRig(tb testing.TB) *rig {
	tb.Helper()
	is := newIssuer(tb)
	v, err := NewVerifier(VerifierConfig{JWKSURL: is.url()})
	if err != nil {
		tb.Fatal(err)
	}
	app := &memAppender{}
	rec := newTestRecorder(tb, app, RecorderConfig{})
	return &rig{is: is, app: app, rec: rec, cfg: Config{Recorder: rec, Verifier: v}}
}

func (rg *rig) handler(tb testing.TB, h http.Handler) http.Handler {
	tb.Helper()
	mw, err := Middleware(rg.cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return mw(h)
}

func (rg *rig) token(tb testing.TB, org, client string) string {
	tb.Helper()
	return rg.is.sign(tb, "ed", claims(org, client, time.Now()))
}

// events closes the recorder and returns what it shipped.
func (rg *rig) events(tb testing.TB) []apiusage.Event {
	tb.Helper()
	closeRecorder(tb, rg.rec)
	return rg.app.stored()
}

// recorded is the part of an event a test checks.
type recorded struct {
	Org, Client, User, Template, Method string
	Status                              int
}

func summary(es []apiusage.Event) []recorded {
	var out []recorded
	for _, e := range es {
		out = append(out, recorded{e.OrganizationID, e.ClientID, e.UserID, e.TemplateURI, e.Method, e.Status})
	}
	return out
}

func do(tb testing.TB, h http.Handler, method, target, token string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(method, target, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestMiddlewareStatus(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    int
		panics  bool
	}{
		{"writes 404", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, 404, false},
		{"writes nothing", func(http.ResponseWriter, *http.Request) {}, 200, false},
		{"writes a body only", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hi") }, 200, false},
		{"early hints, then 201", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
		}, 201, false},
		{"429", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(429) }, 429, false},
		{"writes twice", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(503)
			w.WriteHeader(200) // ignored by net/http: the client sees 503
		}, 503, false},
		{"panics", func(http.ResponseWriter, *http.Request) { panic("boom") }, 500, true},
		{"panics after writing 200", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(200)
			panic("boom")
		}, 500, true},
		{"aborts after writing 200", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(200)
			panic(http.ErrAbortHandler)
		}, 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rg := newRig(t)
			mux := http.NewServeMux()
			mux.Handle("POST /items/{id}", tt.handler)
			h := rg.handler(t, mux)
			req := httptest.NewRequest("POST", "/items/42", nil)
			req.Header.Set("Authorization", "Bearer "+rg.token(t, "org", "client"))
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				h.ServeHTTP(httptest.NewRecorder(), req)
			}()
			if (recovered != nil) != tt.panics {
				t.Errorf("panic = %v, want a panic: %v (the middleware must let it go on)", recovered, tt.panics)
			}
			want := []recorded{{"org", "client", "", "items/{id}", "POST", tt.want}}
			if got := summary(rg.events(t)); !equal(got, want) {
				t.Errorf("recorded %+v, want %+v", got, want)
			}
		})
	}
}

// TestMiddlewarePanicOverHTTP checks the server behaves as without the
// middleware: the panic reaches net/http, which drops the connection.
func TestMiddlewarePanicOverHTTP(t *testing.T) {
	rg := newRig(t)
	srv := httptest.NewUnstartedServer(rg.handler(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the panic's stack trace
	srv.Start()
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+rg.token(t, "o", "c"))
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want the connection dropped", resp.StatusCode)
	}
	want := []recorded{{"o", "c", "", "unmatched", "GET", 500}}
	if got := summary(rg.events(t)); !equal(got, want) {
		t.Errorf("recorded %+v, want %+v", got, want)
	}
}

func TestMiddlewareTemplates(t *testing.T) {
	routes, err := NewRoutes([]string{"/legacy/users/{userId}"})
	if err != nil {
		t.Fatal(err)
	}
	// stripContext serves a copy of the request, as many middlewares do,
	// so that the pattern the mux sets is not on the middleware's request.
	stripContext := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), struct{}{}, 1)))
		})
	}
	newMux := func() *http.ServeMux {
		mux := http.NewServeMux()
		ok := func(http.ResponseWriter, *http.Request) {}
		mux.HandleFunc("GET /api/v2/users/{userId}", ok)
		mux.HandleFunc("api.example.com/api/v2/hosted", ok)
		mux.HandleFunc("/static/", ok)
		mux.HandleFunc("GET /{$}", ok)
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/legacy/") {
				return
			}
			http.NotFound(w, r)
		})
		return mux
	}
	tests := []struct {
		name      string
		cfg       func(*Config, *http.ServeMux)
		wrap      func(http.Handler) http.Handler
		method    string
		target    string
		want      string
		wantState int
	}{
		{name: "mux pattern", target: "/api/v2/users/7", want: "api/v2/users/{userId}", wantState: 200},
		{name: "mux pattern with host", target: "http://api.example.com/api/v2/hosted", want: "api/v2/hosted", wantState: 200},
		{name: "subtree pattern", target: "/static/img/a.png", want: "static/", wantState: 200},
		{name: "root", target: "/", want: "/", wantState: 200},
		{name: "catch-all with a route table", cfg: func(c *Config, _ *http.ServeMux) { c.Routes = routes },
			target: "/legacy/users/7", want: "legacy/users/{userId}", wantState: 200},
		{name: "catch-all without a route", target: "/nope/123", want: "unmatched", wantState: 404},
		{name: "custom unmatched", cfg: func(c *Config, _ *http.ServeMux) { c.Unmatched = "other" },
			target: "/nope/123", want: "other", wantState: 404},
		{name: "wrong method", method: "DELETE", target: "/api/v2/users/7", want: "unmatched", wantState: 404},
		{name: "copied request without Mux", wrap: stripContext, target: "/api/v2/users/7", want: "unmatched", wantState: 200},
		{name: "copied request with Mux", cfg: func(c *Config, m *http.ServeMux) { c.Mux = m }, wrap: stripContext,
			target: "/api/v2/users/7", want: "api/v2/users/{userId}", wantState: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rg := newRig(t)
			mux := newMux()
			if tt.cfg != nil {
				tt.cfg(&rg.cfg, mux)
			}
			var inner http.Handler = mux
			if tt.wrap != nil {
				inner = tt.wrap(mux)
			}
			method := tt.method
			if method == "" {
				method = "GET"
			}
			w := do(t, rg.handler(t, inner), method, tt.target, rg.token(t, "o", "c"))
			wantStatus := tt.wantState
			if w.Code != wantStatus {
				t.Errorf("status = %d, want %d", w.Code, wantStatus)
			}
			want := []recorded{{"o", "c", "", tt.want, method, wantStatus}}
			if got := summary(rg.events(t)); !equal(got, want) {
				t.Errorf("recorded %+v, want %+v", got, want)
			}
		})
	}
}

func TestMiddlewareAuthentication(t *testing.T) {
	tests := []struct {
		name       string
		policy     Policy
		token      func(rg *rig) string
		wantStatus int
		wantCode   string
		want       []recorded
	}{
		{name: "valid token", token: func(rg *rig) string { return rg.token(t, "o", "c") },
			wantStatus: 200, want: []recorded{{"o", "c", "", "unmatched", "GET", 200}}},
		{name: "no token passes unrecorded", token: func(*rig) string { return "" }, wantStatus: 200},
		{name: "bad token passes unrecorded", token: func(*rig) string { return "x.y.z" }, wantStatus: 200},
		{name: "no token recorded as anonymous", policy: PassRecorded, token: func(*rig) string { return "" },
			wantStatus: 200, want: []recorded{{"public", "anonymous", "", "unmatched", "GET", 200}}},
		{name: "no token rejected", policy: Reject, token: func(*rig) string { return "" },
			wantStatus: 401, wantCode: apiusage.CodeAuthRequired},
		{name: "bad token rejected", policy: Reject, token: func(*rig) string { return "x.y.z" },
			wantStatus: 401, wantCode: apiusage.CodeBadCredentials},
		{name: "expired token rejected", policy: Reject, token: func(rg *rig) string {
			c := claims("o", "c", time.Now())
			c["exp"] = time.Now().Add(-time.Minute).Unix()
			return rg.is.sign(t, "rsa", c)
		}, wantStatus: 401, wantCode: apiusage.CodeBadCredentials},
		{name: "valid token with the reject policy", policy: Reject, token: func(rg *rig) string { return rg.token(t, "o", "c") },
			wantStatus: 200, want: []recorded{{"o", "c", "", "unmatched", "GET", 200}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rg := newRig(t)
			rg.cfg.Unauthenticated = tt.policy
			rg.cfg.Anonymous = Identity{OrganizationID: "public", ClientID: "anonymous"}
			served := false
			h := rg.handler(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true }))
			w := do(t, h, "GET", "/x", tt.token(rg))
			if w.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", w.Code, tt.wantStatus)
			}
			if served != (tt.wantStatus == 200) {
				t.Errorf("handler served = %v, want %v", served, tt.wantStatus == 200)
			}
			if tt.wantCode != "" {
				var body errorBody
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
					t.Fatalf("401 body %q: %v", w.Body, err)
				}
				if body.Code != tt.wantCode || body.Status != 401 || body.ContextID == "" || w.Header().Get("ININ-Correlation-Id") != body.ContextID {
					t.Errorf("401 body = %+v, want code %q, status 401 and a contextId in ININ-Correlation-Id", body, tt.wantCode)
				}
			}
			if got := summary(rg.events(t)); !equal(got, tt.want) {
				t.Errorf("recorded %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMiddlewareConfigErrors(t *testing.T) {
	rg := newRig(t)
	if _, err := Middleware(Config{}); err == nil {
		t.Error("Middleware(Config{}) error = nil, want one")
	}
	cfg := rg.cfg
	cfg.Unauthenticated = PassRecorded
	if _, err := Middleware(cfg); err == nil {
		t.Error("PassRecorded without an anonymous identity: error = nil, want one")
	}
}

// TestMiddlewareStreams checks that Flush reaches the client while the
// handler is still running, and that http.ResponseController reaches the
// connection's other features through the wrapper.
func TestMiddlewareStreams(t *testing.T) {
	rg := newRig(t)
	firstSeen := make(chan struct{})
	handlerErr := make(chan error, 1)
	h := rg.handler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			handlerErr <- err
			return
		}
		if _, ok := w.(http.Flusher); !ok {
			handlerErr <- errors.New("the wrapped writer is not an http.Flusher")
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-firstSeen:
		case <-time.After(20 * time.Second):
			handlerErr <- errors.New("the client never saw the first event: Flush did not pass through")
			return
		}
		io.WriteString(w, "data: two\n\n")
		handlerErr <- rc.Flush()
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+rg.token(t, "o", "c"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	close(firstSeen)
	rest, _ := io.ReadAll(br)
	if err := <-handlerErr; err != nil {
		t.Fatal(err)
	}
	if string(rest) != "\ndata: two\n\n" {
		t.Errorf("rest = %q", rest)
	}
	want := []recorded{{"o", "c", "", "unmatched", "GET", 200}}
	if got := summary(rg.events(t)); !equal(got, want) {
		t.Errorf("recorded %+v, want %+v", got, want)
	}
}

// TestMiddlewareServesFiles serves a file, whole and in part, through the
// writer's ReadFrom.
func TestMiddlewareServesFiles(t *testing.T) {
	rg := newRig(t)
	dir := t.TempDir()
	content := strings.Repeat("0123456789", 1000)
	if err := os.WriteFile(filepath.Join(dir, "f.txt"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /files/", http.StripPrefix("/files/", http.FileServer(http.Dir(dir))))
	srv := httptest.NewServer(rg.handler(t, mux))
	defer srv.Close()
	tok := rg.token(t, "o", "c")
	for _, rng := range []string{"", "bytes=10-19"} {
		req, _ := http.NewRequest("GET", srv.URL+"/files/f.txt", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := content
		if rng != "" {
			want = content[10:20]
		}
		if string(body) != want {
			t.Errorf("Range %q: body of %d bytes, want %d", rng, len(body), len(want))
		}
	}
	want := []recorded{{"o", "c", "", "files/", "GET", 200}, {"o", "c", "", "files/", "GET", 206}}
	if got := summary(rg.events(t)); !equal(got, want) {
		t.Errorf("recorded %+v, want %+v", got, want)
	}
}

// TestMiddlewareHijack takes the connection over, as a WebSocket server
// does, and talks over it.
func TestMiddlewareHijack(t *testing.T) {
	rg := newRig(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws/{room}", func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	})
	srv := httptest.NewServer(rg.handler(t, mux))
	defer srv.Close()
	echo := upgradeAndEcho(t, srv.Listener.Addr().String(), "/ws/lobby", rg.token(t, "o", "c"))
	if echo != "echo: hello\n" {
		t.Errorf("echo = %q", echo)
	}
	// The handler returns, and the request is recorded, after the echo.
	waitFor(t, "the upgrade recorded", func() bool { return count(rg.rec.metrics.recorded) == 1 })
	want := []recorded{{"o", "c", "", "ws/{room}", "GET", 101}}
	if got := summary(rg.events(t)); !equal(got, want) {
		t.Errorf("recorded %+v, want %+v", got, want)
	}
}

// upgradeAndEcho sends an upgrade request over a raw connection, expects
// 101, writes a line and returns the line read back.
func upgradeAndEcho(tb testing.TB, addr, path, token string) string {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\nAuthorization: Bearer "+token+"\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != 101 {
		tb.Fatalf("status = %d, want 101", resp.StatusCode)
	}
	io.WriteString(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil {
		tb.Fatalf("read echo: %v", err)
	}
	return line
}

func equal(a, b []recorded) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
