package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apiusage/apiusage/bench/workload"
)

// slowAppendLine is the renaming as it was before the hinted search and the
// renaming in place: every key searched in the whole line. It is the oracle
// of the fast paths.
func slowAppendLine(rw *rewriter, dst, line []byte) ([]byte, bool) {
	watched := false
	for _, k := range []struct {
		key []byte
		m   map[string]string
		org bool
	}{{orgKey, rw.orgs, true}, {clientKey, rw.clients, false}} {
		i := bytes.Index(line, k.key)
		if i < 0 {
			continue
		}
		start := i + len(k.key)
		end := bytes.IndexByte(line[start:], '"')
		if end < 0 {
			continue
		}
		end += start
		value := line[start:end]
		if to, ok := k.m[string(value)]; ok {
			dst = append(dst, line[:start]...)
			dst = append(dst, to...)
			line = line[end:]
			value = []byte(to)
		} else {
			dst = append(dst, line[:end]...)
			line = line[end:]
		}
		if k.org && rw.watch != "" && string(value) == rw.watch {
			watched = true
		}
	}
	return append(dst, line...), watched
}

// copyingBatcher is a batcher that copies each line, as newBatcher makes
// one for renamings that change lengths.
func copyingBatcher(r io.Reader, rw *rewriter, size int) *batcher {
	return &batcher{rn: rw.compile(), size: size, r: bufio.NewReaderSize(r, 4<<20)}
}

// Renamings of the test lines' values: one that keeps lengths (renamed in
// place) and one that does not.
var (
	sameLength = &rewriter{
		orgs:    map[string]string{"org-a": "ORG-A", "org-b": "ORG-B", "o1": "O1"},
		clients: map[string]string{"cli-1": "CLI-1", "c1": "C1"},
		watch:   "ORG-B",
	}
	otherLength = &rewriter{
		orgs:    map[string]string{"org-a": "the-org-a", "org-b": "B", "o1": "O1"},
		clients: map[string]string{"cli-1": "client-number-one", "c1": "C1"},
		watch:   "B",
	}
)

// oddLines have the keys elsewhere than the workload puts them, twice,
// without values, in another order: after a workload line's hints.
var oddLines = []string{
	`{"timestamp":"2026-08-03T00:00:00.451Z","organizationId":"org-a","clientId":"cli-1","status":200}`,
	`{"timestamp":"2026-08-03T00:00:00.451Z","organizationId":"org-b","clientId":"cli-9","status":200}`,
	// The key earlier than the hint, and again exactly at it: at the
	// workload's 41st byte.
	`{"organizationId":"org-b","x":"2026-08","organizationId":"org-a","clientId":"cli-1"}`,
	// The key earlier than the hint, and again near it.
	`{"organizationId":"org-b","x":"2026-08-03T00:00:00.4","organizationId":"org-a","clientId":"cli-1"}`,
	// Later than the hint.
	`{"timestamp":"2026-08-03T00:00:00.451Z","userId":"u-1234567890","organizationId":"org-a","clientId":"cli-1"}`,
	`{"timestamp":"2026-08-03T00:00:00.451Z","organizationId":"org-a","userId":"u","clientName":"n","clientId":"c1"}`,
	// The client before the organization: only what follows the
	// organization's value is searched.
	`{"clientId":"cli-1","timestamp":"2026-08-03T00:00:00.451Z","organizationId":"org-a"}`,
	`{"clientId":"cli-1","status":200}`,
	// A key without its closing quote; keys without values.
	`{"timestamp":"2026-08-03T00:00:00.451Z","organizationId":"org-a`,
	`{"organizationId":"org-a","clientId":"cli-1`,
	`{"organizationId":"o1`,
	`"organizationId":"`,
	`"clientId":"`,
	`{"organizationId":"","clientId":""}`,
	// Unknown values, an empty line, a short line.
	`{"timestamp":"2026-08-03T00:00:00.451Z","organizationId":"org-z","clientId":"cli-z"}`,
	``,
	`x`,
	`{"timestamp":"2026-08-03T00:00:00.451Z","organizationId":"o1","clientId":"c1"}`,
}

