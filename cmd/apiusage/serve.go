package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/apiusage/apiusage/embedded"
	"github.com/apiusage/apiusage/server"
)

// serveConfig is the configuration of apiusage serve. Every field is a flag
// and an APIUSAGE_* environment variable; a flag wins over the environment.
type serveConfig struct {
	Addr      string
	DebugAddr string
	Data      string
	LogFormat string
	LogLevel  string

	Server          server.Config
	CheckpointBytes int64
	DedupWindow     time.Duration
	ShutdownTimeout time.Duration

	BootstrapID     string
	BootstrapSecret string
}

// Validate reports every problem of c.
func (c serveConfig) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("--addr is required"))
	}
	if c.Data == "" {
		errs = append(errs, errors.New("--data is required"))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format must be text or json, got %q", c.LogFormat))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	if (c.BootstrapID == "") != (c.BootstrapSecret == "") {
		errs = append(errs, errors.New("APIUSAGE_BOOTSTRAP_CLIENT_ID and APIUSAGE_BOOTSTRAP_CLIENT_SECRET go together"))
	}
	if c.DedupWindow < 24*time.Hour {
		errs = append(errs, errors.New("--dedup-window must be at least 24h"))
	}
	if err := c.Server.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// envFlags maps each serve flag to its environment variable.
var envFlags = map[string]string{
	"addr":                "APIUSAGE_ADDR",
	"debug-addr":          "APIUSAGE_DEBUG_ADDR",
	"data":                "APIUSAGE_DATA",
	"log-format":          "APIUSAGE_LOG_FORMAT",
	"log-level":           "APIUSAGE_LOG_LEVEL",
	"token-ttl":           "APIUSAGE_TOKEN_TTL",
	"result-ttl":          "APIUSAGE_RESULT_TTL",
	"result-memory":       "APIUSAGE_RESULT_MEMORY",
	"poll-wait":           "APIUSAGE_POLL_WAIT",
	"workers":             "APIUSAGE_WORKERS",
	"max-running-per-org": "APIUSAGE_MAX_RUNNING_PER_ORG",
	"max-ingest-bytes":    "APIUSAGE_MAX_INGEST_BYTES",
	"max-ingests":         "APIUSAGE_MAX_INGESTS",
	"ingest-wait":         "APIUSAGE_INGEST_WAIT",
	"ingest-read-timeout": "APIUSAGE_INGEST_READ_TIMEOUT",
	"max-batch-events":    "APIUSAGE_MAX_BATCH_EVENTS",
	"hash-cost":           "APIUSAGE_HASH_COST",
	"checkpoint-bytes":    "APIUSAGE_CHECKPOINT_BYTES",
	"dedup-window":        "APIUSAGE_DEDUP_WINDOW",
	"shutdown-timeout":    "APIUSAGE_SHUTDOWN_TIMEOUT",
}

