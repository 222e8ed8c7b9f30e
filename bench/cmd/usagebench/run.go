package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/bench/workload"
	"github.com/apiusage/apiusage/clickhouse"
	"github.com/apiusage/apiusage/postgres"
)

// config is the suite's command line.
type config struct {
	Mode          string // quick or full
	Events        int64
	Seed          uint64
	End           time.Time
	Work          string
	Apiusage      string
	Results       string
	Posters       int
	Batch         int
	QueryBudget   time.Duration
	MinReps       int
	MaxReps       int
	Probes        int
	Baselines     bool
	Postgres      bool
	OrgRank       int
	Keep          bool
	RestartEvents int64
	Profile       string
	Read          string // how the workload file is read: openWorkload's ways
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("usagebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	var end string
	fs.Int64Var(&c.Events, "events", 0, "events in the workload (default: 10,000,000 quick, 100,000,000 full)")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the workload")
	fs.StringVar(&end, "end", workload.DefaultEnd.Format(time.DateOnly), "exclusive end of the workload, a UTC date")
	fs.StringVar(&c.Work, "work", "/tmp/apiusage-bench", "work directory: the workload file and each run's data directories")
	fs.StringVar(&c.Apiusage, "apiusage", "", "the apiusage binary (required)")
	fs.StringVar(&c.Results, "results", "bench/results", "directory of the results tables")
	fs.IntVar(&c.Posters, "posters", 4, "concurrent ingest connections")
	fs.IntVar(&c.Batch, "batch", 10_000, "events per ingest batch")
	fs.DurationVar(&c.QueryBudget, "query-budget", 0, "time spent repeating each query on each system, after --min-reps runs (default: 5s quick, 30s full)")
	fs.IntVar(&c.MinReps, "min-reps", 3, "fewest timed runs of a query on a system")
	fs.IntVar(&c.MaxReps, "max-reps", 50, "most timed runs of a query on a system")
	fs.IntVar(&c.Probes, "probes", 50, "freshness probes")
	fs.BoolVar(&c.Baselines, "baselines", true, "run the ClickHouse and PostgreSQL baselines (without them no ratio is reported)")
	fs.BoolVar(&c.Postgres, "postgres", true, "with --baselines, run the PostgreSQL baseline too (the full run's needs about 50 GB of disk: its table, indexes and WAL)")
	fs.IntVar(&c.OrgRank, "org-rank", 0, "which organization the queries ask about, by size: 0 is the largest")
	fs.BoolVar(&c.Keep, "keep", false, "keep the run's data directories")
	fs.Int64Var(&c.RestartEvents, "restart-events", 1_000_000, "events posted again for the kill -9 test")
	fs.StringVar(&c.Profile, "profile", "", "directory to save pprof CPU profiles of apiusage's ingest and of each query, and its heap, and of usagebench's own ingest (usagebench.ingest.cpu.pprof), in (not timed runs)")
	fs.StringVar(&c.Read, "read", readDropBehind, "how the load generator reads the workload file, for every system: dropbehind (the page cache, its pages dropped behind the read), direct (O_DIRECT into its own buffers, read ahead; the page cache where refused) or plain (the page cache)")
	if err := fs.Parse(args[1:]); err != nil {
		return c, err
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "quick" && fs.Arg(0) != "full") {
		return c, errors.New("usage: usagebench [flags] quick|full")
	}
	c.Mode = fs.Arg(0)
	if c.Events == 0 {
		c.Events = map[string]int64{"quick": 10_000_000, "full": 100_000_000}[c.Mode]
	}
	if c.QueryBudget == 0 {
		c.QueryBudget = map[string]time.Duration{"quick": 5 * time.Second, "full": 30 * time.Second}[c.Mode]
	}
	t, err := time.Parse(time.DateOnly, end)
	if err != nil {
		return c, fmt.Errorf("--end: %w", err)
	}
	c.End = t
	if c.Apiusage == "" {
		return c, errors.New("--apiusage is required")
	}
	if !slices.Contains(readWays, c.Read) {
		return c, fmt.Errorf("--read: unknown way %q", c.Read)
	}
	if c.Posters < 1 || c.Batch < 1 || c.MinReps < 1 || c.MaxReps < c.MinReps || c.Probes < 1 {
		return c, errors.New("--posters, --batch, --min-reps, --probes must be positive and --max-reps at least --min-reps")
	}
	return c, nil
}

// suite is one run.
type suite struct {
	cfg    config
	log    io.Writer
	rep    *report
	gen    *workload.Generator
	file   string
	runDir string

	srv      *apiServer
	prof     *profiler // nil unless --profile
	platform *api      // the bootstrap client
	orgAPI   *api      // a client of the queried organization
	rw       *rewriter
	org      string // the queried organization, apiusage's id
	orgGen   int    // its index in the universe
	queries  []querySpec
	ch       *clickhouse.Baseline
	chSrv    *clickhouse.Server
	pg       *postgres.Baseline
	pgSrv    *postgres.Server
	ingested ingestResult
	markers  int64 // freshness events added to the queried organization
	// first holds the time of each system's run in the correctness check,
	// by query: the first timed run, reported only once all agree.
	first map[string][]time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	s := &suite{cfg: cfg, log: stderr, rep: newReport(cfg)}
	defer s.cleanup()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"workload", s.workload},
		{"apiusage start", s.startAPI},
		{"warm the workload file", s.warmFile},
		{"apiusage ingest", s.ingestAPI},
		{"clickhouse load", s.loadClickHouse},
		{"postgres load", s.loadPostgres},
		{"query set", s.buildQuerySet},
		{"correctness", s.checkCorrectness},
		{"query latency", s.timeQueries},
		{"profiles", s.profileQueries},
		{"freshness", s.freshness},
		{"footprint", s.footprint},
		{"restart after kill -9", s.restart},
	}
	for _, st := range steps {
		s.logf("== %s", st.name)
		began := time.Now()
		if err := st.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		s.logf("   %s done in %s", st.name, time.Since(began).Round(time.Millisecond))
	}
	path, err := s.rep.write(cfg.Results)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "results: %s\n", path)
	return nil
}

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(s.log, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func (s *suite) cleanup() {
	if s.srv != nil && s.srv.cmd != nil && s.srv.cmd.ProcessState == nil {
		s.srv.stop()
	}
	if s.ch != nil {
		s.ch.Close()
	}
	if s.chSrv != nil {
		s.chSrv.Stop()
	}
	if s.pg != nil {
		s.pg.Close()
	}
	if s.pgSrv != nil {
		s.pgSrv.Stop()
	}
	if s.runDir != "" && !s.cfg.Keep {
		os.RemoveAll(s.runDir)
	}
}

// workload generates the events file unless a complete one is there.
func (s *suite) workload(ctx context.Context) error {
	g, err := workload.New(workload.Config{Seed: s.cfg.Seed, Events: s.cfg.Events, End: s.cfg.End})
	if err != nil {
		return err
	}
	s.gen = g
	if err := os.MkdirAll(s.cfg.Work, 0o755); err != nil {
		return err
	}
	name := fmt.Sprintf("events-s%d-n%d-e%s.ndjson", s.cfg.Seed, s.cfg.Events, s.cfg.End.Format("20060102"))
	s.file = filepath.Join(s.cfg.Work, name)
	done := s.file + ".done"
	if _, err := os.Stat(done); err == nil {
		s.logf("   reusing %s", s.file)
	} else {
		f, err := os.Create(s.file)
		if err != nil {
			return err
		}
		began := time.Now()
		n, err := g.WriteTo(f)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", s.file, err)
		}
		s.logf("   wrote %d events, %d bytes in %s", s.cfg.Events, n, time.Since(began).Round(time.Millisecond))
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			return err
		}
	}
	st, err := os.Stat(s.file)
	if err != nil {
		return err
	}
	s.rep.fileBytes = st.Size()
	s.rep.universe = g.Universe()
	s.rep.start, s.rep.end = g.Start(), g.Config().End

	s.runDir = filepath.Join(s.cfg.Work, "run-"+time.Now().UTC().Format("20060102T150405"))
	if err := os.MkdirAll(s.runDir, 0o711); err != nil {
		return err
	}
	// PostgreSQL runs as its own user, which must reach its directory.
	return os.Chmod(s.cfg.Work, 0o711)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startAPI starts apiusage on a fresh data directory, creates one
