package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/server"
)

// requests returns the requests the tenant's organization query counts
// from November 20 to 21.
func requests(t *testing.T, e *env, tn tenant) float64 {
	t.Helper()
	uri := e.start(tn.admin, "/api/v2/usage/query", map[string]any{"interval": "2026-11-20/2026-11-21", "groupBy": []string{"OrganizationId"}})
	got := rows(t, e.wait(tn.admin, uri))
	if len(got) == 0 {
		return 0
	}
	return got[0]["requests"].(float64)
}

func TestIngest(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.MaxIngestBodyBytes = 64 << 10; c.MaxBatchEvents = 50 })
	a, b := e.newTenant("Acme"), e.newTenant("Bravo")
	ev := func(i int) apiusage.Event { return event(a.id, "c", "", "GET", "t", 20, i%24, 200) }
	batch := func(n int) []apiusage.Event {
		out := make([]apiusage.Event, n)
		for i := range out {
			out[i] = ev(i)
		}
		return out
	}
	post := func(tn tenant, body any, header map[string]string) response {
		return e.do(request{method: "POST", path: "/api/v2/usage/events", token: tn.admin, body: body, header: header})
	}
	total := 0.0
	accepted := func(t *testing.T, res response, n, dup int) {
		t.Helper()
		if res.status != http.StatusAccepted {
			t.Fatalf("status %d (%s), want 202", res.status, res.body)
		}
		want := fmt.Sprintf(`{"accepted":%d,"duplicates":%d}`+"\n", n, dup)
		if string(res.body) != want {
			t.Fatalf("body %s, want %s", res.body, want)
		}
	}
	stored := func(t *testing.T, want float64) {
		t.Helper()
		if got := requests(t, e, a); got != want {
			t.Fatalf("the organization counts %v requests, want %v", got, want)
		}
	}

	t.Run("a JSON array", func(t *testing.T) {
		accepted(t, post(a, batch(3), nil), 3, 0)
		total += 3
		stored(t, total)
	})
	t.Run("NDJSON", func(t *testing.T) {
		var buf bytes.Buffer
		for _, x := range batch(4) {
			json.NewEncoder(&buf).Encode(x)
		}
		accepted(t, post(a, buf.String(), map[string]string{"Content-Type": "application/x-ndjson"}), 4, 0)
		total += 4
		stored(t, total)
	})
	t.Run("a lone object", func(t *testing.T) {
		accepted(t, post(a, ev(1), nil), 1, 0)
		total++
		stored(t, total)
	})
	t.Run("an empty array", func(t *testing.T) {
		accepted(t, post(a, "[]", nil), 0, 0)
	})
	t.Run("one invalid event stores nothing and is named", func(t *testing.T) {
		events := batch(5)
		events[1].Status = 99
		events[3].ClientID = ""
		res := post(a, events, nil)
		body := checkError(t, res, http.StatusBadRequest, apiusage.CodeBadRequest)
		msg := body["message"].(string)
		for _, want := range []string{"event 1: status", "event 3: clientId"} {
			if !strings.Contains(msg, want) {
				t.Fatalf("message %q does not name %q", msg, want)
			}
		}
		if strings.Contains(msg, "event 0") || strings.Contains(msg, "event 2") {
			t.Fatalf("message %q names valid events", msg)
		}
		stored(t, total)
	})
	t.Run("many invalid events: the first ten are named", func(t *testing.T) {
		events := batch(30)
		for i := range events {
			events[i].TemplateURI = ""
		}
		body := checkError(t, post(a, events, nil), http.StatusBadRequest, apiusage.CodeBadRequest)
		msg := body["message"].(string)
		if !strings.Contains(msg, "event 9: templateUri") || strings.Contains(msg, "event 10:") || !strings.Contains(msg, "and 20 more") {
			t.Fatalf("message %q, want events 0-9 named and 20 more counted", msg)
		}
		stored(t, total)
	})
	t.Run("malformed JSON in an event names it", func(t *testing.T) {
		one, _ := json.Marshal(ev(0))
		body := checkError(t, post(a, "["+string(one)+`,{"status":"x"}]`, nil), http.StatusBadRequest, apiusage.CodeBadRequest)
		if !strings.Contains(body["message"].(string), "event 1") {
			t.Fatalf("message %q does not name event 1", body["message"])
		}
		checkError(t, post(a, "["+string(one)+"] []", nil), http.StatusBadRequest, apiusage.CodeBadRequest)
		checkError(t, post(a, "", nil), http.StatusBadRequest, apiusage.CodeBadRequest)
		stored(t, total)
	})
	t.Run("more events than a batch holds is a 413", func(t *testing.T) {
		checkError(t, post(a, batch(51), nil), http.StatusRequestEntityTooLarge, apiusage.CodeTooLarge)
		accepted(t, post(a, batch(50), nil), 50, 0)
		total += 50
		stored(t, total)
	})
	t.Run("a body over the limit is a 413", func(t *testing.T) {
		events := batch(40)
		for i := range events {
			events[i].ClientName = strings.Repeat("n", 500) // about 700 bytes an event
			events[i].UserID = strings.Repeat("u", 500)
			events[i].TemplateURI = strings.Repeat("t", 500)
			events[i].OrganizationID = a.id
		}
		raw, _ := json.Marshal(events)
		if len(raw) <= 64<<10 {
			t.Fatalf("the test body has %d bytes, want more than the limit", len(raw))
		}
		checkError(t, post(a, raw, nil), http.StatusRequestEntityTooLarge, apiusage.CodeTooLarge)
		stored(t, total)
	})
	t.Run("an Idempotency-Key replay answers the same and counts once", func(t *testing.T) {
		events := batch(6)
		events[0].ID, events[1].ID = "id-x", "id-x"
		key := map[string]string{"Idempotency-Key": "batch-1"}
		first := post(a, events, key)
		accepted(t, first, 6, 1)
		if got := first.header.Get("Idempotent-Replayed"); got != "" {
			t.Fatalf("first answer: Idempotent-Replayed %q, want none", got)
		}
		again := post(a, events, key)
		accepted(t, again, 6, 1)
		if got := again.header.Get("Idempotent-Replayed"); got != "true" {
			t.Fatalf("replayed answer: Idempotent-Replayed %q, want true", got)
		}
		if string(again.body) != string(first.body) {
			t.Fatalf("replayed body %s, want the first answer %s", again.body, first.body)
		}
		total += 5
		stored(t, total)
	})
	t.Run("keys are scoped by the caller", func(t *testing.T) {
		_, _, other := e.newClient(a, "second sender", apiusage.PermEventAdd)
		key := map[string]string{"Idempotency-Key": "batch-1"}
		res := e.do(request{method: "POST", path: "/api/v2/usage/events", token: other, body: batch(2), header: key})
		accepted(t, res, 2, 0)
		total += 2
		stored(t, total)
	})
	t.Run("an over-long Idempotency-Key is a 400", func(t *testing.T) {
		res := post(a, batch(1), map[string]string{"Idempotency-Key": strings.Repeat("k", 257)})
		checkError(t, res, http.StatusBadRequest, apiusage.CodeBadRequest)
	})
	t.Run("events of another organization need usage:event:add:any", func(t *testing.T) {
		events := batch(3)
		events[2].OrganizationID = b.id
		body := checkError(t, post(a, events, nil), http.StatusForbidden, apiusage.CodeMissingPerms)
		if p := body["messageParams"].(map[string]any)["permissions"]; p != apiusage.PermEventAddAny {
			t.Fatalf("messageParams %v, want %s", body["messageParams"], apiusage.PermEventAddAny)
		}
		stored(t, total)
		res := e.do(request{method: "POST", path: "/api/v2/usage/events", token: e.platformToken, body: events})
		accepted(t, res, 3, 0)
		total += 2
		stored(t, total)
		if got := requests(t, e, b); got != 1 {
			t.Fatalf("B counts %v requests, want 1", got)
		}
	})
}

