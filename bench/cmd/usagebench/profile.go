package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"
)

// profiler collects pprof profiles of the apiusage server from its debug
// listener (serve --debug-addr) into a directory, when --profile names one.
type profiler struct {
	addr string // the server's debug address
	dir  string
	hc   *http.Client
}

// fetch saves /debug/pprof/<what> (with query) as <name>.pprof in the
// profile directory.
func (p *profiler) fetch(ctx context.Context, what, query, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/debug/pprof/"+what+"?"+query, nil)
	if err != nil {
		return err
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("profile %s: %s: %s", name, resp.Status, b)
	}
	f, err := os.Create(filepath.Join(p.dir, name+".pprof"))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", name, err)
	}
	return f.Close()
}

// startCPU starts a CPU profile of d; the returned function waits for it and
// reports its error.
func (p *profiler) startCPU(ctx context.Context, name string, d time.Duration) func() error {
	done := make(chan error, 1)
	go func() {
		done <- p.fetch(ctx, "profile", "seconds="+strconv.Itoa(max(1, int(d.Seconds()))), name+".cpu")
	}()
	return func() error { return <-done }
}

// during runs fn over and over while a CPU profile of d is taken.
func (p *profiler) during(ctx context.Context, name string, d time.Duration, fn func(context.Context) error) error {
	wait := p.startCPU(ctx, name, d)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := fn(ctx); err != nil {
			wait()
			return err
		}
	}
	return wait()
}

// profileQueries takes a CPU profile of each query of the set run in a
// loop, then the server's heap (live and allocated).
func (s *suite) profileQueries(ctx context.Context) error {
	if s.prof == nil {
		return nil
	}
	for _, q := range s.queries {
		err := s.prof.during(ctx, "query-"+q.Name, 3*time.Second, func(ctx context.Context) error {
			_, _, err := s.orgAPI.execute(ctx, q.Path, q.Body, q.PageSize)
			return err
		})
		if err != nil {
			return err
		}
	}
	if err := s.prof.fetch(ctx, "heap", "gc=1", "heap"); err != nil {
		return err
	}
	s.logf("   profiles in %s: go tool pprof -top %s FILE", s.prof.dir, s.cfg.Apiusage)
	return nil
}

// self starts a CPU profile of usagebench's own process, saved as
// <name>.pprof in the profile directory; the returned function stops it.
// The load generator shares the cores with the server it loads, so its
// own cost is worth seeing as the server's is. Only one such profile runs
// at a time in a process.
func (p *profiler) self(name string) (stop func() error, err error) {
	f, err := os.Create(filepath.Join(p.dir, name+".pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("profile %s: %w", name, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
