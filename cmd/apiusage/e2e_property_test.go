package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
)

// TestE2EProperty is the property test of the issue: random events (several
// organizations, registered and unregistered clients, users, templates,
// methods and statuses over months, with hour edges and recent days) go
// through HTTP in batches of both formats; then, for random queries of every
// kind, the server's rows must equal a brute-force count over the same
// events (storetest.Count) exactly, mapped to the wire.
//
// The seed is random and printed on failure; APIUSAGE_E2E_SEED replays one.
func TestE2EProperty(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("APIUSAGE_E2E_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("APIUSAGE_E2E_SEED=%q: %v", v, err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d; replay with APIUSAGE_E2E_SEED=%d go test ./cmd/apiusage/ -run TestE2EProperty", seed, seed)
		}
	})
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	s := startServer(t, nil)
	w := newPropWorld(t, s, rng)
	w.ingest(t, s, 6000)

	for i := range 60 {
		w.checkOrgQuery(t, s, i)
	}
	for i := range 30 {
		w.checkClientQuery(t, s, i)
	}
	for i := range 12 {
		w.checkSummary(t, s, i)
	}
	for i := range 40 {
		w.checkSearch(t, s, i)
	}
	// A world that makes only empty answers would prove nothing.
	t.Logf("seed %d: %d events; rows compared: %v", seed, len(w.events), w.checked)
	for _, kind := range []string{"organization query", "client query", "summary", "simple search"} {
		if w.checked[kind] == 0 {
			t.Errorf("no %s had a row to compare", kind)
		}
	}
}

// propOrg is an organization of the property test's world.
type propOrg struct {
	id      string
	token   string
	clients []string // registered here: the admin client and two more
}

// propWorld is the world random events are drawn from, and what was
// ingested.
type propWorld struct {
	rng      *rand.Rand
	now      time.Time
	platform string
	orgs     []propOrg
	// regOrg and regName are the organization and current name of each
	// registered client.
	regOrg, regName map[string]string
	// eventName is the name events give a client, when they give one: a
	// stale name for registered clients, which must not show in their own
	// organization's rows.
	eventName    map[string]string
	unregistered []string
	users        []string
	templates    []string
	methods      []string
	statuses     []int
	// events are the events stored: valid, normalized, without the
	// duplicates the server dropped.
	events []apiusage.Event
	// named holds the clients some stored event gave a name.
	named map[string]bool
	// checked counts the rows compared, by kind of query.
	checked map[string]int
}

func newPropWorld(t *testing.T, s *testServer, rng *rand.Rand) *propWorld {
	t.Helper()
	w := &propWorld{
		rng:       rng,
		now:       time.Now().UTC(),
		platform:  s.token(t, s.BootstrapID, s.BootstrapSecret),
		regOrg:    map[string]string{},
		regName:   map[string]string{},
		eventName: map[string]string{},
		named:     map[string]bool{},
		checked:   map[string]int{},
		users:     []string{"", "", "alice", "bob", "carol", "dave@example.com"},
		templates: []string{"api/v2/users/{userId}", "api/v2/users", "api/v2/analytics/conversations/details/query",
			"api/v2/routing/queues/{queueId}/members", "api/v2/usage/query", "api/v2/oauth/clients/{clientId}"},
		methods:  []string{"GET", "GET", "GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"},
		statuses: []int{200, 200, 200, 201, 204, 101, 301, 302, 304, 400, 401, 403, 404, 429, 429, 500, 502, 503},
	}
	for i, name := range []string{"Acme", "Globex", "Initech"} {
		id, admin := s.createOrganization(t, name)
		o := propOrg{id: id, token: s.token(t, admin.ID, admin.Secret), clients: []string{admin.ID}}
		w.regOrg[admin.ID], w.regName[admin.ID] = id, admin.Name
		for j := range 2 {
			c := s.createClient(t, o.token, fmt.Sprintf("%s client %d", name, j))
			o.clients = append(o.clients, c.ID)
			w.regOrg[c.ID], w.regName[c.ID] = id, c.Name
		}
		for k, c := range o.clients {
			if (i+k)%2 == 0 {
				w.eventName[c] = "stale name of " + c[:8]
			}
		}
		w.orgs = append(w.orgs, o)
	}
	w.unregistered = []string{"legacy-1", "legacy-2", "legacy-3", "ghost"}
	w.eventName["legacy-1"] = "Legacy One"
	w.eventName["legacy-2"] = "Legacy Two"
	w.eventName["legacy-3"] = "Legacy Two" // two clients, one name
	return w
}