// TestIngestTurns holds the store's appends, so that the batches that reach
// it keep their turns, and checks Config.MaxIngests: a batch past it is
// answered 429 at once when there is no wait, and waits, unread, for a turn
// when there is; every batch accepted is stored.
func TestIngestTurns(t *testing.T) {
	for _, tt := range []struct {
		name string
		wait time.Duration
	}{{"no wait", -1}, {"a wait", time.Minute}} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *server.Config) { c.MaxIngests = 2; c.IngestWait = tt.wait })
			a := e.newTenant("Acme")
			post := func() response {
				ev := event(a.id, "c", "", "GET", "t", 20, 10, 200)
				return e.do(request{method: "POST", path: "/api/v2/usage/events", token: a.admin, body: []apiusage.Event{ev}})
			}
			release := e.store.holdAppends()
			defer release()
			answers := make(chan response, 3)
			for range 2 {
				go func() { answers <- post() }()
			}
			for e.store.appends.Load() < 2 {
				time.Sleep(time.Millisecond)
			}
			if tt.wait < 0 {
				third := make(chan response, 1)
				go func() { third <- post() }()
				var res response
				select {
				case res = <-third:
				case <-time.After(10 * time.Second):
					t.Fatal("a batch past the bound was not answered: it reached the held store")
				}
				checkError(t, res, http.StatusTooManyRequests, apiusage.CodeTooManyRequests)
				if got := res.header.Get("Retry-After"); got != "1" {
					t.Errorf("Retry-After %q, want 1", got)
				}
			} else {
				go func() { answers <- post() }()
				// Without the bound it would reach the store at once.
				time.Sleep(200 * time.Millisecond)
				if n := e.store.appends.Load(); n != 2 {
					t.Fatalf("%d appends began while two batches held both turns, want 2", n)
				}
			}
			release()
			want := 2
			if tt.wait >= 0 {
				want = 3
			}
			for range want {
				if res := <-answers; res.status != http.StatusAccepted {
					t.Fatalf("status %d (%s), want 202", res.status, res.body)
				}
			}
			if res := post(); res.status != http.StatusAccepted {
				t.Fatalf("after the turns were given back: status %d (%s), want 202", res.status, res.body)
			}
			if got := requests(t, e, a); got != float64(want+1) {
				t.Fatalf("the organization counts %v requests, want %d", got, want+1)
			}
		})
	}
}

