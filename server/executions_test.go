package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/server"
)

func TestExecutionLifecycle(t *testing.T) {
	// A poll of a running execution waits for it a while: not long here,
	// where executions are held until the test lets them go.
	e := newEnv(t, func(c *server.Config) { c.PollWait = 20 * time.Millisecond })
	a := e.newTenant("Acme")
	e.ingest(a.admin, []apiusage.Event{event(a.id, "c", "", "GET", "t", 20, 1, 200)})
	q := map[string]any{"interval": "2026-11-20/2026-11-21"}

	t.Run("Running, then Complete", func(t *testing.T) {
		release := e.store.hold()
		defer release()
		uri := e.start(a.admin, "/api/v2/usage/query", q)
		res := e.do(request{method: "GET", path: uri, token: a.admin})
		if res.status != 200 || string(res.body) != `{"queryStatus":"Running"}`+"\n" {
			t.Fatalf("while running: %d %s, want 200 {\"queryStatus\":\"Running\"}", res.status, res.body)
		}
		release()
		if got := rows(t, e.wait(a.admin, uri)); len(got) != 1 || got[0]["requests"] != float64(1) {
			t.Fatalf("rows %v, want one row of one request", got)
		}
	})
	t.Run("every poll of a complete query gets the same bytes, with their length", func(t *testing.T) {
		uri := e.start(a.admin, "/api/v2/usage/query", map[string]any{
			"interval": "2026-11-20/2026-11-21", "granularity": "Day", "metrics": []string{"Requests", "Status200"}})
		e.wait(a.admin, uri)
		first := e.do(request{method: "GET", path: uri, token: a.admin})
		again := e.do(request{method: "GET", path: uri, token: a.admin})
		if first.status != 200 || again.status != 200 || !bytes.Equal(first.body, again.body) {
			t.Fatalf("polls: %d %s, then %d %s; want 200 and the same body twice", first.status, first.body, again.status, again.body)
		}
		if got, want := first.header.Get("Content-Length"), strconv.Itoa(len(first.body)); got != want {
			t.Fatalf("Content-Length %q, want %q", got, want)
		}
		if got := first.header.Get("Content-Type"); got != "application/json; charset=utf-8" {
			t.Fatalf("Content-Type %q, want application/json; charset=utf-8", got)
		}
		// Grouped by client only (the default): the other dimensions empty.
		want := `{"results":[{"clientId":"c","clientName":"","organizationId":"","userId":"","templateUri":"","httpMethod":"",` +
			`"status200":1,"requests":1,"date":"2026-11-20T00:00:00Z"}],"queryStatus":"Complete"}` + "\n"
		if string(first.body) != want {
			t.Fatalf("body\n%s\nwant\n%s", first.body, want)
		}
	})
	t.Run("a store error fails the execution", func(t *testing.T) {
		e.store.fail.Store(true)
		defer e.store.fail.Store(false)
		for _, path := range []string{"/api/v2/usage/query", "/api/v2/usage/simplesearch"} {
			uri := e.start(a.admin, path, q)
			body := e.wait(a.admin, uri)
			if body["queryStatus"] != "Failed" {
				t.Fatalf("%s: %v, want Failed", path, body)
			}
			if res, ok := body["results"].([]any); !ok || len(res) != 0 {
				t.Fatalf("%s: results %v, want an empty array", path, body["results"])
			}
		}
		if !strings.Contains(e.logs.String(), "injected store fault") {
			t.Fatal("the store error is not in the log")
		}
	})
	t.Run("results expire after ResultTTL", func(t *testing.T) {
		uri := e.start(a.admin, "/api/v2/usage/query", q)
		e.wait(a.admin, uri)
		e.clock.Advance(59 * time.Minute)
		fresh := e.login(a.adminID, a.adminSecret)
		e.call(http.StatusOK, "GET", uri, fresh, nil)
		e.clock.Advance(2 * time.Minute)
		checkError(t, e.do(request{method: "GET", path: uri, token: fresh}), 404, apiusage.CodeNotFound)
	})
}