// name returns how the rows of an execution of org name a client: by its
// current registered name when it is org's client, and else by the name its
// events gave (none when they gave none).
func (w *propWorld) name(org string) func(string) string {
	return func(id string) string {
		if w.regOrg[id] == org {
			return w.regName[id]
		}
		if w.named[id] {
			return w.eventName[id]
		}
		return ""
	}
}

func (w *propWorld) pick(from []string) string { return from[w.rng.IntN(len(from))] }

// randomCase writes an enum value as a caller might: canonical, lower or
// upper case.
func (w *propWorld) randomCase(s string) string {
	switch w.rng.IntN(4) {
	case 0:
		return strings.ToLower(s)
	case 1:
		return strings.ToUpper(s)
	}
	return s
}

// eventTime returns a time in the months the events span, or in the recent
// days the summaries see (never in the current hour, whose end a summary's
// "now" cuts), at or near an hour edge half the time.
func (w *propWorld) eventTime() time.Time {
	var hour time.Time
	if w.rng.IntN(10) == 0 {
		hour = w.now.Truncate(time.Hour).Add(-time.Duration(1+w.rng.IntN(30*24)) * time.Hour)
	} else {
		hour = time.Date(2025, 8, 20, 0, 0, 0, 0, time.UTC).Add(time.Duration(w.rng.IntN(160*24)) * time.Hour)
	}
	switch w.rng.IntN(4) {
	case 0:
		return hour
	case 1:
		return hour.Add(time.Hour - time.Millisecond)
	}
	return hour.Add(time.Duration(w.rng.Int64N(int64(time.Hour))))
}

// event returns a random event of org: mostly by one of its clients, some by
// another organization's client, some by clients only events know.
func (w *propWorld) event(org int, seq int) apiusage.Event {
	o := w.orgs[org]
	var client string
	switch r := w.rng.IntN(20); {
	case r < 13:
		client = w.pick(o.clients)
	case r < 15:
		client = w.pick(w.orgs[(org+1+w.rng.IntN(len(w.orgs)-1))%len(w.orgs)].clients)
	default:
		client = w.pick(w.unregistered)
	}
	e := apiusage.Event{
		Time:           w.eventTime(),
		OrganizationID: o.id,
		ClientID:       client,
		UserID:         w.pick(w.users),
		TemplateURI:    w.pick(w.templates),
		Method:         w.randomCase(w.pick(w.methods)),
		Status:         w.statuses[w.rng.IntN(len(w.statuses))],
	}
	if name, ok := w.eventName[client]; ok && (w.regOrg[client] == "" || w.rng.IntN(3) == 0) {
		e.ClientName = name
	}
	if w.rng.IntN(3) == 0 {
		e.ID = fmt.Sprintf("event-%d", seq)
	}
	// Some times in other zones: the server keeps the instant.
	if w.rng.IntN(5) == 0 {
		e.Time = e.Time.In(time.FixedZone("", (w.rng.IntN(27)-12)*3600))
	}
	return e
}

