package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/apiusage/apiusage/bench/workload"
)

type ingestRow struct {
	System, How, Durable string
	Events               int64
	Elapsed              time.Duration
	CPU                  time.Duration // the server's
	// RunnerCPU is the load generator's own: usagebench reading the file,
	// renaming and sending it, on the same cores as the server.
	RunnerCPU time.Duration
	Note      string
}

func (r ingestRow) rate() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

type latencyRow struct {
	Query querySpec
	Rows  int
	By    map[string]summary
}

type footprintRow struct {
	System    string
	RSS, Peak int64
	Disk      int64
	Events    int64
}

type restartRow struct {
	Took                 time.Duration
	Sent, Acked, Counted int64
	OK                   bool
}

type orgInfo struct {
	Rank        int
	Share       float64
	Clients     int
	Client      string
	ClientShare float64
}

// report collects a run's figures and writes the results table.
type report struct {
	cfg       config
	date      time.Time
	loadStart string // /proc/loadavg when the run began
	fileBytes int64
	// fileRead says how the loads read the workload file: "cached" when
	// it was read once before them, "disk" when it is too big to stay in
	// the page cache, "" when not known.
	fileRead   string
	universe   *workload.Universe
	start, end time.Time
	org        orgInfo

	ingest      []ingestRow
	rows        map[string]int
	agreed      int
	latency     []latencyRow
	freshness   summary
	afterIngest footprintRow
	footprint   []footprintRow
	restart     restartRow
}

func newReport(cfg config) *report {
	return &report{cfg: cfg, date: time.Now().UTC(), rows: map[string]int{}, loadStart: loadavg()}
}

// write writes the table to dir/<date>-<mode>.md (or, when a run of the
// day wrote that already, to a name with the time) and returns its path.
func (r *report) write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// A second run of the day gets the time in its name: the tables of
	// earlier runs are kept, never overwritten.
	base := filepath.Join(dir, r.date.Format(time.DateOnly)+"-"+r.cfg.Mode)
	for _, path := range []string{base + ".md", base + "-" + r.date.Format("1504") + ".md", base + "-" + r.date.Format("150405") + ".md"} {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.WriteString(r.markdown(machine()))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return path, err
	}
	return "", fmt.Errorf("results tables %s*.md exist already", base)
}

// machineInfo describes the machine the run measured.
type machineInfo struct {
	CPUs          int
	Model, Kernel string
	Memory, GoVer string
}

