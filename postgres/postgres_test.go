package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apiusage/apiusage/bench/baselinetest"
	"github.com/apiusage/apiusage/postgres"
)

// TestBaselineMatchesOracle loads a small workload into a PostgreSQL of its
// own and holds every query shape the benchmark asks, and more, to the
// oracle.
func TestBaselineMatchesOracle(t *testing.T) {
	ctx := context.Background()
	port, err := postgres.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// As root the server runs as the user postgres, which must reach it.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := postgres.StartServer(ctx, filepath.Join(dir, "pg"), port)
	if errors.Is(err, postgres.ErrNotInstalled) && os.Getenv("CI") == "" {
		// Outside CI a developer may not have it; scripts/test and
		// scripts/bench install it, and in CI its absence is a failure.
		t.Skip(err, "; scripts/test installs it")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	b, err := postgres.Open(ctx, srv.DSN, "bench_test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.Create(ctx); err != nil {
		t.Fatal(err)
	}
	data, events := baselinetest.Workload(t)
	n, err := b.Load(ctx, bytes.NewReader(data))
	if err != nil || n != int64(len(events)) {
		t.Fatalf("Load = %d, %v; want %d rows", n, err, len(events))
	}
	if err := b.Index(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Vacuum(ctx); err != nil {
		t.Fatal(err)
	}
	// After the load, the table is vacuumed and analyzed, and autovacuum
	// will not touch it while queries are timed. (The rows inserted since
	// the vacuum are not checked: backends report them a second or so
	// late, which is why autovacuum is turned off.)
	var vacuumed, analyzed bool
	var options []string
	err = postgres.Pool(b).QueryRow(ctx, `SELECT s.last_vacuum IS NOT NULL, s.last_analyze IS NOT NULL, coalesce(c.reloptions, '{}')
		FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
		WHERE s.schemaname = 'bench_test' AND s.relname = 'events'`).Scan(&vacuumed, &analyzed, &options)
	if err != nil {
		t.Fatal(err)
	}
	if !vacuumed || !analyzed || !slices.Contains(options, "autovacuum_enabled=false") {
		t.Fatalf("after Vacuum: vacuumed %v, analyzed %v, options %v; want a vacuumed and analyzed table with autovacuum_enabled=false",
			vacuumed, analyzed, options)
	}
	baselinetest.Check(t, events, b.Query)
}