// ingest sends about n random events in batches of random size: most as one
// organization's admin client, some mixed as the platform client; as a JSON
// array or NDJSON; some with an Idempotency-Key. Then it replays keyed
// batches, re-sends events with ids already stored, and renames a client of
// each organization.
func (w *propWorld) ingest(t *testing.T, s *testServer, n int) {
	t.Helper()
	type sent struct {
		req  e2eRequest
		body []byte
	}
	var keyed []sent
	var withID []apiusage.Event
	for seq := 0; seq < n; {
		size := 1 + w.rng.IntN(400)
		org := w.rng.IntN(len(w.orgs))
		mixed := w.rng.IntN(4) == 0
		batch := make([]apiusage.Event, size)
		for i := range batch {
			o := org
			if mixed {
				o = w.rng.IntN(len(w.orgs))
			}
			batch[i] = w.event(o, seq)
			seq++
		}
		req := e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/events", Token: w.orgs[org].token}
		if mixed {
			req.Token = w.platform
		}
		if w.rng.IntN(2) == 0 {
			req.Body, req.ContentType = e2eNDJSON(t, batch), "application/x-ndjson"
		} else {
			req.Body = e2eJSON(t, batch)
		}
		if w.rng.IntN(3) == 0 {
			req.Header = map[string]string{"Idempotency-Key": fmt.Sprintf("batch-%d", seq)}
		}
		resp := s.e2eRaw(t, req)
		if resp.Status != http.StatusAccepted || !strings.Contains(string(resp.Body), fmt.Sprintf(`"accepted":%d,"duplicates":0`, size)) {
			t.Fatalf("POST a batch of %d events: %s, want 202 accepted %d, duplicates 0", size, resp, size)
		}
		if req.Header != nil {
			keyed = append(keyed, sent{req, resp.Body})
		}
		for _, e := range batch {
			w.store(e.Normalize())
			if e.ID != "" {
				withID = append(withID, e)
			}
		}
	}
	// Replayed keyed batches answer as the first time and count nothing.
	for range min(3, len(keyed)) {
		k := keyed[w.rng.IntN(len(keyed))]
		if resp := s.e2eRaw(t, k.req); resp.Status != http.StatusAccepted || string(resp.Body) != string(k.body) {
			t.Fatalf("replay of batch %s: %s, want 202 %s", k.req.Header["Idempotency-Key"], resp, k.body)
		}
	}
	// Events whose id was stored before are not counted again; with them
	// goes one new event, which is.
	if len(withID) > 0 {
		var again []apiusage.Event
		for range 20 {
			again = append(again, withID[w.rng.IntN(len(withID))])
		}
		again = slices.CompactFunc(again, func(a, b apiusage.Event) bool { return a.ID == b.ID })
		fresh := w.event(0, n+1)
		fresh.ID = ""
		resp := s.e2eRaw(t, e2eRequest{Method: http.MethodPost, Path: "/api/v2/usage/events", Token: w.platform,
			Body: e2eJSON(t, append(again, fresh))})
		if want := fmt.Sprintf(`"accepted":%d,"duplicates":%d`, len(again)+1, len(again)); resp.Status != http.StatusAccepted || !strings.Contains(string(resp.Body), want) {
			t.Fatalf("re-send of %d stored event ids: %s, want 202 with %s", len(again), resp, want)
		}
		w.store(fresh.Normalize())
	}
	// Rows show a registered client's current name.
	for i, o := range w.orgs {
		c := o.clients[1+i%2]
		name := "renamed " + w.regName[c]
		s.do(t, o.token, http.MethodPut, "/api/v2/oauth/clients/"+c, map[string]any{"name": name}, http.StatusOK, nil)
		w.regName[c] = name
	}
	for _, o := range w.orgs {
		want := 0
		for _, e := range w.events {
			if e.OrganizationID == o.id {
				want++
			}
		}
		s.e2eWaitRequests(t, o.token, "/api/v2/usage/query", want)
	}
}

func (w *propWorld) store(e apiusage.Event) {
	w.events = append(w.events, e)
	if e.ClientName != "" {
		w.named[e.ClientID] = true
	}
}

