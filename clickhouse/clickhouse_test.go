package clickhouse_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/apiusage/apiusage/bench/baselinetest"
	"github.com/apiusage/apiusage/clickhouse"
)

// TestBaselineMatchesOracle loads a small workload into a ClickHouse of its
// own and holds every query shape the benchmark asks, and more, to the
// oracle.
func TestBaselineMatchesOracle(t *testing.T) {
	ctx := context.Background()
	httpPort, err := clickhouse.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tcpPort, err := clickhouse.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := clickhouse.StartServer(ctx, t.TempDir(), httpPort, tcpPort)
	if errors.Is(err, clickhouse.ErrNotInstalled) && os.Getenv("CI") == "" {
		// Outside CI a developer may not have it; scripts/test and
		// scripts/bench install it, and in CI its absence is a failure.
		t.Skip(err, "; scripts/test installs it")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	b := clickhouse.New(srv.URL, "bench_test")
	t.Cleanup(b.Close)
	if err := b.Create(ctx); err != nil {
		t.Fatal(err)
	}
	data, events := baselinetest.Workload(t)
	if err := b.Load(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Count(ctx); err != nil || n != int64(len(events)) {
		t.Fatalf("Count = %d, %v; want %d", n, err, len(events))
	}
	baselinetest.Check(t, events, b.Query)

	// Nothing else writes while queries are timed: the server keeps no
	// system log tables (query_log, part_log, trace_log, metric_log, ...),
	// which would be flushed in the background every few seconds.
	out, err := clickhouse.Exec(b, ctx, `SELECT name FROM system.tables WHERE database = 'system' AND name LIKE '%log%' FORMAT TSV`, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tables := strings.Fields(string(out)); len(tables) > 0 {
		t.Fatalf("the server keeps system log tables %v, written in the background while queries are timed", tables)
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `'plain'`},
		{`it's`, `'it\'s'`},
		{`back\slash`, `'back\\slash'`},
		{"nul\x00", `'nul\0'`},
	}
	for _, tt := range tests {
		if got := clickhouse.Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
