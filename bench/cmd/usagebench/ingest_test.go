package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apiusage/apiusage/bench/workload"
)

// TestIngestFilePostsTheRenamedFile posts a generated workload file, read
// each way, from several connections, and compares the bodies the server
// got, byte for byte, with the file's lines renamed one by one by the slow
// renaming and cut into batches of the size asked; and a post limited to
// some of the events.
func TestIngestFilePostsTheRenamedFile(t *testing.T) {
	g, err := workload.New(workload.Config{Seed: 5, Events: 3000, Organizations: 4, Clients: 30, Users: 60})
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if _, err := g.WriteTo(&file); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	u := g.Universe()
	rw := benchRewriter(u)
	rw.watch = rw.orgs[u.Organizations[1].ID]

	const size = 250
	// The batches' bodies, in the file's order, and their watched events.
	var batches []string
	var watched []int64
	n := 0
	for l := range strings.SplitAfterSeq(file.String(), "\n") {
		if l == "" {
			continue
		}
		if n%size == 0 {
			batches, watched = append(batches, ""), append(watched, 0)
		}
		out, w := slowAppendLine(rw, nil, []byte(l))
		batches[len(batches)-1] += string(out)
		if w {
			watched[len(watched)-1]++
		}
		n++
	}

	for _, way := range readWays {
		for _, limit := range []int64{0, 2 * size} {
			t.Run(fmt.Sprintf("%s, limit %d", way, limit), func(t *testing.T) {
				srv := newRawRecorder(t, accepted)
				a := newAPI("http://"+srv.ln.Addr().String(), 3)
				res, err := ingestFile(context.Background(), a, path, way, rw, size, 3, limit, nil)
				if err != nil {
					t.Fatal(err)
				}
				// The connections post batches in any order.
				var got []string
				for _, c := range srv.requests() {
					for _, req := range c {
						_, body, _ := strings.Cut(req, "\r\n\r\n")
						got = append(got, body)
					}
				}
				slices.Sort(got)
				wantHere, events := batches, int64(n)
				if limit > 0 {
					wantHere, events = batches[:limit/size], limit
				}
				var watchedHere int64
				for _, w := range watched[:len(wantHere)] {
					watchedHere += w
				}
				wantHere = slices.Sorted(slices.Values(wantHere))
				if !slices.Equal(got, wantHere) {
					t.Fatalf("posted %d bodies (%d bytes), want %d (%d bytes), or they differ",
						len(got), len(strings.Join(got, "")), len(wantHere), len(strings.Join(wantHere, "")))
				}
				if res.Acked != events || res.Sent != events || res.SentWatched != watchedHere || res.AckedWatched != watchedHere ||
					res.Batches != int64(len(wantHere)) {
					t.Errorf("result %+v; want %d events, %d watched, %d batches", res, events, watchedHere, len(wantHere))
				}
			})
		}
	}
}