// interval returns a random interval in one of the contract's forms, and its
// meaning. Some are hour-aligned, some cut hours; some cover the recent
// days.
func (w *propWorld) interval(t *testing.T) (string, apiusage.Interval) {
	t.Helper()
	var start time.Time
	if w.rng.IntN(5) == 0 {
		start = w.now.Add(-time.Duration(w.rng.Int64N(int64(40 * 24 * time.Hour))))
	} else {
		start = time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(w.rng.Int64N(int64(200 * 24 * time.Hour))))
	}
	length := time.Duration(1 + w.rng.Int64N(int64(120*24*time.Hour)))
	if w.rng.IntN(3) == 0 {
		length = time.Duration(1 + w.rng.Int64N(int64(72*time.Hour)))
	}
	end := start.Add(length)
	day := func(t time.Time) time.Time { return t.Truncate(24 * time.Hour) }
	var s string
	var wantStart, wantEnd time.Time
	switch w.rng.IntN(8) {
	case 0: // months
		ms := time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, time.UTC)
		me := time.Date(end.Year(), end.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		s, wantStart, wantEnd = ms.Format("2006-01")+"/"+me.Format("2006-01"), ms, me
	case 1: // dates
		ds, de := day(start), day(end).Add(24*time.Hour)
		s, wantStart, wantEnd = ds.Format("2006-01-02")+"/"+de.Format("2006-01-02"), ds, de
	case 2: // date-times in UTC, cutting hours, with milliseconds
		ms, me := start.Truncate(time.Millisecond), end.Truncate(time.Millisecond)
		s, wantStart, wantEnd = ms.Format("2006-01-02T15:04:05.000Z")+"/"+me.Format("2006-01-02T15:04:05.000Z"), ms, me
	case 3: // offsets
		zs, ze := time.FixedZone("", 2*3600), time.FixedZone("", -(5*3600+30*60))
		ss, se := start.Truncate(time.Second), end.Truncate(time.Second)
		s, wantStart, wantEnd = ss.In(zs).Format("2006-01-02T15:04:05-07:00")+"/"+se.In(ze).Format("2006-01-02T15:04:05-07:00"), ss, se
	case 4: // hours, no zone
		hs, he := start.Truncate(time.Hour), end.Truncate(time.Hour).Add(time.Hour)
		s, wantStart, wantEnd = hs.Format("2006-01-02T15")+"/"+he.Format("2006-01-02T15"), hs, he
	case 5: // a duration before an end
		de := day(end)
		s = fmt.Sprintf("P%dD/%s", 1+w.rng.IntN(60), de.Format("2006-01-02"))
	case 6: // a start and a duration
		s = fmt.Sprintf("%s/P%dM%dDT%dH", start.Truncate(time.Minute).Format("2006-01-02T15:04Z"), w.rng.IntN(3), w.rng.IntN(10), 1+w.rng.IntN(30))
	default: // minutes, cutting hours
		ms, me := start.Truncate(time.Minute), end.Truncate(time.Minute)
		if !ms.Before(me) {
			me = ms.Add(time.Minute)
		}
		s, wantStart, wantEnd = ms.Format("2006-01-02T15:04Z")+"/"+me.Format("2006-01-02T15:04:00Z"), ms, me
	}
	iv, err := apiusage.ParseInterval(s)
	if err != nil {
		t.Fatalf("the test made an invalid interval %q: %v", s, err)
	}
	if !wantStart.IsZero() && (!iv.Start.Equal(wantStart) || !iv.End.Equal(wantEnd)) {
		t.Fatalf("interval %q parses as %v, want %v/%v", s, iv, wantStart, wantEnd)
	}
	return s, iv
}

