package server_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/embedded"
	"github.com/apiusage/apiusage/server"
	"github.com/prometheus/client_golang/prometheus"
)

func TestHealthzAndMetrics(t *testing.T) {
	e := newEnv(t)
	a := e.newTenant("Acme")
	if body := e.call(http.StatusOK, "GET", "/healthz", "", nil); body["status"] != "ok" {
		t.Fatalf("healthz %v", body)
	}
	e.ingest(a.admin, []apiusage.Event{event(a.id, "c", "", "GET", "t", 20, 1, 200), event(a.id, "c", "", "GET", "t", 20, 2, 200)})
	e.wait(a.admin, e.start(a.admin, "/api/v2/usage/query", map[string]any{"interval": "2026-11-20/2026-11-21"}))
	e.do(request{method: "GET", path: "/api/v2/usage/query/x/results"})

	res := e.do(request{method: "GET", path: "/metrics"})
	if res.status != 200 {
		t.Fatalf("metrics: status %d", res.status)
	}
	text := string(res.body)
	for _, want := range []string{
		`apiusage_http_requests_total{code="200",route="GET /healthz"} 1`,
		`apiusage_http_requests_total{code="401",route="GET /api/v2/usage/query/{executionId}/results"} 1`,
		`apiusage_http_requests_total{code="202",route="POST /api/v2/usage/events"} 1`,
		`apiusage_events_ingested_total 2`,
		`apiusage_executions_finished_total{state="Complete"} 1`,
		`apiusage_executions_running 0`,
		`apiusage_query_duration_seconds_count{kind="query"} 1`,
		`apiusage_http_request_duration_seconds_bucket{route="POST /oauth/token"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

// TestRequestLog checks that every request is logged once with its
// contextId, route, status and caller.
func TestRequestLog(t *testing.T) {
	e := newEnv(t)
	a := e.newTenant("Acme")
	res := e.do(request{method: "GET", path: "/api/v2/oauth/clients/" + a.adminID, token: a.admin})
	id := res.header.Get("ININ-Correlation-Id")
	var found int
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "request" || rec["contextId"] != id {
			continue
		}
		found++
		if rec["route"] != "GET /api/v2/oauth/clients/{clientId}" || rec["status"] != float64(200) || rec["clientId"] != a.adminID {
			t.Fatalf("log line %v, want route, status 200 and the caller", rec)
		}
	}
	if found != 1 {
		t.Fatalf("%d request log lines with contextId %s, want 1", found, id)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  server.Config
		ok   bool
	}{
		{"zero is the defaults", server.Config{}, true},
		{"the defaults", server.DefaultConfig(), true},
		{"negative workers", server.Config{Workers: -1}, false},
		{"a sub-second token", server.Config{TokenTTL: 1}, false},
		{"a bcrypt cost too low", server.Config{HashCost: 2}, false},
		{"a bcrypt cost too high", server.Config{HashCost: 32}, false},
		{"a per-org cap over the queue", server.Config{MaxRunningPerOrg: 10, MaxQueued: 5}, false},
		{"negative body limit", server.Config{MaxBodyBytes: -5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	dir := openDirectory(t)
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	if _, err := server.New(server.Config{}, nil, nil, dir, nil, key, nil); err == nil {
		t.Fatal("New without a store was accepted")
	}
	store, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	execs := embedded.NewExecutions(nil)
	if _, err := server.New(server.Config{Workers: -1}, nil, store, dir, execs, key, nil); err == nil {
		t.Fatal("New with a bad config was accepted")
	}
	if _, err := server.New(server.Config{}, nil, store, dir, execs, key[:10], nil); err == nil {
		t.Fatal("New with a short key was accepted")
	}
	reg := prometheus.NewRegistry()
	srv, err := server.New(server.Config{HashCost: 4}, nil, store, dir, execs, key, reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer srv.Close(context.Background())
	if _, err := server.New(server.Config{HashCost: 4}, nil, store, dir, execs, key, reg); err == nil {
		t.Fatal("a second server registered the same metrics in the same registry")
	}
}