func TestRunningCapPerOrganization(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.MaxRunningPerOrg = 2 })
	a, b := e.newTenant("Acme"), e.newTenant("Bravo")
	q := map[string]any{"interval": "2026-11-20/2026-11-21"}
	release := e.store.hold()
	defer release()
	first := e.start(a.admin, "/api/v2/usage/query", q)
	second := e.start(a.admin, "/api/v2/usage/simplesearch", q)
	res := e.do(request{method: "GET", path: "/api/v2/oauth/clients/" + a.adminID + "/usage/summary", token: a.admin})
	checkError(t, res, http.StatusTooManyRequests, apiusage.CodeTooManyRequests)
	if ra := res.header.Get("Retry-After"); ra == "" {
		t.Fatal("a 429 without Retry-After")
	}
	// Another organization is not held back by A's queries.
	other := e.start(b.admin, "/api/v2/usage/query", q)
	release()
	for _, uri := range []string{first, second} {
		e.wait(a.admin, uri)
	}
	e.wait(b.admin, other)
	e.start(a.admin, "/api/v2/usage/query", q)
}

func TestClose(t *testing.T) {
	e := newEnv(t)
	a := e.newTenant("Acme")
	q := map[string]any{"interval": "2026-11-20/2026-11-21"}
	release := e.store.hold()
	uri := e.start(a.admin, "/api/v2/usage/query", q)
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		closed <- e.srv.Close(ctx)
	}()
	// Close refuses new work at once, while the held query still runs.
	for i := 0; ; i++ {
		res := e.do(request{method: "POST", path: "/api/v2/usage/query", token: a.admin, body: q})
		if res.status == http.StatusServiceUnavailable {
			checkError(t, res, http.StatusServiceUnavailable, apiusage.CodeUnavailable)
			break
		}
		if res.status != http.StatusAccepted || i > 1000 {
			t.Fatalf("during Close: status %d (%s), want 202 until Close starts, then 503", res.status, res.body)
		}
		time.Sleep(time.Millisecond)
	}
	checkError(t, e.do(request{method: "GET", path: "/healthz"}), http.StatusServiceUnavailable, apiusage.CodeUnavailable)
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a query was still held", err)
	default:
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if body := e.call(http.StatusOK, "GET", uri, a.admin, nil); body["queryStatus"] != "Complete" {
		t.Fatalf("the query running at Close: %v, want Complete", body)
	}
}

// settle polls a results URI until the execution is no longer Running, and
// returns the last answer, whatever its status.
func (e *env) settle(token, uri string) response {
	e.t.Helper()
	for range 5000 {
		res := e.do(request{method: "GET", path: uri, token: token})
		if res.status != http.StatusOK || !bytes.Contains(res.body, []byte(`"queryStatus":"Running"`)) {
			return res
		}
		time.Sleep(2 * time.Millisecond)
	}
	e.t.Fatalf("%s: still Running after 5000 polls", uri)
	return response{}
}

func TestEvictedResults(t *testing.T) {
	// A budget no result fits in: every result is dropped as it completes.
	e := newEnv(t, func(c *server.Config) { c.ResultMemory = 1 })
	a, b := e.newTenant("Acme"), e.newTenant("Bravo")
	e.ingest(a.admin, []apiusage.Event{event(a.id, a.adminID, "", "GET", "t", 20, 1, 200)})
	q := map[string]any{"interval": "2026-11-20/2026-11-21"}
	for _, tt := range []struct{ name, path string }{
		{"organization query", "/api/v2/usage/query"},
		{"simple search", "/api/v2/usage/simplesearch"},
		{"client query", "/api/v2/oauth/clients/" + a.adminID + "/usage/query"},
	} {
		uri := e.start(a.admin, tt.path, q)
		t.Run(tt.name, func(t *testing.T) {
			// The owner learns why, and what to do.
			body := checkError(t, e.settle(a.admin, uri), http.StatusNotFound, apiusage.CodeNotFound)
			if msg, _ := body["message"].(string); !strings.Contains(msg, "no longer kept") || !strings.Contains(msg, "Start the query again") {
				t.Fatalf("message %q, want one that says the results are no longer kept and to start the query again", msg)
			}
			// Anyone else gets the plain 404 of an unknown id: the message
			// does not tell them the id exists.
			other := checkError(t, e.do(request{method: "GET", path: uri, token: b.admin}), http.StatusNotFound, apiusage.CodeNotFound)
			if other["message"] == body["message"] {
				t.Fatalf("another organization got the owner's message %q", other["message"])
			}
		})
	}
	res := e.do(request{method: "GET", path: "/metrics"})
	if !strings.Contains(string(res.body), "apiusage_results_evicted_total 3") {
		t.Fatalf("metrics lack apiusage_results_evicted_total 3:\n%s", res.body)
	}
}