// organization per workload organization and registers the clients the
// queries name.
func (s *suite) startAPI(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	var sec [16]byte
	rand.Read(sec[:])
	secret := hex.EncodeToString(sec[:])
	s.srv = &apiServer{
		bin: s.cfg.Apiusage, data: filepath.Join(s.runDir, "apiusage-data"), addr: addr,
		env: []string{"APIUSAGE_BOOTSTRAP_CLIENT_ID=usagebench", "APIUSAGE_BOOTSTRAP_CLIENT_SECRET=" + secret},
	}
	if s.cfg.Profile != "" {
		if s.srv.debugAddr, err = freeAddr(); err != nil {
			return err
		}
		if err := os.MkdirAll(s.cfg.Profile, 0o755); err != nil {
			return err
		}
		s.prof = &profiler{addr: s.srv.debugAddr, dir: s.cfg.Profile, hc: &http.Client{}}
	}
	if _, err := s.srv.start(ctx); err != nil {
		return err
	}
	base := newAPI("http://"+addr, s.cfg.Posters+2)
	if s.platform, err = base.login(ctx, "usagebench", secret); err != nil {
		return err
	}
	u := s.gen.Universe()
	s.rw = &rewriter{orgs: map[string]string{}, clients: map[string]string{}}
	orgs := make([]int, len(u.Organizations))
	for i := range orgs {
		orgs[i] = i
	}
	slices.SortStableFunc(orgs, func(a, b int) int {
		switch {
		case u.Organizations[a].Share > u.Organizations[b].Share:
			return -1
		case u.Organizations[a].Share < u.Organizations[b].Share:
			return 1
		}
		return 0
	})
	if s.cfg.OrgRank < 0 || s.cfg.OrgRank >= len(orgs) {
		return fmt.Errorf("--org-rank %d: the workload has %d organizations", s.cfg.OrgRank, len(orgs))
	}
	s.orgGen = orgs[s.cfg.OrgRank]
	for i, o := range u.Organizations {
		id, admin, err := s.platform.createOrganization(ctx, "Workload organization "+strconv.Itoa(i+1))
		if err != nil {
			return err
		}
		s.rw.orgs[o.ID] = id
		if i == s.orgGen {
			s.org = id
			if s.orgAPI, err = base.login(ctx, admin.ID, admin.Secret); err != nil {
				return err
			}
		}
	}
	s.rw.watch = s.org
	// The busiest client of the organization is registered, so that client
	// queries and the summary may name it; its name is the workload's.
	busiest := u.OrganizationClients(s.orgGen)[0]
	c, err := s.orgAPI.createClient(ctx, busiest.Name, []string{apiusage.PermUsageClient})
	if err != nil {
		return err
	}
	s.rw.clients[busiest.ID] = c.ID
	s.rep.org = orgInfo{Rank: s.cfg.OrgRank, Share: u.Organizations[s.orgGen].Share,
		Clients: len(u.OrganizationClients(s.orgGen)), Client: busiest.Name, ClientShare: busiest.Share}
	return nil
}