// TestRenamingMatchesTheSlowSearch renames each line with the hints the
// lines before it left, appended and in place, and compares with the
// search of the whole line.
func TestRenamingMatchesTheSlowSearch(t *testing.T) {
	for _, rw := range []*rewriter{sameLength, otherLength} {
		rn := rw.compile()
		var ha, hp hints
		// Twice: the odd lines after the hints of every other kind.
		for _, l := range append(oddLines, oddLines...) {
			line := []byte(l + "\n")
			want, wantW := slowAppendLine(rw, []byte("dst|"), line)
			got, gotW := rn.appendLine([]byte("dst|"), line, &ha)
			if string(got) != string(want) || gotW != wantW {
				t.Errorf("appendLine(%s) = %s, %v; want %s, %v", l, got, gotW, want, wantW)
			}
			if !rn.keepsLengths {
				continue
			}
			in := []byte(l + "\n")
			if w := rn.renameInPlace(in, &hp); "dst|"+string(in) != string(want) || w != wantW {
				t.Errorf("renameInPlace(%s) = %s, %v; want %s, %v", l, in, w, want[4:], wantW)
			}
		}
	}
	if i := strings.LastIndex(oddLines[2], string(orgKey)); i != strings.Index(oddLines[0], string(orgKey)) {
		t.Errorf("the odd line's second key is at %d, not at the hint", i)
	}
	if !sameLength.compile().keepsLengths || otherLength.compile().keepsLengths {
		t.Fatal("keepsLengths is wrong of the test's renamings")
	}
}

