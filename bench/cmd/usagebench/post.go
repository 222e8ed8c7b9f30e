package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ingestPath is where batches are posted (usage-api.md, platform.md §4).
const ingestPath = "/api/v2/usage/events"

// poster posts NDJSON batches on one keep-alive connection of its own: the
// request a net/http Client would send, byte for byte, written with one
// writev of its head and the batch.
//
// The load generator shares the machine's cores with the server it
// measures, so its cost is taken from the measured rate. Through net/http,
// a body of known length is copied in 32 KiB chunks (io.LimitReader hides
// the bytes.Reader's WriteTo) and written with about ninety write calls a
// 3 MB batch; here the batch goes from its buffer to the socket in one
// call. The answer is read with http.ReadResponse and handled as api.send
// handles it: anything but 202 is an error with the status and the start
// of the body.
//
// A poster is not safe for concurrent use: each sending goroutine has its
// own, so that there are as many connections as goroutines, as with a
// Transport whose idle pool holds one connection per poster.
type poster struct {
	ctx   context.Context
	addr  string // host:port to dial
	path  string // the request's target, e.g. /api/v2/usage/events
	start []byte // the request head before the Content-Length value
	end   []byte // the head from the end of that value to the blank line
	head  []byte // start, Content-Length, end: rebuilt for each batch
	req   *http.Request

	conn net.Conn
	br   *bufio.Reader
	stop func() bool // unregisters the context's AfterFunc of conn
	resp []byte      // the answer's body, reused
}

// newPoster returns a poster of batches to a's ingest endpoint, with a's
// token; its connection is dialed by the first post. ctx ends the poster:
// a post in flight when it ends fails at once.
func newPoster(ctx context.Context, a *api) (*poster, error) {
	u, err := url.Parse(a.base + ingestPath)
	if err != nil {
		return nil, fmt.Errorf("ingest url: %w", err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("ingest url %s: only http is posted to directly", u)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	// The head net/http writes for a.ingest's request, in its order:
	// request line, Host, User-Agent, Content-Length, then the other
	// headers sorted by name. (No Accept-Encoding: the api's Transport
	// has compression disabled.)
	start := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: ", u.RequestURI(), u.Host)
	end := []byte("\r\n")
	if a.token != "" {
		end = fmt.Appendf(end, "Authorization: Bearer %s\r\n", a.token)
	}
	end = append(end, "Content-Type: application/x-ndjson\r\n\r\n"...)
	// ReadResponse needs the request only for its method (a HEAD's
	// answer has no body).
	req := &http.Request{Method: http.MethodPost, URL: u}
	return &poster{ctx: ctx, addr: addr, path: u.Path, start: start, end: end, req: req}, nil
}

// post sends one batch and waits for its answer: nil when it is 202.
// After an error the connection is closed, and the next post dials anew.
func (p *poster) post(body []byte) error {
	if err := p.ctx.Err(); err != nil {
		return err
	}
	if p.conn == nil {
		if err := p.dial(); err != nil {
			return err
		}
	}
	status, err := p.roundTrip(body)
	if err != nil {
		p.Close()
		if cerr := p.ctx.Err(); cerr != nil {
			// The deadline set when ctx ended is what failed.
			return fmt.Errorf("POST %s: %w", p.path, cerr)
		}
		return fmt.Errorf("POST %s: %w", p.path, err)
	}
	if status != "" {
		return fmt.Errorf("POST %s: %s: %.300s", p.path, status, p.resp)
	}
	return nil
}

func (p *poster) dial() error {
	var d net.Dialer
	conn, err := d.DialContext(p.ctx, "tcp", p.addr)
	if err != nil {
		return fmt.Errorf("POST %s: %w", p.path, err)
	}
	p.conn = conn
	if p.br == nil {
		p.br = bufio.NewReaderSize(conn, 4<<10)
	} else {
		p.br.Reset(conn)
	}
	// A context that ends interrupts a write or read in flight, as
	// net/http cancels a request.
	p.stop = context.AfterFunc(p.ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

// roundTrip writes the request and reads its answer. It returns the
// answer's status line when the answer is not 202 (its body in p.resp),
// and an error when the exchange failed, after which the connection must
// not be used again.
func (p *poster) roundTrip(body []byte) (string, error) {
	p.head = append(p.head[:0], p.start...)
	p.head = strconv.AppendInt(p.head, int64(len(body)), 10)
	p.head = append(p.head, p.end...)
	bufs := net.Buffers{p.head, body}
	if _, err := bufs.WriteTo(p.conn); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(p.br, p.req)
	if err != nil {
		return "", err
	}
	p.resp, err = readBody(p.resp[:0], resp.Body, resp.ContentLength)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.Close {
		// The server closes the connection after this answer: the next
		// post dials anew, as a Transport would.
		p.Close()
	}
	if resp.StatusCode != http.StatusAccepted {
		return resp.Status, nil
	}
	return "", nil
}

// Close closes the poster's connection, if it has one.
func (p *poster) Close() error {
	if p.conn == nil {
		return nil
	}
	p.stop()
	err := p.conn.Close()
	p.conn = nil
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
