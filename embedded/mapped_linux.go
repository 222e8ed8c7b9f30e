package embedded

import (
	"os"
	"syscall"
)

// mapFile maps n bytes of f read-only and returns them with the function
// that unmaps them; nil when the mapping fails. The mapping outlives f's
// descriptor. Snapshot files are never changed once renamed into place, so
// nothing truncates a mapped file under a reader.
func mapFile(f *os.File, n int) ([]byte, func()) {
	b, err := syscall.Mmap(int(f.Fd()), 0, n, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil
	}
	return b, func() { syscall.Munmap(b) }
}

// dropPages drops b's pages from the process's memory; b is part of a
// read-only file mapping, which reads them back from the file when used.
func dropPages(b []byte) { _ = syscall.Madvise(b, syscall.MADV_DONTNEED) }
