package main

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// errDirectRefused is a read's error when the file system does not take
// O_DIRECT reads.
var errDirectRefused = errors.New("O_DIRECT refused")

// openDirect opens path with O_DIRECT, or returns -1 where the file system
// refuses it.
func openDirect(path string) int {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

func preadDirect(fd int, b []byte, off int64) (int, error) {
	for {
		n, err := unix.Pread(fd, b, off)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EINVAL:
			return 0, errDirectRefused
		case err != nil:
			return 0, err
		}
		return n, nil
	}
}

func closeFD(fd int) { unix.Close(fd) }

// openDropBehind opens path to be read in order, once.
func openDropBehind(path string) (*dropBehind, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	// Advice only: a kernel that does not take it reads as it would.
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	d := &dropBehind{f: f}
	if st, err := f.Stat(); err == nil && !fitsCache(st.Size()) {
		d.every = dropEvery
	}
	return d, nil
}

// fitsCache reports whether a file of size bytes stays in the page cache
// once read: whether it is at most half the machine's memory.
func fitsCache(size int64) bool {
	var si unix.Sysinfo_t
	return unix.Sysinfo(&si) == nil && uint64(size) <= uint64(si.Totalram)*uint64(si.Unit)/2
}

func fadviseDontNeed(f *os.File, off, n int64) {
	_ = unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED)
}

// hugePage is the size of a transparent huge page on the machines we run
// on (x86-64, arm64 with 4 KiB pages).
const hugePage = 2 << 20

// bodyBuffer returns an empty buffer of n bytes' capacity for a batch's
// body, mapped on its own and advised to be backed by huge pages
// (MADV_HUGEPAGE: this host's THP setting is madvise, and the Go runtime
// does not advise its heap), and the function that unmaps it; the buffer
// must not be used after. On this VM the first touch of a 4 KiB page costs
// tens of microseconds, so the few batches of 3 MB an ingest fills cost
// about 0.13 CPU-s of page faults from the Go heap, and a few ms in huge
// pages; the reads into them and the writes from them also take fewer TLB
// misses. Where the mapping fails, the buffer is the Go heap's.
func bodyBuffer(n int) ([]byte, func()) { return mapBuffer(n, true) }

// mapBuffer is bodyBuffer, with the advice of huge pages or without.
func mapBuffer(n int, huge bool) ([]byte, func()) {
	size := (n + hugePage - 1) &^ (hugePage - 1)
	m, err := unix.Mmap(-1, 0, size+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, 0, n), func() {}
	}
	// A huge page needs a 2 MiB aligned range: the mapping has one more
	// huge page's bytes to align its start.
	skip := int((hugePage - addr(m)%hugePage) % hugePage)
	b := m[skip : skip+size : skip+size]
	if huge {
		_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // advice only
	}
	return b[:0], func() { _ = unix.Munmap(m) }
}
