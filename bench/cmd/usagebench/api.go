package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// apiServer is an apiusage serve process of the suite's own.
type apiServer struct {
	bin, data, addr string
	debugAddr       string // serve --debug-addr, when profiling
	env             []string
	cmd             *exec.Cmd
	exited          chan error
	log             *os.File
}

// start starts the server and returns how long it took to answer /healthz.
func (s *apiServer) start(ctx context.Context) (time.Duration, error) {
	logf, err := os.OpenFile(filepath.Join(filepath.Dir(s.data), "apiusage.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	began := time.Now()
	args := []string{"serve", "--addr", s.addr, "--data", s.data, "--log-level", "warn"}
	if s.debugAddr != "" {
		args = append(args, "--debug-addr", s.debugAddr)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return 0, fmt.Errorf("start apiusage: %w", err)
	}
	s.cmd, s.log, s.exited = cmd, logf, make(chan error, 1)
	go func() { s.exited <- cmd.Wait() }()
	hc := &http.Client{Timeout: time.Second}
	deadline := began.Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.exited:
			s.exited <- err
			return 0, fmt.Errorf("apiusage exited at start (%v); see %s", err, logf.Name())
		case <-ctx.Done():
			return 0, ctx.Err()
		default:
		}
		resp, err := hc.Get("http://" + s.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(began), nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, errors.New("apiusage did not answer /healthz within 5 minutes")
}

func (s *apiServer) pid() int { return s.cmd.Process.Pid }

// kill ends the server with SIGKILL, as a crash would.
func (s *apiServer) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.log.Close()
}

// stop ends the server gracefully.
func (s *apiServer) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	defer s.log.Close()
	select {
	case err := <-s.exited:
		return err
	case <-time.After(2 * time.Minute):
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
		return errors.New("apiusage did not stop within 2 minutes: killed")
	}
}

// api is an HTTP client of the Usage API with one client's token.
type api struct {
	base  string
	hc    *http.Client
	token string
	// polls is the buffer execute reads results bodies into, reused from
	// poll to poll and from execution to execution (see execute).
	polls []byte
}

func newAPI(base string, conns int) *api {
	return &api{base: base, hc: &http.Client{Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true,
	}}}
}

// login gets a token for the client (usage-api.md §6).
func (a *api) login(ctx context.Context, id, secret string) (*api, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/oauth/token",
		strings.NewReader("grant_type=client_credentials"))
	req.SetBasicAuth(id, secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := a.send(req, http.StatusOK, &tok); err != nil {
		return nil, fmt.Errorf("login %s: %w", id, err)
	}
	return &api{base: a.base, hc: a.hc, token: tok.AccessToken}, nil
}

// call sends a JSON request and decodes the answer, which must have the
// wanted status.
func (a *api) call(ctx context.Context, method, path string, body any, want int, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return a.send(req, want, out)
}

func (a *api) send(req *http.Request, want int, out any) error {
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %.300s", req.Method, req.URL.Path, resp.Status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", req.Method, req.URL.Path, err)
		}
	}
	return nil
}

// ingest posts one NDJSON batch.
func (a *api) ingest(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/api/v2/usage/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	return a.send(req, http.StatusAccepted, nil)
}

type createdClient struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

// createOrganization creates an organization and returns its id and first
// client.
func (a *api) createOrganization(ctx context.Context, name string) (string, createdClient, error) {
	var out struct {
		ID          string        `json:"id"`
		AdminClient createdClient `json:"adminClient"`
	}
	err := a.call(ctx, http.MethodPost, "/api/v2/organizations", map[string]string{"name": name}, http.StatusCreated, &out)
	return out.ID, out.AdminClient, err
}

// createClient registers a client in the caller's organization.
func (a *api) createClient(ctx context.Context, name string, perms []string) (createdClient, error) {
	var out createdClient
	err := a.call(ctx, http.MethodPost, "/api/v2/oauth/clients",
		map[string]any{"name": name, "permissions": perms}, http.StatusCreated, &out)
	return out, err
}

// resultRow is an ApiUsageRow (usage-api.md §3).
type resultRow struct {
	ClientID       string     `json:"clientId"`
	ClientName     string     `json:"clientName"`
	OrganizationID string     `json:"organizationId"`
	UserID         string     `json:"userId"`
	TemplateURI    string     `json:"templateUri"`
	HTTPMethod     string     `json:"httpMethod"`
	Status200      int64      `json:"status200"`
	Status300      int64      `json:"status300"`
	Status400      int64      `json:"status400"`
	Status500      int64      `json:"status500"`
	Status429      int64      `json:"status429"`
	Requests       int64      `json:"requests"`
	Date           *time.Time `json:"date"`
}

