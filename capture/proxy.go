package capture

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiusage/apiusage"
)

// ProxyConfig configures a recording reverse proxy.
type ProxyConfig struct {
	// Upstream is the API the proxy forwards to. Its path, if any,
	// prefixes the request's.
	Upstream *url.URL
	// Transport carries requests upstream; nil means NewTransport(nil).
	Transport http.RoundTripper
	// Capture configures the recording, as for Middleware. Templates
	// come from Capture.Routes, matched against the path the client asked
	// for (before the upstream's prefix is added).
	Capture Config
	// Logger logs upstream failures; nil discards.
	Logger *slog.Logger
}

// NewProxy returns a reverse proxy to cfg.Upstream that records every
// request as Middleware does. It is an httputil.ReverseProxy, so request and
// response bodies stream, WebSocket and other upgrades pass through, and
// X-Forwarded-For, -Host and -Proto are set. An upstream that cannot be
// reached is a 502 with the contract's ErrorBody, and recorded as such.
func NewProxy(cfg ProxyConfig) (http.Handler, error) {
	if cfg.Upstream == nil || (cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https") || cfg.Upstream.Host == "" {
		return nil, errors.New("proxy: upstream must be an http or https URL")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	transport := cfg.Transport
	if transport == nil {
		transport = NewTransport(nil)
	}
	upstreamErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "apiusage", Subsystem: "proxy", Name: "upstream_errors_total",
		Help: "Requests the upstream could not answer (answered 502 by the proxy).",
	})
	if cfg.Capture.Registerer != nil {
		if err := cfg.Capture.Registerer.Register(upstreamErrors); err != nil {
			return nil, fmt.Errorf("register proxy metrics: %w", err)
		}
	}
	upstream := cfg.Upstream
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
		},
		Transport:  transport,
		BufferPool: newBufferPool(),
		ErrorLog:   slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			upstreamErrors.Inc()
			if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
				log.Debug("client went away", "method", r.Method, "err", err)
			} else {
				log.Warn("upstream failed", "method", r.Method, "err", err)
			}
			// The contract has no code of its own for a gateway failure;
			// service.unavailable is the closest.
			writeError(w, http.StatusBadGateway, apiusage.CodeUnavailable, "the upstream service could not be reached")
		},
	}
	mw, err := Middleware(cfg.Capture)
	if err != nil {
		return nil, err
	}
	return mw(rp), nil
}

// NewTransport returns the transport the proxy uses by default, trusting
// tlsConfig's roots when it is not nil:
// http.DefaultTransport's settings with more idle connections kept per host,
// since all of a proxy's traffic goes to one host and the default of two
// would open and close connections under any concurrency.
func NewTransport(tlsConfig *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 1024
	t.IdleConnTimeout = 90 * time.Second
	if tlsConfig != nil {
		t.TLSClientConfig = tlsConfig
	}
	return t
}

// bufferPool lends the proxy's copy buffers, so that a request does not
// allocate its own 32 KiB.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }
