package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// The helpers of the end-to-end tests (the TestE2E... tests of the
// e2e_*_test.go files). They build on harness_test.go: startServer, token,
// do, query, createOrganization, createClient and ingest.

// e2eResponse is an answer read whole, for the tests that look at more than
// the status: headers, error bodies, exact bytes.
type e2eResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// String shows the response in a failure message.
func (r e2eResponse) String() string {
	return fmt.Sprintf("status %d, body %s", r.Status, bytes.TrimSpace(r.Body))
}

// e2eRequest is a request the raw helpers send.
type e2eRequest struct {
	Method, Path string
	// Token is sent as a bearer token when set.
	Token string
	// Body is sent as is; ContentType defaults to application/json when
	// there is a body.
	Body        []byte
	ContentType string
	// Header adds headers (Authorization included, to send odd schemes).
	Header map[string]string
}

// e2eRaw sends the request and returns the answer, whatever its status.
func (s *testServer) e2eRaw(tb testing.TB, r e2eRequest) e2eResponse {
	tb.Helper()
	resp, err := s.e2eTry(r)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

// e2eTry is e2eRaw for goroutines other than the test's: it returns the
// error rather than failing the test.
func (s *testServer) e2eTry(r e2eRequest) (e2eResponse, error) {
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequest(r.Method, s.URL+r.Path, body)
	if err != nil {
		return e2eResponse{}, err
	}
	if r.Body != nil {
		ct := r.ContentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return e2eResponse{}, fmt.Errorf("%s %s: %w", r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return e2eResponse{}, fmt.Errorf("%s %s: read body: %w", r.Method, r.Path, err)
	}
	return e2eResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// e2eJSON encodes v.
func e2eJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// e2eErrorBody is the contract's ErrorBody as a test reads it.
type e2eErrorBody struct {
	Message           string            `json:"message"`
	Code              string            `json:"code"`
	Status            int               `json:"status"`
	MessageWithParams string            `json:"messageWithParams"`
	MessageParams     map[string]string `json:"messageParams"`
	ContextID         string            `json:"contextId"`
	Details           []any             `json:"details"`
	Errors            []e2eErrorBody    `json:"errors"`
}

// e2eCheckError checks that the response is a full ErrorBody (usage-api.md §5)
// with the status and code: every field present and of its type, status
// repeated in the body, a contextId equal to the ININ-Correlation-Id header,
// details and errors arrays. It returns the body for further checks.
func e2eCheckError(tb testing.TB, what string, resp e2eResponse, wantStatus int, wantCode string) e2eErrorBody {
	tb.Helper()
	if resp.Status != wantStatus {
		tb.Fatalf("%s: got %s, want status %d (%s)", what, resp, wantStatus, wantCode)
	}
	body, problems := e2eErrorProblems(resp, wantStatus, wantCode)
	for _, p := range problems {
		tb.Errorf("%s: %s", what, p)
	}
	return body
}

// e2eErrorProblems lists every way the response falls short of a full
// ErrorBody with the status and code.
func e2eErrorProblems(resp e2eResponse, wantStatus int, wantCode string) (e2eErrorBody, []string) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var body e2eErrorBody
	if resp.Status != wantStatus {
		bad("got %s, want status %d", resp, wantStatus)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		bad("Content-Type %q, want application/json", ct)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(resp.Body, &fields); err != nil {
		bad("body %s is not a JSON object: %v", resp.Body, err)
		return body, problems
	}
	kinds := map[string]byte{
		"message": '"', "code": '"', "status": '0', "messageWithParams": '"',
		"messageParams": '{', "contextId": '"', "details": '[', "errors": '[',
	}
	for _, name := range slices.Sorted(maps.Keys(kinds)) {
		kind := kinds[name]
		v, ok := fields[name]
		if !ok {
			bad("ErrorBody %s has no %q", resp.Body, name)
			continue
		}
		first := byte(0)
		if len(v) > 0 {
			first = v[0]
		}
		if kind == '0' {
			if first < '0' || first > '9' {
				bad("ErrorBody %q is %s, want a number", name, v)
			}
		} else if first != kind {
			bad("ErrorBody %q is %s, want a JSON value starting with %c", name, v, kind)
		}
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		bad("decode ErrorBody %s: %v", resp.Body, err)
		return body, problems
	}
	if body.Code != wantCode || body.Status != wantStatus {
		bad("ErrorBody code %q status %d, want %q %d; body %s", body.Code, body.Status, wantCode, wantStatus, resp.Body)
	}
	if body.Message == "" || body.MessageWithParams == "" {
		bad("ErrorBody without a message: %s", resp.Body)
	}
	header := resp.Header.Get("ININ-Correlation-Id")
	if header == "" || body.ContextID != header {
		bad("contextId %q, ININ-Correlation-Id header %q: want equal and set", body.ContextID, header)
	}
	return body, problems
}

// e2eCheckOAuthError checks that the response is the login service's error
// shape (usage-api.md §6) with the status and error code.
func e2eCheckOAuthError(tb testing.TB, what string, resp e2eResponse, wantStatus int, wantError string) {
	tb.Helper()
	if resp.Status != wantStatus {
		tb.Fatalf("%s: got %s, want status %d", what, resp, wantStatus)
	}
	var fields map[string]any
	if err := json.Unmarshal(resp.Body, &fields); err != nil {
		tb.Fatalf("%s: body %s is not a JSON object: %v", what, resp.Body, err)
	}
	if fields["error"] != wantError {
		tb.Errorf("%s: error %v, want %q; body %s", what, fields["error"], wantError, resp.Body)
	}
	for _, k := range []string{"description", "error_description"} {
		if s, ok := fields[k].(string); !ok || s == "" {
			tb.Errorf("%s: %q is %v, want a non-empty string; body %s", what, k, fields[k], resp.Body)
		}
	}
	if _, ok := fields["access_token"]; ok {
		tb.Errorf("%s: a failed login carries an access_token: %s", what, resp.Body)
	}
}

// e2eLogin posts client credentials the way the SDKs do and returns the answer.
func (s *testServer) e2eLogin(tb testing.TB, id, secret string) e2eResponse {
	tb.Helper()
	return s.e2eRawLogin(tb, "grant_type=client_credentials", id, secret)
}

// e2eRawLogin posts a form to /oauth/token with Basic credentials when id is
// set.
func (s *testServer) e2eRawLogin(tb testing.TB, form, id, secret string) e2eResponse {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/oauth/token", strings.NewReader(form))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		tb.Fatalf("POST /oauth/token: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return e2eResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// e2eExecution is a UsageExecutionResult.
type e2eExecution struct {
	ExecutionID string `json:"executionId"`
	ResultsURI  string `json:"resultsUri"`
}

// e2eStart starts an execution (POST with body, or GET when body is nil) and
// returns it without waiting.
func (s *testServer) e2eStart(tb testing.TB, token, path string, body any) e2eExecution {
	tb.Helper()
	method := http.MethodPost
	if body == nil {
		method = http.MethodGet
	}
	var x e2eExecution
	s.do(tb, token, method, path, body, http.StatusAccepted, &x)
	if x.ExecutionID == "" || !strings.HasPrefix(x.ResultsURI, "/api/v2/") || !strings.Contains(x.ResultsURI, x.ExecutionID) {
		tb.Fatalf("%s %s: got %+v, want an e2eExecution id and a results URI naming it", method, path, x)
	}
	return x
}

// e2ePage is one page of a simple search's results.
type e2ePage struct {
	QueryStatus string           `json:"queryStatus"`
	Results     []map[string]any `json:"results"`
	Cursors     *struct {
		After string `json:"after"`
	} `json:"cursors"`
}

// e2eWait polls a results URI (with its query string) until the execution is
// no longer Running and returns the page.
func (s *testServer) e2eWait(tb testing.TB, token, uri string) e2ePage {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var page e2ePage
		s.do(tb, token, http.MethodGet, uri, nil, http.StatusOK, &page)
		if page.QueryStatus != "Running" {
			if page.QueryStatus != "Complete" {
				tb.Fatalf("GET %s: queryStatus %q, want Complete", uri, page.QueryStatus)
			}
			return page
		}
		if time.Now().After(deadline) {
			tb.Fatalf("GET %s: still Running after 30s", uri)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// e2eSearch runs a simple search and reads every page of its result with the
// page size (0: the server's default), checking that every page but the last
// is full and has a cursor, and that the last has none.
func (s *testServer) e2eSearch(tb testing.TB, token string, body any, pageSize int) []map[string]any {
	tb.Helper()
	x := s.e2eStart(tb, token, "/api/v2/usage/simplesearch", body)
	size := pageSize
	if size == 0 {
		size = 100
	}
	rows := []map[string]any{}
	uri := x.ResultsURI
	if pageSize != 0 {
		uri += fmt.Sprintf("?pageSize=%d", pageSize)
	}
	for pages := 0; ; pages++ {
		if pages > 25_000 {
			tb.Fatalf("simple search %s: more than 25,000 pages", x.ExecutionID)
		}
		page := s.e2eWait(tb, token, uri)
		rows = append(rows, page.Results...)
		if page.Cursors == nil {
			if len(page.Results) > size {
				tb.Fatalf("GET %s: %d rows in a page of %d", uri, len(page.Results), size)
			}
			return rows
		}
		if len(page.Results) != size {
			tb.Fatalf("GET %s: %d rows and a cursor, want a full page of %d", uri, len(page.Results), size)
		}
		uri = fmt.Sprintf("%s?pageSize=%d&after=%s", x.ResultsURI, size, page.Cursors.After)
	}
}

// e2eTotalRequests sums the requests column of rows.
func e2eTotalRequests(rows []map[string]any) int {
	n := 0
	for _, r := range rows {
		if v, ok := r["requests"].(float64); ok {
			n += int(v)
		}
	}
	return n
}

// e2eWaitRequests runs the query at path over all time until it counts want
// requests: accepted events are visible within a second (platform.md §4),
// so the deadline is that second with room for a loaded machine.
func (s *testServer) e2eWaitRequests(tb testing.TB, token, path string, want int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := e2eTotalRequests(s.query(tb, token, path, map[string]any{"interval": "1970/2100", "metrics": []string{"Requests"}}))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s over all time counts %d requests, want %d", path, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// e2eRows normalizes rows to what decoding their JSON gives, so that
// expectations compare with decoded answers (numbers become float64).
func e2eRows(tb testing.TB, rows any) []map[string]any {
	tb.Helper()
	out := []map[string]any{}
	if err := json.Unmarshal(e2eJSON(tb, rows), &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

// e2eDiffRows describes how got differs from want, or returns "" when equal.
func e2eDiffRows(got, want []map[string]any) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "got %d rows, want %d", len(got), len(want))
	shown := 0
	for i := range max(len(got), len(want)) {
		var g, w map[string]any
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if reflect.DeepEqual(g, w) {
			continue
		}
		fmt.Fprintf(&b, "\n  row %d:\n    got  %s\n    want %s", i, e2eRowString(g), e2eRowString(w))
		if shown++; shown == 5 {
			b.WriteString("\n  ...")
			break
		}
	}
	return b.String()
}

func e2eRowString(r map[string]any) string {
	if r == nil {
		return "(none)"
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range r {
			if !yield(k) {
				return
			}
		}
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, r[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// e2eWantQueryRows answers q with the storetest oracle over events and writes
// the rows as the contract's ApiUsageRow: every dimension field, empty when
// not grouped on; the requested metrics; the date (RFC 3339, UTC) with a
// granularity; a client's name as name(clientID) says.
func e2eWantQueryRows(tb testing.TB, events []apiusage.Event, q apiusage.Query, metrics []apiusage.Metric, name func(string) string) []map[string]any {
	tb.Helper()
	rows := []map[string]any{}
	for _, r := range storetest.Count(events, q) {
		w := map[string]any{
			"clientId": r.ClientID, "clientName": "", "organizationId": r.OrganizationID,
			"userId": r.UserID, "templateUri": r.TemplateURI, "httpMethod": r.Method,
		}
		if r.ClientID != "" {
			w["clientName"] = name(r.ClientID)
		}
		for _, m := range metrics {
			w[wireKey(string(m))] = r.Counts.Get(m)
		}
		if q.Granularity != apiusage.GranularityNone {
			w["date"] = r.Date.UTC().Format(time.RFC3339)
		}
		rows = append(rows, w)
	}
	return e2eRows(tb, rows)
}

// e2eWantSearchRows answers a simple search with the oracle: one row per day,
// client, method and template URI, in that order; every dimension field
// present, those of columns not asked for empty (the client id goes with the
// ClientName column), and of the metrics only those asked for.
func e2eWantSearchRows(tb testing.TB, events []apiusage.Event, q apiusage.Query, cols []apiusage.Column, name func(string) string) []map[string]any {
	tb.Helper()
	q.Granularity = apiusage.GranularityDay
	q.GroupBy = []apiusage.Dimension{apiusage.DimClient, apiusage.DimMethod, apiusage.DimTemplateURI}
	rows := []map[string]any{}
	for _, r := range storetest.Count(events, q) {
		w := map[string]any{
			"clientId": "", "clientName": "", "organizationId": "",
			"userId": "", "templateUri": "", "httpMethod": "",
		}
		for _, c := range cols {
			switch c {
			case apiusage.ColumnDate:
				w["date"] = r.Date.UTC().Format(time.RFC3339)
			case apiusage.ColumnClientName:
				w["clientId"], w["clientName"] = r.ClientID, name(r.ClientID)
			case apiusage.ColumnHTTPMethod:
				w["httpMethod"] = r.Method
			case apiusage.ColumnTemplateURI:
				w["templateUri"] = r.TemplateURI
			default:
				w[wireKey(string(c))] = r.Counts.Get(apiusage.Metric(c))
			}
		}
		rows = append(rows, w)
	}
	return e2eRows(tb, rows)
}

// e2eNDJSON writes events as newline-delimited JSON.
func e2eNDJSON(tb testing.TB, events []apiusage.Event) []byte {
	tb.Helper()
	var b bytes.Buffer
	for _, e := range events {
		b.Write(e2eJSON(tb, e))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// The real binary, for the tests that kill it.

// e2eBuildBinary builds apiusage from this package into a temporary directory
// of the test, as a user would (CGO_ENABLED=0), and returns its path. The Go
// build cache makes every build after the first a link step.
func e2eBuildBinary(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "apiusage")
	cmd := exec.Command("go", "build", "-o", path, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return path
}

// e2eProcess is apiusage serve running as a child process.
type e2eProcess struct {
	*testServer
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
	err    error // the exit status, once exited is closed
}

// e2eStartProcess runs the binary's serve on 127.0.0.1:0 over the data
// directory, reads its address from the "apiusage listening on" line of its
// stdout and waits for /healthz. The process is killed when the test ends,
// if it still runs.
func e2eStartProcess(tb testing.TB, bin, data string, env map[string]string) *e2eProcess {
	tb.Helper()
	ts := &testServer{
		BootstrapID:     "platform-admin",
		BootstrapSecret: "platform-admin-secret-for-tests",
		client:          &http.Client{Timeout: 30 * time.Second},
	}
	vars := map[string]string{
		"APIUSAGE_BOOTSTRAP_CLIENT_ID":     ts.BootstrapID,
		"APIUSAGE_BOOTSTRAP_CLIENT_SECRET": ts.BootstrapSecret,
		"APIUSAGE_HASH_COST":               "4",
		"APIUSAGE_LOG_LEVEL":               "warn",
	}
	for k, v := range env {
		vars[k] = v
	}
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", data)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	p := &e2eProcess{testServer: ts, cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if m := listeningLine.FindStringSubmatch(sc.Text()); m != nil && !sent {
				addr <- m[1]
				sent = true
			}
		}
		// Drain to the end so that the child never blocks on its stdout.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case ts.URL = <-addr:
	case <-p.exited:
		tb.Fatalf("apiusage serve exited before listening: %v\nstderr:\n%s", p.err, p.stderr.String())
	case <-time.After(30 * time.Second):
		tb.Fatalf("apiusage serve did not print its address within 30s\nstderr:\n%s", p.stderr.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := ts.client.Get(ts.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("GET /healthz did not answer 200 (last: %v)\nstderr:\n%s", err, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signal sends sig to the process.
func (p *e2eProcess) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("send %v: %v", sig, err)
	}
}

// waitExit waits for the process to exit and returns its exit status.
func (p *e2eProcess) waitExit(tb testing.TB) error {
	tb.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(time.Minute):
		tb.Fatalf("apiusage serve did not exit within a minute\nstderr:\n%s", p.stderr.String())
		return nil
	}
}
