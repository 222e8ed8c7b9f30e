// Command usagebench is the benchmark suite: it measures apiusage against the
// baselines a team would otherwise build (ClickHouse, PostgreSQL: a raw
// events table and GROUP BY), on the same generated events, and writes a
// results table.
//
// It generates (or reuses) the workload, starts apiusage on a fresh data
// directory and ingests the file through POST /api/v2/usage/events with
// concurrent NDJSON batch posters; loads the same events into ClickHouse
// (INSERT ... FORMAT JSONEachRow) and PostgreSQL (COPY); checks that the
// three answer every query of the set with the same numbers, and only then
// times the queries (POST to the first Complete poll for apiusage), the
// freshness of an ingested event, the footprint, and the restart after a
// kill -9 in the middle of an ingest. scripts/bench is the documented way to
// run it:
//
//	scripts/bench quick   # 10 million events
//	scripts/bench full    # 100 million events
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "usagebench:", err)
		os.Exit(1)
	}
}
