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