type queryResult struct {
	Results     []resultRow `json:"results"`
	QueryStatus string      `json:"queryStatus"`
	Cursors     *struct {
		After string `json:"after"`
	} `json:"cursors"`
}

// pollInterval is how often a running execution is polled: tight, so that
// the measured latency is the server's and not the poller's.
const pollInterval = time.Millisecond

// execute starts an execution (POST path with body, or GET path when body
// is nil) and polls its results until Complete, following the pages of a
// simple search. It returns the raw bodies of the Complete pages and the
// time from the start to the last page.
//
// Bodies are read into a buffer the api keeps from poll to poll and from
// execution to execution, not into a fresh one each: a Complete body of the
// largest query is 45 MB, and on a VM where memory touched for the first
// time costs tens of microseconds a page, a fresh buffer's page faults
// (about a quarter of a second for 45 MB) would be the runner's own time
// counted as apiusage's latency. So the pages returned are valid only until
// the next execute of the same api, which is why its callers decode them at
// once; and execute is not safe for concurrent use.
func (a *api) execute(ctx context.Context, path string, body any, pageSize int) ([][]byte, time.Duration, error) {
	began := time.Now()
	method := http.MethodPost
	if body == nil {
		method = http.MethodGet
	}
	var x struct {
		ExecutionID string `json:"executionId"`
		ResultsURI  string `json:"resultsUri"`
	}
	if err := a.call(ctx, method, path, body, http.StatusAccepted, &x); err != nil {
		return nil, 0, err
	}
	results := x.ResultsURI
	if pageSize > 0 {
		results += "?pageSize=" + fmt.Sprint(pageSize)
	}
	// Pages are read one after another into buf; a Running body is
	// dropped, so the next poll reads over it.
	buf := a.polls[:0]
	defer func() { a.polls = buf[:0] }()
	var pages [][]byte
	for {
		start := len(buf)
		var status, after string
		var err error
		buf, status, after, err = a.poll(ctx, results, buf)
		if err != nil {
			return nil, 0, err
		}
		b := buf[start:]
		switch status {
		case "Running":
			buf = buf[:start]
			time.Sleep(pollInterval)
			continue
		case "Complete":
		default:
			return nil, 0, fmt.Errorf("execution %s: %s: %.300s", x.ExecutionID, status, b)
		}
		// Full slice expression: a later page appended to buf must not
		// write into this one's capacity.
		pages = append(pages, b[:len(b):len(b)])
		if after == "" {
			return pages, time.Since(began), nil
		}
		results = x.ResultsURI + "?pageSize=" + fmt.Sprint(pageSize) + "&after=" + url.QueryEscape(after)
	}
}

// poll reads one results page, appended to buf, and picks its status and
// cursor without decoding the rows, which is left until the timing is
// over.
func (a *api) poll(ctx context.Context, path string, buf []byte) ([]byte, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return buf, "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return buf, "", "", err
	}
	start := len(buf)
	buf, err = readBody(buf, resp.Body, resp.ContentLength)
	resp.Body.Close()
	if err != nil {
		return buf, "", "", err
	}
	b := buf[start:]
	if resp.StatusCode != http.StatusOK {
		return buf, "", "", fmt.Errorf("GET %s: %s: %.300s", path, resp.Status, b)
	}
	status, after := scanStatus(b)
	return buf, status, after, nil
}

// readBody appends r's bytes to buf until EOF, growing buf at most once
// when the length n is known (n < 0 when not).
func readBody(buf []byte, r io.Reader, n int64) ([]byte, error) {
	if n > 0 {
		buf = slices.Grow(buf, int(n)+1) // +1: room to see EOF without growing
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(64<<10, cap(buf)/2))
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// scanStatus finds queryStatus and cursors.after in a results body. They
// follow the rows, as apiusage writes them: a Complete body of megabytes is
// searched in its tail first, and whole only when its status is not there.
// Searching it whole every time cost the timed poll about 1.5 ns a byte
// (bytes.LastIndex is not vectorised), 170 ms for the largest body of the
// suite, which does not hold the absent "after" key.
func scanStatus(b []byte) (status, after string) {
	find := func(b []byte, key string) string {
		i := bytes.LastIndex(b, []byte(`"`+key+`":"`))
		if i < 0 {
			return ""
		}
		rest := b[i+len(key)+4:]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			return ""
		}
		return string(rest[:j])
	}
	if tail := b[max(0, len(b)-statusTail):]; find(tail, "queryStatus") != "" {
		b = tail
	}
	return find(b, "queryStatus"), find(b, "after")
}

// statusTail is the length of a results body's end that holds its status
// and cursors: a cursor is under a hundred bytes.
const statusTail = 1024
