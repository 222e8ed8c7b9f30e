package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// TestE2EDurability runs the real binary as a child process, stops it in the
// middle of concurrent ingestion, with kill -9 and with SIGTERM, restarts it
// on the same data directory and checks that every acknowledged batch is
// counted exactly once, that an unacknowledged one is counted wholly or not
// at all, and that re-sending batches with their Idempotency-Keys counts
// each exactly once.
func TestE2EDurability(t *testing.T) {
	t.Parallel()
	bin := e2eBuildBinary(t)
	t.Run("kill -9", func(t *testing.T) {
		t.Parallel()
		testStopDuringIngestion(t, bin, syscall.SIGKILL)
	})
	t.Run("SIGTERM", func(t *testing.T) {
		t.Parallel()
		testStopDuringIngestion(t, bin, syscall.SIGTERM)
	})
}

// Batch states of testStopDuringIngestion.
const (
	batchUnsent = iota
	batchAcked
	batchFailed
)

func testStopDuringIngestion(t *testing.T, bin string, sig syscall.Signal) {
	const (
		batches   = 400
		batchSize = 20
		workers   = 6
		// The signal goes once this many batches were acknowledged.
		ackedBeforeSignal = 60
	)
	data := t.TempDir()
	p := e2eStartProcess(t, bin, data, nil)
	orgID, admin := p.createOrganization(t, "Acme")
	token := p.token(t, admin.ID, admin.Secret)

	// Batch i is batchSize requests of the user b-i, so that a query by user
	// counts each batch on its own.
	bodies := make([][]byte, batches)
	for i := range bodies {
		events := make([]apiusage.Event, batchSize)
		for j := range events {
			events[j] = apiusage.Event{
				Time:           time.Date(2025, 7, 1+i%28, j, i%60, 0, 0, time.UTC),
				OrganizationID: orgID, ClientID: admin.ID, UserID: batchUser(i),
				TemplateURI: "api/v2/users/{userId}", Method: []string{"GET", "POST", "DELETE"}[j%3], Status: []int{200, 302, 404, 429, 503}[j%5],
			}
		}
		bodies[i] = e2eJSON(t, events)
	}
	send := func(s *testServer, i int) (e2eResponse, error) {
		return s.e2eTry(e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/events", Token: token, Body: bodies[i],
			Header: map[string]string{"Idempotency-Key": fmt.Sprintf("batch-%d", i)}})
	}

	state := make([]int, batches)
	first := make([][]byte, batches) // the body of the acknowledgement
	var acked atomic.Int64
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	for range workers {
		wg.Go(func() {
			for i := range next {
				resp, err := send(p.testServer, i)
				mu.Lock()
				switch {
				case err == nil && resp.Status == http.StatusAccepted:
					state[i], first[i] = batchAcked, resp.Body
					acked.Add(1)
				case err == nil && resp.Status < 500:
					problems = append(problems, fmt.Sprintf("batch %d: %s", i, resp))
					state[i] = batchFailed
				default:
					// A dropped connection, or the server shutting down:
					// not acknowledged.
					state[i] = batchFailed
				}
				mu.Unlock()
			}
		})
	}
	signalled := false