// queryParts returns a random granularity, metrics and groupBy for a query
// over the dimensions dims: the wire values (in random case, possibly
// omitted) and their canonical meaning, defaults applied.
func (w *propWorld) queryParts(dims []apiusage.Dimension) (body map[string]any, g apiusage.Granularity, metrics []apiusage.Metric, groupBy []apiusage.Dimension) {
	body = map[string]any{}
	gs := []apiusage.Granularity{apiusage.GranularityNone, apiusage.GranularityDay, apiusage.GranularityWeek, apiusage.GranularityMonth}
	if g = gs[w.rng.IntN(len(gs))]; g != apiusage.GranularityNone {
		body["granularity"] = w.randomCase(string(g))
	}
	var wire []string
	for _, i := range w.rng.Perm(len(apiusage.AllMetrics))[:w.rng.IntN(len(apiusage.AllMetrics)+1)] {
		m := apiusage.AllMetrics[i]
		metrics = append(metrics, m)
		wire = append(wire, w.randomCase(string(m)))
	}
	if len(wire) > 0 || w.rng.IntN(2) == 0 {
		body["metrics"] = wire
	}
	if len(metrics) == 0 {
		metrics = apiusage.AllMetrics
	}
	wire = nil
	for _, i := range w.rng.Perm(len(dims))[:w.rng.IntN(4)] {
		groupBy = append(groupBy, dims[i])
		wire = append(wire, w.randomCase(string(dims[i])))
	}
	if len(wire) > 0 || w.rng.IntN(2) == 0 {
		body["groupBy"] = wire
	}
	if len(groupBy) == 0 {
		groupBy = []apiusage.Dimension{apiusage.DimClient}
	}
	return body, g, metrics, groupBy
}

func (w *propWorld) checkOrgQuery(t *testing.T, s *testServer, n int) {
	t.Helper()
	o := w.orgs[w.rng.IntN(len(w.orgs))]
	body, g, metrics, groupBy := w.queryParts([]apiusage.Dimension{apiusage.DimClient, apiusage.DimOrganization,
		apiusage.DimUser, apiusage.DimTemplateURI, apiusage.DimMethod})
	ivs, iv := w.interval(t)
	body["interval"] = ivs
	got := s.query(t, o.token, "/api/v2/usage/query", body)
	want := e2eWantQueryRows(t, w.events, apiusage.Query{Interval: iv, Granularity: g, GroupBy: groupBy, OrganizationID: o.id}, metrics, w.name(o.id))
	w.checked["organization query"] += len(want)
	if d := e2eDiffRows(got, want); d != "" {
		t.Errorf("organization query %d %s: %s", n, e2eJSON(t, body), d)
	}
}

// registered returns a random organization and one of its clients.
func (w *propWorld) registered() (propOrg, string) {
	o := w.orgs[w.rng.IntN(len(w.orgs))]
	return o, w.pick(o.clients)
}

func (w *propWorld) checkClientQuery(t *testing.T, s *testServer, n int) {
	t.Helper()
	o, client := w.registered()
	body, g, metrics, groupBy := w.queryParts([]apiusage.Dimension{apiusage.DimClient, apiusage.DimOrganization,
		apiusage.DimTemplateURI, apiusage.DimMethod})
	ivs, iv := w.interval(t)
	body["interval"] = ivs
	got := s.query(t, o.token, "/api/v2/oauth/clients/"+client+"/usage/query", body)
	want := e2eWantQueryRows(t, w.events, apiusage.Query{Interval: iv, Granularity: g, GroupBy: groupBy, ClientIDs: []string{client}}, metrics, w.name(o.id))
	w.checked["client query"] += len(want)
	if d := e2eDiffRows(got, want); d != "" {
		t.Errorf("client query %d of %s %s: %s", n, client, e2eJSON(t, body), d)
	}
}

