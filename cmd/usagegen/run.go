package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/apiusage/apiusage/bench/workload"
)

// run is the whole program; tests call it in process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("usagegen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg        workload.Config
		end        string
		out        string
		clientsOut string
		quiet      bool
	)
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the workload: the same flags give the same bytes")
	fs.Int64Var(&cfg.Events, "events", workload.DefaultEvents, "number of events")
	fs.StringVar(&end, "end", workload.DefaultEnd.Format(time.DateOnly), "exclusive end of the workload, a UTC date")
	fs.IntVar(&cfg.Days, "days", workload.DefaultDays, "number of days ending at --end")
	fs.IntVar(&cfg.Organizations, "orgs", workload.DefaultOrganizations, "number of organizations")
	fs.IntVar(&cfg.Clients, "clients", workload.DefaultClients, "number of OAuth clients")
	fs.IntVar(&cfg.Users, "users", workload.DefaultUsers, "number of users")
	fs.IntVar(&cfg.Templates, "templates", workload.DefaultTemplates, "number of template URIs")
	fs.StringVar(&out, "out", "-", "file to write the events to (- for standard output)")
	fs.StringVar(&clientsOut, "clients-out", "", "file to write the clients to, one JSON object a line (optional)")
	fs.BoolVar(&quiet, "quiet", false, "do not report the rate on standard error")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	t, err := time.Parse(time.DateOnly, end)
	if err != nil {
		return fmt.Errorf("--end: %w", err)
	}
	cfg.End = t
	g, err := workload.New(cfg)
	if err != nil {
		return err
	}
	if clientsOut != "" {
		if err := writeClients(clientsOut, g.Universe()); err != nil {
			return err
		}
	}

	w, closeOut, err := create(out, stdout)
	if err != nil {
		return err
	}
	began := time.Now()
	n, err := g.WriteTo(&ctxWriter{ctx: ctx, w: w})
	if cerr := closeOut(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if !quiet {
		el := time.Since(began)
		fmt.Fprintf(stderr, "usagegen: %d events, %d bytes in %.2fs (%.0f events/s)\n",
			g.Config().Events, n, el.Seconds(), float64(g.Config().Events)/el.Seconds())
	}
	return nil
}

// create opens the output: standard output for "-", else a new file that is
// synced on close, so that a benchmark never reads a half-written file.
func create(path string, stdout io.Writer) (io.Writer, func() error, error) {
	if path == "-" {
		return stdout, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, fmt.Errorf("create output: %w", err)
	}
	return f, func() error {
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			return f.Close() // /dev/null and pipes cannot be synced
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("sync output: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close output: %w", err)
		}
		return nil
	}, nil
}

// writeClients writes the clients, one JSON object a line, so that a
// benchmark can register their names or pick its queries' clients.
func writeClients(path string, u *workload.Universe) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create clients file: %w", err)
	}
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	for _, c := range u.Clients {
		if err := enc.Encode(c); err != nil {
			f.Close()
			return fmt.Errorf("write clients: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write clients: %w", err)
	}
	return f.Close()
}

// ctxWriter stops a long generation when the context ends (Ctrl-C).
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