// warmFile reads the workload file once, untimed, when it fits in the page
// cache, so that the first system loaded reads it from the cache as the
// others do: before, apiusage, loaded first, read it from the disk whenever
// a run before had pushed it out of the cache, and its ingest figure then
// counted the generator's disk reads (0.59 CPU-s per million events against
// 0.27 cached) where the baselines' did not. A file too big to stay cached
// is read from the disk by every system alike.
func (s *suite) warmFile(context.Context) error {
	st, err := os.Stat(s.file)
	if err != nil {
		return err
	}
	if !fitsCache(st.Size()) {
		s.logf("   %s does not fit in the page cache: every system reads it from the disk", s.file)
		s.rep.fileRead = "disk"
		return nil
	}
	f, err := os.Open(s.file)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(io.Discard, f); err != nil {
		return fmt.Errorf("read %s: %w", s.file, err)
	}
	s.rep.fileRead = "cached"
	return nil
}

// ingestAPI posts the whole file and measures the rate and the server's CPU.
func (s *suite) ingestAPI(ctx context.Context) error {
	cpu0, err := cpuTime(s.srv.pid())
	if err != nil {
		return err
	}
	// A profile of the first 10 s of ingestion, which lasts longer.
	// The load generator's own profile covers the whole ingest.
	waitProf, stopSelf := func() error { return nil }, func() error { return nil }
	if s.prof != nil {
		waitProf = s.prof.startCPU(ctx, "ingest", 10*time.Second)
		if stopSelf, err = s.prof.self("usagebench.ingest.cpu"); err != nil {
			return err
		}
	}
	self0 := selfCPU()
	res, err := ingestFile(ctx, s.platform, s.file, s.cfg.Read, s.rw, s.cfg.Batch, s.cfg.Posters, 0, nil)
	self1 := selfCPU()
	if perr := stopSelf(); err == nil {
		err = perr
	}
	if perr := waitProf(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	cpu1, err := cpuTime(s.srv.pid())
	if err != nil {
		return err
	}
	if res.Acked != s.cfg.Events {
		return fmt.Errorf("acknowledged %d events, want %d", res.Acked, s.cfg.Events)
	}
	s.ingested = res
	s.rep.ingest = append(s.rep.ingest, ingestRow{
		System: "apiusage", How: fmt.Sprintf("POST /api/v2/usage/events, NDJSON, %d events a batch, %d connections", s.cfg.Batch, s.cfg.Posters),
		Durable: "yes: 202 after fsync", Events: res.Acked, Elapsed: res.Elapsed, CPU: cpu1 - cpu0, RunnerCPU: self1 - self0,
	})
	s.logf("   %d events in %s: %.0f events/s, server CPU %s, load generator CPU %s", res.Acked, res.Elapsed.Round(time.Millisecond),
		float64(res.Acked)/res.Elapsed.Seconds(), cpu1-cpu0, (self1 - self0).Round(time.Millisecond))
	rss, peak, err := memory(s.srv.pid())
	if err != nil {
		return err
	}
	disk, err := diskBytes(s.srv.data)
	if err != nil {
		return err
	}
	s.rep.afterIngest = footprintRow{System: "apiusage (after ingest)", RSS: rss, Peak: peak, Disk: disk, Events: res.Acked}
	return nil
}

func (s *suite) loadClickHouse(ctx context.Context) error {
	if !s.cfg.Baselines {
		return nil
	}
	hp, err := clickhouse.FreePort()
	if err != nil {
		return err
	}
	tp, err := clickhouse.FreePort()
	if err != nil {
		return err
	}
	if s.chSrv, err = clickhouse.StartServer(ctx, filepath.Join(s.runDir, "clickhouse"), hp, tp); err != nil {
		return err
	}
	s.ch = clickhouse.New(s.chSrv.URL, "usagebench")
	if err := s.ch.Create(ctx); err != nil {
		return err
	}
	f, err := openWorkload(s.file, s.cfg.Read)
	if err != nil {
		return err
	}
	defer f.Close()
	cpu0, _ := cpuTime(s.chSrv.PID())
	self0 := selfCPU()
	began := time.Now()
	if err := s.ch.Load(ctx, newRenamingReader(f, s.rw)); err != nil {
		return err
	}
	el := time.Since(began)
	self1 := selfCPU()
	cpu1, _ := cpuTime(s.chSrv.PID())
	n, err := s.ch.Count(ctx)
	if err != nil {
		return err
	}
	if n != s.cfg.Events {
		return fmt.Errorf("clickhouse holds %d events, want %d", n, s.cfg.Events)
	}
	s.rep.ingest = append(s.rep.ingest, ingestRow{
		System: "ClickHouse " + s.chVersion(ctx), How: "one streaming INSERT ... FORMAT JSONEachRow over HTTP",
		Durable: "no: acknowledged without fsync", Events: n, Elapsed: el, CPU: cpu1 - cpu0, RunnerCPU: self1 - self0,
	})
	s.logf("   %d events in %s: %.0f events/s; waiting for merges", n, el.Round(time.Millisecond), float64(n)/el.Seconds())
	return s.ch.WaitMerges(ctx, 10*time.Minute)
}

func (s *suite) chVersion(ctx context.Context) string {
	out, err := s.ch.Version(ctx)
	if err != nil {
		return "(version unknown)"
	}
	return out
}

func (s *suite) loadPostgres(ctx context.Context) error {
	if !s.cfg.Baselines || !s.cfg.Postgres {
		return nil
	}
	port, err := postgres.FreePort()
	if err != nil {
		return err
	}
	if s.pgSrv, err = postgres.StartServer(ctx, filepath.Join(s.runDir, "postgres"), port); err != nil {
		return err
	}
	if s.pg, err = postgres.Open(ctx, s.pgSrv.DSN, "usagebench"); err != nil {
		return err
	}
	if err := s.pg.Create(ctx); err != nil {
		return err
	}
	f, err := openWorkload(s.file, s.cfg.Read)
	if err != nil {
		return err
	}
	defer f.Close()
	cpu0 := treeCPU(s.pgSrv.PID())
	self0 := selfCPU()
	began := time.Now()
	n, err := s.pg.Load(ctx, newRenamingReader(f, s.rw))
	if err != nil {
		return err
	}
	el := time.Since(began)
	self1 := selfCPU()
	cpu1 := treeCPU(s.pgSrv.PID())
	if n != s.cfg.Events {
		return fmt.Errorf("postgres copied %d events, want %d", n, s.cfg.Events)
	}
	s.logf("   %d events in %s: %.0f events/s; building indexes", n, el.Round(time.Millisecond), float64(n)/el.Seconds())
	began = time.Now()
	if err := s.pg.Index(ctx); err != nil {
		return err
	}
	idx := time.Since(began)
	s.logf("   indexes in %s; VACUUM (ANALYZE)", idx.Round(time.Millisecond))
	began = time.Now()
	if err := s.pg.Vacuum(ctx); err != nil {
		return err
	}
	vac := time.Since(began)
	s.rep.ingest = append(s.rep.ingest, ingestRow{
		System: "PostgreSQL " + s.pgVersion(ctx), How: "one COPY FROM STDIN (NDJSON converted to COPY text on the fly)",
		Durable: "yes: committed", Events: n, Elapsed: el, CPU: cpu1 - cpu0, RunnerCPU: self1 - self0,
		Note: fmt.Sprintf("then indexes (organization, time) and (client, time): %s more; then VACUUM (ANALYZE), "+
			"so that autovacuum does not process the loaded rows while queries are timed: %s more", ms(idx), ms(vac)),
	})
	return nil
}

func (s *suite) pgVersion(ctx context.Context) string {
	v, err := s.pg.Version(ctx)
	if err != nil {
		return "(version unknown)"
	}
	return v
}

// treeCPU is the CPU time of a process and its live descendants.
func treeCPU(pid int) time.Duration {
	var total time.Duration
	for _, p := range descendants(pid) {
		if c, err := cpuTime(p); err == nil {
			total += c
		}
	}
	return total
}

// buildQuerySet fixes the queries: their organization, client and the
// clients of the simple search (the third to fifth busiest of the
// organization, whose rows stay under the search's 20,000).
func (s *suite) buildQuerySet(ctx context.Context) error {
	clients := s.gen.Universe().OrganizationClients(s.orgGen)
	search := map[string]string{}
	for i := 2; i < min(5, len(clients)); i++ {
		search[clients[i].Name] = clients[i].ID
	}
	if len(search) == 0 {
		search[clients[0].Name] = clients[0].ID
	}
	busiest := s.rw.clients[clients[0].ID]
	for name, id := range search {
		if to, ok := s.rw.clients[id]; ok {
			search[name] = to
		}
	}
	qs, err := buildQueries(querySetup{
		Start: s.gen.Start(), End: s.gen.Config().End, Org: s.org, Client: busiest,
		SearchClients: search, Now: time.Now(),
	})
	if err != nil {
		return err
	}
	s.queries = qs
	return nil
}

// runAPI runs a query on apiusage and returns its rows and time.
func (s *suite) runAPI(ctx context.Context, q querySpec) ([]apiusage.Row, time.Duration, error) {
	pages, el, err := s.orgAPI.execute(ctx, q.Path, q.Body, q.PageSize)
	if err != nil {
		return nil, 0, err
	}
	rows, err := decodeRows(pages, q)
	return rows, el, err
}

type system struct {
	name string
	run  func(context.Context, querySpec) ([]apiusage.Row, time.Duration, error)
}

func (s *suite) systems() []system {
	out := []system{{"apiusage", s.runAPI}}
	if s.ch != nil {
		out = append(out, system{"ClickHouse", func(ctx context.Context, q querySpec) ([]apiusage.Row, time.Duration, error) {
			began := time.Now()
			rows, err := s.ch.Query(ctx, q.Query)
			return rows, time.Since(began), err
		}})
	}
	if s.pg != nil {
		out = append(out, system{"PostgreSQL", func(ctx context.Context, q querySpec) ([]apiusage.Row, time.Duration, error) {
			began := time.Now()
			rows, err := s.pg.Query(ctx, q.Query)
			return rows, time.Since(began), err
		}})
	}
	return out
}

// checkCorrectness asks every query of every system and fails unless all
// answer the same rows, before any time is reported.
func (s *suite) checkCorrectness(ctx context.Context) error {
	systems := s.systems()
	var failures []string
	s.first = map[string][]time.Duration{}
	for _, q := range s.queries {
		var ref []apiusage.Row
		for i, sys := range systems {
			rows, el, err := sys.run(ctx, q)
			if err != nil {
				return fmt.Errorf("%s on %s: %w", q.Name, sys.name, err)
			}
			s.first[q.Name] = append(s.first[q.Name], el)
			rows = normalize(rows, q)
			if i == 0 {
				ref = rows
				s.rep.rows[q.Name] = len(rows)
				if len(rows) == 0 {
					failures = append(failures, fmt.Sprintf("%s: apiusage answered no rows: the comparison would prove nothing", q.Name))
				}
				if q.Search && len(rows) >= 20_000 {
					failures = append(failures, fmt.Sprintf("%s: %d rows, at the simple search's limit of 20,000: choose other clients", q.Name, len(rows)))
				}
				continue
			}
			if d := diffRows(ref, rows); d != "" {
				failures = append(failures, fmt.Sprintf("%s: apiusage and %s differ: apiusage has %s", q.Name, sys.name, d))
			}
		}
		s.logf("   %s: %d rows, equal on %d systems", q.Name, len(ref), len(systems))
	}
	if len(failures) > 0 {
		return fmt.Errorf("the systems do not agree; no time is reported:\n%s", strings.Join(failures, "\n"))
	}
	s.rep.agreed = len(systems)
	return nil
}

// timeQueries repeats each query on each system, round-robin across the
// systems so that a disturbance of the machine hits all, until the budget
// or the most runs are spent. The correctness check's run is the first.
func (s *suite) timeQueries(ctx context.Context) error {
	for _, q := range s.queries {
		systems := s.systems()
		times := make([][]time.Duration, len(systems))
		spent := make([]time.Duration, len(systems))
		for i, el := range s.first[q.Name] {
			times[i] = append(times[i], el)
			spent[i] += el
		}
		for rep := 1; rep < s.cfg.MaxReps; rep++ {
			anyRan := false
			for i, sys := range systems {
				if rep >= s.cfg.MinReps && spent[i] >= s.cfg.QueryBudget {
					continue
				}
				began := time.Now()
				_, el, err := sys.run(ctx, q)
				if err != nil {
					return fmt.Errorf("%s on %s: %w", q.Name, sys.name, err)
				}
				spent[i] += time.Since(began)
				times[i] = append(times[i], el)
				anyRan = true
			}
			if !anyRan {
				break
			}
		}
		row := latencyRow{Query: q, Rows: s.rep.rows[q.Name], By: map[string]summary{}}
		for i, sys := range systems {
			row.By[sys.name] = summarize(times[i])
		}
		s.rep.latency = append(s.rep.latency, row)
		s.logf("   %s: apiusage median %s p99 %s (n=%d)", q.Name, row.By["apiusage"].Median, row.By["apiusage"].P99, row.By["apiusage"].N)
	}
	return nil
}

// freshness ingests single marker events and polls a query until each
// shows: the time from the ingest's 2xx to the event's presence.
func (s *suite) freshness(ctx context.Context) error {
	var ds []time.Duration
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC) // far from the workload's days
	for i := range s.cfg.Probes {
		at := base.Add(time.Duration(i) * time.Hour)
		client := fmt.Sprintf("freshness-probe-%d", i)
		line := fmt.Sprintf(`{"timestamp":%q,"organizationId":%q,"clientId":%q,"templateUri":"api/v2/probe","httpMethod":"GET","status":200}`+"\n",
			at.Format("2006-01-02T15:04:05.000Z"), s.org, client)
		if err := s.platform.ingest(ctx, []byte(line)); err != nil {
			return err
		}
		acked := time.Now()
		s.markers++
		body := map[string]any{"interval": at.Format(time.RFC3339) + "/" + at.Add(time.Hour).Format(time.RFC3339)}
		for {
			pages, _, err := s.orgAPI.execute(ctx, "/api/v2/usage/query", body, 0)
			if err != nil {
				return err
			}
			if strings.Contains(string(pages[0]), client) {
				ds = append(ds, time.Since(acked))
				break
			}
			if time.Since(acked) > time.Minute {
				return fmt.Errorf("probe %d not visible a minute after its 2xx", i)
			}
		}
	}
	s.rep.freshness = summarize(ds)
	return nil
}

