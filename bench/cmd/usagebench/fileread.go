package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"
)

// How the load generator reads the workload file: the -read flag.
//
// The full run's file (28 GiB) is larger than the machine's memory. Read
// plainly through the page cache, every page of it is a page of the cache
// allocated (on this VM fresh memory is first touched at tens of
// microseconds a page), copied out, and reclaimed again, partly by kswapd,
// on the cores the server uses: 0.58 to 1.0 CPU s per million events for
// the load generator in full runs, against 0.34 in quick runs whose file
// stays cached. Dropping the pages behind the read keeps the file's share
// of the cache to a few tens of MiB whose pages are reused at once: no
// fresh memory, no reclaim. That measured cheaper than O_DIRECT into the
// generator's own buffers (no page cache, but a copy out of the read-ahead
// buffers and the pinning of their pages on every read), and reads faster
// (the kernel's read-ahead keeps more of the disk busy): bench/README.md
// has the figures. The other ways stay, to measure them again elsewhere.
const (
	// readDropBehind reads through the page cache, telling the kernel the
	// read is sequential (POSIX_FADV_SEQUENTIAL: a longer read-ahead) and
	// dropping the pages already read (POSIX_FADV_DONTNEED). The default.
	readDropBehind = "dropbehind"
	// readDirect reads with O_DIRECT into aligned buffers, a goroutine
	// reading ahead, and through the page cache where O_DIRECT is refused.
	readDirect = "direct"
	// readPlain reads through the page cache, as before 2026-11-26.
	readPlain = "plain"
)

// readWays are the ways openWorkload knows.
var readWays = []string{readDropBehind, readDirect, readPlain}

// Read-ahead of a direct read: directBuffers buffers of directBufferSize
// bytes, one being consumed while the others are read or wait, full. Each
// read is a few milliseconds of the disk; the buffers are touched for the
// first time once (about 60 ms of page faults on this VM for the 12 MiB).
const (
	directBufferSize = 4 << 20
	directBuffers    = 3
	// directAlign aligns O_DIRECT's buffers, offsets and lengths: the
	// page size, a multiple of any disk's logical block.
	directAlign = 4096
)

// openWorkload opens the workload file at path for one read from start to
// end, the way named by one of the read constants.
func openWorkload(path, way string) (io.ReadCloser, error) {
	switch way {
	case readPlain:
		return os.Open(path)
	case readDropBehind:
		return openDropBehind(path)
	case readDirect:
		f, err := openDirectFile(path)
		if err != nil {
			return nil, err
		}
		return newReadAhead(f, directBufferSize, directBuffers), nil
	}
	return nil, fmt.Errorf("unknown way of reading %q", way)
}

// readAhead reads a file in order in buffers of a fixed size, a goroutine
// filling the next ones while the reader consumes the current one, so that
// the batcher does not wait for the disk. It is not safe for concurrent
// use.
type readAhead struct {
	full chan filled
	free chan []byte
	stop chan struct{}
	done chan struct{}
	src  *directFile

	cur filled
	off int // bytes of cur.b consumed
}

// filled is a buffer read, and the error that ended the read, if any.
type filled struct {
	b   []byte
	err error
}

func newReadAhead(src *directFile, size, n int) *readAhead {
	r := &readAhead{
		full: make(chan filled, n),
		free: make(chan []byte, n),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		src:  src,
	}
	for range n {
		r.free <- alignedBuffer(size)
	}
	go r.fill()
	return r
}

// alignedBuffer returns size bytes whose start is directAlign-aligned.
func alignedBuffer(size int) []byte {
	b := make([]byte, size+directAlign)
	skip := 0
	if rem := int(addr(b) % directAlign); rem != 0 {
		skip = directAlign - rem
	}
	return b[skip : skip+size : skip+size]
}

