// Command apiusage is the apiusage server and its command line: one binary
// that serves the Usage API (apiusage serve) and talks to it.
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
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiusage:", err)
		os.Exit(exitCode(err))
	}
}
