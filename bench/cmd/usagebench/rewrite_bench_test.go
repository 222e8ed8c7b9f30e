package main

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/apiusage/apiusage/bench/workload"
)

// benchWorkload is a generated workload and the renaming the suite would
// use for it: every organization and one client renamed to a UUID.
func benchWorkload(b *testing.B, events int64) ([]byte, *rewriter) {
	b.Helper()
	g, err := workload.New(workload.Config{Seed: 1, Events: events})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	u := g.Universe()
	rw := benchRewriter(u)
	rw.watch = rw.orgs[u.Organizations[0].ID]
	return buf.Bytes(), rw
}

// BenchmarkBatcher cuts a workload into batches of 10,000 events, renamed,
// as ingestFile does: read in place, or copied line by line.
func BenchmarkBatcher(b *testing.B) {
	data, rw := benchWorkload(b, 200_000)
	for _, tt := range []struct {
		name string
		new  func(io.Reader) *batcher
	}{
		{"copying", func(r io.Reader) *batcher { return copyingBatcher(r, rw, 10_000) }},
		{"in place", func(r io.Reader) *batcher { return newBatcher(r, rw, 10_000) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			var bt batch
			for b.Loop() {
				btr := tt.new(bytes.NewReader(data))
				for {
					if err := btr.next(&bt); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/200_000, "ns/event")
		})
	}
}

// BenchmarkRenameLine renames the lines of a workload one by one: the slow
// search of the whole line, the hinted one appended, and in place.
func BenchmarkRenameLine(b *testing.B) {
	data, rw := benchWorkload(b, 20_000)
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines = lines[:len(lines)-1]
	dst := make([]byte, 0, 1024)
	rn := rw.compile()
	for _, tt := range []struct {
		name string
		fn   func(h *hints, line []byte)
	}{
		{"slow", func(_ *hints, line []byte) { slowAppendLine(rw, dst, line) }},
		{"hinted", func(h *hints, line []byte) { rn.appendLine(dst, line, h) }},
		{"in place", func(h *hints, line []byte) { rn.renameInPlace(line, h) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			var h hints
			i := 0
			for b.Loop() {
				tt.fn(&h, lines[i])
				if i++; i == len(lines) {
					i = 0
				}
			}
		})
	}
}

// benchRewriter renames the workload's organizations and its largest
// organization's busiest client, as a run's rewriter does.
func benchRewriter(u *workload.Universe) *rewriter {
	rw := &rewriter{orgs: map[string]string{}, clients: map[string]string{}}
	for i, o := range u.Organizations {
		rw.orgs[o.ID] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
	}
	c := u.OrganizationClients(0)[0]
	rw.clients[c.ID] = "c0000000-0000-4000-8000-000000000000"
	return rw
}
