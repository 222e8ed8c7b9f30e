package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/apiusage/apiusage/capture"
)

// proxyConfig is the configuration of apiusage proxy. Every field is a flag,
// and most are also an environment variable (see proxyEnv); a flag wins.
type proxyConfig struct {
	Upstream    string
	Listen      string
	AdminListen string
	Routes      string
	Unmatched   string

	URL          string
	ClientID     string
	ClientSecret string

	JWKSURL         string
	OrgClaim        string
	ClientClaim     string
	UserClaim       string
	ClientNameClaim string
	Issuer          string
	Audience        string

	AllowAnonymous  bool
	AnonymousOrg    string
	AnonymousClient string

	TLSCert string
	TLSKey  string
	CAFile  string

	Buffer          int
	BatchSize       int
	FlushInterval   time.Duration
	ShutdownTimeout time.Duration
	LogFormat       string
	LogLevel        string
}

// proxyEnv maps the proxy's flags to their environment variables. The
// credential is read from the environment above all, so that the secret
// need not appear in the process list.
var proxyEnv = map[string]string{
	"upstream":         "APIUSAGE_PROXY_UPSTREAM",
	"listen":           "APIUSAGE_PROXY_LISTEN",
	"admin-listen":     "APIUSAGE_PROXY_ADMIN_LISTEN",
	"routes":           "APIUSAGE_PROXY_ROUTES",
	"url":              envURL,
	"client-id":        envClientID,
	"client-secret":    envClientSecret,
	"jwks-url":         "APIUSAGE_PROXY_JWKS_URL",
	"allow-anonymous":  "APIUSAGE_PROXY_ALLOW_ANONYMOUS",
	"tls-cert":         "APIUSAGE_PROXY_TLS_CERT",
	"tls-key":          "APIUSAGE_PROXY_TLS_KEY",
	"ca-file":          "APIUSAGE_PROXY_CA_FILE",
	"log-format":       "APIUSAGE_LOG_FORMAT",
	"log-level":        "APIUSAGE_LOG_LEVEL",
	"shutdown-timeout": "APIUSAGE_SHUTDOWN_TIMEOUT",
}

