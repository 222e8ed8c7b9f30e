package embedded

import (
	"io"
	"os"
	"runtime"
)

// mappedFile is a cold file's bytes (or a snapshot's, while it is being
// loaded and for cold hours a snapshot held until the next checkpoint
// moves them to a cold file) as the packed tables read them (see packed.go
// and cold.go): the file mapped read-only where the system allows, so that
// cold rollups live in the page cache, which the kernel can reclaim and
// which outlives a restart, rather than in the process's own memory; and
// read into the heap elsewhere.
//
// Packed chunks are slices of b. Whatever holds chunks holds their
// mappedFile too (table.packedSrc, snapTable.src), and the mapping is
// released only by a cleanup, once nothing does: a file removed while
// mapped (a cold file no snapshot refers to any more) frees its space once
// the queries reading it are done.
type mappedFile struct {
	b       []byte
	mapped  bool
	coldSeg uint64 // the number of the cold file it is (see cold.go); 0 for a snapshot
}

// openMapped maps the file at path whole; where mapping is not available,
// it reads it into the heap.
func openMapped(path string) (*mappedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := st.Size()
	if n > 0 && int64(int(n)) == n {
		if b, release := mapFile(f, int(n)); b != nil {
			m := &mappedFile{b: b, mapped: true}
			runtime.AddCleanup(m, func(release func()) { release() }, release)
			return m, nil
		}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return &mappedFile{b: b}, nil
}

// evict tells the system that the process no longer needs the pages of
// b[lo:hi] it has read: restarting and checkpointing read every packed
// chunk once. The pages stay in the page cache, and a later read maps them
// again; so evicting pages that a query is reading is harmless too.
func (m *mappedFile) evict(lo, hi int) {
	if m == nil || !m.mapped {
		return
	}
	lo = (lo + pageSize - 1) &^ (pageSize - 1) // whole pages only
	hi = min(hi, len(m.b))
	if lo < hi {
		dropPages(m.b[lo:hi])
	}
}

// chunk returns the chunk at b[off:off+n].
func (m *mappedFile) chunk(off, n int64) packedChunk {
	return packedChunk(m.b[off : off+n : off+n])
}

const pageSize = 4096
