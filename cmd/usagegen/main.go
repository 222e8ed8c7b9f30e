// Command usagegen writes the benchmark workload: a deterministic stream of
// API request events, from a seed, in the NDJSON ingest format of
// POST /api/v2/usage/events. See package bench/workload for its shape.
//
//	usagegen --seed 1 --events 10000000 --out events.ndjson --clients-out clients.ndjson
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
		fmt.Fprintln(os.Stderr, "usagegen:", err)
		os.Exit(1)
	}
}
