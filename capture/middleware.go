package capture

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiusage/apiusage"
)

// Policy tells what the middleware does with a request that carries no
// valid token.
type Policy int

// Policies for requests without a valid token.
const (
	// PassUnrecorded serves the request and records nothing: with no token
	// there is no organization to count it in. It is counted in the
	// requests metric (auth="anonymous"), so nothing is lost unseen. The
	// middleware's default, since it must not change how the API behaves.
	PassUnrecorded Policy = iota
	// PassRecorded serves the request and records it under
	// Config.Anonymous.
	PassRecorded
	// Reject answers 401 with the contract's ErrorBody and records nothing:
	// the proxy's default.
	Reject
)

// DefaultUnmatched is the template of requests no route matches.
const DefaultUnmatched = "unmatched"

// Config configures the middleware.
type Config struct {
	// Recorder receives the events. Required.
	Recorder *Recorder
	// Verifier verifies bearer tokens. Required.
	Verifier *Verifier
	// Routes, when set, gives the template of requests the wrapped handler
	// did not route with an http.ServeMux pattern.
	Routes *Routes
	// Mux, when set, is asked for the pattern of a request whose
	// Request.Pattern is still empty after serving: the case when a
	// handler between the middleware and the mux served a copy of the
	// request (r.WithContext), on which the mux set the pattern.
	Mux *http.ServeMux
	// Unmatched is the template of requests with no pattern and no route
	// (DefaultUnmatched). Raw paths are never recorded: they would leak
	// identifiers and explode the number of distinct templates.
	Unmatched string
	// Unauthenticated is what happens to requests without a valid token.
	Unauthenticated Policy
	// Anonymous is the identity of requests without a valid token under
	// PassRecorded; it needs an organization and a client id.
	Anonymous Identity
	// Registerer, when set, gets the middleware's metrics.
	Registerer prometheus.Registerer
	// Logger logs tokens refused (at debug level); nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means the Recorder's, a clock that is cheap to
	// read and at most a few milliseconds behind.
	Now func() time.Time
}

// Middleware returns a middleware that records every request to
// cfg.Recorder: its time, the organization, client and user of its bearer
// token, its template, method and final status. The template is the
// http.ServeMux pattern the request was routed with (without method, host
// and leading slash), else the route table's match, else cfg.Unmatched.
// The status is the one the handler wrote last; 200 when it wrote none; 500
// when it panicked (the panic goes on, so the server behaves as without the
// middleware); 101 when it took the connection over without writing one.
//
// Recording never blocks nor fails the request; see Recorder.
func Middleware(cfg Config) (func(http.Handler) http.Handler, error) {
	m, err := newMiddleware(cfg)
	if err != nil {
		return nil, err
	}
	return m.wrap, nil
}

type middleware struct {
	cfg                         Config
	log                         *slog.Logger
	now                         func() time.Time
	reqValid, reqAnon, reqRefus prometheus.Counter
	// writers lends statusWriters, so that a request allocates none: a
	// handler may not use its ResponseWriter once it has returned, so the
	// writer is free again then.
	writers sync.Pool
}

func newMiddleware(cfg Config) (*middleware, error) {
	var errs []error
	if cfg.Recorder == nil {
		errs = append(errs, errors.New("capture: a Recorder is required"))
	}
	if cfg.Verifier == nil {
		errs = append(errs, errors.New("capture: a Verifier is required"))
	}
	if cfg.Unauthenticated == PassRecorded && (cfg.Anonymous.OrganizationID == "" || cfg.Anonymous.ClientID == "") {
		errs = append(errs, errors.New("capture: recording anonymous requests needs an organization and a client id"))
	}
	if cfg.Unmatched == "" {
		cfg.Unmatched = DefaultUnmatched
	}
	if len(cfg.Unmatched) > apiusage.MaxFieldLength {
		errs = append(errs, errors.New("capture: unmatched template too long"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m := &middleware{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	m.writers.New = func() any { return new(statusWriter) }
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = cfg.Recorder.clock.Now
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "apiusage", Subsystem: "capture", Name: "requests_total",
		Help: "Requests seen, by authentication: valid (a valid token), anonymous (none, or an invalid one, and served), rejected (answered 401).",
	}, []string{"auth"})
	m.reqValid = requests.WithLabelValues("valid")
	m.reqAnon = requests.WithLabelValues("anonymous")
	m.reqRefus = requests.WithLabelValues("rejected")
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(requests); err != nil {
			return nil, fmt.Errorf("register middleware metrics: %w", err)
		}
	}
	return m, nil
}

func (m *middleware) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(next, w, r)
	})
}

