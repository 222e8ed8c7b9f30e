package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// rawRecorder is an HTTP/1.1 server of a few lines that keeps every
// request's bytes as they came, by connection, and answers each with
// answer.
type rawRecorder struct {
	ln     net.Listener
	answer string
	mu     sync.Mutex
	conns  [][]string // the raw requests of each connection
}

func newRawRecorder(t *testing.T, answer string) *rawRecorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rawRecorder{ln: ln, answer: answer}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, nil)
			i := len(r.conns) - 1
			r.mu.Unlock()
			go r.serve(c, i)
		}
	}()
	return r
}

func (r *rawRecorder) serve(c net.Conn, i int) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		var head bytes.Buffer
		n := -1
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				n, _ = strconv.Atoi(strings.TrimSpace(v))
			}
			if line == "\r\n" {
				break
			}
		}
		body := make([]byte, max(n, 0))
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		r.mu.Lock()
		r.conns[i] = append(r.conns[i], head.String()+string(body))
		r.mu.Unlock()
		if _, err := io.WriteString(c, r.answer); err != nil {
			return
		}
	}
}

func (r *rawRecorder) requests() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]string, len(r.conns))
	for i, c := range r.conns {
		out[i] = append([]string(nil), c...)
	}
	return out
}

const accepted = "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"accepted\":100}"

// TestPosterWritesWhatNetHTTPWrote compares, byte for byte, the request a
// poster writes with the one api.ingest writes through net/http.
func TestPosterWritesWhatNetHTTPWrote(t *testing.T) {
	rec := newRawRecorder(t, accepted)
	a := newAPI("http://"+rec.ln.Addr().String(), 1)
	a.token = "tok-123"
	body := []byte(`{"organizationId":"o","clientId":"c"}` + "\n" + `{"organizationId":"p"}` + "\n")
	if err := a.ingest(context.Background(), body); err != nil {
		t.Fatal(err)
	}
	p, err := newPoster(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.post(body); err != nil {
		t.Fatal(err)
	}
	reqs := rec.requests()
	if len(reqs) != 2 || len(reqs[0]) != 1 || len(reqs[1]) != 1 {
		t.Fatalf("requests by connection %q, want one on each of two", reqs)
	}
	if reqs[0][0] != reqs[1][0] {
		t.Fatalf("net/http wrote\n%q\nthe poster\n%q", reqs[0][0], reqs[1][0])
	}
}

// TestPosterSendsBatchesOnOneConnection checks each request of several
// batches as a server sees it: method, path, the headers that matter and
// the body's bytes, all on one keep-alive connection.
func TestPosterSendsBatchesOnOneConnection(t *testing.T) {
	var (
		mu      sync.Mutex
		remotes = map[string]bool{}
		got     [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		switch {
		case r.Method != http.MethodPost || r.URL.Path != ingestPath:
			t.Errorf("%s %s, want POST %s", r.Method, r.URL.Path, ingestPath)
		case r.Header.Get("Content-Type") != "application/x-ndjson":
			t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
		case r.Header.Get("Authorization") != "Bearer secret-token":
			t.Errorf("Authorization %q", r.Header.Get("Authorization"))
		case r.ContentLength != int64(len(b)) || len(r.TransferEncoding) > 0:
			t.Errorf("Content-Length %d, Transfer-Encoding %v for %d bytes", r.ContentLength, r.TransferEncoding, len(b))
		}
		mu.Lock()
		remotes[r.RemoteAddr] = true
		got = append(got, b)
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"accepted":1}`)
	}))
	defer srv.Close()
	a := newAPI(srv.URL, 1)
	a.token = "secret-token"
	p, err := newPoster(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var sent [][]byte
	for i := range 5 {
		// Sizes from a line to a few hundred kilobytes, so that a write
		// does not go out in one piece.
		body := bytes.Repeat(fmt.Appendf(nil, `{"organizationId":"org-%d","n":%d}`+"\n", i, i), 1+i*5000)
		sent = append(sent, body)
		if err := p.post(body); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(sent) {
		t.Fatalf("server got %d batches, want %d", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("batch %d: server got %d bytes, want the %d sent", i, len(got[i]), len(sent[i]))
		}
	}
	if len(remotes) != 1 {
		t.Errorf("batches came on %d connections, want one kept alive", len(remotes))
	}
}

// TestPosterAnswers checks what a post returns for each answer, as
// api.send would: only 202 is success; any other status is an error with
// the status and the start of the body; and after any answer, even one
// that closes the connection, the next post goes through.
func TestPosterAnswers(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		close   bool
		wantErr string // "" for success
	}{
		{"accepted", http.StatusAccepted, `{"accepted":1}`, false, ""},
		{"accepted, connection closed", http.StatusAccepted, `{}`, true, ""},
		{"bad request", http.StatusBadRequest, `{"message":"line 3: bad timestamp"}`, false, "400 Bad Request: {\"message\":\"line 3: bad timestamp\"}"},
		{"server error, connection closed", http.StatusInternalServerError, "disk full", true, "500 Internal Server Error: disk full"},
		{"ok is not accepted", http.StatusOK, "{}", false, "200 OK: {}"},
		{"too many requests", http.StatusTooManyRequests, strings.Repeat("x", 1000), false, "429 Too Many Requests: " + strings.Repeat("x", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := firstThenAccepted(func(w http.ResponseWriter) {
				if tt.close {
					w.Header().Set("Connection", "close")
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			defer srv.Close()
			p, err := newPoster(context.Background(), newAPI(srv.URL, 1))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			err = p.post([]byte("{}\n"))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("post: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("post succeeded, want an error with %q", tt.wantErr)
			case tt.wantErr != "" && !strings.HasSuffix(err.Error(), tt.wantErr):
				t.Fatalf("post: %v, want an error ending %q", err, tt.wantErr)
			}
			if err := p.post([]byte("{}\n")); err != nil {
				t.Fatalf("the post after: %v", err)
			}
		})
	}
}

// TestPosterReconnectsAfterAFailure: a connection that fails (here the
// server drops it) fails its post, and the next post dials anew.
func TestPosterReconnectsAfterAFailure(t *testing.T) {
	srv := firstThenAccepted(func(w http.ResponseWriter) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
	defer srv.Close()
	p, err := newPoster(context.Background(), newAPI(srv.URL, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.post([]byte("{}\n")); err == nil {
		t.Fatal("post on a dropped connection succeeded")
	}
	if err := p.post([]byte("{}\n")); err != nil {
		t.Fatalf("post after the failure: %v", err)
	}
}

// TestPosterStopsWithItsContext: a post waiting for an answer returns when
// the poster's context ends, with the context's error.
func TestPosterStopsWithItsContext(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		close(arrived)
		<-release
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := newPoster(ctx, newAPI(srv.URL, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	go func() { <-arrived; cancel() }()
	if err := p.post([]byte("{}\n")); !errors.Is(err, context.Canceled) {
		t.Fatalf("post = %v, want context.Canceled", err)
	}
	if err := p.post([]byte("{}\n")); !errors.Is(err, context.Canceled) {
		t.Fatalf("post after the end = %v, want context.Canceled", err)
	}
}

// firstThenAccepted starts a server that reads each request's body and
// answers the first with first, every later one with 202.
func firstThenAccepted(first func(http.ResponseWriter)) *httptest.Server {
	answered := false
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if !answered {
			answered = true
			first(w)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
}
