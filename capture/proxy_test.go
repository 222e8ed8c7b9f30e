package capture

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/apiusage/apiusage"
)

// upstreamAPI is a small API with templated routes, a stream and an
// upgrade, standing for whatever the proxy is put in front of.
func upstreamAPI(tb testing.TB, streamGate <-chan struct{}) *httptest.Server {
	tb.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v2/users/{userId}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{
			"id":     r.PathValue("userId"),
			"xff":    r.Header.Get("X-Forwarded-For"),
			"xfhost": r.Header.Get("X-Forwarded-Host"),
			"auth":   r.Header.Get("Authorization"),
		})
	})
	mux.HandleFunc("POST /api/v2/users", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if len(body) == 0 {
			http.Error(w, "empty", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	})
	mux.HandleFunc("DELETE /api/v2/users/{userId}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /api/v2/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-streamGate:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	})
	mux.HandleFunc("GET /ws/{room}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv
}

func newTestProxy(tb testing.TB, rg *rig, upstream string) *httptest.Server {
	tb.Helper()
	u, _ := url.Parse(upstream)
	routes, err := NewRoutes([]string{"/api/v2/users/{userId}", "/api/v2/users", "/api/v2/events", "/ws/{room}"})
	if err != nil {
		tb.Fatal(err)
	}
	rg.cfg.Routes = routes
	rg.cfg.Unauthenticated = Reject
	h, err := NewProxy(ProxyConfig{Upstream: u, Capture: rg.cfg})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

func request(tb testing.TB, method, url, token, body string) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
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

func TestProxy(t *testing.T) {
	gate := make(chan struct{})
	up := upstreamAPI(t, gate)
	rg := newRig(t)
	px := newTestProxy(t, rg, up.URL)
	tok := rg.token(t, "org-a", "client-a")

	resp, body := request(t, "GET", px.URL+"/api/v2/users/42?x=1", tok, "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET user: status %d: %s", resp.StatusCode, body)
	}
	var got map[string]string
	json.Unmarshal([]byte(body), &got)
	pxHost := strings.TrimPrefix(px.URL, "http://")
	if got["id"] != "42" || got["xff"] != "127.0.0.1" || got["xfhost"] != pxHost || got["auth"] != "Bearer "+tok {
		t.Errorf("upstream saw %v, want id 42, X-Forwarded-For 127.0.0.1, X-Forwarded-Host %s and the token", got, pxHost)
	}

	if resp, body := request(t, "POST", px.URL+"/api/v2/users", tok, `{"name":"x"}`); resp.StatusCode != 201 || body != `{"name":"x"}` {
		t.Errorf("POST: %d %q, want 201 and the body echoed", resp.StatusCode, body)
	}
	if resp, _ := request(t, "POST", px.URL+"/api/v2/users", tok, ""); resp.StatusCode != 400 {
		t.Errorf("POST empty: %d, want 400", resp.StatusCode)
	}
	if resp, _ := request(t, "DELETE", px.URL+"/api/v2/users/1", tok, ""); resp.StatusCode != 500 {
		t.Errorf("DELETE: %d, want 500", resp.StatusCode)
	}
	if resp, _ := request(t, "GET", px.URL+"/secret/7", tok, ""); resp.StatusCode != 404 {
		t.Errorf("GET unrouted: %d, want 404", resp.StatusCode)
	}

	// No token: 401 from the proxy, the upstream never asked.
	resp, body = request(t, "GET", px.URL+"/api/v2/users/42", "", "")
	var eb errorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil || resp.StatusCode != 401 || eb.Code != apiusage.CodeAuthRequired {
		t.Errorf("no token: %d %s, want 401 with code %s", resp.StatusCode, body, apiusage.CodeAuthRequired)
	}

	// A stream: the first event arrives before the upstream finishes.
	req, _ := http.NewRequest("GET", px.URL+"/api/v2/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	sresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(sresp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: one\n" {
		t.Fatalf("stream first line %q, %v", line, err)
	}
	close(gate)
	rest, _ := io.ReadAll(br)
	sresp.Body.Close()
	if string(rest) != "\ndata: two\n\n" {
		t.Errorf("stream rest = %q", rest)
	}

	// An upgrade passes through.
	if echo := upgradeAndEcho(t, px.Listener.Addr().String(), "/ws/lobby", tok); echo != "echo: hello\n" {
		t.Errorf("echo through the proxy = %q", echo)
	}

	// The proxy records the upgrade when both sides have closed it.
	waitFor(t, "the upgrade recorded", func() bool { return count(rg.rec.metrics.recorded) == 7 })
	want := []recorded{
		{"org-a", "client-a", "", "api/v2/users/{userId}", "GET", 200},
		{"org-a", "client-a", "", "api/v2/users", "POST", 201},
		{"org-a", "client-a", "", "api/v2/users", "POST", 400},
		{"org-a", "client-a", "", "api/v2/users/{userId}", "DELETE", 500},
		{"org-a", "client-a", "", "unmatched", "GET", 404},
		{"org-a", "client-a", "", "api/v2/events", "GET", 200},
		{"org-a", "client-a", "", "ws/{room}", "GET", 101},
	}
	if got := summary(rg.events(t)); !equal(got, want) {
		t.Errorf("recorded\n%+v\nwant\n%+v", got, want)
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	upURL := up.URL
	up.Close()
	rg := newRig(t)
	px := newTestProxy(t, rg, upURL)
	resp, body := request(t, "GET", px.URL+"/api/v2/users/1", rg.token(t, "o", "c"), "")
	var eb errorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil || resp.StatusCode != 502 || eb.Status != 502 {
		t.Errorf("upstream down: %d %s, want 502 with an ErrorBody", resp.StatusCode, body)
	}
	want := []recorded{{"o", "c", "", "api/v2/users/{userId}", "GET", 502}}
	if got := summary(rg.events(t)); !equal(got, want) {
		t.Errorf("recorded %+v, want %+v", got, want)
	}
}

// TestProxyKeepsAnsweringWhileIngestIsDown takes the ingest target down:
// the proxy keeps answering every request, events beyond the buffer are
// counted as dropped, and the buffered ones arrive once the target is back.
func TestProxyKeepsAnsweringWhileIngestIsDown(t *testing.T) {
	up := upstreamAPI(t, nil)
	rg := newRig(t)
	// A small buffer, so that the outage overflows it.
	rg.app.setDown(true)
	rg.rec = newTestRecorder(t, rg.app, RecorderConfig{Buffer: 20, BatchSize: 5})
	rg.cfg.Recorder = rg.rec
	px := newTestProxy(t, rg, up.URL)
	tok := rg.token(t, "o", "c")
	const n = 200
	for i := range n {
		// Were recording to wait for the ingest target, these requests
		// would hang, and the test with them.
		if resp, _ := request(t, "GET", px.URL+fmt.Sprintf("/api/v2/users/%d", i), tok, ""); resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	recordedN, dropped := count(rg.rec.metrics.recorded), count(rg.rec.metrics.dropFull)
	if recordedN+dropped != n || dropped == 0 {
		t.Errorf("recorded %d + dropped %d, want %d with some dropped", recordedN, dropped, n)
	}
	rg.app.setDown(false)
	if got := len(rg.events(t)); got != recordedN {
		t.Errorf("stored %d events once back, want the %d buffered", got, recordedN)
	}
}

func TestNewProxyErrors(t *testing.T) {
	rg := newRig(t)
	for _, u := range []string{"", "ftp://x", "http://"} {
		var parsed *url.URL
		if u != "" {
			parsed, _ = url.Parse(u)
		}
		if _, err := NewProxy(ProxyConfig{Upstream: parsed, Capture: rg.cfg}); err == nil {
			t.Errorf("NewProxy(%q) error = nil, want one", u)
		}
	}
	if _, err := NewProxy(ProxyConfig{Upstream: &url.URL{Scheme: "http", Host: "x"}}); err == nil {
		t.Error("NewProxy without a recorder: error = nil, want one")
	}
}