// loadavg returns the 1, 5 and 15 minute load averages: on a shared
// machine, how much else was running.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func machine() machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), GoVer: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
				m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	case d < 10*time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func bytesIEC(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// ratio is how many times faster a is than b (b's time over a's).
func ratio(ours, theirs time.Duration) string {
	if ours == 0 || theirs == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f×", float64(theirs)/float64(ours))
}

func (r *report) markdown(m machineInfo) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# apiusage benchmark: %s run, %s", r.cfg.Mode, r.date.Format(time.DateOnly))
	p("")
	p("Written by `scripts/bench %s` (bench/cmd/usagebench) at %s UTC.", r.cfg.Mode, r.date.Format("15:04"))
	p("")
	p("## Machine")
	p("")
	p("- CPUs (nproc): %d, %s", m.CPUs, m.Model)
	p("- Memory: %s; kernel %s; %s", m.Memory, m.Kernel, m.GoVer)
	p("- Load average (1, 5, 15 min) at the start %s, at the end %s: the machine is shared, and other work may have run at the same time; the systems were measured in the same run, in turns, so the ratios are steadier than the absolute figures.", r.loadStart, loadavg())
	p("")
	p("## Workload")
	p("")
	p("- `usagegen --seed %d --events %d --end %s`: %d events over %s to %s (%s of NDJSON, %.0f bytes an event)",
		r.cfg.Seed, r.cfg.Events, r.end.Format(time.DateOnly), r.cfg.Events, r.start.Format(time.DateOnly),
		r.end.Format(time.DateOnly), bytesIEC(r.fileBytes), float64(r.fileBytes)/float64(r.cfg.Events))
	if r.universe != nil {
		p("- %d organizations, %d clients, %d users, %d template URIs, %d methods; Zipf-skewed, day/night cycle, 429 bursts, 10%% without a user",
			len(r.universe.Organizations), len(r.universe.Clients), len(r.universe.Users), len(r.universe.Templates), len(workload.Methods))
	}
	p("- Queries ask about the organization of size rank %d (%.1f%% of the events, %d clients); the client queries about its busiest client (%.1f%% of all events)",
		r.org.Rank, 100*r.org.Share, r.org.Clients, 100*r.org.ClientShare)
	p("")
	p("## Correctness")
	p("")
	if r.agreed > 1 {
		p("Before any timing, every query below was answered by all %d systems with the same rows and numbers (simple search compared as a set, without `requests`, which it does not return).", r.agreed)
	} else {
		p("Only apiusage ran (--baselines=false): nothing was compared, no ratio is given.")
	}
	if r.cfg.Baselines && !r.cfg.Postgres {
		p("")
		p("PostgreSQL did not run (--postgres=false): its columns are empty. The issue's targets are set against ClickHouse.")
	}
	p("")
	p("## Ingest")
	p("")
	p("| system | how | durable acknowledgement | events/s | elapsed | server CPU s per million events | load generator CPU s per million events |")
	p("|---|---|---|---:|---:|---:|---:|")
	for _, in := range r.ingest {
		p("| %s | %s | %s | %.0f | %s | %.2f | %.2f |", in.System, in.How, in.Durable, in.rate(), ms(in.Elapsed),
			in.CPU.Seconds()/(float64(in.Events)/1e6), in.RunnerCPU.Seconds()/(float64(in.Events)/1e6))
	}
	p("")
	p("The load generator (usagebench: reading the file, renaming, sending; for PostgreSQL also converting NDJSON to COPY text) runs on the same cores as the server, so its CPU is taken from what the server could have used.")
	switch r.fileRead {
	case "cached":
		p("The workload file fits in the page cache and was read once before the loads, so that every system's load read it from the cache.")
	case "disk":
		p("The workload file is too big to stay in the page cache (more than half the memory): every system's load read it from the disk.")
	}
	for _, in := range r.ingest {
		if in.Note != "" {
			p("")
			p("%s: %s.", in.System, in.Note)
		}
	}
	if len(r.ingest) > 1 {
		p("")
		for _, in := range r.ingest[1:] {
			p("- apiusage ingests at %.2f× the rate of %s.", r.ingest[0].rate()/in.rate(), in.System)
		}
	}
	p("")
	p("## Query latency")
	p("")
	p("apiusage: from the POST (or the summary's GET) to the end of the first `Complete` results body, polling every %s, all pages of the simple search included. Baselines: the SQL query's round trip with its rows read. Median / p99 (nearest rank) over n runs, the first of which is the correctness check's; each system runs until %d runs and %s of runs are done (at most %d).", pollInterval, r.cfg.MinReps, r.cfg.QueryBudget, r.cfg.MaxReps)
	p("")
	p("| query | rows | apiusage | ClickHouse | PostgreSQL | vs ClickHouse | vs PostgreSQL |")
	p("|---|---:|---:|---:|---:|---:|---:|")
	for _, l := range r.latency {
		cell := func(sys string) string {
			s, ok := l.By[sys]
			if !ok {
				return "–"
			}
			return fmt.Sprintf("%s / %s (n=%d)", ms(s.Median), ms(s.P99), s.N)
		}
		p("| %s | %d | %s | %s | %s | %s | %s |", l.Query.Description, l.Rows, cell("apiusage"), cell("ClickHouse"), cell("PostgreSQL"),
			ratio(l.By["apiusage"].Median, l.By["ClickHouse"].Median), ratio(l.By["apiusage"].Median, l.By["PostgreSQL"].Median))
	}
	p("")
	p("Ratios are medians: how many times faster apiusage answered.")
	p("")
	p("## Freshness")
	p("")
	p("Time from the 2xx of a one-event ingest to the first query result that holds it, over %d probes: median %s, p99 %s, max %s.",
		r.freshness.N, ms(r.freshness.Median), ms(r.freshness.P99), ms(r.freshness.Max))
	p("")
	p("## Footprint")
	p("")
	p("| system | RSS | peak RSS | on disk | bytes per event |")
	p("|---|---:|---:|---:|---:|")
	for _, f := range r.footprint {
		peak := "–"
		if f.Peak > 0 {
			peak = bytesIEC(f.Peak)
		}
		p("| %s | %s | %s | %s | %.1f |", f.System, bytesIEC(f.RSS), peak, bytesIEC(f.Disk), float64(f.Disk)/float64(f.Events))
	}
	p("")
	p("## Restart after kill -9")
	p("")
	p("The server was killed with SIGKILL in the middle of posting %d more events (once a quarter of them were acknowledged), then started again: /healthz answered %s after the start. Of the queried organization's events in that ingest, %d were acknowledged, %d sent and %d counted after the restart (%s).",
		r.cfg.RestartEvents, ms(r.restart.Took), r.restart.Acked, r.restart.Sent, r.restart.Counted,
		map[bool]string{true: "nothing acknowledged was lost", false: "WRONG"}[r.restart.OK])
	p("")
	p("## Targets (issue 5; set for the full run)")
	p("")
	p("| target | measured | met |")
	p("|---|---|---|")
	yes := func(ok bool) string { return map[bool]string{true: "yes", false: "**no**"}[ok] }
	if len(r.ingest) > 0 {
		rate := r.ingest[0].rate()
		p("| ingest ≥ 1,000,000 events/s, durable | %.0f events/s | %s |", rate, yes(rate >= 1e6))
		for _, in := range r.ingest[1:] {
			if strings.HasPrefix(in.System, "ClickHouse") {
				p("| ingest ≥ ClickHouse's JSONEachRow rate | %.2f× | %s |", rate/in.rate(), yes(rate >= in.rate()))
			}
		}
	}
	for i, l := range r.latency {
		ours, ch := l.By["apiusage"].Median, l.By["ClickHouse"].Median
		want := 10.0
		if i == 0 {
			want = 20
			p("| %s: median < 50 ms | %s | %s |", l.Query.Name, ms(ours), yes(ours < 50*time.Millisecond))
		}
		if ch > 0 {
			p("| %s: ≥ %.0f× faster than ClickHouse | %s | %s |", l.Query.Name, want, ratio(ours, ch), yes(float64(ch) >= want*float64(ours)))
		}
	}
	p("| freshness p99 < 1 s | %s | %s |", ms(r.freshness.P99), yes(r.freshness.P99 < time.Second))
	var maxRSS int64
	var perEvent float64
	for _, f := range r.footprint {
		if strings.HasPrefix(f.System, "apiusage") {
			maxRSS = max(maxRSS, f.RSS, f.Peak)
			perEvent = max(perEvent, float64(f.Disk)/float64(f.Events))
		}
	}
	p("| RSS < 1 GiB | peak %s | %s |", bytesIEC(maxRSS), yes(maxRSS < 1<<30))
	p("| < 10 bytes on disk per event | %.1f | %s |", perEvent, yes(perEvent < 10))
	p("| restart after kill -9 < 5 s | %s | %s |", ms(r.restart.Took), yes(r.restart.Took < 5*time.Second && r.restart.OK))
	return b.String()
}