func (w *propWorld) checkSummary(t *testing.T, s *testServer, n int) {
	t.Helper()
	o, client := w.registered()
	days := []int{0, 1, 2, 3, 7, 10, 30, 366}[w.rng.IntN(8)]
	path := "/api/v2/oauth/clients/" + client + "/usage/summary"
	if days != 0 {
		path += "?days=" + strconv.Itoa(days)
	} else {
		days = 7
	}
	// The summary ends at the server's now and starts days before its
	// today: run it again when the UTC day turned while it ran. No event
	// is in the current hour, so where in the hour now falls does not
	// matter.
	for attempt := 0; ; attempt++ {
		before := time.Now().UTC()
		got := s.query(t, o.token, path, nil)
		after := time.Now().UTC()
		if before.Truncate(24*time.Hour) != after.Truncate(24*time.Hour) && attempt < 2 {
			continue
		}
		today := after.Truncate(24 * time.Hour)
		iv := apiusage.Interval{Start: today.AddDate(0, 0, -days), End: after}
		want := e2eWantQueryRows(t, w.events, apiusage.Query{Interval: iv, Granularity: apiusage.GranularityDay,
			GroupBy: []apiusage.Dimension{apiusage.DimClient}, ClientIDs: []string{client}}, apiusage.AllMetrics, w.name(o.id))
		w.checked["summary"] += len(want)
		if d := e2eDiffRows(got, want); d != "" {
			t.Errorf("summary %d %s: %s", n, path, d)
		}
		return
	}
}

func (w *propWorld) checkSearch(t *testing.T, s *testServer, n int) {
	t.Helper()
	o := w.orgs[w.rng.IntN(len(w.orgs))]
	ivs, iv := w.interval(t)
	body := map[string]any{"interval": ivs}
	q := apiusage.Query{Interval: iv, OrganizationID: o.id}

	var cols []apiusage.Column
	var wire []string
	for _, i := range w.rng.Perm(len(apiusage.AllColumns))[:w.rng.IntN(len(apiusage.AllColumns)+1)] {
		cols = append(cols, apiusage.AllColumns[i])
		wire = append(wire, w.randomCase(string(apiusage.AllColumns[i])))
	}
	if len(wire) > 0 {
		body["metrics"] = wire
	}
	if len(cols) == 0 {
		cols = apiusage.AllColumns
	}

	none := false
	if w.rng.IntN(3) == 0 {
		pool := []string{"Legacy One", "Legacy Two", "Nobody"}
		for id := range w.regName {
			pool = append(pool, w.regName[id])
		}
		for _, name := range w.eventName {
			pool = append(pool, name)
		}
		slices.Sort(pool)
		pool = slices.Compact(pool)
		var names []string
		for range 1 + w.rng.IntN(3) {
			names = append(names, w.pick(pool))
		}
		body["oauthClientNames"] = names
		name := w.name(o.id)
		ids := map[string]bool{}
		for _, e := range w.events {
			ids[e.ClientID] = true
		}
		for _, c := range o.clients {
			ids[c] = true
		}
		for _, id := range slices.Sorted(maps.Keys(ids)) {
			if slices.Contains(names, name(id)) {
				q.ClientIDs = append(q.ClientIDs, id)
			}
		}
		none = len(q.ClientIDs) == 0
	}
	if w.rng.IntN(3) == 0 {
		var methods []string
		for range 1 + w.rng.IntN(2) {
			m := w.pick(w.methods)
			methods = append(methods, w.randomCase(m))
			q.Methods = append(q.Methods, m)
		}
		body["httpMethods"] = methods
	}
	if w.rng.IntN(3) == 0 {
		tmpls := []string{w.pick(w.templates)}
		if w.rng.IntN(2) == 0 {
			tmpls = append(tmpls, "api/v2/never/used")
		}
		body["templateUris"] = tmpls
		q.TemplateURIs = tmpls
	}

	want := []map[string]any{}
	if !none {
		want = e2eWantSearchRows(t, w.events, q, cols, w.name(o.id))
	}
	pageSize := []int{0, 1000, 50, 333}[w.rng.IntN(4)]
	if len(want) < 100 && w.rng.IntN(2) == 0 {
		pageSize = 1 + w.rng.IntN(7)
	}
	got := s.e2eSearch(t, o.token, body, pageSize)
	w.checked["simple search"] += len(want)
	if d := e2eDiffRows(got, want); d != "" {
		t.Errorf("simple search %d %s, pageSize %d: %s", n, e2eJSON(t, body), pageSize, d)
	}
}
