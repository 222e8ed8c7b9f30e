package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiusage/apiusage/bench/workload"
)

var (
	readFile   = flag.String("usagebench.file", "", "BenchmarkReadWorkload: a workload file (of seed 1) to read")
	readWay    = flag.String("usagebench.read", readDropBehind, "BenchmarkReadWorkload: how to read it: dropbehind, direct or plain")
	readGiB    = flag.Float64("usagebench.gib", 0, "BenchmarkReadWorkload: GiB to read from the start (0: all)")
	readEvents = flag.Int64("usagebench.events", 100_000_000, "BenchmarkReadWorkload: the events of the file's workload, for its renaming")
)

// BenchmarkReadWorkload reads a workload file through the batcher, renamed
// as the suite renames it, without posting: what the load generator spends
// reading. Besides the process's CPU seconds per GB it reports the whole
// machine's (from /proc/stat: the kernel's reclaim in kswapd is counted
// there, not in the process) and kswapd's. The file is named by
// -usagebench.file; run it for a file larger than memory, alternating the
// ways of reading:
//
//	go test -c -o /tmp/ub.test ./bench/cmd/usagebench
//	/tmp/ub.test -test.run XXX -test.bench ReadWorkload -test.benchtime 1x \
//	    -usagebench.file /tmp/apiusage-bench/events-s1-n100000000-e20261101.ndjson -usagebench.read plain
func BenchmarkReadWorkload(b *testing.B) {
	if *readFile == "" {
		b.Skip("no -usagebench.file")
	}
	g, err := workload.New(workload.Config{Seed: 1, Events: *readEvents})
	if err != nil {
		b.Fatal(err)
	}
	rw := benchRewriter(g.Universe())
	limit := int64(*readGiB * (1 << 30))
	b.ReportAllocs()
	var bytesRead, events int64
	kswapd := kswapdPIDs(b)
	self0, busy0, ksw0 := selfCPU(), machineBusy(b), treeCPUOf(kswapd)
	for b.Loop() {
		f, err := openWorkload(*readFile, *readWay)
		if err != nil {
			b.Fatal(err)
		}
		bt := newBatcher(f, rw, 10_000)
		var bb batch
		var n int64
		for limit == 0 || n < limit {
			err := bt.next(&bb)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n += int64(len(bb.body))
			events += int64(bb.events)
		}
		bytesRead += n
		f.Close()
	}
	self, busy, ksw := selfCPU()-self0, machineBusy(b)-busy0, treeCPUOf(kswapd)-ksw0
	gb := float64(bytesRead) / 1e9
	b.ReportMetric(self.Seconds()/gb, "cpu-s/GB")
	b.ReportMetric(busy.Seconds()/gb, "machine-cpu-s/GB")
	b.ReportMetric(ksw.Seconds()/gb, "kswapd-cpu-s/GB")
	b.ReportMetric(self.Seconds()/float64(events)*1e6, "cpu-s/Mevents")
	b.ReportMetric(busy.Seconds()/float64(events)*1e6, "machine-cpu-s/Mevents")
	b.ReportMetric(gb/b.Elapsed().Seconds(), "GB/s")
}

// machineBusy is the time all CPUs have spent other than idle or waiting
// for I/O, from /proc/stat's first line.
func machineBusy(b *testing.B) time.Duration {
	b.Helper()
	s, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := bytes.Cut(s, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		b.Fatalf("bad /proc/stat line %q", line)
	}
	var ticks int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// kswapdPIDs are the kernel's page reclaim threads.
func kswapdPIDs(b *testing.B) []int {
	b.Helper()
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	var pids []int
	for _, c := range comms {
		name, err := os.ReadFile(c)
		if err == nil && strings.HasPrefix(string(name), "kswapd") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
			pids = append(pids, pid)
		}
	}
	return pids
}

func treeCPUOf(pids []int) time.Duration {
	var d time.Duration
	for _, p := range pids {
		t, _ := cpuTime(p)
		d += t
	}
	return d
}