func TestResultMemoryIsSharedByOrganization(t *testing.T) {
	// Room for a few results of one row: Acme's flood of queries drops its
	// own oldest results, and never Bravo's one result.
	e := newEnv(t, func(c *server.Config) { c.ResultMemory = 4 << 10 })
	a, b := e.newTenant("Acme"), e.newTenant("Bravo")
	e.ingest(a.admin, []apiusage.Event{event(a.id, a.adminID, "", "GET", "t", 20, 1, 200)})
	e.ingest(b.admin, []apiusage.Event{event(b.id, b.adminID, "", "GET", "t", 20, 1, 200)})
	q := map[string]any{"interval": "2026-11-20/2026-11-21"}
	bravo := e.start(b.admin, "/api/v2/usage/query", q)
	want := e.settle(b.admin, bravo)
	if want.status != http.StatusOK {
		t.Fatalf("Bravo's result: %d %s", want.status, want.body)
	}
	var acme []string
	for range 30 {
		uri := e.start(a.admin, "/api/v2/usage/query", q)
		e.settle(a.admin, uri)
		acme = append(acme, uri)
	}
	if got := e.do(request{method: "GET", path: bravo, token: b.admin}); got.status != http.StatusOK || !bytes.Equal(got.body, want.body) {
		t.Fatalf("Bravo's result after Acme's queries: %d %s, want 200 %s", got.status, got.body, want.body)
	}
	checkError(t, e.do(request{method: "GET", path: acme[0], token: a.admin}), http.StatusNotFound, apiusage.CodeNotFound)
	if got := e.do(request{method: "GET", path: acme[len(acme)-1], token: a.admin}); got.status != http.StatusOK {
		t.Fatalf("Acme's newest result: %d %s, want 200", got.status, got.body)
	}
	// Executions still running are not results: nothing of them is
	// dropped, and they complete.
	release := e.store.hold()
	held := e.start(a.admin, "/api/v2/usage/query", q)
	if res := e.do(request{method: "GET", path: held, token: a.admin}); res.status != http.StatusOK {
		t.Fatalf("a running execution: %d %s, want 200 Running", res.status, res.body)
	}
	release()
	if got := rows(t, e.wait(a.admin, held)); len(got) != 1 {
		t.Fatalf("rows %v, want one", got)
	}
}

// TestPollWaitsForTheResult checks that a poll of an execution still
// running waits for it (Config.PollWait) and answers with its result once it
// is done, and that with PollWait negative it answers Running at once.
func TestPollWaitsForTheResult(t *testing.T) {
	for _, tt := range []struct {
		name string
		wait time.Duration
		want string
	}{
		{"waiting", time.Minute, "Complete"},
		{"not waiting", -1, "Running"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *server.Config) { c.PollWait = tt.wait })
			a := e.newTenant("Acme")
			e.ingest(a.admin, []apiusage.Event{event(a.id, "c", "", "GET", "t", 20, 1, 200)})
			release := e.store.hold()
			defer release()
			uri := e.start(a.admin, "/api/v2/usage/query", map[string]any{"interval": "2026-11-20/2026-11-21"})
			var res response
			if tt.wait < 0 {
				res = e.do(request{method: "GET", path: uri, token: a.admin})
			} else {
				polled := make(chan response, 1)
				go func() { polled <- e.do(request{method: "GET", path: uri, token: a.admin}) }()
				// The poll is under way (or about to be) when the
				// execution finishes: waiting, it answers with the
				// result.
				time.Sleep(50 * time.Millisecond)
				release()
				res = <-polled
			}
			var body struct {
				QueryStatus string `json:"queryStatus"`
			}
			if err := json.Unmarshal(res.body, &body); res.status != http.StatusOK || err != nil || body.QueryStatus != tt.want {
				t.Fatalf("poll: %d %s, want 200 and %s", res.status, res.body, tt.want)
			}
		})
	}
}