// TestRenamingMatchesTheSlowSearchAtRandom compares the renamings on lines
// made of random pieces: keys, values, quotes and fillers, in any order.
func TestRenamingMatchesTheSlowSearchAtRandom(t *testing.T) {
	pieces := []string{`"organizationId":"`, `"clientId":"`, `org-a`, `org-b`, `o1`, `cli-1`, `c1`, `"`, `,`,
		`{"timestamp":"2026-08-03T00:00:00.451Z",`, `x`, `organizationId`, `":"`, `"clientName":"n"`, `}`}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, rw := range []*rewriter{sameLength, otherLength} {
		rn := rw.compile()
		var ha, hp hints
		for range 20_000 {
			var b strings.Builder
			for range rng.IntN(12) {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
			l := b.String()
			want, wantW := slowAppendLine(rw, nil, []byte(l))
			got, gotW := rn.appendLine(nil, []byte(l), &ha)
			if string(got) != string(want) || gotW != wantW {
				t.Fatalf("appendLine(%s) = %s, %v; want %s, %v", l, got, gotW, want, wantW)
			}
			if rn.keepsLengths {
				in := []byte(l)
				if w := rn.renameInPlace(in, &hp); string(in) != string(want) || w != wantW {
					t.Fatalf("renameInPlace(%s) = %s, %v; want %s, %v", l, in, w, want, wantW)
				}
			}
		}
	}
}

// TestBatchersMatchTheSlowRenaming cuts a generated workload, with blank
// lines, odd lines and no last newline added, into batches in place (read
// in chunks of several sizes, down to a byte) and by copying; each must
// hold the lines the slow renaming gives, in batches of the size asked.
func TestBatchersMatchTheSlowRenaming(t *testing.T) {
	g, err := workload.New(workload.Config{Seed: 3, Events: 2000, Organizations: 3, Clients: 20, Users: 50})
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	if _, err := g.WriteTo(&file); err != nil {
		t.Fatal(err)
	}
	u := g.Universe()
	rw := benchRewriter(u)
	rw.watch = rw.orgs[u.Organizations[0].ID]
	if !rw.compile().keepsLengths {
		t.Fatal("UUIDs renamed to UUIDs do not keep lengths")
	}
	// Odd lines among the workload's, blank lines, and no newline at the
	// end.
	lines := strings.SplitAfter(file.String(), "\n")
	var in strings.Builder
	for i, l := range lines {
		in.WriteString(l)
		switch i % 97 {
		case 5:
			in.WriteString("\n")
		case 6:
			in.WriteString(" \t\r\n")
		case 7:
			in.WriteString(oddLines[i%len(oddLines)] + "\n")
		}
	}
	text := strings.TrimSuffix(in.String(), "\n")
	// What the batches must hold: the events, renamed one by one.
	var want []string
	var wantWatched int
	for l := range strings.SplitAfterSeq(text, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		out, w := slowAppendLine(rw, nil, []byte(l))
		if !bytes.HasSuffix(out, []byte("\n")) {
			out = append(out, '\n')
		}
		want = append(want, string(out))
		if w {
			wantWatched++
		}
	}
	const size = 300
	for _, tt := range []struct {
		name  string
		chunk int // 0: copying
	}{{"copying", 0}, {"in place, read a byte at a time", 1}, {"in place, 7 bytes", 7}, {"in place, 1000 bytes", 1000}, {"in place", readChunk}} {
		t.Run(tt.name, func(t *testing.T) {
			var bt *batcher
			if tt.chunk == 0 {
				bt = copyingBatcher(strings.NewReader(text), rw, size)
			} else {
				bt = newBatcher(strings.NewReader(text), rw, size)
				bt.chunk = tt.chunk
			}
			var got strings.Builder
			var b batch
			events, watched := 0, 0
			for {
				err := bt.next(&b)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if events+b.events < len(want) && b.events != size {
					t.Fatalf("a batch of %d events before the last, want %d", b.events, size)
				}
				if n := bytes.Count(b.body, []byte("\n")); n != b.events {
					t.Fatalf("a batch of %d lines counts %d events", n, b.events)
				}
				events += b.events
				watched += b.watched
				got.Write(b.body)
			}
			if events != len(want) || watched != wantWatched {
				t.Fatalf("%d events, %d watched; want %d, %d", events, watched, len(want), wantWatched)
			}
			if got.String() != strings.Join(want, "") {
				t.Fatalf("the batches differ from the slow renaming's lines")
			}
		})
	}
}

// TestTableMatchesAMap looks up present and absent values of every length
// in tables of several sizes, among them values of one hash (the same
// length, first and last eight bytes), which only probing tells apart.
func TestTableMatchesAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	value := func() string {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = "ab-\"0"[rng.IntN(5)]
		}
		return string(b)
	}
	for _, n := range []int{0, 1, 3, 20, 100} {
		m := map[string]string{}
		for len(m) < n {
			m[value()] = value()
		}
		// Values of one hash, some in the map.
		for i := range 6 {
			v := fmt.Sprintf("12345678-%03d-87654321", i)
			if i%2 == 0 {
				m[v] = "same-hash-" + v
			}
		}
		tab := newTable(m)
		probes := []string{"", "12345678-001-87654321", "12345678-003-87654321"}
		for k := range m {
			probes = append(probes, k, k+"x", strings.TrimSuffix(k, k[len(k)-min(len(k), 1):]))
		}
		for range 1000 {
			probes = append(probes, value())
		}
		for _, p := range probes {
			want, wantOK := m[p]
			got, ok := tab.get([]byte(p))
			if got != want || ok != wantOK {
				t.Fatalf("table of %d: get(%q) = %q, %v; want %q, %v", len(m), p, got, ok, want, wantOK)
			}
		}
	}
}

// TestRareKeyBytes checks the bytes index relies on: each does not occur in
// its key before it (else the key would never be found at the hint without
// a search), nor in the workload's lines before the key searched.
func TestRareKeyBytes(t *testing.T) {
	line := oddLines[0]
	org := strings.Index(line, string(orgKey))
	client := strings.Index(line, string(clientKey))
	for _, tt := range []struct {
		key    []byte
		rare   int
		before string // what a search sees before the key
	}{
		{orgKey, orgKeyRare, line[:org]},
		{clientKey, clientKeyRare, line[org+len(orgKey) : client]},
	} {
		c := tt.key[tt.rare]
		if bytes.IndexByte(tt.key[:tt.rare], c) >= 0 || strings.IndexByte(tt.before, c) >= 0 {
			t.Errorf("%q of %s occurs before it", c, tt.key)
		}
	}
}