feed:
	for i := range batches {
		if !signalled && acked.Load() >= ackedBeforeSignal {
			p.signal(t, sig)
			signalled = true
		}
		// After the signal, keep sending until the process is gone, so that
		// some batches are in flight or refused while it stops.
		if signalled {
			select {
			case <-p.exited:
				break feed
			default:
			}
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if !signalled {
		t.Fatalf("all %d batches were sent before %d were acknowledged", batches, ackedBeforeSignal)
	}
	for _, pr := range problems {
		t.Error(pr)
	}
	exit := p.waitExit(t)
	if sig == syscall.SIGTERM && exit != nil {
		t.Errorf("apiusage serve after SIGTERM exited with %v, want 0\nstderr:\n%s", exit, p.stderr.String())
	}
	count := func(st int) int {
		n := 0
		for _, s := range state {
			if s == st {
				n++
			}
		}
		return n
	}
	t.Logf("%s: %d batches acknowledged, %d failed, %d never sent", sig, count(batchAcked), count(batchFailed), count(batchUnsent))

	// Restart on the same data directory. The token issued before still
	// works: the signing key is in the data directory too.
	p2 := e2eStartProcess(t, bin, data, nil)
	byUser := func() map[string]int {
		t.Helper()
		out := map[string]int{}
		for _, r := range p2.query(t, token, "/api/v2/usage/query", map[string]any{"interval": "2025/2026",
			"groupBy": []string{"UserId"}, "metrics": []string{"Requests"}}) {
			out[r["userId"].(string)] = int(r["requests"].(float64))
		}
		return out
	}
	got := byUser()
	stored := make([]bool, batches)
	for i, st := range state {
		n := got[batchUser(i)]
		stored[i] = n == batchSize
		switch {
		case st == batchAcked && n != batchSize:
			t.Errorf("acknowledged batch %d counts %d requests after the restart, want %d", i, n, batchSize)
		case st == batchFailed && n != 0 && n != batchSize:
			t.Errorf("unacknowledged batch %d counts %d requests after the restart, want 0 or %d (all or nothing)", i, n, batchSize)
		case st == batchUnsent && n != 0:
			t.Errorf("batch %d was never sent and counts %d requests", i, n)
		}
		delete(got, batchUser(i))
	}
	if len(got) != 0 {
		t.Errorf("requests of users no batch had: %v", got)
	}

	// Send every batch that was not acknowledged, with its key: then each
	// batch counts exactly once, whether its first attempt was stored or not.
	for i, st := range state {
		if st == batchAcked {
			continue
		}
		resp, err := send(p2.testServer, i)
		if err != nil || resp.Status != http.StatusAccepted {
			t.Fatalf("re-send batch %d: %v %v", i, resp, err)
		}
		// The server says a re-sent batch was a replay exactly when its
		// first attempt had been stored.
		if replayed := resp.Header.Get("Idempotent-Replayed") == "true"; replayed != stored[i] {
			t.Errorf("re-send of unacknowledged batch %d: Idempotent-Replayed %v, but its first attempt was stored: %v", i, replayed, stored[i])
		}
		first[i] = resp.Body
	}
	p2.e2eWaitRequests(t, token, "/api/v2/usage/query", batches*batchSize)
	got = byUser()
	for i := range batches {
		if n := got[batchUser(i)]; n != batchSize {
			t.Errorf("after re-sending: batch %d counts %d requests, want %d", i, n, batchSize)
		}
	}

	// Replays with the same keys answer as the first time and count nothing.
	for _, i := range []int{0, firstWith(state, batchAcked), firstWith(state, batchFailed), batches - 1} {
		if i < 0 {
			continue
		}
		resp, err := send(p2.testServer, i)
		if err != nil || resp.Status != http.StatusAccepted {
			t.Fatalf("replay batch %d: %v %v", i, resp, err)
		}
		if resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay of batch %d: no Idempotent-Replayed: true header", i)
		}
		var a, b map[string]any
		if json.Unmarshal(resp.Body, &a) != nil || json.Unmarshal(first[i], &b) != nil || !reflect.DeepEqual(a, b) {
			t.Errorf("replay of batch %d answered %s, want the first answer %s", i, resp.Body, first[i])
		}
		if a["accepted"] != float64(batchSize) {
			t.Errorf("replay of batch %d answered %s, want accepted %d", i, resp.Body, batchSize)
		}
	}
	if n := e2eTotalRequests(p2.query(t, token, "/api/v2/usage/query", map[string]any{"interval": "2025/2026", "metrics": []string{"Requests"}})); n != batches*batchSize {
		t.Errorf("after the replays: %d requests, want %d", n, batches*batchSize)
	}

	// A graceful stop of the restarted server, too.
	p2.signal(t, syscall.SIGTERM)
	if err := p2.waitExit(t); err != nil {
		t.Errorf("apiusage serve after SIGTERM exited with %v, want 0\nstderr:\n%s", err, p2.stderr.String())
	}
}

func batchUser(i int) string { return fmt.Sprintf("b-%03d", i) }

// firstWith returns the first batch in the state, or -1.
func firstWith(state []int, st int) int {
	for i, s := range state {
		if s == st {
			return i
		}
	}
	return -1
}
