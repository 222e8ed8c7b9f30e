package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/client"
	"github.com/apiusage/apiusage/internal/testserver"
	"github.com/apiusage/apiusage/storetest"
)

// These tests run the SDK against a real server: the HTTP server on the
// embedded store, started in the test. Where a behaviour needs a server in a
// particular state (a slow execution, a failed one, a full organization),
// the server is configured or its store wrapped to get there; only what no
// apiusage server does by itself (a gateway answering 503) sits in front of
// it as a proxy.

// newClient returns an SDK client of the server with the credentials.
func newClient(t *testing.T, srv *testserver.Server, id, secret string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(srv.URL, append([]client.Option{client.WithClientCredentials(id, secret)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// orgEvents returns n reproducible random events of org, with the
// generator's organizations folded into it.
func orgEvents(seed uint64, org string, n int) []apiusage.Event {
	g := storetest.NewGen(seed)
	events := g.Events(n)
	for i := range events {
		events[i].OrganizationID = org
	}
	return events
}

// ingest sends events in batches through the SDK.
func ingest(t *testing.T, c *client.Client, events []apiusage.Event, batch int) {
	t.Helper()
	for i := 0; i < len(events); i += batch {
		b := events[i:min(i+batch, len(events))]
		rc, err := c.Append(context.Background(), apiusage.Batch{Events: b})
		if err != nil {
			t.Fatalf("append events %d to %d: %v", i, i+len(b), err)
		}
		if rc.Accepted != len(b) {
			t.Fatalf("append %d events: accepted %d", len(b), rc.Accepted)
		}
	}
}

// domainRows converts result rows for comparison with the oracle.
func domainRows(rows []client.UsageRow) []apiusage.Row {
	out := make([]apiusage.Row, len(rows))
	for i, r := range rows {
		out[i] = r.Row()
	}
	return out
}

// oracle answers q over events as the contract says.
func oracle(t *testing.T, events []apiusage.Event, org string, q apiusage.OrgQuery) []apiusage.Row {
	t.Helper()
	q, iv, err := q.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	rows := storetest.Count(dedup(events), apiusage.Query{Interval: iv, Granularity: q.Granularity, GroupBy: q.GroupBy, OrganizationID: org})
	// The API returns only the metrics asked for.
	for i := range rows {
		c := rows[i].Counts
		rows[i].Counts = apiusage.Counts{}
		for _, m := range q.Metrics {
			switch m {
			case apiusage.MetricStatus200:
				rows[i].Counts.Status200 = c.Status200
			case apiusage.MetricStatus300:
				rows[i].Counts.Status300 = c.Status300
			case apiusage.MetricStatus400:
				rows[i].Counts.Status400 = c.Status400
			case apiusage.MetricStatus500:
				rows[i].Counts.Status500 = c.Status500
			case apiusage.MetricStatus429:
				rows[i].Counts.Status429 = c.Status429
			case apiusage.MetricRequests:
				rows[i].Counts.Requests = c.Requests
			}
		}
	}
	return rows
}

// dedup drops events whose id was seen before, as the server does.
func dedup(events []apiusage.Event) []apiusage.Event {
	seen := map[string]bool{}
	var out []apiusage.Event
	for _, e := range events {
		if e.ID != "" {
			if seen[e.ID] {
				continue
			}
			seen[e.ID] = true
		}
		out = append(out, e.Normalize())
	}
	return out
}

func TestOrganizationQuery(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	org := srv.CreateOrg(t, "Acme")
	c := newClient(t, srv, org.AdminID, org.AdminSecret)
	events := orgEvents(1, org.ID, 3000)
	ingest(t, c, events, 700)
	ctx := context.Background()

	queries := []apiusage.OrgQuery{
		{Interval: "2024-01-01/2024-04-01"},
		{Interval: "2020-01-01/2027-01-01", Granularity: apiusage.GranularityMonth, GroupBy: []apiusage.Dimension{apiusage.DimMethod, apiusage.DimUser}},
		{Interval: "2024-02-28T20:00:00Z/P2D", Granularity: apiusage.GranularityDay,
			GroupBy: []apiusage.Dimension{apiusage.DimClient, apiusage.DimTemplateURI}, Metrics: []apiusage.Metric{apiusage.MetricStatus429, apiusage.MetricRequests}},
	}
	for _, q := range queries {
		t.Run(q.Interval, func(t *testing.T) {
			x, err := c.PostUsageQuery(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if x.ExecutionID == "" || !strings.Contains(x.ResultsURI, x.ExecutionID) {
				t.Fatalf("PostUsageQuery = %+v, want an execution id and its results URI", x)
			}
			res, err := c.WaitForExecution(ctx, x)
			if err != nil {
				t.Fatal(err)
			}
			if res.QueryStatus != apiusage.StatusComplete {
				t.Fatalf("status %s, want Complete", res.QueryStatus)
			}
			if diff := storetest.DiffRows(domainRows(res.Results), oracle(t, events, org.ID, q)); diff != "" {
				t.Error(diff)
			}
			// The results stay readable by id.
			again, err := c.GetUsageQueryExecutionIdResults(ctx, x.ExecutionID)
			if err != nil {
				t.Fatal(err)
			}
			if len(again.Results) != len(res.Results) {
				t.Errorf("read again: %d rows, want %d", len(again.Results), len(res.Results))
			}
		})
	}

	// QueryOrganization is the same in one call.
	res, err := c.QueryOrganization(ctx, queries[1])
	if err != nil {
		t.Fatal(err)
	}
	if diff := storetest.DiffRows(domainRows(res.Results), oracle(t, events, org.ID, queries[1])); diff != "" {
		t.Errorf("QueryOrganization: %s", diff)
	}
}

func TestClientQueryAndSummary(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	org := srv.CreateOrg(t, "Acme")
	c := newClient(t, srv, org.AdminID, org.AdminSecret)
	ctx := context.Background()
	// A client query names a client registered in the organization: the
	// generator's client-01 becomes one.
	reg, err := c.CreateClient(ctx, client.ClientCreate{Name: "Reports", Permissions: []string{apiusage.PermUsageClient}})
	if err != nil {
		t.Fatal(err)
	}
	cid := reg.ID
	events := orgEvents(2, org.ID, 1500)
	for i := range events {
		if events[i].ClientID == "client-01" {
			events[i].ClientID = cid
		}
	}
	// Today's requests, for the summary, which ends now.
	now := time.Now().UTC()
	for i, status := range []int{200, 301, 404, 429, 503} {
		events = append(events, apiusage.Event{
			Time: now.Add(-time.Duration(i) * time.Minute), OrganizationID: org.ID, ClientID: cid,
			TemplateURI: "api/v2/users", Method: "GET", Status: status,
		})
	}
	ingest(t, c, events, 1000)

	q := apiusage.ClientQuery{Interval: "2020-01-01/2027-01-01", Granularity: apiusage.GranularityWeek,
		GroupBy: []apiusage.Dimension{apiusage.DimMethod}}
	x, err := c.PostOauthClientUsageQuery(ctx, cid, q)
	if err != nil {
		t.Fatal(err)
	}
	// Poll by hand, as a caller of the raw method would.
	var res *client.QueryResult
	for res == nil || res.QueryStatus == apiusage.StatusRunning {
		if res, err = c.GetOauthClientUsageQueryResult(ctx, x.ExecutionID, cid); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	nq, iv, _ := apiusage.OrgQuery(q).Normalize()
	want := storetest.Count(dedup(events), apiusage.Query{Interval: iv, Granularity: nq.Granularity, GroupBy: nq.GroupBy, ClientIDs: []string{cid}})
	if diff := storetest.DiffRows(domainRows(res.Results), want); diff != "" {
		t.Error(diff)
	}
	// The execution belongs to its client's path only.
	if _, err := c.GetOauthClientUsageQueryResult(ctx, x.ExecutionID, org.AdminID); !errors.Is(err, apiusage.ErrNotFound) {
		t.Errorf("results through another client's path: %v, want not found", err)
	}

	sum, err := c.ClientSummary(ctx, cid, 3)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, r := range sum.Results {
		total += r.Requests
		if r.Date.IsZero() {
			t.Errorf("summary row %+v has no date", r)
		}
	}
	if total < 5 {
		t.Errorf("summary counts %d requests, want at least today's 5", total)
	}
	if _, err := c.GetOauthClientUsageSummary(ctx, cid, 400); apiusage.ErrorCode(err) != apiusage.CodeBadRequest {
		t.Errorf("summary of 400 days: %v, want bad.request", err)
	}
}

func TestSearchRowsPages(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	org := srv.CreateOrg(t, "Acme")
	c := newClient(t, srv, org.AdminID, org.AdminSecret)
	ctx := context.Background()
	events := orgEvents(3, org.ID, 2000)
	ingest(t, c, events, 2000)

	s := apiusage.SimpleSearch{Interval: "2020-01-01/2027-01-01"}
	_, iv, _ := s.Normalize()
	want := storetest.Count(dedup(events), apiusage.Query{Interval: iv, Granularity: apiusage.GranularityDay,
		GroupBy: []apiusage.Dimension{apiusage.DimClient, apiusage.DimMethod, apiusage.DimTemplateURI}})
	const pageSize = 50
	if len(want) <= 3*pageSize {
		t.Fatalf("the data make %d rows, want more than 3 pages of %d", len(want), pageSize)
	}

	var got []client.UsageRow
	for row, err := range c.SearchRows(ctx, s, pageSize) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, row)
	}
	if len(got) != len(want) {
		t.Fatalf("SearchRows yielded %d rows, want %d", len(got), len(want))
	}
	// Rows compare as a set: the search orders clients by name, the oracle
	// by id.
	type key struct {
		date                 time.Time
		client, method, tmpl string
	}
	wantSet := map[key]apiusage.Counts{}
	for _, w := range want {
		c := w.Counts
		c.Requests = 0 // not a search column
		wantSet[key{w.Date, w.ClientID, w.Method, w.TemplateURI}] = c
	}
	for _, g := range got {
		k := key{g.Date, g.ClientID, g.HTTPMethod, g.TemplateURI}
		w, ok := wantSet[k]
		if !ok {
			t.Fatalf("row %+v is not in the oracle's answer, or came twice", g)
		}
		if gc := g.Row().Counts; gc != w {
			t.Errorf("row %+v: counts %+v, want %+v", k, gc, w)
		}
		delete(wantSet, k)
	}
	// Stopping early stops the reading.
	n := 0
	for _, err := range c.SearchRows(ctx, s, pageSize) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 7 {
			break
		}
	}

	// Page by page with the raw calls: the cursor chain visits every row once.
	x, err := c.PostUsageSimplesearch(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitForExecution(ctx, x); err != nil {
		t.Fatal(err)
	}
	pages, rows := 0, 0
	page := client.Page{PageSize: pageSize}
	for {
		res, err := c.GetUsageSimplesearchExecutionIdResults(ctx, x.ExecutionID, page)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		rows += len(res.Results)
		if res.Cursors == nil || res.Cursors.After == "" {
			break
		}
		page.After = res.Cursors.After
	}
	if wantPages := (len(want) + pageSize - 1) / pageSize; pages != wantPages || rows != len(want) {
		t.Errorf("paged through %d pages and %d rows, want %d and %d", pages, rows, wantPages, len(want))
	}
}

// gateStore holds every query until its gate opens: a real store whose
// executions take as long as a test wants.
type gateStore struct {
	apiusage.Store
	gate    chan struct{}
	started chan struct{}
	once    sync.Once
}

func newGateStore(s apiusage.Store) *gateStore {
	return &gateStore{Store: s, gate: make(chan struct{}), started: make(chan struct{}, 100)}
}

func (g *gateStore) Query(ctx context.Context, q apiusage.Query) ([]apiusage.Row, error) {
	g.started <- struct{}{}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Store.Query(ctx, q)
}

func (g *gateStore) open() { g.once.Do(func() { close(g.gate) }) }

func TestWaitForSlowExecution(t *testing.T) {
	var gs *gateStore
	srv := testserver.Start(t, testserver.Options{WrapStore: func(s apiusage.Store) apiusage.Store {
		gs = newGateStore(s)
		return gs
	}})
	t.Cleanup(gs.open)
	org := srv.CreateOrg(t, "Acme")
	c := newClient(t, srv, org.AdminID, org.AdminSecret)
	ctx := context.Background()
	events := orgEvents(4, org.ID, 500)
	ingest(t, c, events, 500)
	q := apiusage.OrgQuery{Interval: "2020-01-01/2027-01-01", GroupBy: []apiusage.Dimension{apiusage.DimTemplateURI}}

	x, err := c.PostUsageQuery(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	<-gs.started

	// A wait that runs out of time returns the context's error.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = c.WaitForExecution(short, x)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForExecution with a short deadline: %v, want context.DeadlineExceeded", err)
	}
	res, err := c.GetUsageQueryExecutionIdResults(ctx, x.ExecutionID)
	if err != nil {
		t.Fatal(err)
	}
	if res.QueryStatus != apiusage.StatusRunning || len(res.Results) != 0 {
		t.Fatalf("results of the held execution = %+v, want just Running", res)
	}

	done := make(chan error, 1)
	var got *client.QueryResult
	go func() {
		var err error
		got, err = c.WaitForExecution(ctx, x)
		done <- err
	}()
	// Let the waiter poll a few times against a Running execution.
	time.Sleep(400 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("WaitForExecution returned %v while the execution runs", err)
	default:
	}
	gs.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if diff := storetest.DiffRows(domainRows(got.Results), oracle(t, events, org.ID, q)); diff != "" {
		t.Error(diff)
	}
}

func TestFailedExecution(t *testing.T) {
	cfg := testserver.Options{}
	cfg.Config.MaxResultRows = 2
	srv := testserver.Start(t, cfg)
	org := srv.CreateOrg(t, "Acme")
	c := newClient(t, srv, org.AdminID, org.AdminSecret)
	ingest(t, c, orgEvents(5, org.ID, 300), 300)

	_, err := c.QueryOrganization(context.Background(), apiusage.OrgQuery{
		Interval: "2020-01-01/2027-01-01", GroupBy: []apiusage.Dimension{apiusage.DimTemplateURI, apiusage.DimMethod},
	})
	var failed *client.ExecutionFailedError
	if !errors.As(err, &failed) {
		t.Fatalf("QueryOrganization over the row limit: %v, want an *ExecutionFailedError", err)
	}
	if failed.ExecutionID == "" || failed.Result == nil || failed.Result.QueryStatus != apiusage.StatusFailed {
		t.Errorf("failed execution = %+v, want its id and its Failed result", failed)
	}
}

// recorder is an http.RoundTripper that passes every request on and
// remembers what went by.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []string // "METHOD host path status"
	// onResponse, when set, sees each response.
	onResponse func(*http.Request, *http.Response)
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	r.mu.Lock()
	r.seen = append(r.seen, fmt.Sprintf("%s %s %s %d", req.Method, req.URL.Host, req.URL.Path, status))
	r.mu.Unlock()
	if resp != nil && r.onResponse != nil {
		r.onResponse(req, resp)
	}
	return resp, err
}

func (r *recorder) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.seen {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

func TestTooManyRequestsRetryAfter(t *testing.T) {
	var gs *gateStore
	opts := testserver.Options{WrapStore: func(s apiusage.Store) apiusage.Store {
		gs = newGateStore(s)
		return gs
	}}
	opts.Config.MaxRunningPerOrg = 1
	opts.Config.MaxQueued = 4
	srv := testserver.Start(t, opts)
	t.Cleanup(gs.open)
	org := srv.CreateOrg(t, "Acme")
	var saw429 atomic.Bool
	rec := &recorder{next: http.DefaultTransport, onResponse: func(_ *http.Request, resp *http.Response) {
		if resp.StatusCode == http.StatusTooManyRequests {
			saw429.Store(true)
		}
	}}
	c := newClient(t, srv, org.AdminID, org.AdminSecret, client.WithHTTPClient(&http.Client{Transport: rec}))
	ctx := context.Background()
	q := apiusage.OrgQuery{Interval: "2024-01-01/2024-02-01"}

	first, err := c.PostUsageQuery(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	<-gs.started
	// The organization's one slot is taken: the raw POST is refused, once.
	_, err = c.PostUsageQuery(ctx, q)
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second PostUsageQuery: %v, want a 429 *client.Error", err)
	}
	if apiErr.RetryAfter <= 0 || apiErr.Body.Code != apiusage.CodeTooManyRequests || apiErr.CorrelationID == "" {
		t.Errorf("429 error = %+v, want Retry-After, code %s and a correlation id", apiErr, apiusage.CodeTooManyRequests)
	}
	if n := rec.count("/api/v2/usage/query "); n != 2 {
		t.Errorf("%d POSTs sent, want 2: a POST is never repeated behind the caller's back", n)
	}

	// QueryOrganization waits the 429 out and starts once the slot is free.
	done := make(chan error, 1)
	go func() {
		_, err := c.QueryOrganization(ctx, q)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for rec.count("/api/v2/usage/query 429") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if rec.count("/api/v2/usage/query 429") < 2 {
		t.Fatal("QueryOrganization was not refused while the slot was taken")
	}
	gs.open()
	if _, err := c.WaitForExecution(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("QueryOrganization after a 429: %v", err)
	}
}

// clock is a settable clock shared by a server and a client.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestTokenRefresh(t *testing.T) {
	serverClock := &clock{t: time.Now()}
	clientClock := &clock{t: time.Now()}
	opts := testserver.Options{}
	opts.Config.Now = serverClock.Now
	opts.Config.TokenTTL = time.Hour
	srv := testserver.Start(t, opts)
	org := srv.CreateOrg(t, "Acme")
	rec := &recorder{next: http.DefaultTransport}
	c := newClient(t, srv, org.AdminID, org.AdminSecret,
		client.WithHTTPClient(&http.Client{Transport: rec}), client.WithClock(clientClock.Now))
	ctx := context.Background()
	call := func(step string) {
		t.Helper()
		if _, err := c.GetOrganization(ctx, org.ID); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	tokens := func() int { return rec.count("/oauth/token 200") }

	call("first call")
	call("second call")
	if n := tokens(); n != 1 {
		t.Fatalf("%d tokens fetched for two calls, want 1: the token is cached", n)
	}
	// Well before expiry the token is still used.
	serverClock.advance(30 * time.Minute)
	clientClock.advance(30 * time.Minute)
	call("after 30 minutes")
	if n := tokens(); n != 1 {
		t.Fatalf("%d tokens after 30 minutes, want 1", n)
	}
	// Shortly before expiry the client fetches a new one by itself: the
	// server never sees the old token expired.
	serverClock.advance(29*time.Minute + 30*time.Second)
	clientClock.advance(29*time.Minute + 30*time.Second)
	call("half a minute before expiry")
	if n := tokens(); n != 2 {
		t.Fatalf("%d tokens half a minute before expiry, want 2", n)
	}
	if n := rec.count(" 401"); n != 0 {
		t.Errorf("%d calls refused, want none: the token was renewed before it expired", n)
	}
	// A token the server refuses although the client thinks it valid (the
	// clocks disagree) is replaced, and the call goes through.
	serverClock.advance(2 * time.Hour)
	call("after the server's clock jumped")
	if n := tokens(); n != 3 {
		t.Errorf("%d tokens after a refused one, want 3", n)
	}
	if n := rec.count("/api/v2/organizations/" + org.ID + " 401"); n != 1 {
		t.Errorf("%d refused calls, want exactly 1 before the new token", n)
	}

	// Rotating the secret revokes the token at once; the old secret cannot
	// get a new one, and the error says why.
	if _, err := c.RotateClientSecret(ctx, org.AdminID); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetOrganization(ctx, org.ID)
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("call after rotating the secret: %v, want a 401 *client.Error", err)
	}
}

func TestFixedToken(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	org := srv.CreateOrg(t, "Acme")
	c, err := client.New(srv.URL, client.WithAccessToken(org.AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetOrganization(context.Background(), org.ID)
	if err != nil || got.ID != org.ID || got.Name != "Acme" {
		t.Fatalf("GetOrganization = %+v, %v; want Acme", got, err)
	}
	bad, _ := client.New(srv.URL, client.WithAccessToken("not-a-token"))
	_, err = bad.GetOrganization(context.Background(), org.ID)
	if apiusage.ErrorCode(err) != apiusage.CodeBadCredentials {
		t.Errorf("a bad fixed token: %v, want %s", err, apiusage.CodeBadCredentials)
	}
	anon, _ := client.New(srv.URL)
	_, err = anon.GetOrganization(context.Background(), org.ID)
	if apiusage.ErrorCode(err) != apiusage.CodeAuthRequired {
		t.Errorf("no token: %v, want %s", err, apiusage.CodeAuthRequired)
	}
}

func TestLoginHostDerived(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	org := srv.CreateOrg(t, "Acme")
	u, _ := url.Parse(srv.URL)
	_, port, _ := net.SplitHostPort(u.Host)
	// api.usage.test and login.usage.test both reach the test server, as
	// api. and login. hosts of one deployment would reach its two services.
	dialer := &net.Dialer{}
	transport := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, u.Host)
	}}
	rec := &recorder{next: transport}
	c, err := client.New("http://api.usage.test:"+port, client.WithClientCredentials(org.AdminID, org.AdminSecret),
		client.WithHTTPClient(&http.Client{Transport: rec}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetOrganization(context.Background(), org.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POST login.usage.test:" + port + " /oauth/token 200",
		"GET api.usage.test:" + port + " /api/v2/organizations/" + org.ID + " 200",
	}
	if !slices.Equal(rec.seen, want) {
		t.Errorf("requests = %q, want %q", rec.seen, want)
	}
}

func TestOrganizationsAndClients(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	ctx := context.Background()
	platform := newClient(t, srv, srv.ClientID, srv.ClientSecret)

	created, err := platform.CreateOrganization(ctx, client.OrganizationCreate{Name: "Globex"})
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == "" || created.Name != "Globex" || created.AdminClient.Secret == "" ||
		!slices.Equal(created.AdminClient.Permissions, apiusage.OrganizationPermissions) {
		t.Fatalf("CreateOrganization = %+v, want Globex with an admin client holding every organization permission", created)
	}
	admin := newClient(t, srv, created.AdminClient.ID, created.AdminClient.Secret)
	org, err := admin.GetOrganization(ctx, created.ID)
	if err != nil || org.Name != "Globex" || org.DateCreated.IsZero() {
		t.Fatalf("GetOrganization = %+v, %v; want Globex with its creation date", org, err)
	}
	// Another organization's admin sees nothing of this one.
	other := srv.CreateOrg(t, "Initech")
	otherAdmin := newClient(t, srv, other.AdminID, other.AdminSecret)
	if _, err := otherAdmin.GetOrganization(ctx, created.ID); !errors.Is(err, apiusage.ErrNotFound) {
		t.Errorf("GetOrganization of another organization: %v, want not found", err)
	}

	var ids []string
	for i := range 5 {
		cc, err := admin.CreateClient(ctx, client.ClientCreate{
			Name: fmt.Sprintf("app-%d", i), Description: "reports",
			Permissions: []apiusage.Permission{apiusage.PermUsageOrganization},
		})
		if err != nil {
			t.Fatal(err)
		}
		if cc.Secret == "" || cc.OrganizationID != created.ID || cc.AuthorizedGrantType != "CLIENT-CREDENTIALS" {
			t.Fatalf("CreateClient = %+v, want a secret, the organization and the grant type", cc)
		}
		ids = append(ids, cc.ID)
	}
	page, err := admin.ListClients(ctx, client.ListOptions{PageSize: 2, PageNumber: 2})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 6 || len(page.Entities) != 2 || page.PageNumber != 2 {
		t.Errorf("ListClients page 2 of 2 = %+v, want 2 of 6 clients", page)
	}
	var all []string
	for cl, err := range admin.AllClients(ctx, 2) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, cl.ID)
	}
	if len(all) != 6 {
		t.Errorf("AllClients yielded %d clients, want 6", len(all))
	}
	for _, id := range ids {
		if !slices.Contains(all, id) {
			t.Errorf("AllClients lacks %s", id)
		}
	}

	got, err := admin.GetClient(ctx, ids[0])
	if err != nil || got.Name != "app-0" || got.Description != "reports" {
		t.Fatalf("GetClient = %+v, %v; want app-0", got, err)
	}
	if _, err := otherAdmin.GetClient(ctx, ids[0]); !errors.Is(err, apiusage.ErrNotFound) {
		t.Errorf("GetClient of another organization's client: %v, want not found", err)
	}
	up, err := admin.UpdateClient(ctx, ids[0], client.ClientUpdate{Name: "app-zero", Description: "renamed"})
	if err != nil || up.Name != "app-zero" || !slices.Equal(up.Permissions, []string{apiusage.PermUsageOrganization}) {
		t.Fatalf("UpdateClient without permissions = %+v, %v; want renamed with its permissions kept", up, err)
	}
	up, err = admin.UpdateClient(ctx, ids[0], client.ClientUpdate{Name: "app-zero", Permissions: []string{apiusage.PermUsageClient}})
	if err != nil || !slices.Equal(up.Permissions, []string{apiusage.PermUsageClient}) {
		t.Fatalf("UpdateClient with permissions = %+v, %v; want usage:client:view", up, err)
	}
	// A client cannot be granted what its creator lacks.
	_, err = admin.CreateClient(ctx, client.ClientCreate{Name: "sneaky", Permissions: []string{apiusage.PermOrganizationAdd}})
	if err == nil {
		t.Error("CreateClient with a platform permission succeeded, want a refusal")
	}

	// Rotating a secret: the old one stops working, the new one works.
	first, err := admin.RotateClientSecret(ctx, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	second, err := admin.RotateClientSecret(ctx, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.FetchToken(ctx, ids[1], first.Secret); err == nil {
		t.Error("the rotated-away secret still gets a token")
	}
	if _, err := admin.FetchToken(ctx, ids[1], second.Secret); err != nil {
		t.Errorf("the new secret: %v", err)
	}

	if err := admin.DeleteClient(ctx, ids[2]); err != nil {
		t.Fatal(err)
	}
	_, err = admin.GetClient(ctx, ids[2])
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.CorrelationID == "" {
		t.Errorf("GetClient of a deleted client: %v, want a 404 with a correlation id", err)
	}
}

func TestIngestIdempotency(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	org := srv.CreateOrg(t, "Acme")
	c := newClient(t, srv, org.AdminID, org.AdminSecret)
	ctx := context.Background()
	events := orgEvents(6, org.ID, 100)
	for i := range events {
		events[i].ID = "" // only the key at work here
	}

	first, err := c.PostUsageEvents(ctx, events, "batch-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.PostUsageEvents(ctx, events, "batch-1")
	if err != nil {
		t.Fatal(err)
	}
	if first.Accepted != 100 || again.Accepted != 100 {
		t.Errorf("receipts %+v and %+v, want 100 accepted each: a replay answers as the first time", first, again)
	}
	// Event ids: a repeated id is a duplicate.
	withID := []apiusage.Event{events[0], events[1]}
	withID[0].ID, withID[1].ID = "evt-1", "evt-1"
	rc, err := c.PostUsageEvents(ctx, withID, "")
	if err != nil {
		t.Fatal(err)
	}
	if rc.Accepted != 2 || rc.Duplicates != 1 {
		t.Errorf("receipt of a repeated id = %+v, want 2 accepted, 1 duplicate", rc)
	}
	res, err := c.QueryOrganization(ctx, apiusage.OrgQuery{Interval: "1970-01-01/2100-01-01", GroupBy: []apiusage.Dimension{apiusage.DimOrganization}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 1 || res.Results[0].Requests != 101 {
		t.Errorf("rows = %+v, want one row of 101 requests (100 once, plus one of the two with the same id)", res.Results)
	}
	// An invalid event spoils its batch, and the error says which.
	bad := []apiusage.Event{events[0], {Time: time.Now()}}
	_, err = c.PostUsageEvents(ctx, bad, "")
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Body.Message, "event 1") {
		t.Errorf("an invalid batch: %v, want a 400 naming event 1", err)
	}
	// Events of another organization need usage:event:add:any.
	foreign := orgEvents(7, "someone-else", 1)
	if _, err := c.PostUsageEvents(ctx, foreign, ""); apiusage.ErrorCode(err) != apiusage.CodeMissingPerms {
		t.Errorf("events of another organization: %v, want %s", err, apiusage.CodeMissingPerms)
	}
	// The empty batch costs nothing.
	if rc, err := c.Append(ctx, apiusage.Batch{}); err != nil || rc != (apiusage.Receipt{}) {
		t.Errorf("Append of nothing = %+v, %v", rc, err)
	}
}

// flakyStore fails the first appends with an internal error, as a full disk
// would: the server answers 500.
type flakyStore struct {
	apiusage.Store
	failures atomic.Int32
}

func (f *flakyStore) Append(ctx context.Context, b apiusage.Batch) (apiusage.Receipt, error) {
	if f.failures.Add(-1) >= 0 {
		return apiusage.Receipt{}, errors.New("disk full")
	}
	return f.Store.Append(ctx, b)
}

func TestRetries(t *testing.T) {
	var fs *flakyStore
	srv := testserver.Start(t, testserver.Options{WrapStore: func(s apiusage.Store) apiusage.Store {
		fs = &flakyStore{Store: s}
		return fs
	}})
	org := srv.CreateOrg(t, "Acme")
	rec := &recorder{next: http.DefaultTransport}
	policy := client.RetryPolicy{MaxAttempts: 4, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, MaxRetryAfter: time.Second}
	c := newClient(t, srv, org.AdminID, org.AdminSecret,
		client.WithHTTPClient(&http.Client{Transport: rec}), client.WithRetryPolicy(policy))
	ctx := context.Background()
	events := orgEvents(8, org.ID, 10)

	t.Run("ingest with a key is retried", func(t *testing.T) {
		fs.failures.Store(2)
		before := rec.count("/api/v2/usage/events")
		rc, err := c.PostUsageEvents(ctx, events, "k-1")
		if err != nil {
			t.Fatal(err)
		}
		if rc.Accepted != 10 {
			t.Errorf("receipt %+v, want 10 accepted", rc)
		}
		if n := rec.count("/api/v2/usage/events") - before; n != 3 {
			t.Errorf("%d attempts, want 3 (two 500s, then success)", n)
		}
	})
	t.Run("ingest without a key is not", func(t *testing.T) {
		fs.failures.Store(1)
		before := rec.count("/api/v2/usage/events")
		_, err := c.PostUsageEvents(ctx, events, "")
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusInternalServerError || apiErr.CorrelationID == "" {
			t.Fatalf("ingest into a failing store: %v, want a 500 with a correlation id", err)
		}
		if n := rec.count("/api/v2/usage/events") - before; n != 1 {
			t.Errorf("%d attempts, want 1", n)
		}
	})
	t.Run("attempts are bounded", func(t *testing.T) {
		fs.failures.Store(100)
		before := rec.count("/api/v2/usage/events")
		if _, err := c.PostUsageEvents(ctx, events, "k-2"); err == nil {
			t.Fatal("ingest into a store that keeps failing succeeded")
		}
		if n := rec.count("/api/v2/usage/events") - before; n != 4 {
			t.Errorf("%d attempts, want MaxAttempts = 4", n)
		}
		fs.failures.Store(0)
	})
	t.Run("GETs are retried through a failing gateway", func(t *testing.T) {
		// No apiusage server answers 503 to a GET of its own accord; a
		// gateway in front of it does, while the server restarts.
		target, _ := url.Parse(srv.URL)
		proxy := httputil.NewSingleHostReverseProxy(target)
		var left atomic.Int32
		left.Store(2)
		gw := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && left.Add(-1) >= 0 {
				w.Header().Set("Retry-After", "0")
				http.Error(w, "upstream restarting", http.StatusServiceUnavailable)
				return
			}
			proxy.ServeHTTP(w, r)
		})}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go gw.Serve(ln)
		t.Cleanup(func() { gw.Close() })
		viaGW := newClient(t, &testserver.Server{URL: "http://" + ln.Addr().String()}, org.AdminID, org.AdminSecret,
			client.WithRetryPolicy(policy))
		got, err := viaGW.GetOrganization(ctx, org.ID)
		if err != nil || got.ID != org.ID {
			t.Fatalf("GetOrganization through the gateway = %+v, %v", got, err)
		}
		if left.Load() >= 0 {
			t.Errorf("the gateway's 503s were not all seen")
		}
		// Past MaxAttempts the gateway's own message comes through.
		left.Store(10)
		_, err = viaGW.GetOrganization(ctx, org.ID)
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable || apiErr.Body.Message != "upstream restarting" {
			t.Errorf("GetOrganization through a gateway that stays down: %v, want its 503 and message", err)
		}
	})
}

func TestErrors(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	org := srv.CreateOrg(t, "Acme")
	ctx := context.Background()
	c := newClient(t, srv, org.AdminID, org.AdminSecret)

	_, err := c.PostUsageQuery(ctx, apiusage.OrgQuery{Interval: "yesterday", Granularity: "Hour"})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("a bad query: %v, want a *client.Error", err)
	}
	if apiErr.StatusCode != 400 || apiErr.Body.Code != apiusage.CodeBadRequest || apiErr.CorrelationID == "" ||
		!strings.Contains(apiErr.Body.Message, `"yesterday"`) || !strings.Contains(apiErr.Error(), apiErr.CorrelationID) {
		t.Errorf("error = %+v, want a 400 quoting the interval, with a correlation id in its text", apiErr)
	}

	// A client without the permission is refused, naming the permissions.
	id, secret := srv.CreateClient(t, org.AdminToken, "viewer", apiusage.PermUsageClient)
	viewer := newClient(t, srv, id, secret)
	_, err = viewer.PostUsageSimplesearch(ctx, apiusage.SimpleSearch{Interval: "2024-01-01/2024-02-01"})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden || apiErr.Body.MessageParams["permissions"] == "" {
		t.Errorf("a search without the permission: %v, want a 403 naming the permissions", err)
	}

	// Wrong credentials: the login host's error, not retried.
	rec := &recorder{next: http.DefaultTransport}
	wrong := newClient(t, srv, id, "wrong-secret", client.WithHTTPClient(&http.Client{Transport: rec}))
	_, err = wrong.GetOrganization(ctx, org.ID)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %v, want a 401", err)
	}
	if !strings.Contains(err.Error(), "access token") {
		t.Errorf("wrong secret: %q, want it to say the token could not be had", err)
	}
	if n := rec.count("/oauth/token"); n != 1 {
		t.Errorf("%d token requests with a wrong secret, want 1", n)
	}

	// An unknown execution is not found, whoever asks.
	if _, err := c.GetUsageQueryExecutionIdResults(ctx, "no-such-execution"); !errors.Is(err, apiusage.ErrNotFound) {
		t.Errorf("unknown execution: %v, want not found", err)
	}
	// Network errors name the call.
	down, _ := client.New("http://127.0.0.1:1", client.WithAccessToken("t"),
		client.WithRetryPolicy(client.RetryPolicy{MaxAttempts: 2, MaxRetryAfter: time.Second}))
	if _, err := down.GetOrganization(ctx, "x"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("a server that is down: %v, want an error naming it", err)
	}
}

func TestConcurrentCallsShareToken(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	org := srv.CreateOrg(t, "Acme")
	rec := &recorder{next: http.DefaultTransport}
	c := newClient(t, srv, org.AdminID, org.AdminSecret, client.WithHTTPClient(&http.Client{Transport: rec}))
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			if _, err := c.GetOrganization(context.Background(), org.ID); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := rec.count("/oauth/token"); n != 1 {
		t.Errorf("20 concurrent calls fetched %d tokens, want 1", n)
	}
}