// applyEnv sets every flag the command line left unset from its environment
// variable (named in vars, by flag), so that a flag wins over the
// environment.
func applyEnv(fs *pflag.FlagSet, getenv func(string) string, vars map[string]string) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		name, ok := vars[f.Name]
		if !ok || f.Changed {
			return
		}
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func serveCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	cfg := serveConfig{Server: server.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the apiusage server",
		Long: `Run the apiusage server: the Usage API, OAuth, organizations, clients and
ingestion, on the embedded store in one data directory.

Every flag can also be set with the environment variable named in its help.
On first start with no client yet, the server creates a platform client and
prints its id and secret once; set APIUSAGE_BOOTSTRAP_CLIENT_ID and
APIUSAGE_BOOTSTRAP_CLIENT_SECRET to choose them instead.`,
		Example: `  apiusage serve
  apiusage serve --addr 127.0.0.1:9000 --data /var/lib/apiusage --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags(), getenv, envFlags); err != nil {
				return usageError{err}
			}
			cfg.BootstrapID = getenv("APIUSAGE_BOOTSTRAP_CLIENT_ID")
			cfg.BootstrapSecret = getenv("APIUSAGE_BOOTSTRAP_CLIENT_SECRET")
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			return serve(cmd.Context(), cfg, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "address to listen on [APIUSAGE_ADDR]")
	f.StringVar(&cfg.DebugAddr, "debug-addr", "", "address of a second listener serving Go profiles at /debug/pprof/, unauthenticated: keep it on loopback; empty: none [APIUSAGE_DEBUG_ADDR]")
	f.StringVar(&cfg.Data, "data", "./apiusage-data", "data directory [APIUSAGE_DATA]")
	f.StringVar(&cfg.LogFormat, "log-format", "text", "log format: text or json [APIUSAGE_LOG_FORMAT]")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn, error [APIUSAGE_LOG_LEVEL]")
	f.DurationVar(&cfg.Server.TokenTTL, "token-ttl", cfg.Server.TokenTTL, "lifetime of access tokens [APIUSAGE_TOKEN_TTL]")
	f.DurationVar(&cfg.Server.ResultTTL, "result-ttl", cfg.Server.ResultTTL, "how long query results are kept [APIUSAGE_RESULT_TTL]")
	f.Int64Var(&cfg.Server.ResultMemory, "result-memory", cfg.Server.ResultMemory, "bytes the results of finished queries may take in all; past it the oldest results of the organizations holding more than their share are dropped [APIUSAGE_RESULT_MEMORY]")
	f.DurationVar(&cfg.Server.PollWait, "poll-wait", cfg.Server.PollWait, "how long a poll of a running query waits for its result before it answers Running; negative: not at all [APIUSAGE_POLL_WAIT]")
	f.IntVar(&cfg.Server.Workers, "workers", cfg.Server.Workers, "query workers [APIUSAGE_WORKERS]")
	f.IntVar(&cfg.Server.MaxRunningPerOrg, "max-running-per-org", cfg.Server.MaxRunningPerOrg, "running executions allowed per organization [APIUSAGE_MAX_RUNNING_PER_ORG]")
	f.Int64Var(&cfg.Server.MaxIngestBodyBytes, "max-ingest-bytes", cfg.Server.MaxIngestBodyBytes, "largest ingest body [APIUSAGE_MAX_INGEST_BYTES]")
	f.IntVar(&cfg.Server.MaxIngests, "max-ingests", cfg.Server.MaxIngests, "ingest batches read and stored at once; past it a batch waits for --ingest-wait, then is answered 429 [APIUSAGE_MAX_INGESTS]")
	f.DurationVar(&cfg.Server.IngestWait, "ingest-wait", cfg.Server.IngestWait, "how long an ingest batch past --max-ingests waits for its turn; negative: not at all [APIUSAGE_INGEST_WAIT]")
	f.DurationVar(&cfg.Server.IngestReadTimeout, "ingest-read-timeout", cfg.Server.IngestReadTimeout, "how long reading an ingest body may take once it has its turn; past it the batch is answered 400; negative: no bound [APIUSAGE_INGEST_READ_TIMEOUT]")
	f.IntVar(&cfg.Server.MaxBatchEvents, "max-batch-events", cfg.Server.MaxBatchEvents, "most events in one ingest batch [APIUSAGE_MAX_BATCH_EVENTS]")
	f.IntVar(&cfg.Server.HashCost, "hash-cost", cfg.Server.HashCost, "bcrypt cost of client secrets [APIUSAGE_HASH_COST]")
	f.Int64Var(&cfg.CheckpointBytes, "checkpoint-bytes", 64<<20, "write-ahead log size that triggers a snapshot [APIUSAGE_CHECKPOINT_BYTES]")
	f.DurationVar(&cfg.DedupWindow, "dedup-window", 25*time.Hour, "how long idempotency keys and event ids are remembered [APIUSAGE_DEDUP_WINDOW]")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take [APIUSAGE_SHUTDOWN_TIMEOUT]")
	return cmd
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level)) // validated before
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// recoveryGCPercent is the GC percentage (see debug.SetGCPercent) while
// the store recovers.
const recoveryGCPercent = 50

// lowerGC lowers the process's GC percentage to percent, unless it is lower
// or off already, until the function it returns is called. serve lowers it
// while the store opens: a recovery after a crash makes much garbage (the
// rows beside packed hours and the tables the WAL's deltas grow, copied at
// every growth, then frozen into new slices), and on the VMs this runs on,
// memory the heap reuses costs far less than memory touched for the first
// time: collecting more often lets the later growths and the freezing reuse
// what the earlier ones left. Most of that heap is rows, without pointers,
// which a collection does not scan. Measured on a crashed 100M-event store
// with 28 MB of WAL: replay and freeze a fifth faster. It is the program's
// choice, not the store's: the setting is the whole process's.
func lowerGC(percent int) (restore func()) {
	old := debug.SetGCPercent(percent)
	if old < percent {
		// Lower already, or off (-1).
		debug.SetGCPercent(old)
	}
	return func() { debug.SetGCPercent(old) }
}

// serve runs the server until ctx is done, then shuts down gracefully: the
// listener closes, requests in flight finish, running executions finish, and
// the store checkpoints.
func serve(ctx context.Context, cfg serveConfig, stdout, stderr io.Writer) (err error) {
	logger := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	restoreGC := lowerGC(recoveryGCPercent)
	store, err := embedded.Open(filepath.Join(cfg.Data, "usage"), embedded.Options{
		Logger:          logger.With("component", "store"),
		DedupWindow:     cfg.DedupWindow,
		CheckpointBytes: cfg.CheckpointBytes,
		Registerer:      reg,
	})
	restoreGC()
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close store: %w", cerr)
		}
	}()
	dir, err := embedded.OpenDirectory(filepath.Join(cfg.Data, "directory.json"))
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	key, err := loadSigningKey(filepath.Join(cfg.Data, "signing.key"))
	if err != nil {
		return err
	}
	boot, secret, err := server.Bootstrap(ctx, dir, cfg.BootstrapID, cfg.BootstrapSecret, cfg.Server.HashCost, time.Now())
	if err != nil {
		return err
	}
	if secret != "" {
		fmt.Fprintf(stdout, "created the platform client; its secret is shown only now:\n  client id:     %s\n  client secret: %s\n", boot.ID, secret)
	}

	execs := embedded.NewExecutions(time.Now)
	srv, err := server.New(cfg.Server, logger, store, dir, execs, key, reg)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cfg.DebugAddr != "" {
		dln, err := net.Listen("tcp", cfg.DebugAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen for debug: %w", err)
		}
		dbg := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second}
		go dbg.Serve(dln)
		defer dbg.Close()
		logger.Info("serving profiles", "addr", dln.Addr().String())
	}
	fmt.Fprintf(stdout, "apiusage listening on http://%s\n", ln.Addr())
	logger.Info("listening", "addr", ln.Addr().String(), "data", cfg.Data)

	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutCtx); err != nil {
		logger.Warn("shutdown http", "err", err)
	}
	if err := srv.Close(shutCtx); err != nil {
		logger.Warn("shutdown executions", "err", err)
	}
	return nil
}

// debugHandler serves the runtime's profiles (net/http/pprof) under
// /debug/pprof/. It has no authentication, which is why it listens apart from
// the API and only when asked to.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// loadSigningKey reads the Ed25519 key that signs access tokens, creating it
// on first start. It lives in the data directory so that tokens survive a
// restart; the file is readable by the owner only.
func loadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("encode signing key: %w", err)
		}
		tmp := path + ".tmp"
		data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return nil, fmt.Errorf("write signing key: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("write signing key: %w", err)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || !strings.Contains(block.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("signing key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not an Ed25519 key", path)
	}
	return priv, nil
}