func (m *middleware) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	now := m.now()
	var auth string
	// The header map's own key: Header.Get would canonicalize it first.
	if v := r.Header["Authorization"]; len(v) > 0 {
		auth = v[0]
	}
	token, hasToken := bearer(auth)
	var id Identity
	var err error
	if hasToken {
		id, err = m.cfg.Verifier.verifyAt(r.Context(), token, now)
	} else {
		err = ErrNoToken
	}
	if err != nil {
		switch m.cfg.Unauthenticated {
		case Reject:
			m.reqRefus.Inc()
			m.log.Debug("token refused", "err", err, "method", r.Method)
			writeUnauthorized(w, err)
			return
		case PassRecorded:
			id = m.cfg.Anonymous
		default:
			m.reqAnon.Inc()
			next.ServeHTTP(w, r)
			return
		}
		m.reqAnon.Inc()
	} else {
		m.reqValid.Inc()
	}

	sw := m.writers.Get().(*statusWriter)
	*sw = statusWriter{ResponseWriter: w}
	defer func() {
		status := sw.status
		if v := recover(); v != nil {
			// A handler that aborts on purpose after writing its status
			// (ReverseProxy when the client goes away mid-body) keeps it;
			// any other panic is the server failing: a 500. The writer
			// is not reused: whoever recovers the panic may still hold it.
			if v != http.ErrAbortHandler || status == 0 {
				status = http.StatusInternalServerError
			}
			m.record(r, id, now, status)
			panic(v)
		}
		if status == 0 {
			status = http.StatusOK
			if sw.hijacked {
				status = http.StatusSwitchingProtocols
			}
		}
		m.record(r, id, now, status)
		*sw = statusWriter{}
		m.writers.Put(sw)
	}()
	next.ServeHTTP(sw, r)
}

func (m *middleware) record(r *http.Request, id Identity, now time.Time, status int) {
	m.cfg.Recorder.Record(apiusage.Event{
		Time:           now,
		OrganizationID: id.OrganizationID,
		ClientID:       id.ClientID,
		ClientName:     id.ClientName,
		UserID:         id.UserID,
		TemplateURI:    m.template(r),
		Method:         r.Method,
		Status:         status,
	})
}

// template returns the request's template: its mux pattern, its route, or
// the unmatched template.
func (m *middleware) template(r *http.Request) string {
	pattern := r.Pattern
	if r.Method == http.MethodConnect {
		// The mux may set a CONNECT request's pattern to the raw path it
		// redirects to, and a raw path is never to be recorded.
		pattern = ""
	} else if pattern == "" && m.cfg.Mux != nil {
		_, pattern = m.cfg.Mux.Handler(r)
	}
	if t := PatternTemplate(pattern); t != "" {
		return t
	}
	if m.cfg.Routes != nil {
		// Without a RawPath the path has no escaped slash, and matching
		// it as it is spares escaping it again.
		path := r.URL.Path
		if r.URL.RawPath != "" {
			path = r.URL.EscapedPath()
		}
		if t, ok := m.cfg.Routes.Match(path); ok {
			return t
		}
	}
	return m.cfg.Unmatched
}

// bearer returns the token of an Authorization header with the Bearer
// scheme (matched case-insensitively, as RFC 9110 says).
func bearer(h string) (string, bool) {
	const prefix = "Bearer "
	if len(h) <= len(prefix) {
		return "", false
	}
	for i := 0; i < len(prefix)-1; i++ {
		c := h[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != "bearer"[i] {
			return "", false
		}
	}
	if h[len(prefix)-1] != ' ' {
		return "", false
	}
	return h[len(prefix):], true
}

// statusWriter remembers the status a handler writes. It passes Flush and
// Hijack through, and Unwrap lets http.ResponseController reach the
// underlying writer's other features (deadlines, full duplex).
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

// WriteHeader implements http.ResponseWriter. Informational statuses (1xx)
// but 101 may come before the final one and are not it.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter; writing before WriteHeader sends 200.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher; flushing before WriteHeader sends 200.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return conn, brw, err
}

// ReadFrom implements io.ReaderFrom, so that copying a file into the
// response keeps the server's sendfile path; writing before WriteHeader
// sends 200.
func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, src)
}

// writerOnly hides every method but Write, so that io.Copy does not call
// ReadFrom back.
type writerOnly struct{ io.Writer }

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errorBody is the contract's ErrorBody.
type errorBody struct {
	Message           string            `json:"message"`
	Code              string            `json:"code"`
	Status            int               `json:"status"`
	MessageWithParams string            `json:"messageWithParams"`
	MessageParams     map[string]string `json:"messageParams"`
	ContextID         string            `json:"contextId"`
	Details           []any             `json:"details"`
	Errors            []any             `json:"errors"`
}

// writeUnauthorized answers 401 with an ErrorBody: authentication.required
// without a token, bad.credentials with one that failed.
func writeUnauthorized(w http.ResponseWriter, err error) {
	code, msg := apiusage.CodeBadCredentials, "invalid, expired or unknown token"
	if errors.Is(err, ErrNoToken) {
		code, msg = apiusage.CodeAuthRequired, "a bearer token is required"
	} else if errors.Is(err, ErrExpiredToken) {
		msg = "the token has expired"
	}
	writeError(w, http.StatusUnauthorized, code, msg)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ctxID := hex.EncodeToString(b[:])
	body, _ := json.Marshal(errorBody{
		Message: msg, Code: code, Status: status, MessageWithParams: msg,
		MessageParams: map[string]string{}, ContextID: ctxID, Details: []any{}, Errors: []any{},
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("ININ-Correlation-Id", ctxID)
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer`)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