// Validate reports every problem of c.
func (c proxyConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Upstream); c.Upstream == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--upstream must be an http or https URL, got %q", c.Upstream))
	}
	if u, err := url.Parse(c.URL); c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--url (%s) must be the apiusage server's http or https URL, got %q", envURL, c.URL))
	}
	if c.ClientID == "" || c.ClientSecret == "" {
		errs = append(errs, fmt.Errorf("the proxy's credential is required: --client-id and --client-secret, or %s and %s", envClientID, envClientSecret))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("--listen is required"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.AnonymousOrg != "" && !c.AllowAnonymous {
		errs = append(errs, errors.New("--anonymous-org needs --allow-anonymous"))
	}
	if c.AnonymousOrg != "" && c.AnonymousClient == "" {
		errs = append(errs, errors.New("--anonymous-client must not be empty"))
	}
	if c.Buffer < 1 || c.BatchSize < 1 {
		errs = append(errs, errors.New("--buffer and --batch-size must be positive"))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, errors.New("--flush-interval must be positive"))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format must be text or json, got %q", c.LogFormat))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	return errors.Join(errs...)
}

func proxyCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var cfg proxyConfig
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run a reverse proxy that records every request it forwards",
		Long: `Run a reverse proxy in front of an API that records every request it
forwards to an apiusage server: its time, the organization, client and user
of its bearer token, its template URI, method and final status.

Bearer tokens are verified offline against a JWKS: the apiusage server's
(--url + /oauth/jwks) by default, or an identity provider's (--jwks-url, with
--org-claim, --client-claim and --user-claim naming its claims). A request
without a valid token gets 401, unless --allow-anonymous lets it through
(unrecorded, or recorded under --anonymous-org).

Template URIs come from --routes: an OpenAPI document (JSON or YAML) or a
text file with one template such as /api/v2/users/{userId} a line. They are
recorded without the leading slash, as the reference service writes them; a
path no route matches is recorded as --unmatched, never as itself.

The proxy reports with a client holding usage:event:add:any, from
--client-id and --client-secret or APIUSAGE_CLIENT_ID and
APIUSAGE_CLIENT_SECRET. Events wait in a bounded buffer and are sent in
batches, retried under one Idempotency-Key while the server is away; when
the buffer is full they are dropped and counted. On SIGTERM the proxy stops
taking requests and flushes the buffer.

/-/healthz and /-/metrics (Prometheus) are served on --listen, or on
--admin-listen when it is set (and then every path goes upstream).`,
		Example: `  APIUSAGE_CLIENT_ID=ID APIUSAGE_CLIENT_SECRET=SECRET apiusage proxy \
    --upstream http://127.0.0.1:9000 --listen :8443 --routes openapi.yaml \
    --url http://127.0.0.1:8080 --tls-cert cert.pem --tls-key key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags(), getenv, proxyEnv); err != nil {
				return usageError{err}
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			return runProxy(cmd.Context(), cfg, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Upstream, "upstream", "", "URL of the API to forward to [APIUSAGE_PROXY_UPSTREAM]")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8081", "address to listen on [APIUSAGE_PROXY_LISTEN]")
	f.StringVar(&cfg.AdminListen, "admin-listen", "", "address for /-/healthz and /-/metrics; empty serves them on --listen [APIUSAGE_PROXY_ADMIN_LISTEN]")
	f.StringVar(&cfg.Routes, "routes", "", "OpenAPI document or list of template URIs [APIUSAGE_PROXY_ROUTES]")
	f.StringVar(&cfg.Unmatched, "unmatched", capture.DefaultUnmatched, "template URI of requests no route matches")
	f.StringVar(&cfg.URL, "url", "", "base URL of the apiusage server to report to ["+envURL+"]")
	f.StringVar(&cfg.ClientID, "client-id", "", "id of the proxy's client, holding usage:event:add:any ["+envClientID+"]")
	f.StringVar(&cfg.ClientSecret, "client-secret", "", "secret of the proxy's client; prefer the environment ["+envClientSecret+"]")
	f.StringVar(&cfg.JWKSURL, "jwks-url", "", "JWKS that verifies bearer tokens (default: --url + /oauth/jwks) [APIUSAGE_PROXY_JWKS_URL]")
	f.StringVar(&cfg.OrgClaim, "org-claim", capture.DefaultClaims.Organization, "token claim holding the organization id")
	f.StringVar(&cfg.ClientClaim, "client-claim", capture.DefaultClaims.Client, "token claim holding the OAuth client id")
	f.StringVar(&cfg.UserClaim, "user-claim", "", "token claim holding the user id (none by default: the server's tokens carry no user)")
	f.StringVar(&cfg.ClientNameClaim, "client-name-claim", "", "token claim holding the client's name, for clients the server does not know")
	f.StringVar(&cfg.Issuer, "issuer", "", "required iss claim, when set")
	f.StringVar(&cfg.Audience, "audience", "", "required aud claim, when set")
	f.BoolVar(&cfg.AllowAnonymous, "allow-anonymous", false, "forward requests without a valid token instead of answering 401 [APIUSAGE_PROXY_ALLOW_ANONYMOUS]")
	f.StringVar(&cfg.AnonymousOrg, "anonymous-org", "", "record anonymous requests in this organization (with --allow-anonymous); unrecorded when empty")
	f.StringVar(&cfg.AnonymousClient, "anonymous-client", "anonymous", "client id of anonymous requests recorded with --anonymous-org")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "certificate (PEM) to serve HTTPS with [APIUSAGE_PROXY_TLS_CERT]")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "private key (PEM) of --tls-cert [APIUSAGE_PROXY_TLS_KEY]")
	f.StringVar(&cfg.CAFile, "ca-file", "", "extra CA certificates (PEM) trusted for the upstream, the server and the JWKS [APIUSAGE_PROXY_CA_FILE]")
	f.IntVar(&cfg.Buffer, "buffer", 65536, "events held in memory while waiting to be sent")
	f.IntVar(&cfg.BatchSize, "batch-size", 500, "most events in one batch")
	f.DurationVar(&cfg.FlushInterval, "flush-interval", time.Second, "longest an event waits for its batch to fill")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown (requests in flight, then the buffer) may take [APIUSAGE_SHUTDOWN_TIMEOUT]")
	f.StringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json [APIUSAGE_LOG_FORMAT]")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn, error [APIUSAGE_LOG_LEVEL]")
	return cmd
}

// runProxy runs the proxy until ctx is done, then shuts down: the listener
// closes, requests in flight finish, and the buffered events are sent.
func runProxy(ctx context.Context, cfg proxyConfig, stdout, stderr io.Writer) (err error) {
	logger := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	tlsClient, err := clientTLS(cfg.CAFile)
	if err != nil {
		return err
	}
	var routes *capture.Routes
	if cfg.Routes != "" {
		if routes, err = capture.LoadRoutes(cfg.Routes); err != nil {
			return usageError{err}
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	outbound := capture.NewTransport(tlsClient)
	sender, err := capture.NewHTTPSender(cfg.URL, cfg.ClientID, cfg.ClientSecret, &http.Client{Transport: outbound, Timeout: 30 * time.Second})
	if err != nil {
		return usageError{err}
	}
	rec, err := capture.NewRecorder(sender, capture.RecorderConfig{
		Buffer:        cfg.Buffer,
		BatchSize:     cfg.BatchSize,
		FlushInterval: cfg.FlushInterval,
		Registerer:    reg,
		Logger:        logger.With("component", "recorder"),
	})
	if err != nil {
		return err
	}
	// The recorder is closed last, after the server stopped taking
	// requests, so that every request served is in the buffer it flushes.
	recorderClosed := false
	defer func() {
		if !recorderClosed {
			_ = rec.Close(context.Background())
		}
	}()

	jwks := cfg.JWKSURL
	if jwks == "" {
		jwks = strings.TrimSuffix(cfg.URL, "/") + "/oauth/jwks"
	}
	verifier, err := capture.NewVerifier(capture.VerifierConfig{
		JWKSURL:    jwks,
		HTTPClient: &http.Client{Transport: outbound, Timeout: 10 * time.Second},
		Claims: capture.Claims{
			Organization: cfg.OrgClaim, Client: cfg.ClientClaim, User: cfg.UserClaim, ClientName: cfg.ClientNameClaim,
		},
		Issuer:   cfg.Issuer,
		Audience: cfg.Audience,
		Logger:   logger.With("component", "jwks"),
	})
	if err != nil {
		return err
	}
	if err := verifier.Refresh(ctx); err != nil {
		// The server may come up after the proxy: keys are fetched again
		// when a token needs them.
		logger.Warn("fetch JWKS at start", "url", jwks, "err", err)
	}

	policy := capture.Reject
	var anon capture.Identity
	if cfg.AllowAnonymous {
		policy = capture.PassUnrecorded
		if cfg.AnonymousOrg != "" {
			policy = capture.PassRecorded
			anon = capture.Identity{OrganizationID: cfg.AnonymousOrg, ClientID: cfg.AnonymousClient}
		}
	}
	upstream, _ := url.Parse(cfg.Upstream) // validated
	proxy, err := capture.NewProxy(capture.ProxyConfig{
		Upstream:  upstream,
		Transport: outbound,
		Capture: capture.Config{
			Recorder:        rec,
			Verifier:        verifier,
			Routes:          routes,
			Unmatched:       cfg.Unmatched,
			Unauthenticated: policy,
			Anonymous:       anon,
			Registerer:      reg,
			Logger:          logger.With("component", "capture"),
		},
		Logger: logger.With("component", "proxy"),
	})
	if err != nil {
		return err
	}

	admin := adminHandler(reg)
	handler := proxy
	if cfg.AdminListen == "" {
		handler = withAdmin(proxy, admin)
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	servers := []*http.Server{newProxyServer(handler, logger)}
	listeners := []net.Listener{ln}
	if cfg.AdminListen != "" {
		aln, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen admin: %w", err)
		}
		servers = append(servers, newProxyServer(admin, logger))
		listeners = append(listeners, aln)
		fmt.Fprintf(stdout, "apiusage proxy admin on http://%s\n", aln.Addr())
	}
	// The last line printed: the proxy is ready.
	fmt.Fprintf(stdout, "apiusage proxy listening on %s://%s, forwarding to %s\n", scheme, ln.Addr(), cfg.Upstream)
	logger.Info("proxy listening", "addr", ln.Addr().String(), "upstream", cfg.Upstream, "server", cfg.URL, "routes", routes.Len())

	served := make(chan error, len(servers))
	for i, srv := range servers {
		go func() {
			if i == 0 && cfg.TLSCert != "" {
				served <- srv.ServeTLS(listeners[i], cfg.TLSCert, cfg.TLSKey)
				return
			}
			served <- srv.Serve(listeners[i])
		}()
	}
	var serveErr error
	select {
	case serveErr = <-served:
		serveErr = fmt.Errorf("serve: %w", serveErr)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutCtx); err != nil {
			logger.Warn("shutdown http", "err", err)
		}
	}
	recorderClosed = true
	if err := rec.Close(shutCtx); err != nil {
		logger.Error("flush events", "err", err)
		return errors.Join(serveErr, fmt.Errorf("flush events: %w", err))
	}
	return serveErr
}

func newProxyServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// No read or write timeout: bodies stream, and a WebSocket may
		// stay open for hours.
	}
}

// Paths of the proxy's own endpoints. The /-/ prefix (Prometheus's
// convention) keeps them clear of any API's paths; --admin-listen moves them
// off the proxied listener altogether.
const (
	healthPath  = "/-/healthz"
	metricsPath = "/-/metrics"
)

func adminHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+healthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET "+metricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// withAdmin serves the proxy's own endpoints and forwards every other path.
// It compares paths itself rather than through a ServeMux, which would clean
// and redirect paths the upstream should see as they are.
func withAdmin(proxy, admin http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == healthPath || r.URL.Path == metricsPath {
			admin.ServeHTTP(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

// clientTLS returns the TLS configuration of the proxy's outbound calls: the
// system's roots, plus those of caFile.
func clientTLS(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, usageError{fmt.Errorf("--ca-file: %w", err)}
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usageError{fmt.Errorf("--ca-file %s: no PEM certificate", caFile)}
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