func (s *suite) footprint(ctx context.Context) error {
	rss, peak, err := memory(s.srv.pid())
	if err != nil {
		return err
	}
	disk, err := diskBytes(s.srv.data)
	if err != nil {
		return err
	}
	s.rep.footprint = append(s.rep.footprint, s.rep.afterIngest,
		footprintRow{System: "apiusage (after the queries)", RSS: rss, Peak: peak, Disk: disk, Events: s.ingested.Acked})
	if s.ch != nil {
		b, err := s.ch.DiskBytes(ctx)
		if err != nil {
			return err
		}
		rss, _, _ := memory(s.chSrv.PID())
		s.rep.footprint = append(s.rep.footprint, footprintRow{System: "ClickHouse (table)", RSS: rss, Disk: b, Events: s.cfg.Events})
	}
	if s.pg != nil {
		b, err := s.pg.DiskBytes(ctx)
		if err != nil {
			return err
		}
		rss, _ := treeMemory(s.pgSrv.PID())
		s.rep.footprint = append(s.rep.footprint, footprintRow{System: "PostgreSQL (table and indexes)", RSS: rss, Disk: b, Events: s.cfg.Events})
	}
	return nil
}

// restart posts events again, kills the server with SIGKILL in the middle,
// restarts it and measures the time until /healthz answers; then checks
// that every acknowledged event of the queried organization is counted.
func (s *suite) restart(ctx context.Context) error {
	// What the organization holds before.
	before, err := s.orgTotal(ctx)
	if err != nil {
		return err
	}
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan ingestResult, 1)
	var progress atomic.Int64
	go func() {
		res, _ := ingestFile(ictx, s.platform, s.file, s.cfg.Read, s.rw, s.cfg.Batch, s.cfg.Posters, s.cfg.RestartEvents, &progress)
		done <- res
	}()
	// Kill in the middle: once a quarter of the events are acknowledged
	// (or a minute has passed), with more batches in flight.
	deadline := time.Now().Add(time.Minute)
	for progress.Load() < s.cfg.RestartEvents/4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	s.srv.kill()
	res := <-done
	if res.Acked >= s.cfg.RestartEvents {
		return fmt.Errorf("the ingest of %d events ended before the kill: raise --restart-events", s.cfg.RestartEvents)
	}
	took, err := s.srv.start(ctx)
	if err != nil {
		return err
	}
	after, err := s.orgTotal(ctx)
	if err != nil {
		return err
	}
	got := after - before
	r := restartRow{Took: took, Sent: res.SentWatched, Acked: res.AckedWatched, Counted: got}
	r.OK = got >= res.AckedWatched && got <= res.SentWatched
	s.rep.restart = r
	rss, peak, _ := memory(s.srv.pid())
	disk, _ := diskBytes(s.srv.data)
	s.rep.footprint = append(s.rep.footprint, footprintRow{System: "apiusage (after restart)", RSS: rss, Peak: peak, Disk: disk,
		Events: s.ingested.Acked + res.Acked})
	if !r.OK {
		return fmt.Errorf("after kill -9: %d events of the organization counted, want from %d (acknowledged) to %d (sent)",
			got, res.AckedWatched, res.SentWatched)
	}
	return nil
}

// orgTotal is the number of requests of the queried organization over all
// time the workload and the probes cover.
func (s *suite) orgTotal(ctx context.Context) (int64, error) {
	pages, _, err := s.orgAPI.execute(ctx, "/api/v2/usage/query",
		map[string]any{"interval": "2019-01-01/2030-01-01", "groupBy": []string{"OrganizationId"}}, 0)
	if err != nil {
		return 0, err
	}
	rows, err := decodeRows(pages, querySpec{Name: "total"})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range rows {
		n += r.Counts.Requests
	}
	return n, nil
}
