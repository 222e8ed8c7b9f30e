package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"
)

// requestInfo is what the outermost middleware learns about a request while
// it is handled, for its log line.
type requestInfo struct {
	contextID string
	// clientID is the authenticated caller, once known.
	clientID string
}

type requestInfoKey struct{}

// info returns the request's requestInfo; requests that did not pass through
// observe (none do in practice) get an empty one.
func info(r *http.Request) *requestInfo {
	if ri, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{}
}

// contextID returns the request's contextId.
func contextID(r *http.Request) string { return info(r).contextID }

// observe is the outermost middleware: it gives the request its contextId
// (in the ININ-Correlation-Id header of every response), turns a panic into a
// 500, counts the request by route pattern and status, and logs one line.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{contextID: newID()}
		w.Header().Set("ININ-Correlation-Id", ri.contextID)
		sw := &statusWriter{ResponseWriter: w}
		// The mux sets r.Pattern on the request it is given, which is this
		// one: so the route is known here once the handler returns.
		r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic", "contextId", ri.contextID, "panic", p, "stack", string(debug.Stack()))
				if !sw.wroteHeader {
					s.writeError(sw, r, errors.New("panic"))
				}
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			elapsed := time.Since(start)
			s.metrics.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
			s.metrics.requestDuration.WithLabelValues(route).Observe(elapsed.Seconds())
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelWarn
			}
			s.log.LogAttrs(r.Context(), level, "request",
				slog.String("contextId", ri.contextID),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Duration("duration", elapsed),
				slog.String("clientId", ri.clientID),
				slog.Int64("bytes", sw.bytes),
			)
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	bytes       int64
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.wroteHeader {
		w.status = status
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// readDeadline bounds the time reading a request may take, from now: past it
// a read of its body fails (see jsonError), so that a client sending its
// body slowly cannot hold what the request holds (an ingest turn) for long.
// A d that is not positive sets no deadline.
func readDeadline(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every connection net/http serves supports it; another writer
		// (a test's recorder) goes without.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		next.ServeHTTP(w, r)
	})
}

// limitBody bounds the request body: reading past n bytes fails with an
// *http.MaxBytesError, which decoders turn into a 413.
func limitBody(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, n)
		next.ServeHTTP(w, r)
	})
}
