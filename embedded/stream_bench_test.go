package embedded

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/apiusage/apiusage"
	gen "github.com/apiusage/apiusage/bench/workload"
)

// streamEvents is how many of the suite's workload events BenchmarkIngestStream
// ingests: four and a half days of its 10-million-event file.
const streamEvents = 500_000

var (
	streamOnce    sync.Once
	streamBatches []apiusage.Batch
	streamErr     error
)

// errEnough stops the workload generator once it wrote enough lines.
var errEnough = errors.New("enough")

// lineLimit is a writer that takes the first n lines written to it.
type lineLimit struct {
	buf bytes.Buffer
	n   int
}

func (w *lineLimit) Write(p []byte) (int, error) {
	for i, c := range p {
		if c == '\n' {
			if w.n--; w.n == 0 {
				w.buf.Write(p[:i+1])
				return i + 1, errEnough
			}
		}
	}
	return w.buf.Write(p)
}

// streamWorkload returns the first streamEvents events of the suite's quick
// workload (bench/workload, seed 1, 10 million events), in batches of 10,000
// with the hints a decoder gives, built once.
func streamWorkload(tb testing.TB) []apiusage.Batch {
	tb.Helper()
	streamOnce.Do(func() {
		g, err := gen.New(gen.Config{Seed: 1})
		if err != nil {
			streamErr = err
			return
		}
		w := &lineLimit{n: streamEvents}
		if _, err := g.WriteTo(w); err != nil && !errors.Is(err, errEnough) {
			streamErr = err
			return
		}
		sc := bufio.NewScanner(&w.buf)
		var events []apiusage.Event
		for sc.Scan() {
			var e apiusage.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				streamErr = err
				return
			}
			events = append(events, e)
			if len(events) == 10_000 {
				streamBatches = append(streamBatches, apiusage.Batch{Events: events, Strings: hintOf(events)})
				events = nil
			}
		}
	})
	if streamErr != nil {
		tb.Fatal(streamErr)
	}
	return streamBatches
}

// BenchmarkIngestStream measures the store's CPU per event of the suite's
// ingest: 500,000 events of its workload, in time order, in batches of
// 10,000 with a decoder's hints, into a store that starts empty, so that
// hours and days fill and go cold as they do under live traffic (nearly
// one hourly row per event). Each batch is prepared (as its Append
// goroutine would), encoded as the WAL would have it and applied, and the
// writer freezes the days gone cold; neither the WAL's write nor fsync nor
// checkpoints are in it. Tokens are handed back as a decoder that
// remembers every value would.
func BenchmarkIngestStream(b *testing.B) {
	batches := streamWorkload(b)
	// The tokens each batch comes with: those its values got in the
	// batches before (a store that starts empty gives the same ids
	// every time), copied into each batch's own before it is prepared,
	// since the store writes them.
	known := [6]map[string]uint32{}
	for f := range known {
		known[f] = map[string]uint32{}
	}
	given := make([][6][]uint32, len(batches))
	hints := make([]apiusage.BatchStrings, len(batches))
	s := openTest(b, "", Options{})
	for i, bt := range batches {
		hints[i] = *bt.Strings
		for f, vals := range bt.Strings.Values {
			given[i][f] = make([]uint32, len(vals))
			hints[i].Tokens[f] = make([]uint32, len(vals))
			for j, v := range vals {
				given[i][f][j] = known[f][v]
			}
			copy(hints[i].Tokens[f], given[i][f])
		}
		hints[i].TokenStore = s.dict.instance
		p, err := s.prepare(context.Background(), apiusage.Batch{Events: bt.Events, Strings: &hints[i]})
		if err != nil {
			b.Fatal(err)
		}
		s.release(p)
		for f, vals := range bt.Strings.Values {
			for j, v := range vals {
				known[f][v] = hints[i].Tokens[f][j]
			}
		}
	}
	b.ReportAllocs()
	var buf []byte
	var cpu int64
	for b.Loop() {
		b.StopTimer()
		s, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu0 := cpuTime()
		for i, bt := range batches {
			h := &hints[i]
			for f := range h.Tokens {
				copy(h.Tokens[f], given[i][f])
			}
			h.TokenStore = s.dict.instance
			p, err := s.prepare(context.Background(), apiusage.Batch{Events: bt.Events, Strings: h})
			if err != nil {
				b.Fatal(err)
			}
			buf = encodeBatch(buf[:0], p)
			s.mu.Lock()
			s.st.applyPrepared(p)
			s.mu.Unlock()
			s.release(p)
			s.freezeCold()
		}
		cpu += cpuTime() - cpu0
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*streamEvents), "ns/event")
	b.ReportMetric(float64(cpu)/float64(b.N*streamEvents), "cpu-ns/event")
}

// BenchmarkPrepareStream measures an Append goroutine's share of the
// suite's ingest alone: preparing BenchmarkIngestStream's batches, with
// the tokens of every value a decoder remembers, in steady state (the
// scratch kept from batch to batch).
func BenchmarkPrepareStream(b *testing.B) {
	batches := streamWorkload(b)
	s := openTest(b, "", Options{})
	hints := make([]apiusage.BatchStrings, len(batches))
	for i, bt := range batches {
		hints[i] = *bt.Strings
		for f, vals := range bt.Strings.Values {
			hints[i].Tokens[f] = make([]uint32, len(vals))
		}
		p, err := s.prepare(context.Background(), apiusage.Batch{Events: bt.Events, Strings: &hints[i]})
		if err != nil {
			b.Fatal(err)
		}
		s.release(p)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		bt := batches[i%len(batches)]
		p, err := s.prepare(context.Background(), apiusage.Batch{Events: bt.Events, Strings: &hints[i%len(batches)]})
		if err != nil {
			b.Fatal(err)
		}
		s.release(p)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10_000), "ns/event")
}
