package embedded

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/apiusage/apiusage"
	"github.com/apiusage/apiusage/storetest"
)

// TestOpenMapped checks a file's bytes as packed tables read them: the
// whole file, mapped on Linux, readable as before after its pages are let
// go, and an empty file read as no bytes.
func TestOpenMapped(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 100, 3*pageSize + 17} {
		want := make([]byte, n)
		for i := range want {
			want[i] = byte(i * 7)
		}
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, want, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		m, err := openMapped(f, int64(n))
		f.Close()
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if wantMapped := runtime.GOOS == "linux" && n > 0; m.mapped != wantMapped {
			t.Errorf("%d bytes: mapped %v, want %v", n, m.mapped, wantMapped)
		}
		if !bytes.Equal(m.b, want) {
			t.Fatalf("%d bytes: the mapping differs from the file", n)
		}
		m.evict(0, n)
		if !bytes.Equal(m.b, want) {
			t.Fatalf("%d bytes: after evict, the mapping differs from the file", n)
		}
		if n > 0 {
			if c := m.chunk(1, int64(n-1)); !bytes.Equal(c, want[1:]) || cap(c) != n-1 {
				t.Errorf("%d bytes: chunk(1, %d) is not the file's bytes, capped", n, n-1)
			}
		}
	}
}

// TestPackedFollowSnapshots checks that packed tables read the newest
// snapshot a checkpoint has handed back: every packed table's chunks are
// slices of one mapped snapshot, so that older files, once removed, free
// their space; and that answers stay exact after the pages are let go.
func TestPackedFollowSnapshots(t *testing.T) {
	g := storetest.NewGen(31)
	var m storetest.Model
	s := openTest(t, "", Options{CheckpointBytes: 4 << 10})
	s.packRows = 50
	end := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	events := daysOfEvents(g, end, 10, 4000)
	for i := 0; i < len(events); i += 100 {
		storetest.AppendBatch(t, s, &m, apiusage.Batch{Events: events[i : i+100]})
	}
	// More checkpoints after the first packing: each moves the packed
	// tables to its own snapshot.
	srcs := map[*mappedFile]bool{}
	for range 300 {
		storetest.AppendBatch(t, s, &m, apiusage.Batch{Events: daysOfEvents(g, end, 0, 20)})
		time.Sleep(time.Millisecond)
		if src := packedSources(t, s); len(src) == 1 {
			srcs[src[0]] = true
		}
		if len(srcs) >= 3 {
			break
		}
	}
	if len(srcs) < 3 {
		t.Fatalf("packed tables read %d snapshots over many checkpoints, want them to follow at least 3", len(srcs))
	}
	for src := range srcs {
		if src.mapped != (runtime.GOOS == "linux") {
			t.Errorf("snapshot mapped %v on %s", src.mapped, runtime.GOOS)
		}
	}
	src := packedSources(t, s)
	if len(src) != 1 {
		t.Fatalf("packed tables read %d snapshots, want 1", len(src))
	}
	src[0].evict(0, len(src[0].b))
	checkAll(t, s, m.Events(), g)
}

// packedSources returns the snapshots s's packed tables read, checking that
// each table's chunks lie within its own.
func packedSources(tb testing.TB, s *Store) []*mappedFile {
	tb.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var srcs []*mappedFile
	seen := map[*mappedFile]bool{}
	for _, p := range s.st.days {
		for _, t := range p.hours {
			if t == nil || t.packed == nil {
				continue
			}
			src := t.packedSrc
			if src == nil {
				tb.Fatal("a packed table without its snapshot")
			}
			lo := uintptr(unsafe.Pointer(unsafe.SliceData(src.b)))
			for _, c := range t.packed {
				at := uintptr(unsafe.Pointer(unsafe.SliceData(c)))
				if at < lo || at+uintptr(len(c)) > lo+uintptr(len(src.b)) {
					tb.Fatal("a packed chunk outside its table's snapshot")
				}
			}
			if !seen[src] {
				seen[src] = true
				srcs = append(srcs, src)
			}
		}
	}
	return srcs
}