func (r *readAhead) fill() {
	defer close(r.done)
	var off int64
	for {
		var b []byte
		select {
		case b = <-r.free:
		case <-r.stop:
			return
		}
		n, err := r.src.readFull(b[:cap(b)], off)
		off += int64(n)
		select {
		case r.full <- filled{b[:n], err}:
		case <-r.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// Read copies the next bytes of the file to p.
func (r *readAhead) Read(p []byte) (int, error) {
	for r.off == len(r.cur.b) {
		if r.cur.err != nil {
			return 0, r.cur.err
		}
		if r.cur.b != nil {
			r.free <- r.cur.b
		}
		// The last buffer fill sends holds its error: Read stops above
		// before waiting for another.
		r.cur, r.off = <-r.full, 0
	}
	n := copy(p, r.cur.b[r.off:])
	r.off += n
	return n, nil
}

// Close stops reading ahead and closes the file.
func (r *readAhead) Close() error {
	close(r.stop)
	<-r.done
	return r.src.Close()
}

// directFile is a file read with O_DIRECT where the kernel takes it: at
// offsets, into memory and of lengths aligned to directAlign. Elsewhere (the
// file's unaligned tail, a file system or OS refusing O_DIRECT) it is read
// through the page cache, from a descriptor opened without O_DIRECT.
type directFile struct {
	direct int // the O_DIRECT descriptor; -1 when there is none
	plain  *os.File
	// directBytes counts the bytes read with O_DIRECT, for tests.
	directBytes int64
}

func openDirectFile(path string) (*directFile, error) {
	plain, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &directFile{direct: openDirect(path), plain: plain}, nil
}

// readFull reads len(b) bytes of the file at off into b, or fewer with
// io.EOF at its end.
func (f *directFile) readFull(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		if f.direct >= 0 && (off+int64(n))%directAlign == 0 && addr(b[n:])%directAlign == 0 && (len(b)-n)%directAlign == 0 {
			m, err := preadDirect(f.direct, b[n:], off+int64(n))
			if errors.Is(err, errDirectRefused) {
				f.closeDirect()
				continue
			}
			if err != nil {
				return n, fmt.Errorf("read at %d: %w", off+int64(n), err)
			}
			if m == 0 {
				return n, io.EOF
			}
			n += m
			f.directBytes += int64(m)
			continue
		}
		m, err := f.plain.ReadAt(b[n:], off+int64(n))
		return n + m, err
	}
	return n, nil
}

// addr is the address of b's first byte.
func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func (f *directFile) closeDirect() {
	if f.direct >= 0 {
		closeFD(f.direct)
		f.direct = -1
	}
}

// Close closes both descriptors.
func (f *directFile) Close() error {
	f.closeDirect()
	return f.plain.Close()
}

// dropBehind reads a file through the page cache, asking the kernel to
// read ahead further (POSIX_FADV_SEQUENTIAL) and to drop what was read
// (POSIX_FADV_DONTNEED), every dropEvery bytes, so that the file's pages
// do not crowd the cache and need no reclaim. A file of less than half the
// machine's memory is not dropped: it stays cached for the next system's
// load and the next run (the quick run's 3 GB file), which read it
// cheapest there; dropped, the next plain read of it cost 4.4 CPU s per GB
// in page faults against 0.3 to 0.7 cached.
type dropBehind struct {
	f            *os.File
	every        int64 // dropEvery; 0 to keep the pages (a file that fits)
	off, dropped int64
}

// dropEvery is how many bytes are read between two drops: a few hundred
// system calls for the full run's file, and pages freed a fraction of a
// second before the read-ahead asks for pages again, so that it gets them
// back still backed by the host (on this VM, free memory the host took
// back costs a fault on its next touch).
const dropEvery = 64 << 20

// Read reads from the file, and drops the pages read once dropEvery bytes
// are.
func (d *dropBehind) Read(p []byte) (int, error) {
	n, err := d.f.Read(p)
	d.off += int64(n)
	if d.every > 0 && d.off-d.dropped >= d.every {
		fadviseDontNeed(d.f, d.dropped, d.off-d.dropped)
		d.dropped = d.off &^ (directAlign - 1)
	}
	return n, err
}

// Close closes the file.
func (d *dropBehind) Close() error { return d.f.Close() }

var _ io.ReadCloser = (*dropBehind)(nil)
