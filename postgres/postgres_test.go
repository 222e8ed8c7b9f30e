package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
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
	// After the load, the table is vacuumed and analyzed, with nothing
	// left for autovacuum to do while queries are timed.
	var vacuumed, analyzed bool
	var inserted, modified int64
	err = postgres.Pool(b).QueryRow(ctx, `SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL, n_ins_since_vacuum, n_mod_since_analyze
		FROM pg_stat_user_tables WHERE schemaname = 'bench_test' AND relname = 'events'`).Scan(&vacuumed, &analyzed, &inserted, &modified)
	if err != nil {
		t.Fatal(err)
	}
	if !vacuumed || !analyzed || inserted != 0 || modified != 0 {
		t.Fatalf("after Vacuum: vacuumed %v, analyzed %v, %d rows inserted since, %d modified since; want a vacuumed and analyzed table and none",
			vacuumed, analyzed, inserted, modified)
	}
	baselinetest.Check(t, events, b.Query)
}
