package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

// Server serves the Usage API and the platform endpoints. It is an
// http.Handler; Close stops it.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store apiusage.Store
	dir   apiusage.Directory
	execs apiusage.ExecutionRegistry
	// results keeps the rows of complete executions, within
	// Config.ResultMemory; execs keeps their state.
	results *resultStore
	tokens  *signer
	metrics *metrics
	// gatherer serves /metrics; nil when the registerer cannot gather.
	gatherer prometheus.Gatherer
	handler  http.Handler
	pool     *pool
	// finishing holds, by execution id, a channel closed once the
	// execution running on this server is recorded finished: polls wait on
	// it (Config.PollWait).
	finishing sync.Map
	// hashing bounds the bcrypt computations running at once: each takes
	// tens of milliseconds of a core, so a flood of logins must queue rather
	// than starve every other request.
	hashing semaphore
	// ingests bounds the ingestion batches read and stored at once
	// (Config.MaxIngests).
	ingests semaphore
	// dummyHash is compared against when a login names an unknown client.
	dummyHash []byte
	// clientMu serializes the read-modify-write updates of clients (edit,
	// rotate), which the Directory offers no compare-and-swap for.
	clientMu sync.Mutex
	closing  atomic.Bool
}

// New returns a Server over the store, the directory and the execution
// registry, signing access tokens with signingKey (an Ed25519 private key,
// which cmd/apiusage keeps in its data directory so that tokens survive a
// restart).
//
// Zero fields of cfg take their defaults (see DefaultConfig). logger may be
// nil to discard logs. Metrics are registered with reg; when reg is also a
// prometheus.Gatherer (a *prometheus.Registry is) GET /metrics serves it, and
// otherwise /metrics answers 404. A nil reg gets a private registry.
//
// New starts the execution workers; Close stops them.
func New(cfg Config, logger *slog.Logger, store apiusage.Store, dir apiusage.Directory,
	execs apiusage.ExecutionRegistry, signingKey ed25519.PrivateKey, reg prometheus.Registerer) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if store == nil || dir == nil || execs == nil {
		return nil, errors.New("store, directory and execution registry are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	tokens, err := newSigner(signingKey)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(newSecret()), cfg.HashCost)
	if err != nil {
		return nil, fmt.Errorf("hash dummy secret: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		log:       logger,
		store:     store,
		dir:       dir,
		execs:     execs,
		results:   newResultStore(cfg.ResultMemory, m.resultsEvicted.Inc, func(n int64) { m.resultBytes.Set(float64(n)) }),
		tokens:    tokens,
		metrics:   m,
		hashing:   make(semaphore, cfg.Workers),
		ingests:   make(semaphore, cfg.MaxIngests),
		dummyHash: dummy,
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		s.gatherer = g
	}
	s.pool = newPool(cfg.Workers, cfg.MaxQueued, cfg.MaxRunningPerOrg)
	mux := http.NewServeMux()
	s.routes(mux)
	s.handler = s.observe(mux)
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Close stops accepting executions (new ones are answered 503), and waits
// until the accepted ones have finished or ctx is done; then it cancels any
// still running and returns ctx's error. Call it after http.Server.Shutdown.
// It does not close the store, the directory or the registry.
func (s *Server) Close(ctx context.Context) error {
	s.closing.Store(true)
	return s.pool.close(ctx)
}

// semaphore bounds concurrent work.
type semaphore chan struct{}

// acquire takes a slot, waiting for one until ctx is done.
func (s semaphore) acquire(ctx context.Context) error {
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for a slot: %w", ctx.Err())
	}
}

// acquireWithin takes a slot, waiting for one for up to wait (not at all
// when wait is negative) or until ctx is done. It reports whether it took
// one.
func (s semaphore) acquireWithin(ctx context.Context, wait time.Duration) (bool, error) {
	select {
	case s <- struct{}{}:
		return true, nil
	default:
	}
	if wait <= 0 {
		return false, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s <- struct{}{}:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, fmt.Errorf("wait for a slot: %w", ctx.Err())
	}
}

// release gives a slot back.
func (s semaphore) release() { <-s }
