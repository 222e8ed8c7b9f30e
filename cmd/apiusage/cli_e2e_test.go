package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

var update = flag.Bool("update", false, "rewrite the CLI's golden files in testdata")

// These tests run the command line as main does, through run, against an
// apiusage server that run also started (startServer): the binary's code
// path end to end, in process.

// cliResult is what one run of the command line did.
type cliResult struct {
	stdout, stderr string
	err            error
}

// code is the exit status main would give.
func (r cliResult) code() int {
	if r.err == nil {
		return 0
	}
	return exitCode(r.err)
}

// cliEnv is the environment of a user of the command line: a home and a
// configuration directory of its own, and whatever variables a test sets.
type cliEnv struct {
	vars map[string]string
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	home := t.TempDir()
	return &cliEnv{vars: map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, "config")}}
}

// run runs the command line with args and waits for it.
func (e *cliEnv) run(t *testing.T, args ...string) cliResult {
	t.Helper()
	return e.runCtx(context.Background(), t, args...)
}

func (e *cliEnv) runCtx(ctx context.Context, t *testing.T, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(ctx, append([]string{"apiusage"}, args...), func(k string) string { return e.vars[k] }, &stdout, &stderr)
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// ok runs the command line and fails the test unless it succeeds.
func (e *cliEnv) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := e.run(t, args...)
	if r.err != nil {
		t.Fatalf("apiusage %s: %v\nstderr:\n%s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r.stdout
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// writeEvents writes events as NDJSON to a file in dir.
func writeEvents(t *testing.T, dir, name string, events []apiusage.Event) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// goldenEvents are a small, fixed usage history of an organization: two
// clients that are not registered (so their ids and names are the events'),
// over three days.
func goldenEvents(org string) []apiusage.Event {
	at := func(day, hour, minute int) time.Time { return time.Date(2026, 1, day, hour, minute, 0, 0, time.UTC) }
	e := func(t time.Time, client, name, method, uri string, status int) apiusage.Event {
		return apiusage.Event{Time: t, OrganizationID: org, ClientID: client, ClientName: name, TemplateURI: uri, Method: method, Status: status}
	}
	var out []apiusage.Event
	for i := range 12 {
		out = append(out, e(at(5, 9, i), "billing", "Billing app", "GET", "api/v2/users/{userId}", []int{200, 200, 200, 304}[i%4]))
	}
	for i := range 5 {
		out = append(out, e(at(5, 10, i), "billing", "Billing app", "POST", "api/v2/analytics/conversations/details/query", []int{200, 429, 429, 500, 201}[i]))
	}
	for i := range 7 {
		out = append(out, e(at(6, 14, i), "reports", "Reports, nightly", "GET", "api/v2/users", []int{200, 200, 404}[i%3]))
	}
	out = append(out,
		e(at(7, 23, 59), "billing", "Billing app", "DELETE", "api/v2/users/{userId}", 204),
		e(at(7, 0, 0), "reports", "Reports, nightly", "GET", "api/v2/users", 503),
	)
	return out
}

// orgEnv logs a new organization's admin client in with the CLI and returns
// the environment (profile "default" set) and the organization's id.
func orgEnv(t *testing.T, s *testServer, name string) (*cliEnv, string) {
	t.Helper()
	orgID, admin := s.createOrganization(t, name)
	env := newCLIEnv(t)
	env.ok(t, "login", "--url", s.URL, "--client-id", admin.ID, "--client-secret", admin.Secret)
	return env, orgID
}

func TestCLILoginAndProfiles(t *testing.T) {
	s := startServer(t, nil)
	orgID, admin := s.createOrganization(t, "Acme")
	env := newCLIEnv(t)

	r := env.run(t, "login", "--url", s.URL, "--client-id", admin.ID)
	if r.code() != 1 || !strings.Contains(r.err.Error(), "--client-secret") {
		t.Errorf("login without a secret: exit %d, %v; want 1 naming --client-secret", r.code(), r.err)
	}
	r = env.run(t, "login", "--url", s.URL, "--client-id", admin.ID, "--client-secret", "wrong")
	if r.code() != 2 || !strings.Contains(r.err.Error(), "invalid_client") || !strings.Contains(r.err.Error(), "correlation id") {
		t.Errorf("login with a wrong secret: exit %d, %v; want 2 with the server's error and correlation id", r.code(), r.err)
	}
	out := env.ok(t, "login", "--url", s.URL+"/", "--client-id", admin.ID, "--client-secret", admin.Secret)
	path := filepath.Join(env.vars["XDG_CONFIG_HOME"], "apiusage", "profiles.json")
	if !strings.Contains(out, path) {
		t.Errorf("login says %q, want the profile's path %s", out, path)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Errorf("profiles.json has mode %v, want 0600", info.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	var pf profileFile
	if err := json.Unmarshal(b, &pf); err != nil {
		t.Fatal(err)
	}
	if p := pf.Profiles["default"]; p.URL != s.URL || p.ClientID != admin.ID || p.ClientSecret != admin.Secret {
		t.Errorf("saved profile = %+v, want the URL (without its trailing slash) and credentials", p)
	}

	// The profile alone is enough.
	var org struct{ ID, Name string }
	if err := json.Unmarshal([]byte(env.ok(t, "orgs", "show", orgID, "-o", "json")), &org); err != nil || org.Name != "Acme" {
		t.Fatalf("orgs show with the profile = %+v, %v; want Acme", org, err)
	}
	// The environment wins over the profile...
	env.vars[envURL] = "http://127.0.0.1:1"
	if r := env.run(t, "orgs", "show", orgID); r.code() != 2 || !strings.Contains(r.err.Error(), "127.0.0.1:1") {
		t.Errorf("APIUSAGE_URL pointing nowhere: exit %d, %v; want 2 naming the address", r.code(), r.err)
	}
	// ...and a flag over the environment.
	env.ok(t, "orgs", "show", orgID, "--url", s.URL)
	delete(env.vars, envURL)

	// Named profiles, chosen by flag or environment.
	other := s.createClient(t, s.token(t, admin.ID, admin.Secret), "reader", apiusage.PermClientView)
	env.ok(t, "login", "--profile", "reader", "--url", s.URL, "--client-id", other.ID, "--client-secret", other.Secret)
	r = env.run(t, "orgs", "show", orgID, "--profile", "reader")
	if r.err != nil {
		t.Errorf("orgs show --profile reader: %v", r.err)
	}
	env.vars[envProfile] = "nobody"
	if r := env.run(t, "orgs", "show", orgID); r.code() != 1 || !strings.Contains(r.err.Error(), `"nobody"`) {
		t.Errorf("APIUSAGE_PROFILE naming no profile: exit %d, %v; want 1 naming it", r.code(), r.err)
	}
	delete(env.vars, envProfile)

	// Without any configuration the command says what is missing.
	bare := newCLIEnv(t)
	if r := bare.run(t, "clients", "list"); r.code() != 1 || !strings.Contains(r.err.Error(), "apiusage login") {
		t.Errorf("clients list with no profile: exit %d, %v; want 1 pointing at apiusage login", r.code(), r.err)
	}
	// Credentials from the environment alone work too.
	bare.vars[envURL], bare.vars[envClientID], bare.vars[envClientSecret] = s.URL, admin.ID, admin.Secret
	bare.ok(t, "clients", "list")
}

func TestCLIQueryGolden(t *testing.T) {
	s := startServer(t, nil)
	env, orgID := orgEnv(t, s, "Acme")
	file := writeEvents(t, t.TempDir(), "events.ndjson", goldenEvents(orgID))
	env.ok(t, "ingest", file)

	org := []string{"query", "org", "--interval", "2026-01-01/2026-02-01", "--granularity", "day", "--group-by", "OAuthClientId,HttpMethod"}
	search := []string{"query", "search", "--interval", "2026-01-05/P3D", "--page-size", "2"}
	byTemplate := []string{"query", "org", "--interval", "2026-01/2026-02", "--group-by", "templateuri", "--metrics", "requests,status429,Status500"}
	for _, format := range []string{"table", "csv", "json"} {
		golden(t, "query_org."+format+".golden", env.ok(t, append(org, "-o", format)...))
		golden(t, "query_search."+format+".golden", env.ok(t, append(search, "-o", format)...))
	}
	golden(t, "query_org_templates.table.golden", env.ok(t, append(byTemplate, "-o", "table")...))
	// Not a terminal: JSON by default.
	if got, want := env.ok(t, org...), env.ok(t, append(org, "-o", "json")...); got != want {
		t.Errorf("default output to a pipe:\n%s\nwant the JSON:\n%s", got, want)
	}

	// A client query names a registered client; the rows are its.
	token := s.token(t, env.profile(t).ClientID, env.profile(t).ClientSecret)
	reg := s.createClient(t, token, "Registered", apiusage.PermUsageClient)
	events := goldenEvents(orgID)[:4]
	for i := range events {
		events[i].ClientID = reg.ID
		events[i].ClientName = ""
	}
	env.ok(t, "ingest", writeEvents(t, t.TempDir(), "reg.ndjson", events))
	golden(t, "query_client.csv.golden", env.ok(t, "query", "client", reg.ID, "--interval", "2026-01/2026-02",
		"--granularity", "Week", "--group-by", "HttpMethod,TemplateUri", "-o", "csv"))

	// The summary covers the last days up to now: its shape, not its dates.
	var sum struct {
		Results     []map[string]any `json:"results"`
		QueryStatus string           `json:"queryStatus"`
	}
	if err := json.Unmarshal([]byte(env.ok(t, "query", "summary", reg.ID, "--days", "3")), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.QueryStatus != "Complete" {
		t.Errorf("summary status %q, want Complete", sum.QueryStatus)
	}
	for _, row := range sum.Results {
		for _, k := range []string{"date", "clientId", "requests", "status429"} {
			if _, ok := row[k]; !ok {
				t.Errorf("summary row %v lacks %s", row, k)
			}
		}
	}

	// --no-wait prints the execution id alone.
	id := strings.TrimSpace(env.ok(t, append(org, "--no-wait")...))
	if !regexp.MustCompile(`^[0-9a-zA-Z-]{16,}$`).MatchString(id) {
		t.Errorf("--no-wait printed %q, want an execution id", id)
	}

	// Mistakes are caught before anything is sent, with exit status 1.
	for _, args := range [][]string{
		{"query", "org", "--granularity", "day"},
		{"query", "org", "--last", "7d", "--granularity", "hour"},
		{"query", "org", "--interval", "yesterday"},
		{"query", "org", "--last", "7 days"},
		{"query", "org", "--last", "7d", "--interval", "2026-01/2026-02"},
		{"query", "org", "--last", "7d", "-o", "yaml"},
		{"query", "client", "--last", "7d"},
		{"query", "client", reg.ID, "--last", "7d", "--group-by", "UserId"},
		{"query", "search", "--last", "7d", "--http-methods", "FETCH"},
		{"query", "summary", reg.ID, "--days", "0"},
		{"query", "org", "--last", "7d", "--no-such-flag"},
		{"query", "nothing"},
	} {
		if r := env.run(t, args...); r.code() != 1 {
			t.Errorf("apiusage %s: exit %d (%v), want 1", strings.Join(args, " "), r.code(), r.err)
		}
	}
	// What only the server knows is exit status 2, with its message.
	r := env.run(t, "query", "client", "no-such-client", "--last", "7d")
	if r.code() != 2 || !strings.Contains(r.err.Error(), "not.found") || !strings.Contains(r.err.Error(), "correlation id") {
		t.Errorf("query of an unknown client: exit %d, %v; want 2 with the server's code and correlation id", r.code(), r.err)
	}
}

// profile returns the environment's default profile.
func (e *cliEnv) profile(t *testing.T) profile {
	t.Helper()
	pf, err := loadProfiles(func(k string) string { return e.vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	return pf.Profiles[defaultProfile]
}

func TestCLIOrgsAndClients(t *testing.T) {
	s := startServer(t, nil)
	platform := newCLIEnv(t)
	platform.ok(t, "login", "--url", s.URL, "--client-id", s.BootstrapID, "--client-secret", s.BootstrapSecret)

	var org struct {
		ID          string `json:"id"`
		Name        string `json:"name"`
		AdminClient struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
		} `json:"adminClient"`
	}
	out := platform.ok(t, "orgs", "create", "Globex", "--save-profile", "globex", "-o", "json")
	if err := json.Unmarshal([]byte(out), &org); err != nil || org.Name != "Globex" || org.AdminClient.Secret == "" {
		t.Fatalf("orgs create = %s, %v; want Globex with an admin secret", out, err)
	}
	text := platform.ok(t, "orgs", "create", "Initech", "-o", "table")
	if !strings.Contains(text, "Client secret:") || !strings.Contains(text, "shown only now") {
		t.Errorf("orgs create as text:\n%s\nwant the secret, marked as shown only now", text)
	}
	// The saved profile is the new organization's admin.
	g := func(args ...string) string { return platform.ok(t, append(args, "--profile", "globex")...) }
	if out := g("orgs", "show", org.ID, "-o", "json"); !strings.Contains(out, `"Globex"`) {
		t.Errorf("orgs show with the saved profile: %s", out)
	}

	var created struct {
		ID          string   `json:"id"`
		Name        string   `json:"name"`
		Secret      string   `json:"secret"`
		Permissions []string `json:"permissions"`
	}
	out = g("clients", "create", "--name", "Billing app", "--description", "bills", "--permissions", "usage:organization:view,usage:event:add", "-o", "json")
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Secret == "" || len(created.Permissions) != 2 {
		t.Fatalf("clients create = %s, %v", out, err)
	}
	list := g("clients", "list", "-o", "table")
	if !strings.HasPrefix(list, "ID") || !strings.Contains(list, "Billing app") || !strings.Contains(list, "Globex admin") {
		t.Errorf("clients list:\n%s\nwant a table of both clients", list)
	}
	var listed []struct{ ID string }
	if err := json.Unmarshal([]byte(g("clients", "list")), &listed); err != nil || len(listed) != 2 {
		t.Errorf("clients list as JSON = %+v, %v; want 2 clients", listed, err)
	}

	show := g("clients", "show", created.ID, "-o", "table")
	if !strings.Contains(show, "Billing app") || !strings.Contains(show, "usage:event:add") || strings.Contains(show, created.Secret) {
		t.Errorf("clients show:\n%s\nwant the client without its secret", show)
	}
	// update changes only what it is told.
	var updated struct {
		Name, Description string
		Permissions       []string
	}
	out = g("clients", "update", created.ID, "--name", "Billing service", "-o", "json")
	if err := json.Unmarshal([]byte(out), &updated); err != nil || updated.Name != "Billing service" || updated.Description != "bills" || len(updated.Permissions) != 2 {
		t.Errorf("clients update --name = %s, %v; want the new name with the old description and permissions", out, err)
	}
	out = g("clients", "update", created.ID, "--permissions", "usage:client:view", "-o", "json")
	if err := json.Unmarshal([]byte(out), &updated); err != nil || updated.Name != "Billing service" || len(updated.Permissions) != 1 {
		t.Errorf("clients update --permissions = %s, %v", out, err)
	}
	if r := platform.run(t, "clients", "update", created.ID, "--profile", "globex"); r.code() != 1 {
		t.Errorf("clients update with nothing to change: exit %d, want 1", r.code())
	}

	// rotate-secret: the new secret logs in, the old one does not.
	var rotated struct{ Secret string }
	if err := json.Unmarshal([]byte(g("clients", "rotate-secret", created.ID, "-o", "json")), &rotated); err != nil || rotated.Secret == "" {
		t.Fatalf("rotate-secret: %v", err)
	}
	billing := newCLIEnv(t)
	if r := billing.run(t, "login", "--url", s.URL, "--client-id", created.ID, "--client-secret", created.Secret); r.code() != 2 {
		t.Errorf("login with the old secret: exit %d, want 2", r.code())
	}
	billing.ok(t, "login", "--url", s.URL, "--client-id", created.ID, "--client-secret", rotated.Secret)

	if out := g("clients", "delete", created.ID); !strings.Contains(out, created.ID) {
		t.Errorf("clients delete said %q", out)
	}
	r := platform.run(t, "clients", "show", created.ID, "--profile", "globex")
	if r.code() != 2 || !strings.Contains(r.err.Error(), "not found") {
		t.Errorf("clients show of a deleted client: exit %d, %v; want 2, not found", r.code(), r.err)
	}
	// Another organization cannot see Globex.
	if r := platform.run(t, "orgs", "show", org.ID); r.err != nil {
		t.Errorf("the platform client may see every organization: %v", r.err)
	}
}

func TestCLIIngestFormats(t *testing.T) {
	s := startServer(t, nil)
	env, orgID := orgEnv(t, s, "Acme")
	dir := t.TempDir()
	events := goldenEvents(orgID)

	// The same events as JSON and as CSV, plus bad lines in each.
	arr, _ := json.MarshalIndent(events[:10], "", "  ")
	arr = bytes.Replace(arr, []byte(`"status": 200`), []byte(`"status": "OK"`), 1) // one bad element
	jsonFile := filepath.Join(dir, "events.json")
	os.WriteFile(jsonFile, arr, 0o644)
	var csv strings.Builder
	csv.WriteString("timestamp,organizationId,clientId,clientName,templateUri,httpMethod,status\n")
	for _, e := range events[10:] {
		fmt.Fprintf(&csv, "%s,%s,%s,%q,%s,%s,%d\n", e.Time.Format(time.RFC3339), e.OrganizationID, e.ClientID, e.ClientName, e.TemplateURI, e.Method, e.Status)
	}
	csv.WriteString("2026-01-05T09:00:00Z," + orgID + ",billing,,api/v2/x,FETCH,200\n") // bad method, line 18
	csvFile := filepath.Join(dir, "events.csv")
	os.WriteFile(csvFile, []byte(csv.String()), 0o644)

	r := env.run(t, "ingest", "-o", "table", "--batch-size", "4", jsonFile, csvFile)
	if r.code() != 1 {
		t.Fatalf("ingest with invalid events: exit %d (%v), want 1\nstderr:\n%s", r.code(), r.err, r.stderr)
	}
	for _, want := range []string{jsonFile + ":2: not a JSON event", csvFile + ":18: httpMethod"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr:\n%s\nwant a report at %q", r.stderr, want)
		}
	}
	for _, want := range []string{
		jsonFile + ": 9 events in 3 batches: 9 accepted, 0 duplicates, 1 invalid",
		csvFile + ": 16 events in 4 batches: 16 accepted, 0 duplicates, 1 invalid",
		"total: 25 events in 7 batches: 25 accepted, 0 duplicates, 2 invalid",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary:\n%s\nwant %q", r.stdout, want)
		}
	}
	// Only the bad events were left out.
	var res struct{ Results []map[string]any }
	json.Unmarshal([]byte(env.ok(t, "query", "org", "--interval", "2026-01/2026-02", "--group-by", "OrganizationId", "--metrics", "Requests")), &res)
	if len(res.Results) != 1 || res.Results[0]["requests"] != float64(25) {
		t.Errorf("rows after ingest = %v, want one row of 25 requests", res.Results)
	}

	// A file that cannot be read as events at all is a usage error.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("when,what\n1,2\n"), 0o644)
	if r := env.run(t, "ingest", bad); r.code() != 1 || !strings.Contains(r.err.Error(), "unknown column") {
		t.Errorf("ingest of a CSV with unknown columns: exit %d, %v", r.code(), r.err)
	}
	if r := env.run(t, "ingest", filepath.Join(dir, "missing.ndjson")); r.code() != 1 {
		t.Errorf("ingest of a missing file: exit %d, want 1", r.code())
	}
	// --dry-run checks without sending.
	out := env.ok(t, "ingest", "-o", "table", "--dry-run", writeEvents(t, dir, "dry.ndjson", events))
	if !strings.Contains(out, "26 events in 1 batch:") {
		t.Errorf("dry run said %q", out)
	}
	json.Unmarshal([]byte(env.ok(t, "query", "org", "--interval", "2026-01/2026-02", "--group-by", "OrganizationId", "--metrics", "Requests")), &res)
	if res.Results[0]["requests"] != float64(25) {
		t.Errorf("a dry run stored events: %v", res.Results)
	}
}

// TestCLIIngestInterrupted sends a 100,000-event file, stops the command in
// the worst place (the server stored a batch, its answer was lost), runs it
// again, and checks that the counts are those of one clean run.
func TestCLIIngestInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 300,000 events")
	}
	s := startServer(t, nil)
	dir := t.TempDir()
	const n, batch, stopAt = 100_000, 5000, 7

	gen := func(org string) []apiusage.Event {
		events := storetest.NewGen(42).Events(n)
		for i := range events {
			events[i].OrganizationID = org
		}
		return events
	}
	crashEnv, crashOrg := orgEnv(t, s, "Crashy")
	cleanEnv, cleanOrg := orgEnv(t, s, "Clean")
	crashFile := writeEvents(t, dir, "crash.ndjson", gen(crashOrg))
	cleanFile := writeEvents(t, dir, "clean.ndjson", gen(cleanOrg))

	// A proxy in front of the server passes batches on, and on the
	// stopAt-th lets the server store it, then stops the command and drops
	// the answer: a crash between the server's answer and the client's
	// reading it.
	target, _ := url.Parse(s.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var batches atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v2/usage/events" && batches.Add(1) == stopAt {
			rec := httptest.NewRecorder()
			proxy.ServeHTTP(rec, r)
			if rec.Code != http.StatusAccepted {
				t.Errorf("batch %d: status %d: %s", stopAt, rec.Code, rec.Body)
			}
			cancel()
			panic(http.ErrAbortHandler)
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()

	r := crashEnv.runCtx(ctx, t, "ingest", "--batch-size", fmt.Sprint(batch), "--url", front.URL, crashFile)
	if r.err == nil || r.code() != 2 {
		t.Fatalf("interrupted ingest: exit %d (%v), want 2", r.code(), r.err)
	}
	if !strings.Contains(r.stderr, "run the same command again") {
		t.Errorf("interrupted ingest said:\n%s\nwant how to resume", r.stderr)
	}
	if got := batches.Load(); got != stopAt {
		t.Fatalf("%d batches reached the proxy, want %d: the command went on after it was stopped", got, stopAt)
	}

	// The same command again, and a clean run of the same events elsewhere.
	out := crashEnv.ok(t, "ingest", "-o", "table", "--batch-size", fmt.Sprint(batch), crashFile)
	want := fmt.Sprintf("%s: %d events in %d batches: %d accepted, 0 duplicates", crashFile, n, n/batch, n)
	if !strings.HasPrefix(out, want) {
		t.Errorf("re-run summary %q, want it to start %q", out, want)
	}
	cleanEnv.ok(t, "ingest", "--batch-size", fmt.Sprint(batch), cleanFile)

	q := []string{"query", "org", "--interval", "1970-01-01/2100-01-01", "--granularity", "Month",
		"--group-by", "OAuthClientId,HttpMethod", "-o", "csv"}
	crashed, clean := crashEnv.ok(t, q...), cleanEnv.ok(t, q...)
	if crashed != clean {
		t.Errorf("counts after an interrupted run and a re-run differ from one clean run:\n%s\nclean:\n%s", crashed, clean)
	}
	// And both are the contract's counts of the file.
	var total int64
	for _, line := range strings.Split(strings.TrimSpace(clean), "\n")[1:] {
		var req int64
		fmt.Sscan(line[strings.LastIndex(line, ",")+1:], &req)
		total += req
	}
	if total != n {
		t.Errorf("the clean run counts %d requests, want %d", total, n)
	}
}

func TestCLICompletion(t *testing.T) {
	env := newCLIEnv(t)
	for shell, want := range map[string]string{"bash": "__start_apiusage", "zsh": "#compdef apiusage", "fish": "complete -c apiusage"} {
		out := env.ok(t, "completion", shell)
		if !strings.Contains(out, want) {
			t.Errorf("completion %s lacks %q", shell, want)
		}
	}
	// Flag values complete from the command's own lists.
	out := env.ok(t, cobra.ShellCompRequestCmd, "query", "org", "--group-by", "")
	for _, want := range []string{"OAuthClientId", "TemplateUri", "HttpMethod"} {
		if !strings.Contains(out, want) {
			t.Errorf("completion of --group-by:\n%s\nlacks %s", out, want)
		}
	}
}

func TestCLIHelpHasExamples(t *testing.T) {
	env := newCLIEnv(t)
	var paths [][]string
	var walk func(prefix []string, cmds []*cobra.Command)
	walk = func(prefix []string, cmds []*cobra.Command) {
		for _, c := range cmds {
			p := append(append([]string(nil), prefix...), c.Name())
			paths = append(paths, p)
			walk(p, c.Commands())
		}
	}
	walk(nil, cliCommands(func(string) string { return "" }, nil, nil))
	if len(paths) < 15 {
		t.Fatalf("found %d commands, want every client command", len(paths))
	}
	for _, p := range paths {
		out := env.ok(t, append(p, "--help")...)
		if !strings.Contains(out, "Examples:\n  apiusage "+strings.Join(p, " ")) {
			t.Errorf("apiusage %s --help has no example of itself:\n%s", strings.Join(p, " "), out)
		}
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{usageError{errors.New("bad flag")}, 1},
		{fmt.Errorf("query org: %w", errors.New("connection refused")), 2},
		{fmt.Errorf("wrapped: %w", usageError{errors.New("x")}), 1},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