// TestIngestReadTimeout sends a batch's body slowly: past
// Config.IngestReadTimeout it is answered 400 and gives its turn back, so
// that the next batch, with no turn to wait for, is stored.
func TestIngestReadTimeout(t *testing.T) {
	e := newEnv(t, func(c *server.Config) {
		c.MaxIngests, c.IngestWait, c.IngestReadTimeout = 1, -1, 300*time.Millisecond
	})
	a := e.newTenant("Acme")
	body, w := io.Pipe()
	defer w.Close()
	slow := make(chan response, 1)
	go func() {
		slow <- e.do(request{method: "POST", path: "/api/v2/usage/events", token: a.admin, body: body})
	}()
	if _, err := io.WriteString(w, `[{"timestamp":"2026-11-20T10:00:00Z",`); err != nil {
		t.Fatal(err)
	}
	var res response
	select {
	case res = <-slow:
	case <-time.After(10 * time.Second):
		t.Fatal("a body that stopped arriving was not answered")
	}
	got := checkError(t, res, http.StatusBadRequest, apiusage.CodeBadRequest)
	if msg, _ := got["message"].(string); !strings.Contains(msg, "did not arrive in the time") {
		t.Errorf("message %q, want it to say the body did not arrive in time", msg)
	}
	ev := event(a.id, "c", "", "GET", "t", 20, 10, 200)
	if res := e.do(request{method: "POST", path: "/api/v2/usage/events", token: a.admin, body: []apiusage.Event{ev}}); res.status != http.StatusAccepted {
		t.Fatalf("the next batch: status %d (%s), want 202", res.status, res.body)
	}
	if got := requests(t, e, a); got != 1 {
		t.Fatalf("the organization counts %v requests, want 1", got)
	}
}

// TestIngestNoReadTimeout: with a negative Config.IngestReadTimeout a body
// may take its time, however short the wait for a turn.
func TestIngestNoReadTimeout(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.IngestWait, c.IngestReadTimeout = 50*time.Millisecond, -1 })
	a := e.newTenant("Acme")
	body, w := io.Pipe()
	slow := make(chan response, 1)
	go func() {
		slow <- e.do(request{method: "POST", path: "/api/v2/usage/events", token: a.admin, body: body})
	}()
	raw, err := json.Marshal([]apiusage.Event{event(a.id, "c", "", "GET", "t", 20, 10, 200)})
	if err != nil {
		t.Fatal(err)
	}
	half := len(raw) / 2
	if _, err := w.Write(raw[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // six times the wait
	if _, err := w.Write(raw[half:]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if res := <-slow; res.status != http.StatusAccepted {
		t.Fatalf("status %d (%s), want 202", res.status, res.body)
	}
}
